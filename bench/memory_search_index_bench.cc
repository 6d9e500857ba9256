// Micro-benchmarks of the in-memory search index: applying one resource's rows (what the writer
// thread does per committed resource) and the benchmark search (subject + code of one patient)
// over 10,000 Observations of 100 patients, and building the index of 100,000 as a restart does.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <memory>
#include <string>
#include <vector>

#include "kura/store/memory_search_index.h"
#include "kura/store/search_index_rows.h"

namespace kura::store {
namespace {

// About the rows of the benchmark Observation: 15, one blind.
std::vector<IndexEntry> ObservationRows(int n) {
  const char* codes[] = {"8867-4", "8480-6", "8462-4", "29463-7"};
  const std::string patient = "Patient/p" + std::to_string(n % 100);
  return {KeyRow("code", codes[n % 4], "http://loinc.org"),
          KeyRow("combo-code", codes[n % 4], "http://loinc.org"),
          KeyRow("category", "vital-signs",
                 "http://terminology.hl7.org/CodeSystem/observation-category"),
          KeyRow("status", "final"),
          KeyRow("subject", patient),
          KeyRow("patient", patient),
          RangeRow("date", 1.7e9 + n, 1.7e9 + n + 1),
          RangeRow("value-quantity", 60 + n % 50, 60 + n % 50),
          KeyRow("value-quantity", "/min", "http://unitsofmeasure.org"),
          RangeRow("combo-value-quantity", 60 + n % 50, 60 + n % 50),
          KeyRow("combo-value-quantity", "/min", "http://unitsofmeasure.org"),
          KeyRow("identifier", std::string(16, static_cast<char>('a' + n % 26)), "", true),
          KeyRow("performer", "Practitioner/x"),
          KeyRow("encounter", "Encounter/e" + std::to_string(n)),
          RangeRow("_lastUpdated", 1.7e9 + n, 1.7e9 + n)};
}

std::string Id(int n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "0190a0b0-0000-7000-8000-%012d", n);
  return buf;
}

void Load(MemorySearchIndex& index, int count) {
  for (int n = 0; n < count; ++n) {
    const std::vector<IndexEntry> rows = ObservationRows(n);
    const std::string id = Id(n);
    const std::string compartment = "p" + std::to_string(n % 100);
    index.Apply({IndexChange{"Observation", id, compartment, false, &rows}});
  }
}

void BM_ApplyCreate(benchmark::State& state) {
  MemorySearchIndex index;
  Load(index, 10000);
  int n = 10000;
  std::vector<std::vector<IndexEntry>> rows;
  for (int i = 0; i < 1000; ++i) rows.push_back(ObservationRows(i));
  for (auto _ : state) {
    const std::string id = Id(n);
    const std::string compartment = "p" + std::to_string(n % 100);
    index.Apply({IndexChange{"Observation", id, compartment, false, &rows[n % 1000]}});
    ++n;
  }
}
BENCHMARK(BM_ApplyCreate);

void BM_SearchSubjectAndCode(benchmark::State& state) {
  MemorySearchIndex index;
  Load(index, 10000);
  int n = 0;
  for (auto _ : state) {
    IndexQuery q;
    q.type = "Observation";
    q.compartment = "p" + std::to_string(n % 100);
    IndexClause subject;
    subject.param = "subject";
    subject.any_of.emplace_back().key = "Patient/p" + std::to_string(n % 100);
    IndexClause code;
    code.param = "code";
    IndexMatch& loinc = code.any_of.emplace_back();
    loinc.key = "8867-4";
    loinc.key2 = "http://loinc.org";
    q.all_of = {std::move(subject), std::move(code)};
    StatusOr<IndexPage> page = index.Search(q);
    benchmark::DoNotOptimize(page);
    ++n;
  }
}
BENCHMARK(BM_SearchSubjectAndCode);

// Building the index of 100,000 Observations, as a restart does (without decoding): time per
// resource, and heap bytes per resource (glibc's count of allocated bytes).
void BM_Build100k(benchmark::State& state) {
  constexpr int kCount = 100000;
  double bytes_per_resource = 0;
  for (auto _ : state) {
    const size_t before = mallinfo2().uordblks;
    auto index = std::make_unique<MemorySearchIndex>();
    Load(*index, kCount);
    bytes_per_resource = static_cast<double>(mallinfo2().uordblks - before) / kCount;
    state.PauseTiming();
    index.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kCount);
  state.counters["heap_bytes_per_resource"] = bytes_per_resource;
}
BENCHMARK(BM_Build100k)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace kura::store
