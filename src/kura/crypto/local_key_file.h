// LocalKeyFileProvider: KEKs kept in a text file in the data directory (mode 0600).
//
// File format (docs/formats/key-file.md):
//   kura-keyfile-v1
//   kek <version> <base64 of 32 random bytes>     (one line per version; the highest is primary)
// Loading refuses a file readable or writable by group or others. Thread-safe after Load.
#pragma once

#include <filesystem>
#include <map>
#include <memory>

#include "kura/crypto/aead.h"
#include "kura/crypto/key_provider.h"

namespace kura::crypto {

class LocalKeyFileProvider final : public KeyProvider {
 public:
  // Writes a new key file holding one random 256-bit KEK (version 1), mode 0600, refusing to
  // overwrite. AlreadyExists when the file exists; Internal on I/O failure.
  static Status CreateKeyFile(const std::filesystem::path& path);
  // FailedPrecondition when missing or permissions are too open; DataLoss when malformed.
  static StatusOr<std::unique_ptr<LocalKeyFileProvider>> Load(const std::filesystem::path& path);

  std::string_view Name() const override { return "local-file"; }
  uint32_t PrimaryKekVersion() const override { return primary_; }
  StatusOr<std::string> WrapKey(const SecretBytes& data_key,
                                std::string_view associated_data) const override;
  StatusOr<SecretBytes> UnwrapKey(std::string_view wrapped,
                                  std::string_view associated_data) const override;

 private:
  LocalKeyFileProvider() = default;
  std::map<uint32_t, AeadKey> keks_;
  uint32_t primary_ = 0;
};

// FailedPrecondition naming `path` when group or others have any permission on it.
Status CheckOwnerOnly(const std::filesystem::path& path);

}  // namespace kura::crypto
