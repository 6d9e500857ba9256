// Micro benchmark of the request body path of a FHIR write: JSON intake (ParseResourceDocument)
// and R4 structural validation (R4Validator), on the Observation the load benchmark posts
// (bench/run.sh's template) and on one with contained resources, extensions and a narrative.
//
//   ninja -C build kura_validator_bench && build/bench/kura_validator_bench
#include <benchmark/benchmark.h>

#include <string_view>

#include "kura/fhir/json.h"
#include "kura/fhir/validator.h"

namespace kura::fhir {
namespace {

constexpr std::string_view kObservation =
    R"({"resourceType":"Observation","status":"final","identifier":[{"system":"urn:example:bench:obs","value":"obs-post-1"}],"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"text":"Heart rate"},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-01-01T00:00:00.000Z","issued":"2024-01-01T00:00:00.000Z","performer":[{"display":"Bench Device 01"}],"valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"},"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"N","display":"Normal"}]}],"referenceRange":[{"low":{"value":62,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"},"high":{"value":82,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}],"note":[{"text":"Synthetic vital sign generated for a throughput benchmark; no real patient data."}],"device":{"display":"Bench vital-signs monitor model X"}})";

constexpr std::string_view kRichObservation =
    R"({"resourceType":"Observation","id":"bp","meta":{"versionId":"1","lastUpdated":"2024-01-01T00:00:00Z","profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Blood pressure 107/60 mmHg</p></div>"},"contained":[{"resourceType":"Patient","id":"p","name":[{"family":"Doe","given":["Jane","Q"],"_given":[null,{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier","valueCode":"MID"}]}]}],"birthDate":"1970-01-01","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1970-01-01T10:30:00+01:00"}]}}],"extension":[{"url":"http://example.org/fhir/StructureDefinition/source","extension":[{"url":"device","valueReference":{"reference":"Device/d1"}},{"url":"app","valueString":"vitals app"}]}],"identifier":[{"system":"urn:ietf:rfc:3986","value":"urn:uuid:187e0c12-8dd2-67e2-99b2-bf273c878281"}],"basedOn":[{"identifier":{"system":"https://acme.org/identifiers","value":"1234"}}],"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"85354-9","display":"Blood pressure panel"}]},"subject":{"reference":"#p"},"effectivePeriod":{"start":"2024-01-01T09:30:10+01:00","end":"2024-01-01T09:35:00+01:00"},"performer":[{"reference":"Practitioner/example"}],"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"L","display":"low"}],"text":"Below low normal"}],"bodySite":{"coding":[{"system":"http://snomed.info/sct","code":"368209003","display":"Right arm"}]},"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6","display":"Systolic blood pressure"}]},"valueQuantity":{"value":107,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4","display":"Diastolic blood pressure"}]},"valueQuantity":{"value":60.0,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"},"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"L","display":"low"}]}]}]})";

void BM_Intake(benchmark::State& state, std::string_view body) {
  for (auto _ : state) {
    StatusOr<ResourceDocument> doc = ParseResourceDocument(body, {});
    benchmark::DoNotOptimize(doc);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}

void BM_R4Validate(benchmark::State& state, std::string_view body) {
  const StatusOr<ResourceDocument> doc = ParseResourceDocument(body, {});
  const R4Validator validator;
  if (!doc.ok() || !validator.Validate(*doc).ok()) {
    state.SkipWithError("the benchmark resource does not validate");
    return;
  }
  for (auto _ : state) {
    Status status = validator.Validate(*doc);
    benchmark::DoNotOptimize(status);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}

BENCHMARK_CAPTURE(BM_Intake, observation, kObservation);
BENCHMARK_CAPTURE(BM_R4Validate, observation, kObservation);
BENCHMARK_CAPTURE(BM_Intake, rich_observation, kRichObservation);
BENCHMARK_CAPTURE(BM_R4Validate, rich_observation, kRichObservation);

}  // namespace
}  // namespace kura::fhir
