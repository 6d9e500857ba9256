// Digests and MACs used outside record encryption: SHA-256 (token and chain hashes) and
// HMAC-SHA-256 (blind indexes). Thread-safe: free functions over OpenSSL EVP, and a pool of
// keyed HMAC contexts.
#pragma once

#include <openssl/types.h>

#include <array>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <vector>

#include "kura/base/secret_bytes.h"

namespace kura::crypto {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest Sha256(std::string_view data);
Sha256Digest HmacSha256(const SecretBytes& key, std::string_view data);

// HMAC-SHA-256 under one key, for keys that MAC many short values (a blind index hashes every
// indexed value of every write). Keeps OpenSSL contexts that already hold the key, so a MAC
// hashes only its data: keying a context for each value cost about two thirds of the MAC of a
// short value. Thread-safe; the pool holds at most one context per thread that ever used it at
// once, and frees (and so wipes) them with the pool.
class HmacSha256Pool {
 public:
  HmacSha256Pool() = default;
  ~HmacSha256Pool();
  HmacSha256Pool(const HmacSha256Pool&) = delete;
  HmacSha256Pool& operator=(const HmacSha256Pool&) = delete;

  // HmacSha256(key, data). `key` must be the same bytes on every call on this pool.
  Sha256Digest Mac(const SecretBytes& key, std::string_view data);

 private:
  std::mutex mu_;
  std::vector<EVP_MAC_CTX*> idle_;  // Guarded by mu_.
};

}  // namespace kura::crypto
