// SHA-256 and HMAC-SHA-256 through OpenSSL one-shot APIs.
#include "kura/crypto/hash.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace kura::crypto {

Sha256Digest Sha256(std::string_view data) {
  Sha256Digest out{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

Sha256Digest HmacSha256(const SecretBytes& key, std::string_view data) {
  Sha256Digest out{};
  unsigned int len = 0;
  auto k = key.ExposeSecretForCrypto();
  HMAC(EVP_sha256(), k.data(), static_cast<int>(k.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
  return out;
}

}  // namespace kura::crypto
