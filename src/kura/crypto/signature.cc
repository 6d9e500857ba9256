// Ed25519 over libsodium's crypto_sign_* (detached mode).
#include "kura/crypto/signature.h"

#include <sodium.h>

namespace kura::crypto {
namespace {
bool SodiumReady() {
  static const bool ready = sodium_init() >= 0;
  return ready;
}
static_assert(crypto_sign_SEEDBYTES == kEd25519SeedBytes);
static_assert(crypto_sign_PUBLICKEYBYTES == kEd25519PublicKeyBytes);
static_assert(crypto_sign_BYTES == kEd25519SignatureBytes);
}  // namespace

StatusOr<Ed25519Signer> Ed25519Signer::FromSeed(SecretBytes seed) {
  if (!SodiumReady()) return InternalError("internal error", "sodium_init failed");
  if (seed.size() != kEd25519SeedBytes) {
    return InvalidArgumentError("an Ed25519 seed is 32 bytes");
  }
  KURA_ASSIGN_OR_RETURN(SecretBytes secret_key, SecretBytes::Allocate(crypto_sign_SECRETKEYBYTES));
  std::string public_key(kEd25519PublicKeyBytes, '\0');
  if (crypto_sign_seed_keypair(reinterpret_cast<unsigned char*>(public_key.data()),
                               secret_key.MutableSecretForCrypto().data(),
                               seed.ExposeSecretForCrypto().data()) != 0) {
    return InternalError("internal error", "crypto_sign_seed_keypair failed");
  }
  return Ed25519Signer(std::move(secret_key), std::move(public_key));
}

StatusOr<Ed25519Signer> Ed25519Signer::Generate() {
  KURA_ASSIGN_OR_RETURN(SecretBytes seed, SecretBytes::Random(kEd25519SeedBytes));
  return FromSeed(std::move(seed));
}

std::string Ed25519Signer::Sign(std::string_view message) const {
  std::string signature(kEd25519SignatureBytes, '\0');
  // Cannot fail for a well-formed key, which the constructor guarantees.
  int rc = crypto_sign_detached(reinterpret_cast<unsigned char*>(signature.data()), nullptr,
                                reinterpret_cast<const unsigned char*>(message.data()),
                                message.size(), secret_key_.ExposeSecretForCrypto().data());
  KURA_CHECK(rc == 0);
  return signature;
}

StatusOr<SecretBytes> Ed25519Signer::ExportSeedForWrapping() const {
  KURA_ASSIGN_OR_RETURN(SecretBytes seed, SecretBytes::Allocate(kEd25519SeedBytes));
  if (crypto_sign_ed25519_sk_to_seed(seed.MutableSecretForCrypto().data(),
                                     secret_key_.ExposeSecretForCrypto().data()) != 0) {
    return InternalError("internal error", "crypto_sign_ed25519_sk_to_seed failed");
  }
  return seed;
}

bool VerifyEd25519(std::string_view public_key, std::string_view message,
                   std::string_view signature) {
  if (!SodiumReady()) return false;
  if (public_key.size() != kEd25519PublicKeyBytes || signature.size() != kEd25519SignatureBytes) {
    return false;
  }
  return crypto_sign_verify_detached(
             reinterpret_cast<const unsigned char*>(signature.data()),
             reinterpret_cast<const unsigned char*>(message.data()), message.size(),
             reinterpret_cast<const unsigned char*>(public_key.data())) == 0;
}

}  // namespace kura::crypto
