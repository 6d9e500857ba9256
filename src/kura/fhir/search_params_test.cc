#include "kura/fhir/search_params.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <limits>
#include <string>
#include <vector>

#include "kura/fhir/r4_tables.h"

namespace kura::fhir {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kDay = 86'400'000'000;

// Microseconds since the epoch of a UTC civil time (test helper; not the code under test).
int64_t Micros(int y, unsigned m, unsigned d, int hh = 0, int mm = 0, int ss = 0) {
  using namespace std::chrono;
  auto days = sys_days(year(y) / month(m) / day(d));
  return duration_cast<microseconds>(days.time_since_epoch() + hours(hh) + minutes(mm) +
                                     seconds(ss))
      .count();
}

// ---------------------------------------------------------------------------------------------
// The table.

TEST(SearchParamTableTest, SearchableTypes) {
  std::span<const std::string_view> types = SearchableResourceTypes();
  EXPECT_EQ(types.size(), 27u);
  EXPECT_TRUE(std::ranges::is_sorted(types));
  for (std::string_view t : types) {
    EXPECT_TRUE(IsR4ResourceType(t)) << t;
    EXPECT_TRUE(IsSearchableResourceType(t));
    EXPECT_FALSE(SearchParamsFor(t).empty()) << t;
  }
  EXPECT_FALSE(IsSearchableResourceType("Bundle"));
  EXPECT_TRUE(SearchParamsFor("Bundle").empty());
  EXPECT_EQ(FindSearchParam("Bundle", "_id"), nullptr);
}

TEST(SearchParamTableTest, ObservationParameters) {
  const SearchParamDef* subject = FindSearchParam("Observation", "subject");
  ASSERT_NE(subject, nullptr);
  EXPECT_EQ(subject->type, SearchParamType::kReference);
  EXPECT_EQ(subject->expression, "Observation.subject");
  EXPECT_THAT(subject->targets, ElementsAre("Device", "Group", "Location", "Patient"));
  EXPECT_EQ(subject->url, "http://hl7.org/fhir/SearchParameter/Observation-subject");

  // The shared clinical-patient definition reduced to this type's branch; targets narrowed by
  // its resolve() filter.
  const SearchParamDef* patient = FindSearchParam("Observation", "patient");
  ASSERT_NE(patient, nullptr);
  EXPECT_EQ(patient->expression, "Observation.subject.where(resolve() is Patient)");
  EXPECT_THAT(patient->targets, ElementsAre("Patient"));
  EXPECT_EQ(patient->url, "http://hl7.org/fhir/SearchParameter/clinical-patient");

  EXPECT_EQ(FindSearchParam("Observation", "code")->expression, "Observation.code");
  EXPECT_EQ(FindSearchParam("Observation", "date")->expression, "Observation.effective");
  EXPECT_EQ(FindSearchParam("Observation", "value-quantity")->type, SearchParamType::kQuantity);
  EXPECT_EQ(FindSearchParam("Observation", "value-quantity")->expression,
            "(Observation.value as Quantity) | (Observation.value as SampledData)");

  const SearchParamDef* cvq = FindSearchParam("Observation", "code-value-quantity");
  ASSERT_NE(cvq, nullptr);
  EXPECT_EQ(cvq->type, SearchParamType::kComposite);
  EXPECT_EQ(cvq->expression, "Observation");
  ASSERT_EQ(cvq->components.size(), 2u);
  EXPECT_EQ(cvq->components[0].param, "code");
  EXPECT_EQ(cvq->components[0].expression, "code");
  EXPECT_EQ(cvq->components[1].param, "value-quantity");
  EXPECT_EQ(cvq->components[1].expression, "value.as(Quantity)");
  // Generator decision: R4 writes value.as(DateTime), meaning the FHIR dateTime.
  EXPECT_EQ(FindSearchParam("Observation", "code-value-date")->components[1].expression,
            "value.as(dateTime) | value.as(Period)");

  // The common parameters, re-rooted; those without an expression are listed but not indexed.
  EXPECT_EQ(FindSearchParam("Observation", "_id")->expression, "Observation.id");
  EXPECT_EQ(FindSearchParam("Observation", "_lastUpdated")->expression,
            "Observation.meta.lastUpdated");
  EXPECT_EQ(FindSearchParam("Observation", "_tag")->type, SearchParamType::kToken);
  EXPECT_EQ(FindSearchParam("Observation", "_profile")->type, SearchParamType::kUri);
  EXPECT_EQ(FindSearchParam("Observation", "_source")->expression, "Observation.meta.source");
  EXPECT_EQ(FindSearchParam("Observation", "_security")->expression, "Observation.meta.security");
  EXPECT_EQ(FindSearchParam("Observation", "_text")->expression, "");
  EXPECT_EQ(FindSearchParam("Observation", "_content")->expression, "");
  EXPECT_EQ(FindSearchParam("Observation", "_query")->expression, "");
  EXPECT_EQ(FindSearchParam("Observation", "nope"), nullptr);
  // Binary is not a DomainResource: no _text.
  EXPECT_EQ(FindSearchParam("Binary", "_text"), nullptr);
  EXPECT_NE(FindSearchParam("Binary", "_id"), nullptr);
}

TEST(SearchParamTableTest, EveryTableIsSortedWithResolvableComponents) {
  size_t total = 0;
  for (std::string_view type : SearchableResourceTypes()) {
    std::span<const SearchParamDef> params = SearchParamsFor(type);
    total += params.size();
    EXPECT_TRUE(std::ranges::is_sorted(params, {}, &SearchParamDef::code)) << type;
    for (const SearchParamDef& def : params) {
      EXPECT_EQ(FindSearchParam(type, def.code), &def);
      EXPECT_EQ(def.components.empty(), def.type != SearchParamType::kComposite)
          << type << "." << def.code;
      EXPECT_EQ(def.targets.empty() && def.type == SearchParamType::kReference &&
                    !def.expression.empty() &&
                    def.expression.find("xtension(") == std::string_view::npos,
                false)
          << type << "." << def.code << " has no targets";
      for (const CompositeComponent& c : def.components) {
        EXPECT_NE(FindSearchParam(type, c.param), nullptr) << type << "." << def.code;
      }
    }
  }
  EXPECT_GT(total, 700u);
}

TEST(SearchParamTableTest, DocumentReferenceRelationshipComponentsUncrossed) {
  const SearchParamDef* rel = FindSearchParam("DocumentReference", "relationship");
  ASSERT_NE(rel, nullptr);
  ASSERT_EQ(rel->components.size(), 2u);
  EXPECT_EQ(rel->components[0].param, "relatesto");
  EXPECT_EQ(rel->components[0].expression, "target");
  EXPECT_EQ(rel->components[1].param, "relation");
  EXPECT_EQ(rel->components[1].expression, "code");
}

TEST(SearchParamTypeNameTest, Names) {
  EXPECT_EQ(SearchParamTypeName(SearchParamType::kNumber), "number");
  EXPECT_EQ(SearchParamTypeName(SearchParamType::kComposite), "composite");
  EXPECT_EQ(SearchParamTypeName(SearchParamType::kSpecial), "special");
}

// ---------------------------------------------------------------------------------------------
// Extraction.

std::vector<SearchValue> Extract(std::string_view json, std::string_view base = {}) {
  StatusOr<std::vector<SearchValue>> v = ExtractSearchValues(json, base);
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? std::move(v).value() : std::vector<SearchValue>{};
}

std::vector<const SearchValue*> Of(const std::vector<SearchValue>& values, std::string_view code) {
  std::vector<const SearchValue*> out;
  for (const SearchValue& v : values) {
    if (v.param != nullptr && v.param->code == code) out.push_back(&v);
  }
  return out;
}

std::vector<std::string> Tokens(const std::vector<SearchValue>& values, std::string_view code) {
  std::vector<std::string> out;
  for (const SearchValue* v : Of(values, code)) out.push_back(v->system + "|" + v->code);
  return out;
}

std::vector<std::string> Texts(const std::vector<SearchValue>& values, std::string_view code) {
  std::vector<std::string> out;
  for (const SearchValue* v : Of(values, code)) out.push_back(v->text);
  return out;
}

std::vector<std::string> Refs(const std::vector<SearchValue>& values, std::string_view code) {
  std::vector<std::string> out;
  for (const SearchValue* v : Of(values, code)) out.push_back(v->reference + "@" + v->target_type);
  return out;
}

constexpr std::string_view kObservation = R"({"resourceType":"Observation","id":"bp1",
  "meta":{"lastUpdated":"2024-05-06T07:08:09.123Z","tag":[{"system":"urn:t","code":"x"}],
          "profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},
  "status":"final",
  "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category",
                          "code":"vital-signs"}]}],
  "code":{"coding":[{"system":"http://loinc.org","code":"85354-9","display":"BP panel"}],
          "text":"Blood pressure"},
  "subject":{"reference":"Patient/p1/_history/3"},
  "encounter":{"reference":"https://phr.example/fhir/R4/Encounter/e1"},
  "performer":[{"reference":"https://elsewhere.example/fhir/Practitioner/d1/_history/1"},
               {"identifier":{"system":"urn:npi","value":"123"},"display":"Dr X"},
               {"display":"nobody"}],
  "effectiveDateTime":"2024-05-06T09:30:00+02:00",
  "valueQuantity":{"value":98.60,"unit":"degF","system":"http://unitsofmeasure.org"},
  "component":[
    {"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},
     "valueQuantity":{"value":120,"unit":"mmHg","system":"http://unitsofmeasure.org",
                      "code":"mm[Hg]"}},
    {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"},
                       {"system":"http://snomed.info/sct","code":"271650006"}]},
     "valueQuantity":{"value":80,"unit":"mmHg","system":"http://unitsofmeasure.org",
                      "code":"mm[Hg]"}}]})";

TEST(ExtractSearchValuesTest, Observation) {
  std::vector<SearchValue> v = Extract(kObservation, "https://phr.example/fhir/R4/");
  // Grouped by parameter in table order.
  for (size_t i = 1; i < v.size(); ++i) EXPECT_LE(v[i - 1].param->code, v[i].param->code);

  EXPECT_THAT(Tokens(v, "_id"), ElementsAre("|bp1"));
  EXPECT_THAT(Tokens(v, "_tag"), ElementsAre("urn:t|x"));
  EXPECT_THAT(Texts(v, "_profile"),
              ElementsAre("http://hl7.org/fhir/StructureDefinition/vitalsigns"));
  ASSERT_EQ(Of(v, "_lastUpdated").size(), 1u);
  EXPECT_EQ(Of(v, "_lastUpdated")[0]->range.low, Micros(2024, 5, 6, 7, 8, 9) + 123'000);
  EXPECT_EQ(Of(v, "_lastUpdated")[0]->range.high, Micros(2024, 5, 6, 7, 8, 9) + 123'999);

  EXPECT_THAT(Tokens(v, "status"), ElementsAre("|final"));
  EXPECT_THAT(
      Tokens(v, "category"),
      ElementsAre("http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"));
  EXPECT_THAT(Tokens(v, "code"), ElementsAre("http://loinc.org|85354-9"));
  EXPECT_EQ(Of(v, "code")[0]->text, "Blood pressure");
  EXPECT_THAT(Tokens(v, "component-code"),
              ElementsAre("http://loinc.org|8480-6", "http://loinc.org|8462-4",
                          "http://snomed.info/sct|271650006"));
  EXPECT_THAT(Tokens(v, "combo-code"),
              ElementsAre("http://loinc.org|85354-9", "http://loinc.org|8480-6",
                          "http://loinc.org|8462-4", "http://snomed.info/sct|271650006"));

  // References: version dropped; the local base stripped; elsewhere kept absolute.
  EXPECT_THAT(Refs(v, "subject"), ElementsAre("Patient/p1@Patient"));
  EXPECT_THAT(Refs(v, "patient"), ElementsAre("Patient/p1@Patient"));
  EXPECT_THAT(Refs(v, "encounter"), ElementsAre("Encounter/e1@Encounter"));
  std::vector<const SearchValue*> performer = Of(v, "performer");
  ASSERT_EQ(performer.size(), 2u);
  EXPECT_EQ(performer[0]->reference, "https://elsewhere.example/fhir/Practitioner/d1");
  EXPECT_EQ(performer[0]->target_type, "Practitioner");
  EXPECT_EQ(performer[1]->reference, "");
  EXPECT_EQ(performer[1]->identifier_system, "urn:npi");
  EXPECT_EQ(performer[1]->identifier_value, "123");

  // 09:30+02:00 is 07:30Z, to the second.
  ASSERT_EQ(Of(v, "date").size(), 1u);
  EXPECT_EQ(Of(v, "date")[0]->range.low, Micros(2024, 5, 6, 7, 30, 0));
  EXPECT_EQ(Of(v, "date")[0]->range.high, Micros(2024, 5, 6, 7, 30, 0) + 999'999);

  // Quantities: the text as written; the unit stands in for a missing code.
  std::vector<const SearchValue*> q = Of(v, "value-quantity");
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0]->number, "98.60");
  EXPECT_EQ(q[0]->system, "http://unitsofmeasure.org");
  EXPECT_EQ(q[0]->code, "degF");
  EXPECT_DOUBLE_EQ(q[0]->range_low, 98.6);
  EXPECT_DOUBLE_EQ(q[0]->range_high, 98.6);
  std::vector<const SearchValue*> cq = Of(v, "component-value-quantity");
  ASSERT_EQ(cq.size(), 2u);
  EXPECT_EQ(cq[0]->number, "120");
  EXPECT_EQ(cq[1]->code, "mm[Hg]");

  // Composites: one value per combination on the same focus, never across foci.
  std::vector<const SearchValue*> ccq = Of(v, "component-code-value-quantity");
  ASSERT_EQ(ccq.size(), 3u);
  auto show = [](const SearchValue& c) {
    return c.components[0].code + "=" + c.components[1].number;
  };
  EXPECT_EQ(show(*ccq[0]), "8480-6=120");
  EXPECT_EQ(show(*ccq[1]), "8462-4=80");
  EXPECT_EQ(show(*ccq[2]), "271650006=80");
  EXPECT_EQ(ccq[0]->components[0].param->code, "component-code");
  EXPECT_EQ(ccq[0]->components[1].param->code, "component-value-quantity");
  std::vector<const SearchValue*> cvq = Of(v, "code-value-quantity");
  ASSERT_EQ(cvq.size(), 1u);
  EXPECT_EQ(show(*cvq[0]), "85354-9=98.60");
  EXPECT_EQ(Of(v, "combo-code-value-quantity").size(), 4u);
  EXPECT_TRUE(Of(v, "code-value-string").empty());
  EXPECT_TRUE(Of(v, "value-concept").empty());
}

TEST(ExtractSearchValuesTest, ObservationValueKinds) {
  std::vector<SearchValue> v = Extract(R"({"resourceType":"Observation","status":"final",
      "code":{"coding":[{"code":"c"}]},
      "valuePeriod":{"start":"2020-01"},
      "component":[{"code":{"text":"t"},"valueCodeableConcept":{"coding":[{"code":"pos"}]}},
                   {"code":{"coding":[{"code":"s"}]},"valueString":"Hello"}]})");
  ASSERT_EQ(Of(v, "value-date").size(), 1u);
  EXPECT_EQ(Of(v, "value-date")[0]->range.low, Micros(2020, 1, 1));
  EXPECT_EQ(Of(v, "value-date")[0]->range.high, kMax);
  ASSERT_EQ(Of(v, "code-value-date").size(), 1u);
  EXPECT_EQ(Of(v, "code-value-date")[0]->components[1].range.high, kMax);
  EXPECT_THAT(Tokens(v, "code"), ElementsAre("|c"));
  EXPECT_THAT(Tokens(v, "component-value-concept"), ElementsAre("|pos"));
  // The component whose code has no coding yields no component-code, so no composite either.
  EXPECT_TRUE(Of(v, "component-code-value-concept").empty());
  EXPECT_TRUE(Of(v, "value-string").empty());
}

TEST(ExtractSearchValuesTest, Patient) {
  std::vector<SearchValue> v = Extract(R"({"resourceType":"Patient","id":"p1","active":true,
      "identifier":[{"system":"urn:mrn","value":"42"},{"system":"urn:empty"}],
      "name":[{"use":"official","family":"Müller","given":["Zoë","Anna"],"prefix":["Dr"]}],
      "telecom":[{"system":"phone","value":"+1 555"},{"system":"email","value":"z@example.org"}],
      "gender":"female","birthDate":"1980-02",
      "address":[{"line":["1 Main St","Apt 2"],"city":"Springfield","postalCode":"12345",
                  "country":"US"}],
      "deceasedDateTime":"2020-03-04",
      "generalPractitioner":[{"reference":"#gp"}],
      "contained":[{"resourceType":"Practitioner","id":"gp"}],
      "managingOrganization":{"reference":"urn:uuid:0a1b","type":"Organization"},
      "communication":[{"language":{"coding":[{"system":"urn:ietf:bcp:47","code":"de"}]}}],
      "extension":[{"url":
          "http://hl7.org/fhir/StructureDefinition/patient-extensions-Patient-mothersMaidenName",
                    "valueString":"Schmidt"}]})");
  EXPECT_THAT(Tokens(v, "active"), ElementsAre("|true"));
  EXPECT_THAT(Tokens(v, "identifier"), ElementsAre("urn:mrn|42"));
  EXPECT_THAT(Texts(v, "name"), ElementsAre("Müller", "Zoë", "Anna", "Dr"));
  EXPECT_THAT(Texts(v, "family"), ElementsAre("Müller"));
  EXPECT_THAT(Texts(v, "given"), ElementsAre("Zoë", "Anna"));
  EXPECT_THAT(Tokens(v, "phone"), ElementsAre("|+1 555"));
  EXPECT_THAT(Tokens(v, "email"), ElementsAre("|z@example.org"));
  EXPECT_THAT(Tokens(v, "telecom"), ElementsAre("|+1 555", "|z@example.org"));
  EXPECT_THAT(Tokens(v, "gender"), ElementsAre("|female"));
  EXPECT_THAT(Tokens(v, "deceased"), ElementsAre("|true"));
  EXPECT_THAT(Tokens(v, "language"), ElementsAre("urn:ietf:bcp:47|de"));
  ASSERT_EQ(Of(v, "birthdate").size(), 1u);
  EXPECT_EQ(Of(v, "birthdate")[0]->range.low, Micros(1980, 2, 1));
  EXPECT_EQ(Of(v, "birthdate")[0]->range.high, Micros(1980, 3, 1) - 1);
  ASSERT_EQ(Of(v, "death-date").size(), 1u);
  EXPECT_EQ(Of(v, "death-date")[0]->range.low, Micros(2020, 3, 4));
  EXPECT_EQ(Of(v, "death-date")[0]->range.high, Micros(2020, 3, 5) - 1);
  EXPECT_THAT(Texts(v, "address"), ElementsAre("1 Main St", "Apt 2", "Springfield", "12345", "US"));
  EXPECT_THAT(Texts(v, "address-city"), ElementsAre("Springfield"));
  EXPECT_THAT(Refs(v, "general-practitioner"), ElementsAre("#gp@Practitioner"));
  EXPECT_THAT(Refs(v, "organization"), ElementsAre("urn:uuid:0a1b@Organization"));
  EXPECT_THAT(Texts(v, "mothersMaidenName"), ElementsAre("Schmidt"));
  EXPECT_TRUE(Of(v, "link").empty());
  // Not deceased when absent: the expression is false, which is a token value too.
  EXPECT_THAT(Tokens(Extract(R"({"resourceType":"Patient"})"), "deceased"), ElementsAre("|false"));
}

TEST(ExtractSearchValuesTest, ConditionAgesRangesAndStrings) {
  std::vector<SearchValue> v = Extract(R"({"resourceType":"Condition",
      "subject":{"reference":"Group/g1"},
      "onsetRange":{"low":{"value":10,"unit":"a","system":"http://unitsofmeasure.org",
                           "code":"a"}},
      "abatementAge":{"value":12.5,"unit":"years"},
      "recordedDate":"2021-06-01T12:00:00Z",
      "stage":[{"summary":{"coding":[{"system":"urn:s","code":"II"}]}}]})");
  std::vector<const SearchValue*> onset = Of(v, "onset-age");
  ASSERT_EQ(onset.size(), 1u);
  EXPECT_EQ(onset[0]->number, "");
  EXPECT_DOUBLE_EQ(onset[0]->range_low, 10);
  EXPECT_EQ(onset[0]->range_high, std::numeric_limits<double>::infinity());
  EXPECT_EQ(onset[0]->code, "a");
  std::vector<const SearchValue*> abatement = Of(v, "abatement-age");
  ASSERT_EQ(abatement.size(), 1u);
  EXPECT_EQ(abatement[0]->number, "12.5");
  EXPECT_EQ(abatement[0]->code, "years");
  EXPECT_THAT(Refs(v, "subject"), ElementsAre("Group/g1@Group"));
  EXPECT_TRUE(Of(v, "patient").empty());  // where(resolve() is Patient) filters the Group out.
  EXPECT_THAT(Tokens(v, "stage"), ElementsAre("urn:s|II"));
  EXPECT_EQ(Of(v, "recorded-date")[0]->range.low, Micros(2021, 6, 1, 12));

  std::vector<SearchValue> s = Extract(
      R"({"resourceType":"Condition","onsetString":"childhood","abatementString":"adult"})");
  EXPECT_THAT(Texts(s, "onset-info"), ElementsAre("childhood"));
  EXPECT_THAT(Texts(s, "abatement-string"), ElementsAre("adult"));
}

TEST(ExtractSearchValuesTest, MedicationRequestTimingCanonicalAndChoiceReferences) {
  std::vector<SearchValue> v = Extract(R"({"resourceType":"MedicationRequest",
      "status":"active","intent":"order","subject":{"reference":"Patient/p1"},
      "medicationReference":{"reference":"Medication/m1"},
      "dosageInstruction":[{"timing":{"event":["2024-01-02","2024-01-05T10:00:00Z"]}}],
      "instantiatesCanonical":["http://example.org/fhir/PlanDefinition/pd1|2.0"]})");
  EXPECT_THAT(Refs(v, "medication"), ElementsAre("Medication/m1@Medication"));
  EXPECT_TRUE(Of(v, "code").empty());
  std::vector<const SearchValue*> date = Of(v, "date");
  ASSERT_EQ(date.size(), 2u);  // One per event (the expression selects Timing.event).
  EXPECT_EQ(date[0]->range.low, Micros(2024, 1, 2));
  EXPECT_EQ(date[1]->range.high, Micros(2024, 1, 5, 10) + 999'999);

  std::vector<SearchValue> c = Extract(R"({"resourceType":"MedicationRequest",
      "medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm",
                                              "code":"1049502"}]}})");
  EXPECT_THAT(Tokens(c, "code"),
              ElementsAre("http://www.nlm.nih.gov/research/umls/rxnorm|1049502"));
  EXPECT_TRUE(Of(c, "medication").empty());

  // A Timing node (CarePlan.activity.detail.scheduled) gives its outer limits.
  std::vector<SearchValue> cp = Extract(R"({"resourceType":"CarePlan",
      "activity":[{"detail":{"status":"scheduled","scheduledTiming":{
          "event":["2024-03-01"],"repeat":{"boundsPeriod":{"start":"2024-02-01","end":"2024-02-10"}}}}}]})");
  std::vector<const SearchValue*> ad = Of(cp, "activity-date");
  ASSERT_EQ(ad.size(), 1u);
  EXPECT_EQ(ad[0]->range.low, Micros(2024, 2, 1));
  EXPECT_EQ(ad[0]->range.high, Micros(2024, 3, 2) - 1);
}

TEST(ExtractSearchValuesTest, QuestionnaireUseContextComposites) {
  std::vector<SearchValue> v = Extract(R"({"resourceType":"Questionnaire","status":"active",
      "url":"http://example.org/q1","version":"3",
      "useContext":[{"code":{"system":"http://terminology.hl7.org/CodeSystem/usage-context-type",
                             "code":"age"},
                     "valueRange":{"low":{"value":18},"high":{"value":65}}},
                    {"code":{"code":"focus"},"valueCodeableConcept":{"coding":[{"code":"x"}]}}],
      "item":[{"linkId":"1","type":"string","definition":"http://example.org/sd#a",
               "code":[{"system":"urn:c","code":"q1"}]}]})");
  EXPECT_THAT(Texts(v, "url"), ElementsAre("http://example.org/q1"));
  EXPECT_THAT(Tokens(v, "version"), ElementsAre("|3"));
  EXPECT_THAT(Texts(v, "definition"), ElementsAre("http://example.org/sd#a"));
  EXPECT_THAT(Tokens(v, "code"), ElementsAre("urn:c|q1"));
  std::vector<const SearchValue*> q = Of(v, "context-type-quantity");
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0]->components[0].code, "age");
  EXPECT_DOUBLE_EQ(q[0]->components[1].range_low, 18);
  EXPECT_DOUBLE_EQ(q[0]->components[1].range_high, 65);
  std::vector<const SearchValue*> tv = Of(v, "context-type-value");
  ASSERT_EQ(tv.size(), 1u);
  EXPECT_EQ(tv[0]->components[0].code, "focus");
  EXPECT_EQ(tv[0]->components[1].code, "x");
}

TEST(ExtractSearchValuesTest, ExtensionParameters) {
  std::vector<SearchValue> v =
      Extract(R"({"resourceType":"QuestionnaireResponse","status":"completed",
      "item":[{"linkId":"1",
               "extension":[{"url":"http://hl7.org/fhir/StructureDefinition/questionnaireresponse-isSubject",
                             "valueBoolean":true}],
               "answer":[{"valueReference":{"reference":"Patient/p2"}},{"valueString":"x"}]},
              {"linkId":"2","answer":[{"valueReference":{"reference":"Patient/p3"}}]}]})");
  EXPECT_THAT(Refs(v, "item-subject"), ElementsAre("Patient/p2@Patient"));

  std::vector<SearchValue> d = Extract(R"({"resourceType":"DiagnosticReport","status":"final",
      "code":{"text":"x"},
      "extension":[{"url":"http://hl7.org/fhir/StructureDefinition/DiagnosticReport-geneticsAssessedCondition",
                    "valueReference":{"reference":"Condition/c1"}}]})");
  EXPECT_THAT(Refs(d, "assessed-condition"), ElementsAre("Condition/c1@Condition"));
}

TEST(ExtractSearchValuesTest, DocumentReferenceRelationship) {
  std::vector<SearchValue> v = Extract(R"({"resourceType":"DocumentReference","status":"current",
      "relatesTo":[{"code":"replaces","target":{"reference":"DocumentReference/d0"}}],
      "content":[{"attachment":{"contentType":"application/pdf","url":"Binary/b1"}}]})");
  std::vector<const SearchValue*> rel = Of(v, "relationship");
  ASSERT_EQ(rel.size(), 1u);
  EXPECT_EQ(rel[0]->components[0].reference, "DocumentReference/d0");
  EXPECT_EQ(rel[0]->components[1].code, "replaces");
  EXPECT_THAT(Tokens(v, "contenttype"), ElementsAre("|application/pdf"));
  EXPECT_THAT(Texts(v, "location"), ElementsAre("Binary/b1"));
}

TEST(ExtractSearchValuesTest, Errors) {
  EXPECT_EQ(ExtractSearchValues(R"({"resourceType":"Bundle"})").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ExtractSearchValues("not json").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ExtractSearchValues(R"({"resourceType":"Patient","name":"oops"})").ok(), true);
  // Wrongly shaped data yields nothing rather than failing.
  std::vector<SearchValue> v = Extract(R"({"resourceType":"Patient","name":[1,"x",{"family":7}],
      "birthDate":"not a date","identifier":{"value":"single"},"telecom":[null]})");
  EXPECT_TRUE(Of(v, "name").empty());
  EXPECT_TRUE(Of(v, "birthdate").empty());
  EXPECT_THAT(Tokens(v, "identifier"), ElementsAre("|single"));
}

TEST(ExtractSearchValuesTest, BinaryHasOnlyCommonParameters) {
  std::vector<SearchValue> v =
      Extract(R"({"resourceType":"Binary","id":"b1","contentType":"text/plain","data":"aGk="})");
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].param->code, "_id");
  EXPECT_EQ(v[0].code, "b1");
}

// ---------------------------------------------------------------------------------------------
// Dates and strings.

TEST(FhirDateRangeTest, Precision) {
  EXPECT_EQ(FhirDateRange("2020")->low, Micros(2020, 1, 1));
  EXPECT_EQ(FhirDateRange("2020")->high, Micros(2021, 1, 1) - 1);
  EXPECT_EQ(FhirDateRange("2020-02")->high, Micros(2020, 3, 1) - 1);
  EXPECT_EQ(FhirDateRange("2020-12")->high, Micros(2021, 1, 1) - 1);
  EXPECT_EQ(FhirDateRange("2020-02-29")->low, Micros(2020, 2, 29));
  EXPECT_EQ(FhirDateRange("2020-02-29")->high, Micros(2020, 2, 29) + kDay - 1);
  EXPECT_EQ(FhirDateRange("1969-12-31")->low, -kDay);
  EXPECT_EQ(FhirDateRange("2020-01-01T00:00:00Z")->high, Micros(2020, 1, 1) + 999'999);
  EXPECT_EQ(FhirDateRange("2020-01-01T00:00:00.5Z")->low, Micros(2020, 1, 1) + 500'000);
  EXPECT_EQ(FhirDateRange("2020-01-01T00:00:00.5Z")->high, Micros(2020, 1, 1) + 599'999);
  EXPECT_EQ(FhirDateRange("2020-01-01T00:00:00.123456789Z")->low, Micros(2020, 1, 1) + 123'456);
  EXPECT_EQ(FhirDateRange("2020-01-01T00:00:00.123456789Z")->high, Micros(2020, 1, 1) + 123'456);
  EXPECT_EQ(FhirDateRange("2020-01-01T01:00:00+01:00")->low, Micros(2020, 1, 1));
  EXPECT_EQ(FhirDateRange("2019-12-31T19:00:00-05:00")->low, Micros(2020, 1, 1));
  EXPECT_EQ(FhirDateRange("2020-01-01T10:00Z")->high, Micros(2020, 1, 1, 10, 1) - 1);
  EXPECT_EQ(FhirDateRange("2020-01-01T10:00:00")->low, Micros(2020, 1, 1, 10));  // No zone: UTC.
  EXPECT_EQ(FhirDateRange("9999-12-31")->high, Micros(10000, 1, 1) - 1);
  for (std::string_view bad :
       {"", "20", "2020-13", "2020-02-30", "2021-02-29", "2020-1-01", "2020-01-01T",
        "2020-01-01T25:00:00Z", "2020-01-01T10:00:00.Z", "2020-01-01T10:00:00+15:00",
        "2020-01-01 10:00:00Z", "0000", "2020-01-01Z", "x2020"}) {
    EXPECT_FALSE(FhirDateRange(bad).has_value()) << bad;
  }
}

TEST(NormalizeSearchStringTest, Folds) {
  EXPECT_EQ(NormalizeSearchString("  Zoë   MÜLLER"), "zoe muller");
  EXPECT_EQ(NormalizeSearchString("Straße"), "strasse");
  EXPECT_EQ(NormalizeSearchString("ＡＢＣ　ｄｅｆ"), "abc def");  // Full width, ideographic space.
  EXPECT_EQ(NormalizeSearchString("ﬁnal\u00a0Éclair\t\n"), "final eclair");
  EXPECT_EQ(NormalizeSearchString("Ångström"), "angstrom");
  EXPECT_EQ(NormalizeSearchString("plain ascii"), "plain ascii");
  EXPECT_EQ(NormalizeSearchString("  A\tB  "), "a b");
  EXPECT_EQ(NormalizeSearchString(""), "");
  EXPECT_EQ(NormalizeSearchString("   "), "");
  EXPECT_EQ(NormalizeSearchString("田中"), "田中");
  EXPECT_EQ(NormalizeSearchString("bad \xff byte"), "bad \xff byte");  // Not UTF-8: ASCII fold.
}

// A typical Observation's extraction cost, for the record (the benchmark proper lives in the
// tool's --bench mode); only checks it is not absurdly slow even in a sanitizer build.
TEST(ExtractSearchValuesTest, TypicalObservationIsCheap) {
  constexpr int kIterations = 200;
  size_t values = 0;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kIterations; ++i) values += Extract(kObservation).size();
  auto elapsed = std::chrono::steady_clock::now() - start;
  double us = std::chrono::duration<double, std::micro>(elapsed).count() / kIterations;
  RecordProperty("us_per_observation", std::to_string(us));
  EXPECT_GT(values, 0u);
  EXPECT_LT(us, 5000.0);
}

}  // namespace
}  // namespace kura::fhir
