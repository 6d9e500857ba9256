// Micro benchmark of record encryption (AeadKey, AES-256-GCM): what every stored resource and
// audit record costs to seal, and every read to open, at the sizes Kura stores (a 1.2 KB
// Observation, a 300-byte audit record), and the blind-index MAC of one short value, keyed per
// call (HmacSha256) or from the key schedule AeadKey::Mac keeps.
//
//   ninja -C build kura_aead_bench && build/bench/kura_aead_bench
#include <benchmark/benchmark.h>

#include <string>

#include "kura/base/secret_bytes.h"
#include "kura/crypto/aead.h"
#include "kura/crypto/hash.h"

namespace kura::crypto {
namespace {

AeadKey BenchKey() {
  return std::move(*AeadKey::Create(1, std::move(*SecretBytes::Random(kAesKeyBytes))));
}

constexpr char kAad[] = "tenant|Observation|0f8e9d7c-6b5a-4e3d-9c2b-1a0f9e8d7c6b|1";

void BM_Encrypt(benchmark::State& state) {
  const AeadKey key = BenchKey();
  const std::string plain(static_cast<size_t>(state.range(0)), 'x');
  for (auto _ : state) {
    StatusOr<std::string> sealed = key.Encrypt(plain, kAad);
    benchmark::DoNotOptimize(sealed);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * plain.size()));
}
BENCHMARK(BM_Encrypt)->Arg(300)->Arg(1200);

void BM_Decrypt(benchmark::State& state) {
  const AeadKey key = BenchKey();
  const std::string sealed =
      *key.Encrypt(std::string(static_cast<size_t>(state.range(0)), 'x'), kAad);
  for (auto _ : state) {
    StatusOr<std::string> opened = key.Decrypt(sealed, kAad);
    benchmark::DoNotOptimize(opened);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * state.range(0)));
}
BENCHMARK(BM_Decrypt)->Arg(300)->Arg(1200);

// A blind-index input as EncryptingStore::BlindValue builds it: prefix, parameter, column, value.
constexpr char kBlindInput[] = "kura-blind-v1|identifier|1|urn:example:bench:obs|obs-1";

void BM_MacKeyedPerCall(benchmark::State& state) {
  const SecretBytes key = std::move(*SecretBytes::Random(kAesKeyBytes));
  for (auto _ : state) benchmark::DoNotOptimize(HmacSha256(key, kBlindInput));
}
BENCHMARK(BM_MacKeyedPerCall);

void BM_MacFromKeySchedule(benchmark::State& state) {
  const AeadKey key = BenchKey();
  for (auto _ : state) benchmark::DoNotOptimize(key.Mac(kBlindInput));
}
BENCHMARK(BM_MacFromKeySchedule);

}  // namespace
}  // namespace kura::crypto
