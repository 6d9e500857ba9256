// CachingStore: a Store decorator that keeps the current version of recently written and read
// resources in memory, so a point read is answered without the database and without leaving the
// calling thread (ReadCurrentIfCached), which keeps reads off the blocking pool.
//
// It sits below EncryptingStore, so it holds ciphertext only, exactly as the database pages do.
// The cache is bounded in bytes (least recently used entries go first) and sharded to keep lock
// hold times short.
//
// Coherence rests on this process being the database's only writer (true for the embedded
// SQLite store, which one server opens at a time): every successful commit replaces the cached
// entry before its caller learns of the success, and an entry filled from a database read is
// dropped when a commit touched the same shard while the read was under way, so the cache never
// goes back to an older version. A backend shared by several servers (PostgreSQL with replicas)
// must not be wrapped in it. Thread-safe.
#pragma once

#include <array>
#include <boost/unordered/unordered_flat_map.hpp>
#include <list>
#include <memory>
#include <mutex>
#include <string>

#include "kura/store/forwarding_store.h"

namespace kura::store {

struct RecordCacheStats {
  int64_t hits = 0;
  int64_t misses = 0;
  int64_t entries = 0;
  int64_t bytes = 0;
};

class CachingStore final : public ForwardingStore {
 public:
  // `backend` must outlive this object. capacity_bytes == 0 disables caching (every call passes
  // through).
  CachingStore(Store& backend, size_t capacity_bytes);
  // The same, owning the backend.
  CachingStore(std::unique_ptr<Store> backend, size_t capacity_bytes);

  StatusOr<CommitResult> Commit(WriteBatch batch) override;
  void CommitAsync(WriteBatch batch, CommitCallback done) override;
  StatusOr<ResourceVersion> ReadCurrent(std::string_view type, std::string_view id) override;
  StatusOr<ResourceVersion> ReadVersion(std::string_view type, std::string_view id,
                                        int64_t version) override;
  std::optional<StatusOr<ResourceVersion>> ReadCurrentIfCached(std::string_view type,
                                                               std::string_view id) override;
  std::optional<StatusOr<ResourceVersion>> ReadVersionIfCached(std::string_view type,
                                                               std::string_view id,
                                                               int64_t version) override;
  std::shared_ptr<const ResourceVersion> SharedCurrentIfCached(std::string_view type,
                                                               std::string_view id) override;

  RecordCacheStats Stats();

 private:
  struct Entry {
    std::string key;  // type '/' id
    // Shared with readers, who open it without copying it while it is replaced or evicted here.
    std::shared_ptr<const ResourceVersion> version;
    size_t bytes = 0;
  };
  // A key built on the stack for lookups (type and id are short; longer ones go to the heap).
  class LookupKey {
   public:
    LookupKey(std::string_view type, std::string_view id);
    std::string_view view() const { return view_; }

   private:
    std::array<char, 128> inline_;
    std::string heap_;
    std::string_view view_;
  };
  struct Shard {
    std::mutex mu;
    std::list<Entry> lru;  // Most recently used first.
    // Views into lru keys. Open addressing: a lookup probes one group instead of a node chain.
    boost::unordered_flat_map<std::string_view, std::list<Entry>::iterator> index;
    size_t bytes = 0;
    uint64_t commits = 0;  // Bumped when a commit touching this shard starts and when it ends.
    // Commits touching this shard that have started and not yet been remembered. While one is
    // in flight, the database may already show its version to a reader while another reader's
    // older result is about to be filled: fills wait until none is in flight.
    int64_t in_flight = 0;
    int64_t hits = 0;
    int64_t misses = 0;
  };
  static constexpr size_t kShards = 16;

  static std::string KeyOf(std::string_view type, std::string_view id);
  Shard& ShardFor(std::string_view key);
  // The cached version, or nullptr; on a miss, the shard's commit epoch goes to
  // `epoch_on_miss` (when given) for a later Insert of what the database returns.
  std::shared_ptr<const ResourceVersion> Lookup(std::string_view type, std::string_view id,
                                                uint64_t* epoch_on_miss = nullptr);
  // Stores `v` unless a newer version is cached; when `fill_epoch` is set (a fill from a
  // database read), only if no commit reached the shard since that epoch was taken.
  void Insert(ResourceVersion v, std::optional<uint64_t> fill_epoch);
  // Moves the committed versions into the cache.
  // Around every commit: marks the versions' shards busy, then (ok or not) remembers what
  // committed and clears the mark.
  void BeginCommit(const std::vector<ResourceVersion>& versions);
  void EndCommit(std::vector<ResourceVersion>& versions, const StatusOr<CommitResult>& result);
  void EvictLocked(Shard& shard);

  const size_t shard_capacity_;
  std::array<Shard, kShards> shards_;
};

}  // namespace kura::store
