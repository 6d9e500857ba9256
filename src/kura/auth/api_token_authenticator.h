// ApiTokenAuthenticator: bearer API tokens (the bootstrap administrator token and, later, other
// service tokens). Tokens carry at least 256 random bits and are stored only as SHA-256 hashes;
// a presented token is hashed, looked up, and the stored hash compared in constant time.
//
// Positive results are cached briefly so the hot path needs no database round trip; the cache is
// keyed by the hash, never the token. Accounts, sessions and OAuth tokens plug into the same
// seam later (the API layer only sees Principal). Thread-safe.
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "kura/auth/principal.h"
#include "kura/store/store.h"

namespace kura::auth {

class ApiTokenAuthenticator {
 public:
  explicit ApiTokenAuthenticator(store::Store& store,
                                 std::chrono::seconds cache_ttl = std::chrono::seconds(10));

  // Non-blocking: the principal when `token` is in the cache.
  std::optional<Principal> TryCached(std::string_view token);
  // May block on the store. Unauthenticated ("invalid token") for unknown or revoked tokens,
  // Unavailable when the store cannot answer.
  StatusOr<Principal> Authenticate(std::string_view token);

  // Creates a token with 256 random bits, stores its hash and returns the token (shown once).
  static StatusOr<std::string> Issue(store::Store& store, std::string name, std::string role);
  static std::string HashToken(std::string_view token);

 private:
  struct Entry {
    Principal principal;
    std::chrono::steady_clock::time_point expires;
  };
  store::Store& store_;
  const std::chrono::seconds ttl_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> cache_;  // Keyed by token hash. Guarded by mu_.
};

}  // namespace kura::auth
