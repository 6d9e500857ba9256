// API token authentication and issuance.
#include "kura/auth/api_token_authenticator.h"

#include "kura/base/random.h"
#include "kura/base/secret_bytes.h"
#include "kura/crypto/hash.h"

namespace kura::auth {
namespace {
constexpr size_t kTokenBytes = 32;  // 256 bits.
constexpr size_t kMaxTokenLength = 512;
constexpr size_t kMaxCacheEntries = 10000;

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
}  // namespace

ApiTokenAuthenticator::ApiTokenAuthenticator(store::Store& store, std::chrono::seconds cache_ttl)
    : store_(store), ttl_(cache_ttl) {}

std::string ApiTokenAuthenticator::HashToken(std::string_view token) {
  crypto::Sha256Digest d = crypto::Sha256(token);
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

std::optional<Principal> ApiTokenAuthenticator::TryCached(std::string_view token) {
  if (token.empty() || token.size() > kMaxTokenLength) return std::nullopt;
  std::string hash = HashToken(token);
  std::lock_guard lock(mu_);
  auto it = cache_.find(hash);
  if (it == cache_.end()) return std::nullopt;
  if (std::chrono::steady_clock::now() >= it->second.expires) {
    cache_.erase(it);
    return std::nullopt;
  }
  return it->second.principal;
}

StatusOr<Principal> ApiTokenAuthenticator::Authenticate(std::string_view token) {
  if (token.empty() || token.size() > kMaxTokenLength) {
    return UnauthenticatedError("invalid token");
  }
  if (auto cached = TryCached(token)) return *cached;
  std::string hash = HashToken(token);
  KURA_ASSIGN_OR_RETURN(std::optional<store::ApiToken> row, store_.FindApiToken(hash));
  if (!row || row->revoked || !ConstantTimeEquals(Bytes(row->token_hash), Bytes(hash))) {
    return UnauthenticatedError("invalid token");
  }
  Principal p{"api-token", row->name, row->role};
  std::lock_guard lock(mu_);
  if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  cache_[hash] = Entry{p, std::chrono::steady_clock::now() + ttl_};
  return p;
}

StatusOr<std::string> ApiTokenAuthenticator::Issue(store::Store& store, std::string name,
                                                   std::string role) {
  std::string token = "kura_" + RandomToken(kTokenBytes);
  store::ApiToken row;
  row.token_hash = HashToken(token);
  row.name = std::move(name);
  row.role = std::move(role);
  row.created = Clock::System().Now();
  KURA_RETURN_IF_ERROR(store.PutApiToken(row));
  return token;
}

}  // namespace kura::auth
