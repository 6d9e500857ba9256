// Digests and MACs used outside record encryption: SHA-256 (token and chain hashes) and
// HMAC-SHA-256 (blind indexes). Thread-safe free functions over OpenSSL EVP.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "kura/base/secret_bytes.h"

namespace kura::crypto {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest Sha256(std::string_view data);
Sha256Digest HmacSha256(const SecretBytes& key, std::string_view data);

}  // namespace kura::crypto
