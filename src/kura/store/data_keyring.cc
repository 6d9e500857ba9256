// DataKeyring: create-or-load of wrapped DEKs and the unwrapped-key cache.
#include "kura/store/data_keyring.h"

#include <mutex>

#include "kura/base/random.h"

namespace kura::store {

DataKeyring::DataKeyring(Store& backend, const crypto::KeyProvider& provider, std::string tenant,
                         size_t cache_capacity)
    : backend_(backend),
      provider_(provider),
      tenant_(std::move(tenant)),
      capacity_(std::max<size_t>(cache_capacity, 1)) {}

std::string DataKeyring::PatientScope(std::string_view patient_id) {
  return "patient/" + std::string(patient_id);
}

std::string DataKeyring::WrapAssociatedData(std::string_view scope, uint64_t key_id) const {
  return "kura-dek-v1\x1f" + tenant_ + "\x1f" + std::string(scope) + "\x1f" +
         std::to_string(key_id);
}

StatusOr<std::shared_ptr<const crypto::AeadKey>> DataKeyring::Unwrap(const StoredDataKey& stored) {
  KURA_ASSIGN_OR_RETURN(
      SecretBytes raw,
      provider_.UnwrapKey(stored.wrapped, WrapAssociatedData(stored.scope, stored.key_id)));
  KURA_ASSIGN_OR_RETURN(crypto::AeadKey key,
                        crypto::AeadKey::Create(stored.key_id, std::move(raw)));
  return std::make_shared<const crypto::AeadKey>(std::move(key));
}

void DataKeyring::Remember(const std::string& scope, std::shared_ptr<const crypto::AeadKey> key) {
  std::unique_lock lock(mu_);
  if (by_id_.contains(key->key_id())) return;
  while (insertion_order_.size() >= capacity_) {
    auto [old_scope, old_id] = insertion_order_.front();
    insertion_order_.pop_front();
    by_scope_.erase(old_scope);
    by_id_.erase(old_id);
  }
  insertion_order_.emplace_back(scope, key->key_id());
  by_scope_[scope] = key;
  by_id_[key->key_id()] = std::move(key);
}

std::shared_ptr<const crypto::AeadKey> DataKeyring::CachedKeyForScope(const std::string& scope) {
  std::shared_lock lock(mu_);
  auto it = by_scope_.find(scope);
  return it != by_scope_.end() ? it->second : nullptr;
}

std::shared_ptr<const crypto::AeadKey> DataKeyring::CachedKeyById(uint64_t key_id) {
  std::shared_lock lock(mu_);
  auto it = by_id_.find(key_id);
  return it != by_id_.end() ? it->second : nullptr;
}

StatusOr<std::shared_ptr<const crypto::AeadKey>> DataKeyring::KeyForScope(
    const std::string& scope) {
  if (auto cached = CachedKeyForScope(scope)) return cached;
  KURA_ASSIGN_OR_RETURN(std::optional<StoredDataKey> found, backend_.FindDataKeyByScope(scope));
  if (!found) {
    KURA_ASSIGN_OR_RETURN(SecretBytes raw, SecretBytes::Random(crypto::kAesKeyBytes));
    StoredDataKey fresh;
    fresh.key_id = RandomNonZeroUint64();
    fresh.scope = scope;
    fresh.kek_version = provider_.PrimaryKekVersion();
    fresh.created = Clock::System().Now();
    KURA_ASSIGN_OR_RETURN(fresh.wrapped,
                          provider_.WrapKey(raw, WrapAssociatedData(scope, fresh.key_id)));
    KURA_ASSIGN_OR_RETURN(StoredDataKey winner, backend_.InsertDataKeyIfAbsent(fresh));
    found = std::move(winner);
  }
  KURA_ASSIGN_OR_RETURN(auto key, Unwrap(*found));
  Remember(scope, key);
  return key;
}

StatusOr<std::shared_ptr<const crypto::AeadKey>> DataKeyring::KeyById(uint64_t key_id) {
  if (auto cached = CachedKeyById(key_id)) return cached;
  KURA_ASSIGN_OR_RETURN(std::optional<StoredDataKey> found, backend_.FindDataKeyById(key_id));
  if (!found) return crypto::DecryptionFailed("record names an unknown data key");
  KURA_ASSIGN_OR_RETURN(auto key, Unwrap(*found));
  Remember(found->scope, key);
  return key;
}

}  // namespace kura::store
