// ForwardingStore: the base of Store decorators. Every call goes to the wrapped backend unless the
// decorator overrides it, so a decorator states only what it changes.
#pragma once

#include <memory>

#include "kura/store/store.h"

namespace kura::store {

class ForwardingStore : public Store {
 public:
  StatusOr<CommitResult> Commit(WriteBatch batch) override {
    return backend_.Commit(std::move(batch));
  }
  void CommitAsync(WriteBatch batch, CommitCallback done) override {
    backend_.CommitAsync(std::move(batch), std::move(done));
  }
  StatusOr<ResourceVersion> ReadCurrent(std::string_view type, std::string_view id) override {
    return backend_.ReadCurrent(type, id);
  }
  StatusOr<ResourceVersion> ReadVersion(std::string_view type, std::string_view id,
                                        int64_t version) override {
    return backend_.ReadVersion(type, id, version);
  }
  StatusOr<HistoryPage> History(const HistoryQuery& query) override {
    return backend_.History(query);
  }
  StatusOr<std::vector<CurrentResource>> ListCurrent(const CurrentListQuery& query) override {
    return backend_.ListCurrent(query);
  }
  StatusOr<std::vector<VersionMeta>> ListVersions(const VersionListQuery& query) override {
    return backend_.ListVersions(query);
  }
  StatusOr<IndexPage> Search(const IndexQuery& query) override { return backend_.Search(query); }
  std::optional<StatusOr<ResourceVersion>> ReadCurrentIfCached(std::string_view type,
                                                               std::string_view id) override {
    return backend_.ReadCurrentIfCached(type, id);
  }
  std::optional<StatusOr<ResourceVersion>> ReadVersionIfCached(std::string_view type,
                                                               std::string_view id,
                                                               int64_t version) override {
    return backend_.ReadVersionIfCached(type, id, version);
  }
  std::shared_ptr<const ResourceVersion> SharedCurrentIfCached(std::string_view type,
                                                               std::string_view id) override {
    return backend_.SharedCurrentIfCached(type, id);
  }
  std::optional<StatusOr<IndexPage>> SearchIfInMemory(const IndexQuery& query) override {
    return backend_.SearchIfInMemory(query);
  }
  StatusOr<std::optional<StoredDataKey>> FindDataKeyByScope(std::string_view scope) override {
    return backend_.FindDataKeyByScope(scope);
  }
  StatusOr<std::optional<StoredDataKey>> FindDataKeyById(uint64_t key_id) override {
    return backend_.FindDataKeyById(key_id);
  }
  StatusOr<StoredDataKey> InsertDataKeyIfAbsent(const StoredDataKey& key) override {
    return backend_.InsertDataKeyIfAbsent(key);
  }
  StatusOr<std::optional<std::string>> ReadIndexFingerprint() override {
    return backend_.ReadIndexFingerprint();
  }
  Status WriteIndexFingerprint(std::string_view fingerprint) override {
    return backend_.WriteIndexFingerprint(fingerprint);
  }
  Status PutApiToken(const ApiToken& token) override { return backend_.PutApiToken(token); }
  StatusOr<std::optional<ApiToken>> FindApiToken(std::string_view token_hash) override {
    return backend_.FindApiToken(token_hash);
  }

 protected:
  // `backend` must outlive this object.
  explicit ForwardingStore(Store& backend) : backend_(backend) {}
  // Owns `backend`.
  explicit ForwardingStore(std::unique_ptr<Store> backend)
      : owned_(std::move(backend)), backend_(*owned_) {}

  Store& backend() { return backend_; }

 private:
  std::unique_ptr<Store> owned_;
  Store& backend_;
};

}  // namespace kura::store
