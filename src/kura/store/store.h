// Store: the storage interface every backend implements (SQLite embedded, PostgreSQL later).
//
// It keeps every version of every resource (FHIR history), the current-version pointer, wrapped
// data keys and hashed API credentials. Payloads are opaque bytes: above EncryptingStore they are
// JSON, below it (what a backend sees and persists) they are encrypted records. Nothing here
// knows SQL dialects or FHIR rules; a backend passes store_conformance_test.cc.
//
// Writes: Commit() is all-or-nothing and durable when it returns OK (on disk; on a synchronous
// replica for PostgreSQL). Concurrent Commit() calls share durable commits (group commit), each
// still atomic on its own. Reads run concurrently with writes and never wait for the writer.
//
// Callers that must not block (the server's I/O threads) use CommitAsync(), which queues the
// batch and returns at once, and the *IfCached reads, which answer only from memory.
//
// Implementations are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kura/base/clock.h"
#include "kura/base/status.h"
#include "kura/store/search_index.h"

namespace kura::store {

class AuditDraft;  // audit_log_store.h

struct ResourceVersion {
  std::string type;
  std::string id;
  int64_t version = 0;  // 1, 2, 3... per (type, id).
  TimePoint last_updated;
  bool deleted = false;     // A delete is a version with deleted = true and an empty payload.
  std::string compartment;  // Patient id of the record's patient compartment; "" when none.
  std::string payload;
  int64_t sequence = 0;  // Set by Commit: the global commit order, which history follows.
  // On write: the search-index rows of this version (search_index.h), which replace the
  // resource's rows when it commits; a delete marker has none. Reads leave it empty.
  std::vector<IndexEntry> index;
};

// New search-index rows for a current resource, without a new version: what `kura fhir reindex`
// writes after the data register changed.
struct IndexRewrite {
  std::string type;
  std::string id;
  int64_t version = 0;  // Must be the current version, and not a delete marker.
  std::string compartment;
  std::vector<IndexEntry> index;  // Replaces the resource's rows (search_index.h).
};

// One atomic unit of writes.
struct WriteBatch {
  // Each must have version == current version of (type, id) + 1 (1 when it never existed).
  std::vector<ResourceVersion> resources;
  // Index rows replaced in the same commit; a (type, id) may not also be in `resources`.
  std::vector<IndexRewrite> index_rewrites;
  // The audit record(s) of this unit, committed in the same transaction (audit_log_store.h).
  // A batch may carry only this (a read's record): it is then durable when the commit reports.
  std::shared_ptr<const AuditDraft> audit;
};

struct CommitResult {
  std::vector<int64_t> sequences;  // One per batch.resources entry, in order.
};

// History, newest first. Empty type: whole system; empty id: whole type.
struct HistoryQuery {
  std::string type;
  std::string id;
  std::optional<TimePoint> since;  // Only versions with last_updated >= since.
  int64_t before_sequence = 0;     // Paging cursor: only sequence < this; 0 = from the newest.
  int64_t limit = 50;
};

// A page of current (not deleted) resources in (type, id) order, for whole-store maintenance.
struct CurrentListQuery {
  std::string after_type;  // Start after (after_type, after_id); both empty: from the first.
  std::string after_id;
  int64_t limit = 500;
};

struct CurrentResource {
  std::string type;
  std::string id;
  int64_t version = 0;
};

// A page of stored versions in (type, id, version) order, metadata only, for whole-store checks.
struct VersionListQuery {
  std::string after_type;  // Start after (after_type, after_id, after_version); all empty/0:
  std::string after_id;    // from the first.
  int64_t after_version = 0;
  int64_t limit = 500;
};

// A stored version's clear metadata (what the resource tables keep outside the sealed payload).
struct VersionMeta {
  std::string type;
  std::string id;
  int64_t version = 0;
  bool deleted = false;
  std::string compartment;
  TimePoint last_updated;
};

struct HistoryPage {
  std::vector<ResourceVersion> versions;
  int64_t next_before_sequence = 0;  // Cursor for the next page; 0 when this is the last page.
};

// A data-encryption key as persisted: only ever wrapped by a KEK.
struct StoredDataKey {
  uint64_t key_id = 0;  // Non-zero, unique.
  std::string scope;    // "patient/<id>", "tenant", ... unique.
  uint32_t kek_version = 0;
  std::string wrapped;
  TimePoint created;
};

// An API credential, stored by the SHA-256 of the token only.
struct ApiToken {
  std::string token_hash;  // 32 raw bytes.
  std::string name;
  std::string role;  // e.g. "system-admin".
  TimePoint created;
  bool revoked = false;
};

// Completion of CommitAsync(): the Commit() result. It runs on a store thread (or, for a batch
// refused before queueing, on the caller's thread before CommitAsync returns), in commit order,
// and must not block: hand the result to the caller's own executor.
using CommitCallback = std::function<void(StatusOr<CommitResult>)>;

// Runs a task somewhere it may block (the server's blocking pool). Used by decorators whose
// non-blocking paths sometimes need blocking work first, such as loading a data key.
using BlockingExecutor = std::function<void(std::function<void()>)>;

// A BlockingExecutor for tools and tests: runs the task on the calling thread.
inline void RunOnCallingThread(std::function<void()> task) { task(); }

class Store {
 public:
  virtual ~Store() = default;

  // Durably writes the batch as one unit, or nothing. Aborted ("version conflict") when a version
  // is not current + 1 (a concurrent writer won); InvalidArgument on a malformed batch (empty type
  // or id, version < 1, one (type, id) twice); Unavailable when the database cannot commit.
  virtual StatusOr<CommitResult> Commit(WriteBatch batch) = 0;
  // Commit() without blocking the caller: queues the batch and returns; `done` gets what Commit()
  // would have returned, once the batch is durable or has failed.
  virtual void CommitAsync(WriteBatch batch, CommitCallback done) = 0;

  // The current version (which may be a delete marker). NotFound when it never existed.
  virtual StatusOr<ResourceVersion> ReadCurrent(std::string_view type, std::string_view id) = 0;
  // A specific version. NotFound when absent.
  virtual StatusOr<ResourceVersion> ReadVersion(std::string_view type, std::string_view id,
                                                int64_t version) = 0;
  virtual StatusOr<HistoryPage> History(const HistoryQuery& query) = 0;
  // Current, not deleted resources after the query's position, at most query.limit (>= 1).
  virtual StatusOr<std::vector<CurrentResource>> ListCurrent(const CurrentListQuery& query) = 0;
  // Every stored version (delete markers included) after the query's position, at most
  // query.limit (>= 1).
  virtual StatusOr<std::vector<VersionMeta>> ListVersions(const VersionListQuery& query) = 0;
  // The current, not deleted resources of query.type whose index rows match (search_index.h), in
  // the query's order. InvalidArgument for a query the backend cannot run (a prefix match on a
  // blind clause, an empty type).
  virtual StatusOr<IndexPage> Search(const IndexQuery& query) = 0;

  // ReadCurrent / ReadVersion answered from memory without blocking, or nullopt when the answer
  // would need the database (the caller then uses the blocking call on a thread that may block).
  // A backend without a cache always says nullopt.
  virtual std::optional<StatusOr<ResourceVersion>> ReadCurrentIfCached(std::string_view type,
                                                                       std::string_view id) {
    (void)type, (void)id;
    return std::nullopt;
  }
  virtual std::optional<StatusOr<ResourceVersion>> ReadVersionIfCached(std::string_view type,
                                                                       std::string_view id,
                                                                       int64_t version) {
    (void)type, (void)id, (void)version;
    return std::nullopt;
  }
  // The current version of (type, id) exactly as a cache of this store holds it, shared rather
  // than copied, or nullptr when no cache holds it; never blocks. A layer that changes what it
  // passes up (the encryption layer: the cache holds sealed payloads) must not forward it. The
  // object never changes: a later commit replaces the cache's entry, not this version.
  virtual std::shared_ptr<const ResourceVersion> SharedCurrentIfCached(std::string_view type,
                                                                       std::string_view id) {
    (void)type, (void)id;
    return nullptr;
  }
  // Search answered without blocking (from an index held in memory, with any key it needs
  // already loaded, and small enough not to stall the caller), or nullopt when it would need the
  // database or long work. The default always says nullopt.
  virtual std::optional<StatusOr<IndexPage>> SearchIfInMemory(const IndexQuery& query) {
    (void)query;
    return std::nullopt;
  }

  // Data keys. InsertDataKeyIfAbsent is durable; when the scope already has a key it returns the
  // existing one unchanged (so concurrent creators agree on one key).
  virtual StatusOr<std::optional<StoredDataKey>> FindDataKeyByScope(std::string_view scope) = 0;
  virtual StatusOr<std::optional<StoredDataKey>> FindDataKeyById(uint64_t key_id) = 0;
  virtual StatusOr<StoredDataKey> InsertDataKeyIfAbsent(const StoredDataKey& key) = 0;

  // Which data register (and index format) the stored search-index rows were built under: an
  // opaque fingerprint, nullopt until first written. The write is durable.
  virtual StatusOr<std::optional<std::string>> ReadIndexFingerprint() = 0;
  virtual Status WriteIndexFingerprint(std::string_view fingerprint) = 0;

  // Credentials. PutApiToken is durable; AlreadyExists when the hash exists.
  virtual Status PutApiToken(const ApiToken& token) = 0;
  virtual StatusOr<std::optional<ApiToken>> FindApiToken(std::string_view token_hash) = 0;
};

}  // namespace kura::store
