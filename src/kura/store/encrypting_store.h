// EncryptingStore: the Store decorator that encrypts every payload before the backend sees it.
//
// Backends only ever hold ciphertext, and no handler can forget to encrypt. A payload is sealed
// with its compartment's data key (the tenant key when the compartment is empty) as an AES-256-GCM
// record (docs/formats/encrypted-record.md) whose associated data binds tenant, resource type, id
// and version, so a record copied to another row fails to decrypt. A failed decryption returns
// DataLoss "decryption failed" and is logged as an integrity failure; altered data is never
// returned. Delete markers carry no payload. Thread-safe.
#pragma once

#include <memory>

#include "kura/store/data_keyring.h"
#include "kura/store/store.h"

namespace kura::store {

class EncryptingStore final : public Store {
 public:
  // `backend` and `provider` must outlive this object.
  EncryptingStore(Store& backend, const crypto::KeyProvider& provider, std::string tenant,
                  size_t key_cache_capacity);

  StatusOr<CommitResult> Commit(WriteBatch batch) override;
  StatusOr<ResourceVersion> ReadCurrent(std::string_view type, std::string_view id) override;
  StatusOr<ResourceVersion> ReadVersion(std::string_view type, std::string_view id,
                                        int64_t version) override;
  StatusOr<HistoryPage> History(const HistoryQuery& query) override;

  StatusOr<std::optional<StoredDataKey>> FindDataKeyByScope(std::string_view scope) override {
    return backend_.FindDataKeyByScope(scope);
  }
  StatusOr<std::optional<StoredDataKey>> FindDataKeyById(uint64_t key_id) override {
    return backend_.FindDataKeyById(key_id);
  }
  StatusOr<StoredDataKey> InsertDataKeyIfAbsent(const StoredDataKey& key) override {
    return backend_.InsertDataKeyIfAbsent(key);
  }
  Status PutApiToken(const ApiToken& token) override { return backend_.PutApiToken(token); }
  StatusOr<std::optional<ApiToken>> FindApiToken(std::string_view token_hash) override {
    return backend_.FindApiToken(token_hash);
  }

  // The associated data bound into a resource record (exposed for tests and docs).
  static std::string RecordAssociatedData(std::string_view tenant, std::string_view type,
                                          std::string_view id, int64_t version);

 private:
  Status Seal(ResourceVersion& v);
  Status Open(ResourceVersion& v);

  Store& backend_;
  const std::string tenant_;
  DataKeyring keyring_;
};

}  // namespace kura::store
