// Search indexing end to end below HTTP: resources are indexed with IndexRowsFor, stored through
// EncryptingStore on a real SQLite database, and found (or not) by FHIR searches compiled with
// CompileSearch. Covers the FHIR semantics of each parameter type, prefix and modifier, and what
// the data register changes.
#include "kura/api/search_indexing.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "kura/crypto/local_key_file.h"
#include "kura/fhir/json.h"
#include "kura/fhir/resource.h"
#include "kura/store/encrypting_store.h"
#include "kura/store/sqlite/sqlite_store.h"

namespace kura::api {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;
using Params = std::vector<std::pair<std::string, std::string>>;

constexpr std::string_view kBase = "https://phr.example/fhir/R4";

class SearchIndexingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kura-search-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ASSERT_TRUE(crypto::LocalKeyFileProvider::CreateKeyFile(dir_ / "master.key").ok());
    keys_ = std::move(*crypto::LocalKeyFileProvider::Load(dir_ / "master.key"));
    auto opened = store::SqliteStore::Open({.path = dir_ / "kura.db"});
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    backend_ = std::move(*opened);
    store_ = std::make_unique<store::EncryptingStore>(*backend_, *keys_, "t1", 64);
  }
  void TearDown() override {
    store_.reset();
    backend_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Put(const std::string& json, const fhir::DataRegister& reg = fhir::DataRegister::Default()) {
    fhir::Json parsed = fhir::Json::parse(json);
    store::ResourceVersion v;
    v.type = parsed["resourceType"];
    v.id = parsed["id"];
    auto current = store_->ReadCurrent(v.type, v.id);
    v.version = current.ok() ? current->version + 1 : 1;
    v.last_updated = FromMicros(1'700'000'000'000'000);
    v.payload = json;
    // The record compartment, as the API picks it.
    auto doc = fhir::ParseResourceDocument(json, {});
    ASSERT_TRUE(doc.ok()) << doc.status().ToString();
    std::vector<std::string> compartments = fhir::PatientCompartments(*doc);
    if (!compartments.empty()) v.compartment = compartments.front();
    auto rows = IndexRowsFor(json, reg, kBase);
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    v.index = std::move(*rows);
    store::WriteBatch batch;
    batch.resources.push_back(std::move(v));
    auto committed = store_->Commit(std::move(batch));
    ASSERT_TRUE(committed.ok()) << committed.status().ToString();
  }

  StatusOr<std::vector<std::string>> Find(
      const std::string& type, Params params,
      const fhir::DataRegister& reg = fhir::DataRegister::Default()) {
    KURA_ASSIGN_OR_RETURN(fhir::SearchRequest request,
                          fhir::ParseSearchRequest(type, params, true, fhir::SearchLimits{}));
    KURA_ASSIGN_OR_RETURN(store::IndexQuery query,
                          CompileSearch(request, reg, kBase, FromMicros(1'760'000'000'000'000)));
    query.limit = 1000;
    KURA_ASSIGN_OR_RETURN(store::IndexPage page, store_->Search(query));
    std::vector<std::string> ids;
    for (const store::IndexHit& hit : page.hits) ids.push_back(hit.id);
    return ids;
  }

  std::vector<std::string> Ids(const std::string& type, Params params) {
    StatusOr<std::vector<std::string>> ids = Find(type, std::move(params));
    EXPECT_TRUE(ids.ok()) << ids.status().ToString();
    return ids.ok() ? *ids : std::vector<std::string>{};
  }

  void LoadObservations() {
    Put(R"({"resourceType":"Observation","id":"o1","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
      "subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-01-15T10:00:00Z",
      "valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}})");
    Put(R"({"resourceType":"Observation","id":"o2","status":"amended",
      "code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},
      "subject":{"reference":"https://phr.example/fhir/R4/Patient/p1"},
      "effectiveDateTime":"2024-02",
      "valueQuantity":{"value":120.5,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}})");
    Put(R"({"resourceType":"Observation","id":"o3","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"},{"code":"HR"}]},
      "subject":{"reference":"Patient/p2"},
      "effectivePeriod":{"start":"2023-12-30","end":"2024-01-02"},
      "valueQuantity":{"value":100,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}})");
  }

  std::filesystem::path dir_;
  std::unique_ptr<crypto::LocalKeyFileProvider> keys_;
  std::unique_ptr<store::SqliteStore> backend_;
  std::unique_ptr<store::EncryptingStore> store_;
};

TEST_F(SearchIndexingTest, TokensReferencesAndLocalAbsoluteReferences) {
  LoadObservations();
  EXPECT_THAT(Ids("Observation", {{"code", "http://loinc.org|8867-4"}}), ElementsAre("o1", "o3"));
  EXPECT_THAT(Ids("Observation", {{"code", "|HR"}}), ElementsAre("o3"));
  EXPECT_THAT(Ids("Observation", {{"code", "HR"}}), ElementsAre("o3"));
  EXPECT_THAT(Ids("Observation", {{"subject", "Patient/p1"}}), ElementsAre("o1", "o2"));
  EXPECT_THAT(Ids("Observation", {{"subject", "p1"}}), ElementsAre("o1", "o2"));
  EXPECT_THAT(Ids("Observation", {{"patient", "https://phr.example/fhir/R4/Patient/p1"}}),
              ElementsAre("o1", "o2"));
  EXPECT_THAT(Ids("Observation", {{"status:not", "final"}}), ElementsAre("o2"));
  EXPECT_THAT(Ids("Observation", {{"subject", "Patient/p1"}, {"code", "8867-4"}}),
              ElementsAre("o1"));
}

TEST_F(SearchIndexingTest, DatePrefixesFollowTheSpecsRangeRules) {
  LoadObservations();
  // o1 2024-01-15T10:00:00Z, o2 the whole of 2024-02, o3 2023-12-30 .. 2024-01-02.
  EXPECT_THAT(Ids("Observation", {{"date", "2024-01-15"}}), ElementsAre("o1"));
  EXPECT_THAT(Ids("Observation", {{"date", "2024-02-10"}}), ElementsAre());  // Not contained.
  EXPECT_THAT(Ids("Observation", {{"date", "2024"}}), ElementsAre("o1", "o2"));
  EXPECT_THAT(Ids("Observation", {{"date", "gt2024-01-01"}}), ElementsAre("o1", "o2", "o3"));
  EXPECT_THAT(Ids("Observation", {{"date", "lt2024-01-01"}}), ElementsAre("o3"));
  EXPECT_THAT(Ids("Observation", {{"date", "ge2024-02"}}), ElementsAre("o2"));
  EXPECT_THAT(Ids("Observation", {{"date", "le2024-01-15"}}), ElementsAre("o1", "o3"));
  EXPECT_THAT(Ids("Observation", {{"date", "sa2024-01-10"}}), ElementsAre("o1", "o2"));
  EXPECT_THAT(Ids("Observation", {{"date", "eb2024-01-10"}}), ElementsAre("o3"));
  EXPECT_THAT(Ids("Observation", {{"date", "ne2024-01-15"}}), ElementsAre("o2", "o3"));
  EXPECT_THAT(Ids("Observation", {{"date", "2024-01-15T10:00:00+00:00"}}), ElementsAre("o1"));
}

TEST_F(SearchIndexingTest, QuantityAndNumberPrecision) {
  LoadObservations();
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "72"}}), ElementsAre("o1"));
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "120"}}), ElementsAre());  // [119.5,120.5)
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "120.5"}}), ElementsAre("o2"));
  // 1e2 has one significant digit: [50, 150).
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "1e2"}}), ElementsAre("o1", "o2", "o3"));
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "gt99|http://unitsofmeasure.org|/min"}}),
              ElementsAre("o3"));
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "le100||/min"}}), ElementsAre("o1", "o3"));
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "ap110"}}), ElementsAre("o2", "o3"));
  EXPECT_THAT(Ids("Observation", {{"code-value-quantity", "http://loinc.org|8867-4$gt80"}}),
              ElementsAre("o3"));
  EXPECT_THAT(Ids("Observation", {{"code-value-quantity", "8480-6$120.5"}}), ElementsAre("o2"));
}

TEST_F(SearchIndexingTest, QuantitiesInUcumUnitsCompareInBaseUnits) {
  auto weight = [&](const std::string& id, const std::string& value, const std::string& code) {
    Put(R"({"resourceType":"Observation","id":")" + id + R"(","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
      "valueQuantity":{"value":)" +
        value + R"(,"system":"http://unitsofmeasure.org","code":")" + code + R"("}})");
  };
  weight("kg", "72.5", "kg");
  weight("g", "72500", "g");
  weight("lb", "160", "[lb_av]");  // 72.57 kg
  weight("light", "3.2", "kg");
  Put(R"({"resourceType":"Observation","id":"fever","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"8310-5"}]},
    "valueQuantity":{"value":101.3,"system":"http://unitsofmeasure.org","code":"[degF]"}})");
  Put(R"({"resourceType":"Observation","id":"normal","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"8310-5"}]},
    "valueQuantity":{"value":36.8,"system":"http://unitsofmeasure.org","code":"Cel"}})");
  Put(R"({"resourceType":"Observation","id":"unitless","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
    "valueQuantity":{"value":72500}})");
  Put(R"({"resourceType":"Observation","id":"bp","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
    "component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},
      "valueQuantity":{"value":16,"system":"http://unitsofmeasure.org","code":"kPa"}}]})");

  const std::string ucum = "|http://unitsofmeasure.org|";
  // 72.5 kg is [72.45, 72.55) kg, in any unit of mass.
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "72.5" + ucum + "kg"}}),
              UnorderedElementsAre("kg", "g"));
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "72500" + ucum + "g"}}),
              UnorderedElementsAre("kg", "g"));
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "ap72.5" + ucum + "kg"}}),
              UnorderedElementsAre("kg", "g", "lb"));
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "gt70000" + ucum + "g"}}),
              UnorderedElementsAre("kg", "g", "lb"));
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "lt10" + ucum + "[lb_av]"}}),
              ElementsAre("light"));
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "ge72.5" + ucum + "kg"}}),
              UnorderedElementsAre("kg", "g", "lb"));
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "gt72.5" + ucum + "kg"}}), ElementsAre("lb"));
  // Temperatures convert with their offset: 101.3 °F is 38.5 °C.
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "gt38" + ucum + "Cel"}}),
              ElementsAre("fever"));
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "lt99" + ucum + "[degF]"}}),
              ElementsAre("normal"));
  // Alternatives in several units (160 lb would be [159.5, 160.5) lb, which holds 72.5 kg).
  EXPECT_THAT(
      Ids("Observation", {{"value-quantity", "3200" + ucum + "g,160.0" + ucum + "[lb_av]"}}),
      UnorderedElementsAre("light", "lb"));
  // Without UCUM, the value as written: the unit-less 72500 and the 72500 g.
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "72500"}}),
              UnorderedElementsAre("g", "unitless"));
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "72500||g"}}), ElementsAre("g"));
  // Another dimension finds nothing; a unit that does not convert compares as written.
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "72.5" + ucum + "m"}}), ElementsAre());
  EXPECT_THAT(Ids("Observation", {{"value-quantity", "72.5" + ucum + "[iU]"}}), ElementsAre());
  // Composites: 16 kPa is 120 mm[Hg].
  EXPECT_THAT(Ids("Observation", {{"component-code-value-quantity",
                                   "http://loinc.org|8480-6$ge119" + ucum + "mm[Hg]"}}),
              ElementsAre("bp"));
  EXPECT_THAT(Ids("Observation", {{"component-code-value-quantity",
                                   "http://loinc.org|8480-6$lt110" + ucum + "mm[Hg]"}}),
              ElementsAre());
  EXPECT_THAT(Ids("Observation", {{"value-quantity:missing", "false"}}),
              UnorderedElementsAre("kg", "g", "lb", "light", "fever", "normal", "unitless"));
}

TEST_F(SearchIndexingTest, BlindStringsMatchFoldedPrefixesAndExactValuesOnly) {
  Put(R"({"resourceType":"Patient","id":"p1","name":[{"family":"Müller","given":["Zoë"]}],
    "birthDate":"1970-03-04","gender":"female",
    "identifier":[{"system":"urn:mrn","value":"A-77"}]})");
  Put(R"({"resourceType":"Patient","id":"p2","name":[{"family":"Mueller","given":["Jo"]}],
    "birthDate":"1971","gender":"male"})");
  EXPECT_THAT(Ids("Patient", {{"family", "mul"}}), ElementsAre("p1"));
  EXPECT_THAT(Ids("Patient", {{"family", "MÜLLER"}}), ElementsAre("p1"));
  EXPECT_THAT(Ids("Patient", {{"family", "mu"}}), ElementsAre("p1", "p2"));
  EXPECT_THAT(Ids("Patient", {{"name", "zoe"}}), ElementsAre("p1"));
  EXPECT_THAT(Ids("Patient", {{"family:exact", "Müller"}}), ElementsAre("p1"));
  EXPECT_THAT(Ids("Patient", {{"family:exact", "müller"}}), ElementsAre());
  EXPECT_THAT(Ids("Patient", {{"identifier", "urn:mrn|A-77"}}), ElementsAre("p1"));
  EXPECT_THAT(Ids("Patient", {{"identifier", "A-77"}}), ElementsAre("p1"));
  EXPECT_THAT(Ids("Patient", {{"birthdate", "1970"}}), ElementsAre("p1"));
  EXPECT_THAT(Ids("Patient", {{"birthdate", "1970-03-04"}}), ElementsAre("p1"));
  EXPECT_THAT(Ids("Patient", {{"birthdate", "1971-01-01"}}), ElementsAre());  // Year only.
  EXPECT_THAT(Ids("Patient", {{"birthdate", "1971"}}), ElementsAre("p2"));
  // What blind indexes cannot do is refused, not silently answered.
  for (const auto& [name, value] : Params{
           {"family:contains", "ll"}, {"birthdate", "gt1970"}, {"birthdate", "1970-03-04T10:00"}}) {
    StatusOr<std::vector<std::string>> refused = Find("Patient", {{name, value}});
    EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument) << name;
  }
  StatusOr<std::vector<std::string>> sort_blind = Find("Patient", {{"_sort", "family"}});
  EXPECT_EQ(sort_blind.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SearchIndexingTest, TheRegisterDecidesClearBlindAndNone) {
  StatusOr<fhir::DataRegister> all_clear = fhir::DataRegister::Parse(
      "[search]\ndefault = \"clear\"\ndefault_string = \"clear\"\n\"Patient.gender\" = \"none\"\n");
  ASSERT_TRUE(all_clear.ok());
  Put(R"({"resourceType":"Patient","id":"p1","name":[{"family":"Müller"}],"gender":"female"})",
      *all_clear);
  StatusOr<std::vector<std::string>> contains =
      Find("Patient", {{"family:contains", "ll"}}, *all_clear);
  ASSERT_TRUE(contains.ok()) << contains.status().ToString();
  EXPECT_THAT(*contains, ElementsAre("p1"));
  EXPECT_EQ(Find("Patient", {{"gender", "female"}}, *all_clear).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(SearchIndexingTest, ChainsAndMissing) {
  LoadObservations();
  Put(R"({"resourceType":"Patient","id":"p1","gender":"female"})");
  Put(R"({"resourceType":"Patient","id":"p2","gender":"male"})");
  EXPECT_THAT(Ids("Observation", {{"subject:Patient.gender", "male"}}), ElementsAre("o3"));
  EXPECT_THAT(Ids("Observation", {{"patient.gender", "female"}}), ElementsAre("o1", "o2"));
  EXPECT_THAT(Ids("Observation", {{"value-string:missing", "true"}}),
              UnorderedElementsAre("o1", "o2", "o3"));
  EXPECT_THAT(Ids("Observation", {{"value-quantity:missing", "false"}}),
              UnorderedElementsAre("o1", "o2", "o3"));
}

TEST_F(SearchIndexingTest, ThePrimaryReferenceNarrowsToTheCompartmentOthersDoNot) {
  // o1 is in p1's compartment (its subject); p1 is only the performer of o2.
  Put(R"({"resourceType":"Observation","id":"o1","status":"final","code":{"text":"a"},
    "subject":{"reference":"Patient/p1"}})");
  Put(R"({"resourceType":"Observation","id":"o2","status":"final","code":{"text":"a"},
    "subject":{"reference":"Patient/p2"},"performer":[{"reference":"Patient/p1"}]})");
  Put(R"({"resourceType":"Observation","id":"o3","status":"final","code":{"text":"a"},
    "subject":{"reference":"Group/g1"},"performer":[{"reference":"Patient/p1"}]})");
  EXPECT_THAT(Ids("Observation", {{"subject", "Patient/p1"}}), ElementsAre("o1"));
  EXPECT_THAT(Ids("Observation", {{"patient", "p1"}}), ElementsAre("o1"));
  EXPECT_THAT(Ids("Observation", {{"performer", "Patient/p1"}}), ElementsAre("o2", "o3"));
  EXPECT_THAT(Ids("Observation", {{"subject", "Patient/p2"}, {"performer", "Patient/p1"}}),
              ElementsAre("o2"));
  EXPECT_THAT(Ids("Observation", {{"subject", "Group/g1"}}), ElementsAre("o3"));

  auto compiled = [&](Params params) {
    fhir::SearchRequest request =
        *fhir::ParseSearchRequest("Observation", params, true, fhir::SearchLimits{});
    return CompileSearch(request, fhir::DataRegister::Default(), kBase, FromMicros(0))->compartment;
  };
  EXPECT_EQ(compiled({{"subject", "Patient/p1"}, {"code", "x"}}), "p1");
  EXPECT_EQ(compiled({{"patient", "p1"}}), "p1");
  EXPECT_EQ(compiled({{"performer", "Patient/p1"}}), "");
  EXPECT_EQ(compiled({{"subject", "Patient/p1,Patient/p2"}}), "");
  EXPECT_EQ(compiled({{"subject:identifier", "urn:mrn|1"}}), "");
}

}  // namespace
}  // namespace kura::api
