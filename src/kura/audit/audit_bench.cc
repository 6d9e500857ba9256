// Micro benchmarks for the audit log's hot path: appending one record (canonical encoding, leaf
// and chain hashes, Merkle frontier update), verifying per record, and signing a checkpoint.
#include <benchmark/benchmark.h>

#include <vector>

#include "kura/audit/chain.h"
#include "kura/audit/checkpoint.h"
#include "kura/audit/verifier.h"

namespace kura::audit {
namespace {

AuditRecord TypicalRecord(uint64_t i) {
  AuditRecord r;
  r.time_us = 1700000000000000 + static_cast<int64_t>(i);
  r.category = "fhir";
  r.action = "read";
  r.actor = {"account", "3f2b8c1e-5d4a-4b7e-9c1d-2a6f8e0b7c45", "clinician", "tenant-1",
             "smart-app"};
  r.source_address = "203.0.113.17";
  r.request_id = "01HF3Z8Q5N6V7W8X9Y0Z1A2B3C";
  r.patient_compartments = {"8d1e6f0a-2b3c-4d5e-8f90-1a2b3c4d5e6f"};
  r.resource_type = "Observation";
  r.resource_id = "b7e4c2d1-9f8a-4e3b-a2c1-0d9e8f7a6b5c";
  r.resource_version = "3";
  r.details = {{"http.status", "200"}};
  return r;
}

void BM_Append(benchmark::State& state) {
  AuditChain chain;
  AuditRecord r = TypicalRecord(0);
  for (auto _ : state) {
    r.time_us++;
    auto sealed = chain.Append(r);
    benchmark::DoNotOptimize(sealed);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Append);

void BM_EncodeOnly(benchmark::State& state) {
  AuditRecord r = TypicalRecord(0);
  for (auto _ : state) {
    auto bytes = EncodeAuditRecord(r);
    benchmark::DoNotOptimize(bytes);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EncodeOnly);

void BM_VerifyPerRecord(benchmark::State& state) {
  const int64_t n = state.range(0);
  AuditChain chain;
  std::vector<StoredRecord> records;
  for (int64_t i = 0; i < n; ++i) {
    auto sealed = chain.Append(TypicalRecord(i));
    records.push_back({sealed->sequence, sealed->canonical, sealed->chain_hash, std::nullopt});
  }
  auto signer = crypto::Ed25519Signer::Generate();
  VerifyOptions options{.origin = "kura.bench/audit",
                        .trusted_keys = {*CheckpointVerifierKey("kura.bench/audit", *signer)}};
  std::vector<std::string> checkpoints = {
      *SignCheckpoint(CheckpointOf(chain.head(), "kura.bench/audit", FromMicros(0)), *signer)};
  for (auto _ : state) {
    auto report = VerifyLog(records, options, checkpoints, {});
    if (!report->ok()) state.SkipWithError("verification failed");
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_VerifyPerRecord)->Arg(100000);

void BM_SignCheckpoint(benchmark::State& state) {
  AuditChain chain;
  for (int i = 0; i < 1000; ++i) (void)chain.Append(TypicalRecord(i));
  auto signer = crypto::Ed25519Signer::Generate();
  for (auto _ : state) {
    auto note =
        SignCheckpoint(CheckpointOf(chain.head(), "kura.bench/audit", FromMicros(0)), *signer);
    benchmark::DoNotOptimize(note);
  }
}
BENCHMARK(BM_SignCheckpoint);

}  // namespace
}  // namespace kura::audit
