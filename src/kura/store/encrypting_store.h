// EncryptingStore: the Store decorator that encrypts every payload before the backend sees it.
//
// Backends only ever hold ciphertext, and no handler can forget to encrypt. A payload is sealed
// with its compartment's data key (the tenant key when the compartment is empty) as an AES-256-GCM
// record (docs/formats/encrypted-record.md) whose associated data binds tenant, resource type, id
// and version, so a record copied to another row fails to decrypt. A failed decryption returns
// DataLoss "decryption failed" and is logged as an integrity failure; altered data is never
// returned. Delete markers carry no payload. Blind search-index rows (search_index.h) leave here
// as keyed hashes, and blind search clauses are hashed the same way before the backend runs them.
//
// CommitAsync and the *IfCached reads never block: they use only data keys already in the
// keyring's cache. A commit that needs a key not yet cached (a new patient's first record) seals
// on the BlockingExecutor instead; a cached read whose key is not cached reports a miss.
// Thread-safe.
#pragma once

#include <memory>

#include "kura/store/data_keyring.h"
#include "kura/store/forwarding_store.h"

namespace kura::store {

class EncryptingStore final : public ForwardingStore {
 public:
  // `backend` and `provider` must outlive this object.
  EncryptingStore(Store& backend, const crypto::KeyProvider& provider, std::string tenant,
                  size_t key_cache_capacity, BlockingExecutor blocking = RunOnCallingThread);

  StatusOr<CommitResult> Commit(WriteBatch batch) override;
  void CommitAsync(WriteBatch batch, CommitCallback done) override;
  std::optional<StatusOr<ResourceVersion>> ReadCurrentIfCached(std::string_view type,
                                                               std::string_view id) override;
  std::optional<StatusOr<ResourceVersion>> ReadVersionIfCached(std::string_view type,
                                                               std::string_view id,
                                                               int64_t version) override;
  // The cache below holds sealed payloads: they never pass up unopened.
  std::shared_ptr<const ResourceVersion> SharedCurrentIfCached(std::string_view type,
                                                               std::string_view id) override {
    (void)type, (void)id;
    return nullptr;
  }
  std::optional<StatusOr<IndexPage>> SearchIfInMemory(const IndexQuery& query) override;
  StatusOr<ResourceVersion> ReadCurrent(std::string_view type, std::string_view id) override;
  StatusOr<ResourceVersion> ReadVersion(std::string_view type, std::string_view id,
                                        int64_t version) override;
  StatusOr<HistoryPage> History(const HistoryQuery& query) override;
  // Replaces the values of blind clauses with their keyed hashes, then searches the backend.
  StatusOr<IndexPage> Search(const IndexQuery& query) override;

  // The keyed hash a blind index value is stored as: the first 16 bytes of HMAC-SHA-256 under the
  // tenant's blind-index key over "kura-blind-v1", the parameter, which column (1 key, 2 key2)
  // and the value, separated by 0x1F (exposed for tests and docs).
  static std::string BlindValue(const crypto::AeadKey& key, std::string_view param, int column,
                                std::string_view value);

  // The associated data bound into a resource record (exposed for tests and docs).
  static std::string RecordAssociatedData(std::string_view tenant, std::string_view type,
                                          std::string_view id, int64_t version);

 private:
  static std::string ScopeOf(const ResourceVersion& v);
  // The sealing key of each batch entry, in order; null for delete markers (no payload).
  struct EntryKeys {
    std::vector<std::shared_ptr<const crypto::AeadKey>> sealing;
    std::shared_ptr<const crypto::AeadKey> blind;  // Set when a version has blind index rows.
  };
  enum class KeySource {
    kCacheOnly,     // Never blocks; Unavailable as soon as one key is not cached.
    kLoadOrCreate,  // Loads or creates keys as needed (may block on the store).
  };
  StatusOr<EntryKeys> SealingKeys(const WriteBatch& batch, KeySource source);
  Status Seal(ResourceVersion& v, const crypto::AeadKey& key);
  Status SealAll(WriteBatch& batch, const EntryKeys& keys);
  // Replaces each blind row's values by their keyed hashes; `key` is set whenever one is blind.
  static void BlindRows(std::vector<IndexEntry>& rows, const crypto::AeadKey* key);
  // The plaintext of `sealed`'s payload under `key` (logged as an integrity failure when it
  // does not open).
  StatusOr<std::string> OpenPayload(const ResourceVersion& sealed, const crypto::AeadKey* key);
  Status Open(ResourceVersion& v);
  Status BlindQuery(IndexQuery& query, const crypto::AeadKey& key);
  // A copy of the cached `sealed` with its payload opened, using a cached key only; nullopt
  // when the key is not cached. The ciphertext is read where the cache keeps it, not copied.
  std::optional<StatusOr<ResourceVersion>> OpenCachedIfKeyCached(const ResourceVersion& sealed);

  const std::string tenant_;
  DataKeyring keyring_;
  BlockingExecutor blocking_;
};

}  // namespace kura::store
