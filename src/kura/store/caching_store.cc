// CachingStore: sharded LRU of current versions, write-through on commit, guarded fill on read.
#include "kura/store/caching_store.h"

#include <algorithm>
#include <functional>
#include <utility>

namespace kura::store {
namespace {

// Rough per-entry overhead (list node, map slot, ResourceVersion strings) on top of the payload.
constexpr size_t kEntryOverhead = 256;

}  // namespace

CachingStore::CachingStore(Store& backend, size_t capacity_bytes)
    : ForwardingStore(backend), shard_capacity_(capacity_bytes / kShards) {}

CachingStore::CachingStore(std::unique_ptr<Store> backend, size_t capacity_bytes)
    : ForwardingStore(std::move(backend)), shard_capacity_(capacity_bytes / kShards) {}

std::string CachingStore::KeyOf(std::string_view type, std::string_view id) {
  std::string key;
  key.reserve(type.size() + 1 + id.size());
  key.append(type).append(1, '/').append(id);
  return key;
}

CachingStore::Shard& CachingStore::ShardFor(std::string_view key) {
  return shards_[std::hash<std::string_view>{}(key) % kShards];
}

CachingStore::LookupKey::LookupKey(std::string_view type, std::string_view id) {
  const size_t size = type.size() + 1 + id.size();
  char* out = inline_.data();
  if (size > inline_.size()) {
    heap_.resize(size);
    out = heap_.data();
  }
  std::copy(type.begin(), type.end(), out);
  out[type.size()] = '/';
  std::copy(id.begin(), id.end(), out + type.size() + 1);
  view_ = std::string_view(out, size);
}

std::shared_ptr<const ResourceVersion> CachingStore::Lookup(std::string_view type,
                                                            std::string_view id,
                                                            uint64_t* epoch_on_miss) {
  if (shard_capacity_ == 0) return nullptr;
  const LookupKey key(type, id);
  Shard& shard = ShardFor(key.view());
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.index.find(key.view());
  if (it == shard.index.end()) {
    ++shard.misses;
    if (epoch_on_miss != nullptr) *epoch_on_miss = shard.commits;
    return nullptr;
  }
  ++shard.hits;
  shard.lru.splice(shard.lru.begin(), shard.lru, it->second);
  return it->second->version;
}

void CachingStore::EvictLocked(Shard& shard) {
  while (shard.bytes > shard_capacity_ && !shard.lru.empty()) {
    Entry& last = shard.lru.back();
    shard.bytes -= last.bytes;
    shard.index.erase(last.key);
    shard.lru.pop_back();
  }
}

void CachingStore::Insert(ResourceVersion v, std::optional<uint64_t> fill_epoch) {
  if (shard_capacity_ == 0) return;
  std::string key = KeyOf(v.type, v.id);
  Shard& shard = ShardFor(key);
  const size_t bytes = v.payload.size() + v.compartment.size() + 2 * key.size() + kEntryOverhead;
  const int64_t version = v.version;
  // Allocated before the lock, and the replaced entry released after it.
  auto shared = std::make_shared<const ResourceVersion>(std::move(v));
  std::shared_ptr<const ResourceVersion> replaced;
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.index.find(key);
  if (!fill_epoch) {
    ++shard.commits;
  } else if (it == shard.index.end() && (*fill_epoch != shard.commits || shard.in_flight != 0)) {
    // With no entry to compare against, a commit since the read began may have evicted a newer
    // version than the one read: do not risk putting an older one back. With an entry, the
    // version comparison below is enough; a newer durable version read from the database
    // replaces it, so a reader never sees the cache go back behind what it read.
    return;
  }
  if (it != shard.index.end()) {
    Entry& entry = *it->second;
    if (entry.version->version >= version) return;
    shard.bytes -= entry.bytes;
    replaced = std::exchange(entry.version, std::move(shared));
    entry.bytes = bytes;
    shard.bytes += bytes;
    shard.lru.splice(shard.lru.begin(), shard.lru, it->second);
  } else if (bytes <= shard_capacity_) {
    shard.lru.push_front(Entry{std::move(key), std::move(shared), bytes});
    shard.index.emplace(shard.lru.front().key, shard.lru.begin());
    shard.bytes += bytes;
  }
  EvictLocked(shard);
}

void CachingStore::BeginCommit(const std::vector<ResourceVersion>& versions) {
  if (shard_capacity_ == 0) return;
  for (const ResourceVersion& v : versions) {
    Shard& shard = ShardFor(KeyOf(v.type, v.id));
    std::lock_guard<std::mutex> lock(shard.mu);
    ++shard.commits;
    ++shard.in_flight;
  }
}

void CachingStore::EndCommit(std::vector<ResourceVersion>& versions,
                             const StatusOr<CommitResult>& result) {
  for (size_t i = 0; i < versions.size(); ++i) {
    if (shard_capacity_ == 0) return;
    Shard& shard = ShardFor(KeyOf(versions[i].type, versions[i].id));
    if (result.ok()) {
      if (i < result->sequences.size()) versions[i].sequence = result->sequences[i];
      Insert(std::move(versions[i]), std::nullopt);
    }
    std::lock_guard<std::mutex> lock(shard.mu);
    ++shard.commits;
    --shard.in_flight;
  }
}

namespace {

// What the cache keeps of a batch's versions: everything but the search-index rows, which reads
// never return. Each version is copied whole, its rows set aside meanwhile, so no field can be
// left behind.
std::vector<ResourceVersion> CacheableCopies(std::vector<ResourceVersion>& versions) {
  std::vector<ResourceVersion> out;
  out.reserve(versions.size());
  for (ResourceVersion& v : versions) {
    std::vector<IndexEntry> index = std::move(v.index);
    v.index.clear();
    out.push_back(v);
    v.index = std::move(index);
  }
  return out;
}

}  // namespace

StatusOr<CommitResult> CachingStore::Commit(WriteBatch batch) {
  std::vector<ResourceVersion> written = CacheableCopies(batch.resources);
  BeginCommit(written);
  StatusOr<CommitResult> result = backend().Commit(std::move(batch));
  EndCommit(written, result);
  return result;
}

void CachingStore::CommitAsync(WriteBatch batch, CommitCallback done) {
  if (batch.resources.empty()) {  // Only an audit record: nothing to remember.
    backend().CommitAsync(std::move(batch), std::move(done));
    return;
  }
  auto written = std::make_shared<std::vector<ResourceVersion>>(CacheableCopies(batch.resources));
  BeginCommit(*written);
  backend().CommitAsync(std::move(batch),
                        [this, written, done = std::move(done)](StatusOr<CommitResult> result) {
                          // Before the caller hears of the commit, so its next read sees what it
                          // wrote.
                          EndCommit(*written, result);
                          done(std::move(result));
                        });
}

StatusOr<ResourceVersion> CachingStore::ReadCurrent(std::string_view type, std::string_view id) {
  uint64_t epoch = 0;
  if (std::shared_ptr<const ResourceVersion> hit = Lookup(type, id, &epoch)) return *hit;
  KURA_ASSIGN_OR_RETURN(ResourceVersion v, backend().ReadCurrent(type, id));
  Insert(v, epoch);  // A copy: the caller gets its own.
  return v;
}

StatusOr<ResourceVersion> CachingStore::ReadVersion(std::string_view type, std::string_view id,
                                                    int64_t version) {
  if (std::optional<StatusOr<ResourceVersion>> hit = ReadVersionIfCached(type, id, version)) {
    return std::move(*hit);
  }
  return backend().ReadVersion(type, id, version);
}

std::optional<StatusOr<ResourceVersion>> CachingStore::ReadCurrentIfCached(std::string_view type,
                                                                           std::string_view id) {
  std::shared_ptr<const ResourceVersion> hit = Lookup(type, id);
  if (hit == nullptr) return std::nullopt;
  return StatusOr<ResourceVersion>(*hit);
}

std::optional<StatusOr<ResourceVersion>> CachingStore::ReadVersionIfCached(std::string_view type,
                                                                           std::string_view id,
                                                                           int64_t version) {
  std::shared_ptr<const ResourceVersion> hit = Lookup(type, id);
  if (hit == nullptr || hit->version != version) return std::nullopt;
  return StatusOr<ResourceVersion>(*hit);
}

std::shared_ptr<const ResourceVersion> CachingStore::SharedCurrentIfCached(std::string_view type,
                                                                           std::string_view id) {
  return Lookup(type, id);
}

RecordCacheStats CachingStore::Stats() {
  RecordCacheStats stats;
  for (Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    stats.hits += shard.hits;
    stats.misses += shard.misses;
    stats.entries += static_cast<int64_t>(shard.index.size());
    stats.bytes += static_cast<int64_t>(shard.bytes);
  }
  return stats;
}

}  // namespace kura::store
