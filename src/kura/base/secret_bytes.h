// SecretBytes: key material in locked, guarded memory that is zeroed when freed.
//
// Memory comes from libsodium's sodium_malloc (mlock'ed, guard pages, zeroed by sodium_free).
// There is no stream operator and no implicit conversion; raw access goes through the greppable
// `ExposeSecretForCrypto()` accessor so every use of a key's bytes can be found by search.
// Thread-compatible: const methods may be called concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "kura/base/status.h"

namespace kura {

class SecretBytes {
 public:
  SecretBytes() = default;
  // Allocates `size` zeroed secret bytes. Returns ResourceExhausted if locked memory runs out.
  static StatusOr<SecretBytes> Allocate(size_t size);
  // Copies `bytes` into secret memory. The caller should wipe its own copy.
  static StatusOr<SecretBytes> CopyFrom(std::span<const uint8_t> bytes);
  // Fresh random secret of `size` bytes from the system CSPRNG.
  static StatusOr<SecretBytes> Random(size_t size);

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  ~SecretBytes();

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  std::span<const uint8_t> ExposeSecretForCrypto() const { return {data_, size_}; }
  std::span<uint8_t> MutableSecretForCrypto() { return {data_, size_}; }

  // Constant-time equality (sizes compared first; size is not secret).
  bool ConstantTimeEquals(const SecretBytes& other) const;

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Constant-time comparison of two equal-length byte strings; false on length mismatch.
bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b);

// Overwrites memory so the compiler cannot elide it.
void SecureWipe(void* data, size_t size);

}  // namespace kura
