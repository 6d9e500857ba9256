// DataKeyring: data-encryption keys (DEKs) by scope, created on first use, cached unwrapped.
//
// One DEK per patient compartment ("patient/<id>") and one per tenant for everything outside a
// patient compartment ("tenant"). New DEKs are 256 random bits, wrapped by the KeyProvider's
// primary KEK with associated data binding tenant, scope and key id, and persisted through the
// Store before first use; only wrapped keys are ever written. Unwrapped keys live in SecretBytes
// (locked, zeroed on free) inside a bounded cache. Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "kura/crypto/aead.h"
#include "kura/crypto/key_provider.h"
#include "kura/store/store.h"

namespace kura::store {

class DataKeyring {
 public:
  // `backend` and `provider` must outlive the keyring.
  DataKeyring(Store& backend, const crypto::KeyProvider& provider, std::string tenant,
              size_t cache_capacity);

  // The key for `scope`, creating and persisting it on first use.
  StatusOr<std::shared_ptr<const crypto::AeadKey>> KeyForScope(const std::string& scope);
  // The key a record names. DataLoss ("decryption failed") when unknown or unwrappable.
  StatusOr<std::shared_ptr<const crypto::AeadKey>> KeyById(uint64_t key_id);

  // The same keys from the cache alone, never blocking; null when not cached.
  std::shared_ptr<const crypto::AeadKey> CachedKeyForScope(const std::string& scope);
  std::shared_ptr<const crypto::AeadKey> CachedKeyById(uint64_t key_id);

  static std::string PatientScope(std::string_view patient_id);
  static constexpr std::string_view kTenantScope = "tenant";
  // The key of the tenant's blind search indexes (used for HMAC only, never to encrypt).
  static constexpr std::string_view kBlindIndexScope = "blind-index";

 private:
  StatusOr<std::shared_ptr<const crypto::AeadKey>> Unwrap(const StoredDataKey& stored);
  void Remember(const std::string& scope, std::shared_ptr<const crypto::AeadKey> key);
  std::string WrapAssociatedData(std::string_view scope, uint64_t key_id) const;

  Store& backend_;
  const crypto::KeyProvider& provider_;
  const std::string tenant_;
  const size_t capacity_;

  std::shared_mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<const crypto::AeadKey>> by_scope_;
  std::unordered_map<uint64_t, std::shared_ptr<const crypto::AeadKey>> by_id_;
  std::deque<std::pair<std::string, uint64_t>> insertion_order_;  // For eviction.
};

}  // namespace kura::store
