// Ed25519Signer: an Ed25519 (RFC 8032, pure) signing key whose secret half lives in SecretBytes.
//
// Used for audit checkpoints and prune anchors (docs/formats/audit-log.md) and anywhere else a
// statement must be verifiable offline by a public key alone. The key is created from a 32-byte
// seed (the RFC 8032 private key); persist the seed wrapped by the KeyProvider, never in clear.
// Signatures are deterministic: the same key and message always give the same 64 bytes.
// Thread-safe: every method is const and shares no mutable state. Move-only.
#pragma once

#include <string>
#include <string_view>

#include "kura/base/secret_bytes.h"
#include "kura/base/status.h"

namespace kura::crypto {

inline constexpr size_t kEd25519SeedBytes = 32;
inline constexpr size_t kEd25519PublicKeyBytes = 32;
inline constexpr size_t kEd25519SignatureBytes = 64;

class Ed25519Signer {
 public:
  // The key whose RFC 8032 private key is `seed`. InvalidArgument unless `seed` is 32 bytes;
  // ResourceExhausted when secure memory runs out; Internal if libsodium cannot start.
  [[nodiscard]] static StatusOr<Ed25519Signer> FromSeed(SecretBytes seed);
  // A fresh key from the system CSPRNG. Same errors as FromSeed.
  [[nodiscard]] static StatusOr<Ed25519Signer> Generate();

  Ed25519Signer(Ed25519Signer&&) noexcept = default;
  Ed25519Signer& operator=(Ed25519Signer&&) noexcept = default;
  Ed25519Signer(const Ed25519Signer&) = delete;
  Ed25519Signer& operator=(const Ed25519Signer&) = delete;

  // The 64-byte signature of `message` (any length, may be empty).
  [[nodiscard]] std::string Sign(std::string_view message) const;
  // The 32-byte public key.
  [[nodiscard]] const std::string& PublicKey() const { return public_key_; }
  // A copy of the 32-byte seed, for wrapping with KeyProvider::WrapKey before it is persisted.
  // The only way the private key leaves this object; grep for it.
  [[nodiscard]] StatusOr<SecretBytes> ExportSeedForWrapping() const;

 private:
  Ed25519Signer(SecretBytes secret_key, std::string public_key)
      : secret_key_(std::move(secret_key)), public_key_(std::move(public_key)) {}

  SecretBytes secret_key_;  // libsodium's 64-byte form: seed || public key.
  std::string public_key_;
};

// True when `signature` is a valid Ed25519 signature of `message` under `public_key`. False for
// any wrong length, malformed or small-order key, non-canonical signature or mismatch. Never
// throws, never crashes on hostile input. Thread-safe.
[[nodiscard]] bool VerifyEd25519(std::string_view public_key, std::string_view message,
                                 std::string_view signature);

}  // namespace kura::crypto
