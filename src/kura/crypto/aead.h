// AeadKey: one AES-256-GCM key with an identifier, producing self-describing records.
//
// Record layout (docs/formats/encrypted-record.md):
//   format version (1 byte, 0x01) | key id (8 bytes, big-endian) | nonce (12 random bytes)
//   | ciphertext | tag (16 bytes)
// The associated data is not stored; the caller passes the same bytes to Decrypt, so a record
// moved to another row (other tenant, type, id or version) fails authentication. Decrypt checks
// the record names this key. Thread-safe: Encrypt and Decrypt are const; they share only a
// mutex-guarded pool of OpenSSL contexts that already hold the key schedule (expanding the key
// cost a third of decrypting a 1 KB record), which is wiped when the key goes.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "kura/base/secret_bytes.h"
#include "kura/base/status.h"
#include "kura/crypto/hash.h"

namespace kura::crypto {

inline constexpr uint8_t kRecordFormatV1 = 0x01;
inline constexpr size_t kAesKeyBytes = 32;
inline constexpr size_t kGcmNonceBytes = 12;
inline constexpr size_t kGcmTagBytes = 16;
inline constexpr size_t kRecordHeaderBytes = 1 + 8 + kGcmNonceBytes;
inline constexpr size_t kRecordOverheadBytes = kRecordHeaderBytes + kGcmTagBytes;

class AeadKey {
 public:
  // InvalidArgument unless `key` is 32 bytes.
  static StatusOr<AeadKey> Create(uint64_t key_id, SecretBytes key);

  AeadKey(AeadKey&&) noexcept;
  AeadKey& operator=(AeadKey&&) noexcept;
  ~AeadKey();

  uint64_t key_id() const { return key_id_; }

  // Encrypts with a fresh random nonce. Internal on an OpenSSL failure.
  StatusOr<std::string> Encrypt(std::string_view plaintext, std::string_view associated_data) const;
  // DataLoss ("decryption failed") on any malformed, foreign or tampered record.
  StatusOr<std::string> Decrypt(std::string_view record, std::string_view associated_data) const;

  // HMAC-SHA-256 of `data` under this key. Only for keys kept for MAC use alone (the blind-index
  // scope): a key never both encrypts and MACs. Reuses contexts that already hold the key.
  std::array<uint8_t, 32> Mac(std::string_view data) const;

 private:
  class ContextPool;
  AeadKey(uint64_t key_id, SecretBytes key);
  uint64_t key_id_;
  SecretBytes key_;
  std::unique_ptr<ContextPool> contexts_;
  std::unique_ptr<HmacSha256Pool> mac_;  // Keyed HMAC contexts, made on demand.
};

// The key id a record names, or nullopt when it is not a well-formed v1 record.
std::optional<uint64_t> PeekRecordKeyId(std::string_view record);

// The one error every decryption failure reports to callers.
Status DecryptionFailed(std::string internal_detail);

}  // namespace kura::crypto
