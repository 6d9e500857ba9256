// Commit throughput of SqliteStore with 1, 8, 32 and 64 concurrent writers.
//
// Every commit is a one-resource batch with a ~1.2 KiB payload (the size of an encrypted vital
// sign observation) and must be durable (synchronous=FULL), so one writer is bound by fsync
// latency; with more writers, group commit shares each fsync among the queued commits and items/s
// should grow with the thread count until the writer connection's CPU becomes the limit. The
// second argument is the number of search-index rows per resource (0, or 15 as for the benchmark
// Observation), which shows what indexing adds to the writer's work.
//
//   kura_group_commit_bench --benchmark_min_time=1
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "kura/store/sqlite/sqlite_store.h"

namespace kura::store {
namespace {

constexpr size_t kPayloadSize = 1200;

// One store per benchmark run, created by Setup before the threads start and destroyed by
// Teardown after they all finish.
std::filesystem::path g_dir;
std::unique_ptr<SqliteStore> g_store;
std::atomic<int64_t> g_next_id{0};

void SetUp(const benchmark::State&) {
  std::string pattern = (std::filesystem::temp_directory_path() / "kura-bench-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) std::abort();
  g_dir = pattern;
  SqliteOptions options;
  options.path = g_dir / "kura.db";
  StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(options);
  if (!store.ok()) std::abort();
  g_store = std::move(store).value();
}

void TearDown(const benchmark::State&) {
  g_store.reset();
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);
}

void BM_CommitOneResource(benchmark::State& state) {
  const std::string payload(kPayloadSize, 'x');
  const TimePoint now = Clock::System().Now();
  std::vector<IndexEntry> rows;
  for (int64_t i = 0; i < state.range(0); ++i) {
    IndexEntry& e = rows.emplace_back();
    e.param = "param-" + std::to_string(i);
    e.key = i % 3 == 0 ? std::string() : "http://loinc.org|" + std::to_string(i);
    e.key2 = i % 3 == 1 ? "http://terminology.hl7.org/CodeSystem/x" : "";
    if (i % 3 == 0) {
      e.low = 1.7e9 + static_cast<double>(i);
      e.high = e.low;
    }
  }
  for (auto _ : state) {
    WriteBatch batch;
    ResourceVersion& r = batch.resources.emplace_back();
    r.type = "Observation";
    r.id = "obs-" + std::to_string(g_next_id.fetch_add(1, std::memory_order_relaxed));
    r.version = 1;
    r.last_updated = now;
    r.compartment = "patient-1";
    r.payload = payload;
    r.index = rows;
    StatusOr<CommitResult> result = g_store->Commit(std::move(batch));
    if (!result.ok()) {
      state.SkipWithError(result.status().ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kPayloadSize));
  if (state.thread_index() == 0) {
    // Mean commits per durable transaction (per fsync) so far in this run.
    const SqliteWriterStats stats = g_store->WriterStats();
    state.counters["commits_per_fsync"] =
        stats.transactions == 0
            ? 0.0
            : static_cast<double>(stats.writes) / static_cast<double>(stats.transactions);
  }
}

BENCHMARK(BM_CommitOneResource)
    ->Setup(SetUp)
    ->Teardown(TearDown)
    ->ArgName("rows")
    ->Arg(0)
    ->Arg(15)
    ->Threads(1)
    ->Threads(8)
    ->Threads(32)
    ->Threads(64)
    ->UseRealTime();

}  // namespace
}  // namespace kura::store
