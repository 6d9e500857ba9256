// KeyProvider: the holder of key-encryption keys (KEKs) that wrap data keys.
//
// Implementations: LocalKeyFileProvider (a 0600 file in the data directory) now; a PKCS#11 token
// behind the same interface later. KEKs are versioned; WrapKey always uses the primary version and
// the wrapped blob names the version it used, so UnwrapKey keeps working across rotations.
// Wrapped blob layout (docs/formats/key-file.md): 0x01 | KEK version (4 bytes, big-endian) |
// AES-256-GCM record of the data key.
// Implementations are thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kura/base/secret_bytes.h"
#include "kura/base/status.h"

namespace kura::crypto {

class KeyProvider {
 public:
  virtual ~KeyProvider() = default;
  // "local-file", "pkcs11", ...
  virtual std::string_view Name() const = 0;
  virtual uint32_t PrimaryKekVersion() const = 0;
  // Wraps `data_key` under the primary KEK, binding `associated_data` (e.g. the key's scope).
  virtual StatusOr<std::string> WrapKey(const SecretBytes& data_key,
                                        std::string_view associated_data) const = 0;
  // DataLoss ("decryption failed") when the blob was altered, names an unknown KEK version or the
  // associated data differs.
  virtual StatusOr<SecretBytes> UnwrapKey(std::string_view wrapped,
                                          std::string_view associated_data) const = 0;
};

}  // namespace kura::crypto
