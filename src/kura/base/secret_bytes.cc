// SecretBytes on libsodium's guarded allocator.
#include "kura/base/secret_bytes.h"

#include <sodium.h>

#include <cstring>
#include <utility>

#include "kura/base/random.h"

namespace kura {
namespace {
bool EnsureSodium() {
  static const bool ready = sodium_init() >= 0;
  return ready;
}
}  // namespace

StatusOr<SecretBytes> SecretBytes::Allocate(size_t size) {
  if (!EnsureSodium()) return InternalError("internal error", "sodium_init failed");
  SecretBytes out;
  if (size == 0) return out;
  void* p = sodium_malloc(size);
  if (p == nullptr) {
    return ResourceExhaustedError("out of secure memory", "sodium_malloc failed");
  }
  std::memset(p, 0, size);
  out.data_ = static_cast<uint8_t*>(p);
  out.size_ = size;
  return out;
}

StatusOr<SecretBytes> SecretBytes::CopyFrom(std::span<const uint8_t> bytes) {
  KURA_ASSIGN_OR_RETURN(SecretBytes out, Allocate(bytes.size()));
  if (!bytes.empty()) std::memcpy(out.data_, bytes.data(), bytes.size());
  return out;
}

StatusOr<SecretBytes> SecretBytes::Random(size_t size) {
  KURA_ASSIGN_OR_RETURN(SecretBytes out, Allocate(size));
  if (size > 0) SystemRandomFill({out.data_, size});
  return out;
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) sodium_free(data_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SecretBytes::~SecretBytes() {
  if (data_ != nullptr) sodium_free(data_);  // Zeroes before unmapping.
}

bool SecretBytes::ConstantTimeEquals(const SecretBytes& other) const {
  return kura::ConstantTimeEquals(ExposeSecretForCrypto(), other.ExposeSecretForCrypto());
}

bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

void SecureWipe(void* data, size_t size) {
  if (data != nullptr && size > 0) sodium_memzero(data, size);
}

}  // namespace kura
