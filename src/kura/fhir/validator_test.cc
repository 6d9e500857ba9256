#include "kura/fhir/validator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "kura/fhir/json.h"
#include "kura/fhir/r4_structure.h"

namespace kura::fhir {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

using Issues = std::vector<std::pair<std::string, std::string>>;  // {issue code, expression}

Status ValidateWith(const R4Validator& validator, std::string_view json) {
  StatusOr<ResourceDocument> doc = ParseResourceDocument(json, {});
  if (!doc.ok()) return doc.status();
  return validator.Validate(*doc);
}

Status Validate(std::string_view json) { return ValidateWith(R4Validator(), json); }

Issues IssuesOf(const Status& status) {
  Issues out;
  for (const StatusDetail& d : status.details()) out.emplace_back(d.issue_code, d.expression);
  return out;
}

// Validates `json` and returns its {issue code, expression} pairs (empty when valid).
Issues Check(std::string_view json) {
  Status status = Validate(json);
  if (!status.ok()) {
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  }
  return IssuesOf(status);
}

// An Observation with `members` (a JSON fragment, without braces) after status and code.
std::string Obs(std::string_view members = {}) {
  std::string out = R"({"resourceType":"Observation","status":"final","code":{"text":"x"}})";
  if (!members.empty()) {
    out.pop_back();
    out += ',';
    out += members;
    out += '}';
  }
  return out;
}

// A Patient with `members`.
std::string Pat(std::string_view members = {}) {
  std::string out = R"({"resourceType":"Patient")";
  if (!members.empty()) {
    out += ',';
    out += members;
  }
  out += '}';
  return out;
}

// ---------------------------------------------------------------------------------------------
// The generated tables.

TEST(R4StructureTest, FindsTypesAndElements) {
  const R4Type* observation = FindR4Type("Observation");
  ASSERT_NE(observation, nullptr);
  EXPECT_EQ(observation->kind, R4TypeKind::kResource);
  const R4Element* value_quantity = FindR4Element(*observation, "valueQuantity");
  ASSERT_NE(value_quantity, nullptr);
  EXPECT_TRUE(value_quantity->choice);
  EXPECT_FALSE(value_quantity->is_array());
  EXPECT_EQ(R4Types()[value_quantity->type].name, "Quantity");
  EXPECT_EQ(FindR4Element(*observation, "value"), nullptr);
  EXPECT_EQ(FindR4Element(*observation, "value[x]"), nullptr);
  const R4Element* component = FindR4Element(*observation, "component");
  ASSERT_NE(component, nullptr);
  EXPECT_TRUE(component->is_array());
  EXPECT_EQ(R4Types()[component->type].name, "Observation.component");
  EXPECT_EQ(R4Types()[component->type].kind, R4TypeKind::kBackbone);
  // Observation.referenceRange.low is a SimpleQuantity: no comparator.
  const R4Type* range = FindR4Type("Observation.referenceRange");
  ASSERT_NE(range, nullptr);
  const R4Type& low = R4Types()[FindR4Element(*range, "low")->type];
  EXPECT_EQ(low.name, "SimpleQuantity");
  EXPECT_EQ(FindR4Element(low, "comparator"), nullptr);
  EXPECT_NE(FindR4Element(low, "unit"), nullptr);
  // Recursive backbone elements point at their definition.
  const R4Type* item = FindR4Type("Questionnaire.item");
  ASSERT_NE(item, nullptr);
  EXPECT_EQ(&R4Types()[FindR4Element(*item, "item")->type], item);
  EXPECT_EQ(FindR4Type("dateTime")->primitive, R4Primitive::kDateTime);
  EXPECT_EQ(FindR4Type("Resource")->kind, R4TypeKind::kAnyResource);
  EXPECT_EQ(FindR4Type("DomainResource"), nullptr);
  EXPECT_EQ(FindR4Type("NoSuchType"), nullptr);
  // Resource.id is an id; Element.id a string.
  EXPECT_EQ(R4Types()[FindR4Element(*observation, "id")->type].name, "id");
  EXPECT_EQ(R4Types()[FindR4Element(*FindR4Type("Quantity"), "id")->type].name, "string");
}

TEST(R4StructureTest, RequiredElements) {
  const R4Type* observation = FindR4Type("Observation");
  ASSERT_NE(observation, nullptr);
  std::vector<std::string_view> names;
  for (const R4Required& r : observation->required) names.push_back(r.name);
  EXPECT_THAT(names, ElementsAre("status", "code"));
  const R4Type* request = FindR4Type("MedicationRequest");
  ASSERT_NE(request, nullptr);
  names.clear();
  for (const R4Required& r : request->required) names.push_back(r.name);
  EXPECT_THAT(names, ElementsAre("status", "intent", "medication[x]", "subject"));
}

TEST(R4StructureTest, EveryResourceTypeHasATable) {
  size_t resources = 0;
  for (const R4Type& type : R4Types()) {
    if (type.kind != R4TypeKind::kResource) continue;
    ++resources;
    EXPECT_NE(FindR4Element(type, "id"), nullptr) << type.name;
    EXPECT_NE(FindR4Element(type, "meta"), nullptr) << type.name;
  }
  EXPECT_EQ(resources, 146u);
}

// ---------------------------------------------------------------------------------------------
// Whole resources.

TEST(R4ValidatorTest, AcceptsValidResources) {
  EXPECT_THAT(Check(Pat()), ElementsAre());
  EXPECT_THAT(Check(Obs()), ElementsAre());
  EXPECT_THAT(Check(R"({"resourceType":"Observation","id":"o1","meta":{"versionId":"3",
      "lastUpdated":"2024-01-01T00:00:00.000Z","profile":["http://example.org/p"],
      "tag":[{"system":"urn:x","code":"t"}]},"status":"final",
      "identifier":[{"system":"urn:example:bench:obs","value":"obs-1"}],
      "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category",
      "code":"vital-signs","display":"Vital Signs"}]}],
      "code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],
      "text":"Heart rate"},"subject":{"reference":"Patient/p1"},
      "effectiveDateTime":"2024-01-01T00:00:00.000Z","issued":"2024-01-01T00:00:00.000Z",
      "performer":[{"display":"Bench Device 01"}],
      "valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"},
      "referenceRange":[{"low":{"value":62.50,"unit":"/min"},"high":{"value":8.2e1}}],
      "component":[{"id":"c1","extension":[{"url":"http://example.org/e","valueString":"v"}],
      "modifierExtension":[{"url":"http://example.org/m","valueBoolean":true}],
      "code":{"text":"c"},"valueInteger":-5}],
      "note":[{"text":"**markdown**\nline two"}],"device":{"display":"monitor"}})"),
              ElementsAre());
}

TEST(R4ValidatorTest, RejectsAnUnknownResourceType) {
  StatusOr<ResourceDocument> doc = ParseResourceDocument(R"({"resourceType":"Nope"})", {});
  ASSERT_TRUE(doc.ok());
  EXPECT_THAT(IssuesOf(R4Validator().Validate(*doc)),
              ElementsAre(Pair("structure", "resourceType")));
  doc = ParseResourceDocument(R"({"resourceType":"DomainResource"})", {});
  ASSERT_TRUE(doc.ok());
  EXPECT_THAT(IssuesOf(R4Validator().Validate(*doc)),
              ElementsAre(Pair("structure", "resourceType")));
  doc = ParseResourceDocument(R"({"id":"x"})", {});
  ASSERT_TRUE(doc.ok());
  EXPECT_THAT(IssuesOf(R4Validator().Validate(*doc)),
              ElementsAre(Pair("structure", "resourceType")));
}

TEST(R4ValidatorTest, ErrorStatusShape) {
  Status status = Validate(Pat(R"("birthDate":"1970-13","foo":1)"));
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(status.message().empty());
  ASSERT_EQ(status.details().size(), 2u);
  EXPECT_EQ(status.details()[0].issue_code, "value");
  EXPECT_EQ(status.details()[0].expression, "Patient.birthDate");
  EXPECT_EQ(status.details()[0].diagnostics, "must be a valid date (YYYY, YYYY-MM or YYYY-MM-DD)");
  EXPECT_EQ(status.details()[1].issue_code, "structure");
  EXPECT_EQ(status.details()[1].expression, "Patient.foo");
}

// ---------------------------------------------------------------------------------------------
// Element names and choice types.

TEST(R4ValidatorTest, UnknownElements) {
  EXPECT_THAT(Check(Pat(R"("foo":1)")), ElementsAre(Pair("structure", "Patient.foo")));
  EXPECT_THAT(Check(Pat(R"("name":[{"family":"F","foo":"x"}])")),
              ElementsAre(Pair("structure", "Patient.name[0].foo")));
  // Elements of the abstract bases are only where the definitions put them.
  EXPECT_THAT(Check(Pat(R"("name":[{"modifierExtension":[]}])")),
              ElementsAre(Pair("structure", "Patient.name[0].modifierExtension")));
  EXPECT_THAT(Check(Pat(R"("name":[{"resourceType":"HumanName"}])")),
              ElementsAre(Pair("structure", "Patient.name[0].resourceType")));
  EXPECT_THAT(Check(Pat(R"("fhir_comments":["x"])")),
              ElementsAre(Pair("structure", "Patient.fhir_comments")));
}

TEST(R4ValidatorTest, ChoiceTypes) {
  EXPECT_THAT(Check(Obs(R"("valueString":"x")")), ElementsAre());
  EXPECT_THAT(Check(Obs(R"("valueCodeableConcept":{"text":"x"})")), ElementsAre());
  EXPECT_THAT(Check(Obs(R"("value":"x")")), ElementsAre(Pair("structure", "Observation.value")));
  EXPECT_THAT(Check(Obs(R"("value[x]":"x")")),
              ElementsAre(Pair("structure", "Observation.value[x]")));
  // A type that Observation.value[x] does not allow.
  EXPECT_THAT(Check(Obs(R"("valueDate":"2020")")),
              ElementsAre(Pair("structure", "Observation.valueDate")));
  EXPECT_THAT(Check(Obs(R"("valuequantity":{"value":1})")),
              ElementsAre(Pair("structure", "Observation.valuequantity")));
  EXPECT_THAT(Check(Obs(R"("valueQuantity":{"value":1},"valueString":"x")")),
              ElementsAre(Pair("invalid", "Observation.valueString")));
  EXPECT_THAT(Check(Obs(R"("valueBoolean":true,"_valueString":{"id":"a"})")),
              ElementsAre(Pair("invalid", "Observation._valueString")));
  // A value and its own extensions are one choice.
  EXPECT_THAT(Check(Obs(R"("valueString":"x","_valueString":{"id":"a"})")), ElementsAre());
  EXPECT_THAT(Check(Obs(R"("_valueString":{"id":"a"},"valueString":"x")")), ElementsAre());
}

// ---------------------------------------------------------------------------------------------
// JSON shape and cardinality.

TEST(R4ValidatorTest, ArraysAndSingleValues) {
  EXPECT_THAT(Check(Pat(R"("name":{"family":"F"})")),
              ElementsAre(Pair("structure", "Patient.name")));
  EXPECT_THAT(Check(Pat(R"("gender":["male"])")), ElementsAre(Pair("structure", "Patient.gender")));
  EXPECT_THAT(Check(Pat(R"("name":[])")), ElementsAre(Pair("structure", "Patient.name")));
  EXPECT_THAT(Check(Pat(R"("gender":null)")), ElementsAre(Pair("structure", "Patient.gender")));
  EXPECT_THAT(Check(Pat(R"("name":[{"family":"F"},null])")),
              ElementsAre(Pair("structure", "Patient.name[1]")));
  EXPECT_THAT(Check(Pat(R"("maritalStatus":{})")),
              ElementsAre(Pair("structure", "Patient.maritalStatus")));
  EXPECT_THAT(Check(Pat(R"("maritalStatus":"M")")),
              ElementsAre(Pair("structure", "Patient.maritalStatus")));
  EXPECT_THAT(Check(Pat(R"("name":["F"])")), ElementsAre(Pair("structure", "Patient.name[0]")));
  EXPECT_THAT(Check(Pat(R"("meta":"x")")), ElementsAre(Pair("structure", "Patient.meta")));
  EXPECT_THAT(Check(Pat(R"("meta":[{}])")), ElementsAre(Pair("structure", "Patient.meta")));
  EXPECT_EQ(Validate(Pat(R"("meta":1)")).details().at(0).diagnostics, "meta must be an object");
}

TEST(R4ValidatorTest, RequiredElements) {
  EXPECT_THAT(
      Check(R"({"resourceType":"Observation"})"),
      ElementsAre(Pair("required", "Observation.status"), Pair("required", "Observation.code")));
  // A primitive's extensions alone make it present.
  EXPECT_THAT(Check(R"({"resourceType":"Observation","code":{"text":"x"},
      "_status":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason",
      "valueCode":"unknown"}]}})"),
              ElementsAre());
  EXPECT_THAT(Check(Obs(R"("component":[{"valueString":"x"}])")),
              ElementsAre(Pair("required", "Observation.component[0].code")));
  EXPECT_THAT(Check(R"({"resourceType":"MedicationRequest","status":"active","intent":"order",
      "subject":{"reference":"Patient/1"}})"),
              ElementsAre(Pair("required", "MedicationRequest.medication[x]")));
  EXPECT_THAT(Check(R"({"resourceType":"MedicationRequest","status":"active","intent":"order",
      "subject":{"reference":"Patient/1"},"medicationReference":{"reference":"Medication/m"}})"),
              ElementsAre());
  // Required arrays; recursive backbone elements (contentReference).
  EXPECT_THAT(Check(R"({"resourceType":"OperationOutcome"})"),
              ElementsAre(Pair("required", "OperationOutcome.issue")));
  EXPECT_THAT(Check(R"({"resourceType":"Questionnaire","status":"draft",
      "item":[{"linkId":"1","type":"group","item":[{"type":"string"}]}]})"),
              ElementsAre(Pair("required", "Questionnaire.item[0].item[0].linkId")));
  EXPECT_THAT(Check(R"({"resourceType":"Bundle"})"), ElementsAre(Pair("required", "Bundle.type")));
}

TEST(R4ValidatorTest, ProfiledDataTypes) {
  // referenceRange.low is a SimpleQuantity, which has no comparator.
  EXPECT_THAT(Check(Obs(R"("referenceRange":[{"low":{"value":1,"comparator":"<"}}])")),
              ElementsAre(Pair("structure", "Observation.referenceRange[0].low.comparator")));
  EXPECT_THAT(Check(Obs(R"("valueQuantity":{"value":1,"comparator":"<"})")), ElementsAre());
}

// ---------------------------------------------------------------------------------------------
// Primitive types.

TEST(R4ValidatorTest, Boolean) {
  EXPECT_THAT(Check(Pat(R"("active":true)")), ElementsAre());
  EXPECT_THAT(Check(Pat(R"("active":"true")")), ElementsAre(Pair("structure", "Patient.active")));
  EXPECT_THAT(Check(Pat(R"("active":1)")), ElementsAre(Pair("structure", "Patient.active")));
}

TEST(R4ValidatorTest, Integers) {
  EXPECT_THAT(Check(Obs(R"("valueInteger":-2147483648)")), ElementsAre());
  EXPECT_THAT(Check(Obs(R"("valueInteger":2147483647)")), ElementsAre());
  EXPECT_THAT(Check(Obs(R"("valueInteger":2147483648)")),
              ElementsAre(Pair("value", "Observation.valueInteger")));
  EXPECT_THAT(Check(Obs(R"("valueInteger":1.5)")),
              ElementsAre(Pair("value", "Observation.valueInteger")));
  EXPECT_THAT(Check(Obs(R"("valueInteger":1.0)")),
              ElementsAre(Pair("value", "Observation.valueInteger")));
  EXPECT_THAT(Check(Obs(R"("valueInteger":1e2)")),
              ElementsAre(Pair("value", "Observation.valueInteger")));
  EXPECT_THAT(Check(Obs(R"("valueInteger":"1")")),
              ElementsAre(Pair("structure", "Observation.valueInteger")));
  // positiveInt: Appointment.minutesDuration; unsignedInt: Attachment.size.
  const std::string appointment =
      R"({"resourceType":"Appointment","status":"booked","participant":[{"status":"accepted",
      "actor":{"reference":"Patient/1"}}],)";
  EXPECT_THAT(Check(appointment + R"("minutesDuration":1})"), ElementsAre());
  EXPECT_THAT(Check(appointment + R"("minutesDuration":0})"),
              ElementsAre(Pair("value", "Appointment.minutesDuration")));
  EXPECT_THAT(Check(Pat(R"("photo":[{"size":0}])")), ElementsAre());
  EXPECT_THAT(Check(Pat(R"("photo":[{"size":-1}])")),
              ElementsAre(Pair("value", "Patient.photo[0].size")));
}

TEST(R4ValidatorTest, Decimal) {
  for (const char* ok : {"72", "72.50", "-0.001", "1e3", "1.5E-7", "0"}) {
    EXPECT_THAT(Check(Obs(std::string(R"("valueQuantity":{"value":)") + ok + "}")), ElementsAre())
        << ok;
  }
  EXPECT_THAT(Check(Obs(R"("valueQuantity":{"value":"72"})")),
              ElementsAre(Pair("structure", "Observation.valueQuantity.value")));
  EXPECT_THAT(Check(Obs(R"("valueQuantity":{"value":true})")),
              ElementsAre(Pair("structure", "Observation.valueQuantity.value")));
}

TEST(R4ValidatorTest, Dates) {
  for (const char* ok : {"1970", "1970-01", "1970-12-31", "2000-02-29", "0001-01-01"}) {
    EXPECT_THAT(Check(Pat(std::string(R"("birthDate":")") + ok + "\"")), ElementsAre()) << ok;
  }
  for (const char* bad : {"1970-13", "1970-02-29", "1900-02-29", "1970-04-31", "0000", "70",
                          "1970-1-1", "1970-01-01T00:00:00Z", "1970/01/01", "19700101"}) {
    EXPECT_THAT(Check(Pat(std::string(R"("birthDate":")") + bad + "\"")),
                ElementsAre(Pair("value", "Patient.birthDate")))
        << bad;
  }
}

TEST(R4ValidatorTest, DateTimes) {
  for (const char* ok :
       {"2024", "2024-02", "2024-02-29", "2024-01-01T10:00:00Z", "2024-01-01T10:00:00.123456+14:00",
        "2024-01-01T23:59:60-13:59", "2024-01-01T00:00:00+00:00"}) {
    EXPECT_THAT(Check(Obs(std::string(R"("effectiveDateTime":")") + ok + "\"")), ElementsAre())
        << ok;
  }
  for (const char* bad :
       {"2024-01-01T10:00:00", "2024-01-01T10:00Z", "2024-01-01T24:00:00Z",
        "2024-01-01T10:00:00+14:30", "2024-01-01T10:00:00.Z", "2024-01-01 10:00:00Z",
        "2024-01-01T10:00:00+1:00", "2023-02-29", "2024-01-01T10:60:00Z"}) {
    EXPECT_THAT(Check(Obs(std::string(R"("effectiveDateTime":")") + bad + "\"")),
                ElementsAre(Pair("value", "Observation.effectiveDateTime")))
        << bad;
  }
  EXPECT_THAT(Check(Obs(R"("issued":"2024-01-01T10:00:00.5Z")")), ElementsAre());
  for (const char* bad : {"2024-01-01", "2024", "2024-01-01T10:00:00"}) {
    EXPECT_THAT(Check(Obs(std::string(R"("issued":")") + bad + "\"")),
                ElementsAre(Pair("value", "Observation.issued")))
        << bad;
  }
}

TEST(R4ValidatorTest, Time) {
  EXPECT_THAT(Check(Obs(R"("valueTime":"10:00:00")")), ElementsAre());
  EXPECT_THAT(Check(Obs(R"("valueTime":"23:59:59.999")")), ElementsAre());
  for (const char* bad : {"24:00:00", "10:00", "10:00:00Z", "1:00:00", "10:00:00."}) {
    EXPECT_THAT(Check(Obs(std::string(R"("valueTime":")") + bad + "\"")),
                ElementsAre(Pair("value", "Observation.valueTime")))
        << bad;
  }
}

TEST(R4ValidatorTest, Code) {
  EXPECT_THAT(Check(Pat(R"("gender":"other")")), ElementsAre());
  EXPECT_THAT(Check(Pat(R"("language":"en US")")), ElementsAre());
  for (const char* bad : {" final", "final ", "a  b", "a\\n\\nb", ""}) {
    EXPECT_THAT(Check(Pat(std::string(R"("gender":")") + bad + "\"")),
                ElementsAre(Pair("value", "Patient.gender")))
        << bad;
  }
}

TEST(R4ValidatorTest, Id) {
  EXPECT_THAT(Check(Pat(R"("id":"A-z.0")")), ElementsAre());
  EXPECT_THAT(Check(Pat(R"("id":"a_b")")), ElementsAre(Pair("value", "Patient.id")));
  EXPECT_THAT(Check(Pat(R"("id":")" + std::string(65, 'a') + "\"")),
              ElementsAre(Pair("value", "Patient.id")));
  EXPECT_THAT(Check(Pat(R"("id":")" + std::string(64, 'a') + "\"")), ElementsAre());
  // Element.id is a string: any non-empty text.
  EXPECT_THAT(Check(Pat(R"("name":[{"id":"any text_1","family":"F"}])")), ElementsAre());
}

TEST(R4ValidatorTest, Uris) {
  EXPECT_THAT(Check(Pat(R"("identifier":[{"system":"urn:ietf:rfc:3986","value":"x"}])")),
              ElementsAre());
  EXPECT_THAT(Check(Pat(R"("identifier":[{"system":"http://x y"}])")),
              ElementsAre(Pair("value", "Patient.identifier[0].system")));
  // url (Attachment.url) and canonical (meta.profile).
  EXPECT_THAT(Check(Pat(R"("photo":[{"url":"https://example.org/a.png"}])")), ElementsAre());
  EXPECT_THAT(Check(Pat(R"("photo":[{"url":"a b"}])")),
              ElementsAre(Pair("value", "Patient.photo[0].url")));
  EXPECT_THAT(Check(Pat(R"("meta":{"profile":["http://example.org/p|1.0"]})")), ElementsAre());
  EXPECT_THAT(Check(Pat(R"("meta":{"profile":["http://example.org/ p"]})")),
              ElementsAre(Pair("value", "Patient.meta.profile[0]")));
}

TEST(R4ValidatorTest, OidAndUuid) {
  const auto ext = [](std::string_view value) {
    return Pat(R"("extension":[{"url":"http://example.org/e",)" + std::string(value) + "}]");
  };
  EXPECT_THAT(Check(ext(R"("valueOid":"urn:oid:1.2.840.10008")")), ElementsAre());
  for (const char* bad : {"1.2.3", "urn:oid:3.1", "urn:oid:1.02", "urn:oid:1", "urn:oid:1.2."}) {
    EXPECT_THAT(Check(ext(std::string(R"("valueOid":")") + bad + "\"")),
                ElementsAre(Pair("value", "Patient.extension[0].valueOid")))
        << bad;
  }
  EXPECT_THAT(Check(ext(R"("valueUuid":"urn:uuid:c757873d-ec9a-4326-a141-556f43239520")")),
              ElementsAre());
  for (const char* bad : {"urn:uuid:C757873D-EC9A-4326-A141-556F43239520",
                          "c757873d-ec9a-4326-a141-556f43239520", "urn:uuid:c757873d"}) {
    EXPECT_THAT(Check(ext(std::string(R"("valueUuid":")") + bad + "\"")),
                ElementsAre(Pair("value", "Patient.extension[0].valueUuid")))
        << bad;
  }
}

TEST(R4ValidatorTest, Base64Binary) {
  for (const char* ok : {"aGVsbG8=", "aGVsbG8h", "aGVs bG8h", "aA==", "aGVs\\nbG8h"}) {
    EXPECT_THAT(Check(Pat(std::string(R"("photo":[{"data":")") + ok + "\"}]")), ElementsAre())
        << ok;
  }
  for (const char* bad : {"abc", "aGVs=G8=", "a===", "aGVs*G8h", "===="}) {
    EXPECT_THAT(Check(Pat(std::string(R"("photo":[{"data":")") + bad + "\"}]")),
                ElementsAre(Pair("value", "Patient.photo[0].data")))
        << bad;
  }
}

TEST(R4ValidatorTest, StringsAndMarkdown) {
  EXPECT_THAT(Check(Pat(R"("name":[{"family":"Zoë\tMüller"}])")), ElementsAre());
  EXPECT_THAT(Check(Pat(R"("name":[{"family":""}])")),
              ElementsAre(Pair("value", "Patient.name[0].family")));
  EXPECT_THAT(Check(Pat(R"("name":[{"family":"a\u0007b"}])")),
              ElementsAre(Pair("value", "Patient.name[0].family")));
  EXPECT_THAT(Check(Pat(R"("name":[{"family":1}])")),
              ElementsAre(Pair("structure", "Patient.name[0].family")));
  EXPECT_THAT(Check(Pat(R"("name":[{"given":["A"]},{"given":["B",""]}])")),
              ElementsAre(Pair("value", "Patient.name[1].given[1]")));
  // markdown: Annotation.text.
  EXPECT_THAT(Check(Obs(R"("note":[{"text":"# T\r\n* a"}])")), ElementsAre());
  EXPECT_THAT(Check(Obs(R"("note":[{"text":"\u0000"}])")),
              ElementsAre(Pair("value", "Observation.note[0].text")));
}

TEST(R4ValidatorTest, Xhtml) {
  EXPECT_THAT(Check(Pat(R"("text":{"status":"generated",
      "div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>x</p></div>"})")),
              ElementsAre());
  EXPECT_THAT(Check(Pat(R"("text":{"status":"generated","div":"<p>x</p>"})")),
              ElementsAre(Pair("value", "Patient.text.div")));
  EXPECT_THAT(Check(Pat(R"("text":{"status":"generated","div":"<div>x</div>"})")),
              ElementsAre(Pair("value", "Patient.text.div")));
  EXPECT_THAT(Check(Pat(R"("text":{"status":"generated"})")),
              ElementsAre(Pair("required", "Patient.text.div")));
}

// ---------------------------------------------------------------------------------------------
// Primitive extensions (_element).

TEST(R4ValidatorTest, PrimitiveExtensions) {
  const std::string ext = R"({"extension":[{"url":"http://example.org/e","valueString":"v"}]})";
  EXPECT_THAT(Check(Pat(R"("birthDate":"1970","_birthDate":)" + ext)), ElementsAre());
  EXPECT_THAT(Check(Pat(R"("_birthDate":)" + ext)), ElementsAre());
  EXPECT_THAT(Check(Pat(R"("_birthDate":{"id":"b"})")), ElementsAre());
  EXPECT_THAT(Check(Pat(R"("_birthDate":"x")")),
              ElementsAre(Pair("structure", "Patient._birthDate")));
  EXPECT_THAT(Check(Pat(R"("_birthDate":{})")),
              ElementsAre(Pair("structure", "Patient._birthDate")));
  EXPECT_THAT(Check(Pat(R"("_birthDate":{"foo":1})")),
              ElementsAre(Pair("structure", "Patient._birthDate.foo")));
  EXPECT_THAT(Check(Pat(R"("_birthDate":[)" + ext + "]")),
              ElementsAre(Pair("structure", "Patient._birthDate")));
  EXPECT_THAT(Check(Pat(R"("_name":)" + ext)), ElementsAre(Pair("structure", "Patient._name")));
  EXPECT_THAT(Check(Pat(R"("_nope":)" + ext)), ElementsAre(Pair("structure", "Patient._nope")));
}

TEST(R4ValidatorTest, PrimitiveArrayExtensions) {
  const std::string ext = R"({"extension":[{"url":"http://example.org/e","valueString":"v"}]})";
  auto name = [](const std::string& members) { return Pat(R"("name":[{)" + members + "}]"); };
  EXPECT_THAT(Check(name(R"("given":["A",null],"_given":[null,)" + ext + "]")), ElementsAre());
  EXPECT_THAT(Check(name(R"("given":["A","B"],"_given":[)" + ext + ",null]")), ElementsAre());
  EXPECT_THAT(Check(name(R"("_given":[)" + ext + "]")), ElementsAre());
  EXPECT_THAT(Check(name(R"("given":["A","B"],"_given":[)" + ext + "]")),
              ElementsAre(Pair("structure", "Patient.name[0]._given")));
  EXPECT_THAT(Check(name(R"("given":["A",null])")),
              ElementsAre(Pair("structure", "Patient.name[0].given[1]")));
  EXPECT_THAT(Check(name(R"("given":["A",null],"_given":[)" + ext + ",null]")),
              ElementsAre(Pair("structure", "Patient.name[0].given[1]"),
                          Pair("structure", "Patient.name[0]._given[1]")));
  EXPECT_THAT(Check(name(R"("given":["A"],"_given":)" + ext)),
              ElementsAre(Pair("structure", "Patient.name[0]._given")));
  EXPECT_THAT(Check(name(R"("given":["A"],"_given":["x"])")),
              ElementsAre(Pair("structure", "Patient.name[0]._given[0]")));
  EXPECT_THAT(Check(name(R"("_given":[null])")),
              ElementsAre(Pair("structure", "Patient.name[0]._given[0]")));
}

// ---------------------------------------------------------------------------------------------
// Extensions.

TEST(R4ValidatorTest, Extensions) {
  EXPECT_THAT(
      Check(Pat(R"("extension":[{"url":"http://example.org/e","valueQuantity":{"value":1}}])")),
      ElementsAre());
  EXPECT_THAT(Check(Pat(R"("extension":[{"url":"http://example.org/e","extension":[
      {"url":"a","valueString":"x"},{"url":"b","valueCode":"y"}]}])")),
              ElementsAre());
  EXPECT_THAT(
      Check(Pat(R"("modifierExtension":[{"url":"http://example.org/m","valueBoolean":true}])")),
      ElementsAre());
  EXPECT_THAT(Check(Pat(R"("extension":[{"valueString":"x"}])")),
              ElementsAre(Pair("required", "Patient.extension[0].url")));
  EXPECT_THAT(Check(Pat(R"("extension":[{"url":"http://example.org/e"}])")),
              ElementsAre(Pair("invalid", "Patient.extension[0]")));
  EXPECT_THAT(Check(Pat(R"("extension":[{"url":"http://example.org/e","valueString":"x",
      "extension":[{"url":"a","valueString":"y"}]}])")),
              ElementsAre(Pair("invalid", "Patient.extension[0]")));
  EXPECT_THAT(Check(Pat(R"("extension":[{"url":"http://example.org/e","valueString":"x",
      "valueBoolean":true}])")),
              ElementsAre(Pair("invalid", "Patient.extension[0].valueBoolean")));
  EXPECT_THAT(Check(Pat(R"("extension":{"url":"http://example.org/e","valueString":"x"})")),
              ElementsAre(Pair("structure", "Patient.extension")));
  EXPECT_THAT(Check(Pat(R"("extension":[{"url":"http://example.org/e","value":"x"}])")),
              ElementsAre(Pair("structure", "Patient.extension[0].value"),
                          Pair("invalid", "Patient.extension[0]")));
  EXPECT_THAT(Check(Pat(R"("extension":[{"url":"http://example.org/e","valueDate":"1970-13"}])")),
              ElementsAre(Pair("value", "Patient.extension[0].valueDate")));
  // Extensions on elements of data types and backbone elements.
  EXPECT_THAT(Check(Obs(R"("valueQuantity":{"value":1,"extension":[{"url":"u","valueString":"s"}]},
      "component":[{"code":{"text":"c"},"modifierExtension":[{"url":"u"}]}])")),
              ElementsAre(Pair("invalid", "Observation.component[0].modifierExtension[0]")));
}

// ---------------------------------------------------------------------------------------------
// References.

TEST(R4ValidatorTest, References) {
  for (const char* ok : {"Patient/123", "Patient/a.b-C", "Patient/123/_history/2",
                         "http://example.org/fhir/Patient/1", "https://x.example/anything?q=1",
                         "urn:uuid:c757873d-ec9a-4326-a141-556f43239520", "urn:oid:1.2.3.4", "#c1",
                         "#", "urn:ietf:rfc:3986"}) {
    EXPECT_THAT(Check(Obs(std::string(R"("subject":{"reference":")") + ok + "\"}")), ElementsAre())
        << ok;
  }
  const std::vector<std::string> bad_references = {"Foo/123",
                                                   "Patient/",
                                                   "Patient",
                                                   "Patient/a b",
                                                   "Patient/a_b",
                                                   "patient/1",
                                                   "Patient/1/_history",
                                                   "Patient/1/history/2",
                                                   "Patient/1/_history/2/x",
                                                   "#bad id",
                                                   "urn:uuid:XYZ",
                                                   "urn:oid:9.9",
                                                   "/Patient/1",
                                                   "Patient/" + std::string(65, 'a')};
  for (const std::string& bad : bad_references) {
    EXPECT_THAT(Check(Obs(std::string(R"("subject":{"reference":")") + bad + "\"}")),
                ElementsAre(Pair("value", "Observation.subject.reference")))
        << bad;
  }
  EXPECT_THAT(Check(Obs(R"("subject":{"display":"no reference","type":"Patient"})")),
              ElementsAre());
  EXPECT_THAT(Check(Obs(R"("subject":{"identifier":{"system":"urn:x","value":"1"}})")),
              ElementsAre());
  // Nested references are checked wherever a Reference is.
  EXPECT_THAT(Check(Obs(R"("performer":[{"reference":"Practitioner/1"},{"reference":"Bad/1"}])")),
              ElementsAre(Pair("value", "Observation.performer[1].reference")));
}

// ---------------------------------------------------------------------------------------------
// Resources inside resources.

TEST(R4ValidatorTest, ContainedResources) {
  EXPECT_THAT(Check(Obs(R"("contained":[{"resourceType":"Patient","id":"p","birthDate":"1970"}],
      "subject":{"reference":"#p"})")),
              ElementsAre());
  EXPECT_THAT(Check(Obs(R"("contained":[{"resourceType":"Patient","id":"p"},
      {"resourceType":"Patient","id":"q","birthDate":"1970-13"}])")),
              ElementsAre(Pair("value", "Observation.contained[1].birthDate")));
  EXPECT_THAT(Check(Obs(R"("contained":[{"resourceType":"Patient","id":"p",
      "contained":[{"resourceType":"Patient","id":"q"}]}])")),
              ElementsAre(Pair("invalid", "Observation.contained[0].contained")));
  EXPECT_THAT(Check(Obs(R"("contained":[{"id":"p"}])")),
              ElementsAre(Pair("required", "Observation.contained[0].resourceType")));
  EXPECT_THAT(Check(Obs(R"("contained":[{"resourceType":"Nope","id":"p"}])")),
              ElementsAre(Pair("value", "Observation.contained[0].resourceType")));
  EXPECT_THAT(Check(Obs(R"("contained":[{"resourceType":"Observation","id":"o"}])")),
              ElementsAre(Pair("required", "Observation.contained[0].status"),
                          Pair("required", "Observation.contained[0].code")));
  EXPECT_THAT(Check(Obs(R"("contained":[{"resourceType":"Patient","id":"p","foo":1}])")),
              ElementsAre(Pair("structure", "Observation.contained[0].foo")));
  EXPECT_THAT(Check(Obs(R"("contained":{"resourceType":"Patient","id":"p"})")),
              ElementsAre(Pair("structure", "Observation.contained")));
}

TEST(R4ValidatorTest, BundleEntries) {
  EXPECT_THAT(Check(R"({"resourceType":"Bundle","type":"collection","entry":[
      {"fullUrl":"urn:uuid:c757873d-ec9a-4326-a141-556f43239520","resource":{"resourceType":"Patient"}},
      {"resource":)" +
                    Obs() + "}]}"),
              ElementsAre());
  EXPECT_THAT(Check(R"({"resourceType":"Bundle","type":"transaction","entry":[
      {"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
      {"resource":{"resourceType":"Observation","code":{"text":"x"},
       "contained":[{"resourceType":"Patient","contained":[]}]},
       "request":{"method":"POST","url":"Observation"}},
      {"request":{"url":"Patient/1"}}]})"),
              ElementsAre(Pair("invalid", "Bundle.entry[1].resource.contained[0].contained"),
                          Pair("required", "Bundle.entry[1].resource.status"),
                          Pair("required", "Bundle.entry[2].request.method")));
  // A Bundle inside a Bundle entry is validated too.
  EXPECT_THAT(Check(R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":
      {"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient",
      "gender":1}}]}}]})"),
              ElementsAre(Pair("structure", "Bundle.entry[0].resource.entry[0].resource.gender")));
}

TEST(R4ValidatorTest, ParametersResources) {
  EXPECT_THAT(Check(R"({"resourceType":"Parameters","parameter":[{"name":"a","valueString":"x"},
      {"name":"b","resource":{"resourceType":"Patient","foo":1}},
      {"name":"c","part":[{"name":"d","valueInteger":"1"}]}]})"),
              ElementsAre(Pair("structure", "Parameters.parameter[1].resource.foo"),
                          Pair("structure", "Parameters.parameter[2].part[0].valueInteger")));
}

// ---------------------------------------------------------------------------------------------
// Meta, limits, privacy.

TEST(R4ValidatorTest, Meta) {
  EXPECT_THAT(Check(Pat(R"("meta":{"lastUpdated":"2024-01-01"})")),
              ElementsAre(Pair("value", "Patient.meta.lastUpdated")));
  EXPECT_THAT(Check(Pat(R"("meta":{"foo":1})")),
              ElementsAre(Pair("structure", "Patient.meta.foo")));
  EXPECT_THAT(Check(Pat(R"("meta":{"tag":[{"code":"x"}],"security":{"code":"R"}})")),
              ElementsAre(Pair("structure", "Patient.meta.security")));
  EXPECT_THAT(Check(Pat(R"("meta":{})")), ElementsAre(Pair("structure", "Patient.meta")));
}

TEST(R4ValidatorTest, CapsTheNumberOfDetails) {
  std::string members;
  for (int i = 0; i < 150; ++i) {
    if (i > 0) members += ',';
    members += "\"x" + std::to_string(i) + "\":1";
  }
  EXPECT_EQ(Validate(Pat(members)).details().size(), 100u);
  EXPECT_EQ(ValidateWith(R4Validator({.max_details = 5}), Pat(members)).details().size(), 5u);
  EXPECT_EQ(ValidateWith(R4Validator({.max_details = 0}), Pat(members)).details().size(), 1u);
}

TEST(R4ValidatorTest, DiagnosticsNeverRepeatValues) {
  const std::string marker = "Zq9SecretMarker";
  const std::string bad[] = {
      R"("birthDate":")" + marker + "\"",
      R"("gender":" )" + marker + "\"",
      R"("id":")" + marker + "_\"",
      R"("name":[{"family":")" + marker + "\\u0001\"}]",
      R"("photo":[{"data":")" + marker + "*\",\"url\":\"" + marker + " x\"}]",
      R"("managingOrganization":{"reference":")" + marker + "/1\"}",
      R"("extension":[{"url":"u","valueOid":")" + marker + "\"}]",
      R"("text":{"status":"generated","div":")" + marker + "\"}",
  };
  for (const std::string& members : bad) {
    Status status = Validate(Pat(members));
    ASSERT_FALSE(status.ok()) << members;
    EXPECT_EQ(status.message().find(marker), std::string::npos);
    for (const StatusDetail& d : status.details()) {
      EXPECT_EQ(d.diagnostics.find(marker), std::string::npos) << d.diagnostics;
      EXPECT_EQ(d.expression.find(marker), std::string::npos) << d.expression;
      EXPECT_FALSE(d.diagnostics.empty());
    }
  }
}

TEST(R4ValidatorTest, IsUsableThroughTheSeam) {
  R4Validator r4;
  const ResourceValidator& validator = r4;
  StatusOr<ResourceDocument> doc = ParseResourceDocument(Obs(R"("valueInteger":"1")"), {});
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(validator.Validate(*doc).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kura::fhir
