#include "kura/fhir/resource.h"

#include <gtest/gtest.h>

namespace kura::fhir {
namespace {

ResourceDocument J(std::string_view text) {
  StatusOr<ResourceDocument> doc = ParseResourceDocument(text, {});
  EXPECT_TRUE(doc.ok()) << doc.status().ToString();
  return doc.ok() ? std::move(*doc) : ResourceDocument{};
}

TEST(IdTest, Syntax) {
  EXPECT_TRUE(IsValidId("abc-DEF.123"));
  EXPECT_TRUE(IsValidId(std::string(64, 'a')));
  EXPECT_FALSE(IsValidId(std::string(65, 'a')));
  EXPECT_FALSE(IsValidId(""));
  EXPECT_FALSE(IsValidId("a/b"));
  EXPECT_FALSE(IsValidId("a_b"));
}

TEST(CheckIdentityTest, TypeAndIdRules) {
  EXPECT_TRUE(CheckIdentity(J(R"({"resourceType":"Patient"})"), "Patient", std::nullopt).ok());
  auto mismatch = CheckIdentity(J(R"({"resourceType":"Observation"})"), "Patient", std::nullopt);
  EXPECT_EQ(mismatch.code(), StatusCode::kInvalidArgument);
  auto unknown = CheckIdentity(J(R"({"resourceType":"Foo"})"), "Patient", std::nullopt);
  EXPECT_EQ(unknown.details()[0].expression, "resourceType");
  auto missing = CheckIdentity(J(R"({"id":"1"})"), "Patient", std::nullopt);
  EXPECT_EQ(missing.details()[0].issue_code, "required");
  auto no_id = CheckIdentity(J(R"({"resourceType":"Patient"})"), "Patient", "p1");
  EXPECT_EQ(no_id.details()[0].expression, "Patient.id");
  auto other_id = CheckIdentity(J(R"({"resourceType":"Patient","id":"p2"})"), "Patient", "p1");
  EXPECT_EQ(other_id.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckIdentity(J(R"({"resourceType":"Patient","id":"p1"})"), "Patient", "p1").ok());
}

TEST(StampServerFieldsTest, ServerOwnsVersionAndLastUpdated) {
  ResourceDocument r = J(R"({"name":[{"family":"X"}],"meta":{"versionId":"99",
                 "tag":[{"code":"t"}],"lastUpdated":"2000-01-01T00:00:00Z"},
                 "resourceType":"Patient","id":"client","weight":70.50})");
  StatusOr<std::string> stamped = StampServerFields(r, "p1", 3, FromMicros(1'700'000'000'123'456));
  ASSERT_TRUE(stamped.ok()) << stamped.status().ToString();
  EXPECT_EQ(*stamped, R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"3",)"
                      R"("lastUpdated":"2023-11-14T22:13:20.123Z","tag":[{"code":"t"}]},)"
                      R"("name":[{"family":"X"}],"weight":70.50})");
  // The result is what nlohmann (and any JSON parser) reads as the same resource.
  EXPECT_EQ(Json::parse(*stamped)["meta"]["versionId"], "3");
  ResourceDocument no_meta = J(R"({"resourceType":"Basic"})");
  EXPECT_EQ(*StampServerFields(no_meta, "b", 1, FromMicros(0)),
            R"({"resourceType":"Basic","id":"b","meta":{"versionId":"1",)"
            R"("lastUpdated":"1970-01-01T00:00:00.000Z"}})");
  ResourceDocument bad = J(R"({"resourceType":"Patient","meta":[]})");
  EXPECT_EQ(StampServerFields(bad, "p1", 1, FromMicros(0)).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(PatientCompartmentsTest, FollowsTheCompartmentDefinition) {
  EXPECT_EQ(PatientCompartments(J(R"({"resourceType":"Patient","id":"p1"})")),
            std::vector<std::string>{"p1"});
  EXPECT_EQ(PatientCompartments(J(R"({"resourceType":"Observation",
      "subject":{"reference":"Patient/p1"},
      "performer":[{"reference":"Practitioner/d"},{"reference":"Patient/p2"},
                   {"reference":"https://x.example/fhir/Patient/p1"}]})")),
            (std::vector<std::string>{"p1", "p2"}));  // The subject leads.
  EXPECT_TRUE(PatientCompartments(J(R"({"resourceType":"Observation",
      "subject":{"reference":"Group/g"}})"))
                  .empty());
  EXPECT_TRUE(PatientCompartments(J(R"({"resourceType":"Organization","name":"x"})")).empty());
  EXPECT_EQ(PatientCompartments(J(R"({"resourceType":"Appointment",
      "participant":[{"actor":{"reference":"Patient/a"}}]})")),
            std::vector<std::string>{"a"});
}

TEST(OperationOutcomeTest, OneIssuePerDetail) {
  Status s = InvalidArgumentError("bad")
                 .WithDetail({"value", "not a date", "Patient.birthDate"})
                 .WithDetail({"required", "missing", "Patient.name[0].family"});
  Json oo = OperationOutcomeFor(s);
  ASSERT_EQ(oo["issue"].size(), 2u);
  EXPECT_EQ(oo["issue"][0]["code"], "value");
  EXPECT_EQ(oo["issue"][1]["expression"][0], "Patient.name[0].family");
  Json plain = OperationOutcomeFor(NotFoundError("no such resource"));
  EXPECT_EQ(plain["issue"][0]["code"], "not-found");
  EXPECT_EQ(plain["issue"][0]["diagnostics"], "no such resource");
}

}  // namespace
}  // namespace kura::fhir
