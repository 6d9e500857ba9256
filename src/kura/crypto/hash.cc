// SHA-256 and HMAC-SHA-256 through OpenSSL, with the algorithms fetched once and keyed HMAC
// contexts reused.
#include "kura/crypto/hash.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "kura/base/status.h"

namespace kura::crypto {
namespace {

const EVP_MD* Sha256Md() {
  // Fetched once: EVP_sha256() makes every digest fetch the implementation again (a lock and a
  // lookup), which doubles the cost of hashing a short input.
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md != nullptr ? md : EVP_sha256();
}

EVP_MAC* HmacMac() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return mac;
}

}  // namespace

Sha256Digest Sha256(std::string_view data) {
  Sha256Digest out{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, Sha256Md(), nullptr);
  return out;
}

Sha256Digest HmacSha256(const SecretBytes& key, std::string_view data) {
  Sha256Digest out{};
  auto k = key.ExposeSecretForCrypto();
  // The MAC is fetched once (the one-shot HMAC() fetches it and the digest on every call).
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(HmacMac());
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  size_t len = 0;
  const bool ok =
      ctx != nullptr && EVP_MAC_init(ctx, k.data(), k.size(), params) == 1 &&
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1 &&
      EVP_MAC_final(ctx, out.data(), &len, out.size()) == 1 && len == out.size();
  EVP_MAC_CTX_free(ctx);
  // Only an allocation failure gets here; a zero MAC would make every blind value match.
  KURA_CHECK(ok);
  return out;
}

HmacSha256Pool::~HmacSha256Pool() {
  for (EVP_MAC_CTX* ctx : idle_) EVP_MAC_CTX_free(ctx);
}

Sha256Digest HmacSha256Pool::Mac(const SecretBytes& key, std::string_view data) {
  EVP_MAC_CTX* ctx = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      ctx = idle_.back();
      idle_.pop_back();
    }
  }
  bool ok = false;
  if (ctx != nullptr) {
    // A context that has finished a MAC starts the next from the key it holds.
    ok = EVP_MAC_init(ctx, nullptr, 0, nullptr) == 1;
  } else {
    ctx = EVP_MAC_CTX_new(HmacMac());
    auto k = key.ExposeSecretForCrypto();
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    ok = ctx != nullptr && EVP_MAC_init(ctx, k.data(), k.size(), params) == 1;
  }
  Sha256Digest out{};
  size_t len = 0;
  ok = ok &&
       EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1 &&
       EVP_MAC_final(ctx, out.data(), &len, out.size()) == 1 && len == out.size();
  if (!ok) {
    EVP_MAC_CTX_free(ctx);
    return HmacSha256(key, data);  // Checks, as there: a zero MAC would match everything.
  }
  std::lock_guard<std::mutex> lock(mu_);
  idle_.push_back(ctx);
  return out;
}

}  // namespace kura::crypto
