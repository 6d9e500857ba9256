#include "kura/fhir/fhirpath.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kura/fhir/search_params.h"

namespace kura::fhir {
namespace {

ParsedResource Parse(std::string_view json) {
  StatusOr<ParsedResource> r = ParsedResource::Parse(json);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return std::move(r).value();
}

// Evaluates `expression` on `resource` (context: its resourceType) and returns the nodes as JSON.
std::vector<std::string> Eval(const ParsedResource& resource, std::string_view expression) {
  StatusOr<FhirPath> path = FhirPath::Compile(expression, resource.resource_type());
  EXPECT_TRUE(path.ok()) << expression << ": " << path.status().ToString();
  std::vector<std::string> out;
  if (!path.ok()) return out;
  std::vector<PathNode> nodes;
  path->Evaluate(resource, nodes);
  for (const PathNode& n : nodes) out.push_back(n.ToJson());
  return out;
}

std::vector<std::string> Types(const ParsedResource& resource, std::string_view expression) {
  StatusOr<FhirPath> path = FhirPath::Compile(expression, resource.resource_type());
  EXPECT_TRUE(path.ok()) << expression << ": " << path.status().ToString();
  std::vector<std::string> out;
  if (!path.ok()) return out;
  std::vector<PathNode> nodes;
  path->Evaluate(resource, nodes);
  for (const PathNode& n : nodes) out.emplace_back(n.type());
  return out;
}

using V = std::vector<std::string>;

constexpr std::string_view kObservation = R"({
  "resourceType": "Observation", "id": "o1", "status": "final",
  "meta": {"lastUpdated": "2024-01-02T03:04:05Z", "tag": [{"system": "s", "code": "t"}]},
  "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"},
                      {"system": "http://snomed.info/sct", "code": "386725007"}],
           "text": "Body temperature"},
  "subject": {"reference": "Patient/p1"},
  "performer": [{"reference": "Practitioner/d1"}, {"reference": "#org"},
                {"reference": "http://other.example/fhir/Patient/p9/_history/2"}],
  "contained": [{"resourceType": "Organization", "id": "org", "name": "Lab"}],
  "valueQuantity": {"value": 98.60, "unit": "F", "system": "http://unitsofmeasure.org",
                    "code": "[degF]"},
  "component": [
    {"code": {"coding": [{"code": "a"}]}, "valueQuantity": {"value": 1}},
    {"code": {"coding": [{"code": "b"}]}, "valueString": "x"},
    {"code": {"coding": [{"code": "c"}]}, "valueCodeableConcept": {"text": "cc"}}],
  "extension": [{"url": "http://e/1", "valueString": "one"},
                {"url": "http://e/2", "valueCode": "two"}],
  "_status": {"extension": [{"url": "http://e/3", "valueBoolean": true}]}
})";

TEST(FhirPathTest, PathsAndRootType) {
  ParsedResource r = Parse(kObservation);
  EXPECT_EQ(Eval(r, "Observation.status"), V{R"("final")"});
  EXPECT_EQ(Eval(r, "status"), V{R"("final")"});
  EXPECT_EQ(Eval(r, "Observation.code.coding.code"), (V{R"("8310-5")", R"("386725007")"}));
  EXPECT_EQ(Eval(r, "Observation.meta.tag.code"), V{R"("t")"});
  EXPECT_EQ(Eval(r, "Resource.id"), V{R"("o1")"});
  EXPECT_EQ(Eval(r, "DomainResource.id"), V{R"("o1")"});
  EXPECT_EQ(Eval(r, "Observation.issued"), V{});
  EXPECT_EQ(Types(r, "Observation.code | Observation.subject"),
            (V{"CodeableConcept", "Reference"}));
}

TEST(FhirPathTest, ChoiceElementsAndCasts) {
  ParsedResource r = Parse(kObservation);
  // Numbers keep their text.
  EXPECT_EQ(
      Eval(r, "Observation.value"),
      V{R"({"value":98.60,"unit":"F","system":"http://unitsofmeasure.org","code":"[degF]"})"});
  EXPECT_EQ(Types(r, "Observation.value"), V{"Quantity"});
  EXPECT_EQ(Eval(r, "(Observation.value as Quantity).value"), V{"98.60"});
  EXPECT_EQ(Eval(r, "Observation.value.as(Quantity).code"), V{R"("[degF]")"});
  EXPECT_EQ(Eval(r, "Observation.value.ofType(Quantity).unit"), V{R"("F")"});
  EXPECT_EQ(Eval(r, "Observation.value as string"), V{});
  EXPECT_EQ(Eval(r, "Observation.value is Quantity"), V{"true"});
  EXPECT_EQ(Eval(r, "Observation.value.is(string)"), V{"false"});
  EXPECT_EQ(Eval(r, "Observation.component.value"),
            (V{R"({"value":1})", R"("x")", R"({"text":"cc"})"}));
  EXPECT_EQ(Types(r, "Observation.component.value"), (V{"Quantity", "string", "CodeableConcept"}));
  EXPECT_EQ(Eval(r, "(Observation.component.value as CodeableConcept).text"), V{R"("cc")"});
  EXPECT_EQ(Eval(r, "Observation.component.value.ofType(string)"), V{R"("x")"});
  // A cast keeps specializations: an Age is a Quantity.
  ParsedResource c = Parse(R"({"resourceType":"Condition","onsetAge":{"value":40}})");
  EXPECT_EQ(Eval(c, "Condition.onset.as(Quantity)"), V{R"({"value":40})"});
  EXPECT_EQ(Eval(c, "Condition.onset as Age"), V{R"({"value":40})"});
  EXPECT_EQ(Eval(c, "Condition.onset.as(Range)"), V{});
}

TEST(FhirPathTest, WhereResolveAndComparisons) {
  ParsedResource r = Parse(kObservation);
  EXPECT_EQ(Eval(r, "Observation.subject.where(resolve() is Patient)"),
            V{R"({"reference":"Patient/p1"})"});
  EXPECT_EQ(Eval(r, "Observation.performer.where(resolve() is Practitioner).reference"),
            V{R"("Practitioner/d1")"});
  // A contained reference resolves to the contained resource's type; an absolute URL by its
  // Type/id tail (the version dropped).
  EXPECT_EQ(Eval(r, "Observation.performer.where(resolve() is Organization).reference"),
            V{R"("#org")"});
  EXPECT_EQ(Eval(r, "Observation.performer.where(resolve() is Patient).reference"),
            V{R"("http://other.example/fhir/Patient/p9/_history/2")"});
  EXPECT_EQ(Eval(r, "Observation.performer.resolve().ofType(Organization)"),
            V{R"({"resourceType":"Organization"})"});
  EXPECT_EQ(Eval(r, "Observation.code.coding.where(system = 'http://loinc.org').code"),
            V{R"("8310-5")"});
  EXPECT_EQ(Eval(r, "Observation.code.coding.where(system != 'http://loinc.org').code"),
            V{R"("386725007")"});
  EXPECT_EQ(Eval(r, "Observation.status = 'final'"), V{"true"});
  EXPECT_EQ(Eval(r, "Observation.status != 'final'"), V{"false"});
  EXPECT_EQ(Eval(r, "Observation.issued = 'x'"), V{});
  EXPECT_EQ(Eval(r, "Observation.value.value = 98.6"), V{"true"});
  EXPECT_EQ(Eval(r, "Observation.code.coding.code = '8310-5'"), V{"false"});  // Two items.
  EXPECT_EQ(Eval(r,
                 "Observation.component.where(value.exists() and code.coding.code = 'b')"
                 ".value"),
            V{R"("x")"});
  EXPECT_EQ(Eval(r,
                 "Observation.component.where(code.coding.code = 'a' or "
                 "code.coding.code = 'c').code.coding.code"),
            (V{R"("a")", R"("c")"}));
}

TEST(FhirPathTest, BooleanLogicAndFunctions) {
  ParsedResource r = Parse(kObservation);
  EXPECT_EQ(Eval(r, "Observation.status.exists()"), V{"true"});
  EXPECT_EQ(Eval(r, "Observation.issued.exists()"), V{"false"});
  EXPECT_EQ(Eval(r, "Observation.issued.empty()"), V{"true"});
  EXPECT_EQ(Eval(r, "Observation.status.exists().not()"), V{"false"});
  EXPECT_EQ(Eval(r, "Observation.component.exists(value is string)"), V{"true"});
  EXPECT_EQ(Eval(r, "Observation.code.coding.first().code"), V{R"("8310-5")"});
  EXPECT_EQ(Eval(r, "Observation.code.coding.last().code"), V{R"("386725007")"});
  EXPECT_EQ(Eval(r, "Observation.code.coding[1].code"), V{R"("386725007")"});
  EXPECT_EQ(Eval(r, "Observation.code.coding[5]"), V{});
  EXPECT_EQ(Eval(r, "Observation.issued.exists() or Observation.status.exists()"), V{"true"});
  EXPECT_EQ(Eval(r, "Observation.issued.exists() and Observation.status.exists()"), V{"false"});
  // Three-valued logic: empty and false is false, empty or true is true, else empty.
  EXPECT_EQ(Eval(r, "Observation.issued and false"), V{"false"});
  EXPECT_EQ(Eval(r, "Observation.issued or true"), V{"true"});
  EXPECT_EQ(Eval(r, "Observation.issued and true"), V{});
  EXPECT_EQ(Eval(r, "true xor false"), V{"true"});
  EXPECT_EQ(Eval(r, "false implies Observation.issued"), V{"true"});
  EXPECT_EQ(Eval(r, "$this.status"), V{R"("final")"});
  EXPECT_EQ(Eval(r, "{}"), V{});
  // Union removes duplicates.
  EXPECT_EQ(Eval(r, "Observation.status | Observation.status | 'final'"), V{R"("final")"});
}

TEST(FhirPathTest, Extensions) {
  ParsedResource r = Parse(kObservation);
  EXPECT_EQ(Eval(r, "Observation.extension('http://e/2')"),
            V{R"({"url":"http://e/2","valueCode":"two"})"});
  EXPECT_EQ(Eval(r, "Observation.extension('http://e/2').value"), V{R"("two")"});
  EXPECT_EQ(Types(r, "Observation.extension('http://e/2').value"), V{"code"});
  EXPECT_EQ(Eval(r, "Observation.extension.where(url = 'http://e/1').value"), V{R"("one")"});
  EXPECT_EQ(Eval(r, "Observation.hasExtension('http://e/1')"), V{"true"});
  EXPECT_EQ(Eval(r, "Observation.hasExtension('http://e/9')"), V{"false"});
  // Extensions of primitives (`_status`) are not supported.
  EXPECT_FALSE(FhirPath::Compile("Observation.status.extension('http://e/3')", "Observation").ok());
}

TEST(FhirPathTest, PatientDeceased) {
  constexpr std::string_view kExpr = "Patient.deceased.exists() and Patient.deceased != false";
  EXPECT_EQ(Eval(Parse(R"({"resourceType":"Patient"})"), kExpr), V{"false"});
  EXPECT_EQ(Eval(Parse(R"({"resourceType":"Patient","deceasedBoolean":false})"), kExpr),
            V{"false"});
  EXPECT_EQ(Eval(Parse(R"({"resourceType":"Patient","deceasedBoolean":true})"), kExpr), V{"true"});
  EXPECT_EQ(Eval(Parse(R"({"resourceType":"Patient","deceasedDateTime":"2020"})"), kExpr),
            V{"true"});
}

TEST(FhirPathTest, RelativeContexts) {
  ParsedResource r = Parse(kObservation);
  StatusOr<FhirPath> focus_path =
      FhirPath::Compile("Observation | Observation.component", "Observation");
  ASSERT_TRUE(focus_path.ok()) << focus_path.status().ToString();
  std::vector<PathNode> foci;
  focus_path->Evaluate(r, foci);
  ASSERT_EQ(foci.size(), 4u);
  const std::string_view contexts[] = {"Observation", "Observation.component"};
  StatusOr<FhirPath> code = FhirPath::Compile("code.coding.code", contexts);
  ASSERT_TRUE(code.ok()) << code.status().ToString();
  std::vector<std::string> got;
  for (const PathNode& focus : foci) {
    std::vector<PathNode> nodes;
    code->Evaluate(r, std::span(&focus, 1), nodes);
    std::string joined;
    for (const PathNode& n : nodes) joined += n.ToJson();
    got.push_back(joined);
  }
  EXPECT_EQ(got, (V{R"("8310-5""386725007")", R"("a")", R"("b")", R"("c")"}));
}

TEST(FhirPathTest, UnsupportedFailsToCompile) {
  for (std::string_view bad : {
           "Observation.foo",                     // Unknown element.
           "Observation.value as Money",          // Can never match.
           "Observation.value as Foo",            // Unknown type.
           "Observation.value.as(DateTime)",      // A System type, not a FHIR one.
           "Observation.status + 'x'",            // Arithmetic.
           "Observation.status < 'x'",            // Ordering.
           "Observation.code.select(coding)",     // Unsupported function.
           "Observation.code.coding[0 + 1]",      // Computed index.
           "%resource.id",                        // Environment variable.
           "Observation.subject.resolve().name",  // Below resolve().
           "Observation.subject.resolve() is Quantity",
           "Observation.code.extension(url)",  // Not a literal.
           "Observation.status.where(",        // Syntax.
           "Observation.status)",
           "Observation.'x'",
           "Observation.status = 'unterminated",
           "",
       }) {
    StatusOr<FhirPath> p = FhirPath::Compile(bad, "Observation");
    EXPECT_FALSE(p.ok()) << bad;
    if (!p.ok()) {
      EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument) << bad;
    }
  }
  EXPECT_FALSE(FhirPath::Compile("id", "NoSuchType").ok());
}

// Every expression of the generated search parameter table (and every composite component,
// relative to the composite's result types) compiles.
TEST(FhirPathTest, EverySearchExpressionCompiles) {
  size_t expressions = 0;
  for (std::string_view type : SearchableResourceTypes()) {
    for (const SearchParamDef& def : SearchParamsFor(type)) {
      if (def.expression.empty()) continue;
      ++expressions;
      StatusOr<FhirPath> p = FhirPath::Compile(def.expression, type);
      ASSERT_TRUE(p.ok()) << type << "." << def.code << ": " << p.status().ToString();
      EXPECT_FALSE(p->ResultTypes().empty()) << type << "." << def.code;
      std::vector<std::string_view> focus = p->ResultTypes();
      for (const CompositeComponent& c : def.components) {
        ++expressions;
        StatusOr<FhirPath> cp = FhirPath::Compile(c.expression, focus);
        EXPECT_TRUE(cp.ok()) << type << "." << def.code << "." << c.param << ": "
                             << cp.status().ToString();
      }
      EXPECT_NE(SearchParamExpression(def), nullptr) << type << "." << def.code;
      for (size_t i = 0; i < def.components.size(); ++i) {
        EXPECT_NE(SearchParamComponentExpression(def, i), nullptr) << type << "." << def.code;
      }
    }
  }
  EXPECT_GT(expressions, 600u);
}

TEST(ParsedResourceTest, RejectsNonResources) {
  EXPECT_FALSE(ParsedResource::Parse("[]").ok());
  EXPECT_FALSE(ParsedResource::Parse("{").ok());
  EXPECT_FALSE(ParsedResource::Parse(R"({"id":"x"})").ok());
  EXPECT_FALSE(ParsedResource::Parse(R"({"resourceType":1})").ok());
  EXPECT_FALSE(ParsedResource::Parse(std::string_view("{\"resourceType\":\"Basic\"}\0x", 26)).ok());
  StatusOr<ParsedResource> ok = ParsedResource::Parse(R"({"resourceType":"Basic"})");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->resource_type(), "Basic");
  EXPECT_EQ(ok->Root().ToJson(), R"({"resourceType":"Basic"})");
}

}  // namespace
}  // namespace kura::fhir
