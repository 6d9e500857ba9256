// Micro benchmark of record encryption (AeadKey, AES-256-GCM): what every stored resource and
// audit record costs to seal, and every read to open, at the sizes Kura stores (a 1.2 KB
// Observation, a 300-byte audit record).
//
//   ninja -C build kura_aead_bench && build/bench/kura_aead_bench
#include <benchmark/benchmark.h>

#include <string>

#include "kura/base/secret_bytes.h"
#include "kura/crypto/aead.h"

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

}  // namespace
}  // namespace kura::crypto
