// SqliteStore: the embedded Store backend, one SQLite database file in WAL mode.
//
// Writes go through a single writer connection owned by one writer thread, with group commit:
// Commit(), CommitAsync(), InsertDataKeyIfAbsent(), PutApiToken(), WriteAuditCursor() and
// PruneAudit() queue their work; the writer takes everything queued (up to
// `group_commit_max_batch`), runs it in one `BEGIN IMMEDIATE ... COMMIT`, each unit inside its own
// SAVEPOINT so one failing unit leaves the others intact, and then reports every unit's result in
// queue order. A group that changed the search index is reported by the publisher thread instead,
// once the in-memory index has its changes (groups in commit order), while the writer already
// runs the next group; a group without such changes may then be reported before an earlier one.
// synchronous=FULL, so a reported success is on disk; many writers share one fsync.
// Callers never lead a group, so a CommitAsync() caller never blocks. Reads use a pool of
// `read_connections` query-only connections and never wait for the writer (WAL readers see the last
// committed snapshot). A checkpoint thread with its own connection copies the WAL into the database
// file (PASSIVE, so it blocks nobody) whenever the WAL passes `checkpoint_wal_pages`; only when the
// WAL reaches four times that (sustained writes keep a background checkpoint from ever finishing)
// does the writer checkpoint itself, which bounds the WAL.
//
// Connections open through the buffered-WAL VFS (wal_write_buffer.h), so a commit's WAL frames
// reach the file in a few writes; the writer keeps its temporary storage (savepoint sub-journals)
// in memory, and deletes securely (freed content is zeroed, not left in free pages).
//
// The database file and its -wal/-shm companions are created with mode 0600 whatever the umask,
// and an existing database file is tightened to 0600. Every SQLite failure becomes a Status whose
// message is "storage error" (client-safe) with the SQLite text only in internal_detail:
// Unavailable for busy/locked/I/O/full-disk conditions, DataLoss for corruption, Internal
// otherwise.
//
// Behaviour beyond store.h that this backend defines (and store_conformance_test.cc checks):
// an empty WriteBatch is an OK no-op; History needs limit >= 1, before_sequence >= 0 and a type
// whenever an id is given (InvalidArgument otherwise); InsertDataKeyIfAbsent needs a non-zero
// key id and a non-empty scope (InvalidArgument) and returns AlreadyExists when the key id is
// taken by another scope; PutApiToken needs a 32-byte hash (InvalidArgument).
//
// Thread-safe. Destroying the store while calls are still running on other threads is a caller
// error.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "kura/store/audit_log_store.h"
#include "kura/store/memory_search_index.h"
#include "kura/store/sqlite/audit_postings.h"
#include "kura/store/store.h"

struct sqlite3;

namespace kura::store {

struct SqliteOptions {
  std::filesystem::path path;         // The database file; its directory must exist.
  int read_connections = 8;           // Size of the read pool, >= 1.
  int group_commit_max_batch = 1024;  // Most queued writes one durable commit takes, >= 1.
  int checkpoint_wal_pages = 8192;    // WAL size (pages) that wakes the checkpoint thread, >= 1.
  // Audit records written since the last fold at which the writer files them into the folded
  // search indexes (in the commit that passes it), >= 1. An audit search reads at most about this
  // many records row by row besides its index ranges.
  int audit_index_fold_records = 2048;
  // Opens an existing database for reading only, changing no byte of it or of its WAL: no
  // migration, no permission change, no writer or checkpoint thread, and no checkpoint when it
  // closes (for inspecting a forensic copy). Writes fail with FailedPrecondition, and so does
  // opening a database of another schema version.
  bool read_only = false;
  // Builds the in-memory search index at Open (a full read of search_rows: seconds and hundreds
  // of MiB for a large database). Administrative commands that never search turn it off; Search
  // then fails with FailedPrecondition, and commits leave the index alone.
  bool search_index = true;
};

// Counters of the writer since Open, for metrics and benchmarks.
struct SqliteWriterStats {
  int64_t transactions = 0;  // Group transactions attempted (each one durable commit, one fsync).
  int64_t writes = 0;        // Queued writes (commits, key and token inserts) they carried.
  int64_t checkpoints = 0;   // WAL checkpoints run by the checkpoint thread.
  // Where the writer thread's time went, in microseconds of wall time: waiting for work, running
  // a group's units, in COMMIT (writing the WAL and its fsync) and reporting results.
  int64_t idle_us = 0;
  int64_t run_us = 0;
  int64_t commit_us = 0;
  int64_t report_us = 0;
  // The publisher thread's busy time: applying durable groups' search-index changes and
  // reporting those groups.
  int64_t publish_us = 0;
};

class SqliteStore final : public Store, public AuditLogStore {
 public:
  // Opens (creating when absent) the database at options.path, applies pending schema
  // migrations in one transaction and opens the connection pool. InvalidArgument for bad options;
  // FailedPrecondition when the database was written by a newer Kura (unknown schema version);
  // DataLoss when the file is not a database or is corrupt; Unavailable when it cannot be opened
  // or locked.
  static StatusOr<std::unique_ptr<SqliteStore>> Open(const SqliteOptions& options);

  // The schema version this code creates and understands.
  static int64_t SchemaVersion();

  // Close(), then closes every connection (the last close checkpoints the WAL).
  ~SqliteStore() override;

  // Finishes the queued writes, stops the writer thread and refuses later writes (Unavailable).
  // Call before tearing down whatever CommitAsync callbacks hand their results to. Idempotent.
  void Close();

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  StatusOr<CommitResult> Commit(WriteBatch batch) override;
  void CommitAsync(WriteBatch batch, CommitCallback done) override;
  StatusOr<ResourceVersion> ReadCurrent(std::string_view type, std::string_view id) override;
  StatusOr<ResourceVersion> ReadVersion(std::string_view type, std::string_view id,
                                        int64_t version) override;
  StatusOr<HistoryPage> History(const HistoryQuery& query) override;
  StatusOr<std::vector<CurrentResource>> ListCurrent(const CurrentListQuery& query) override;
  StatusOr<std::vector<VersionMeta>> ListVersions(const VersionListQuery& query) override;
  StatusOr<IndexPage> Search(const IndexQuery& query) override;
  // Answers from the in-memory index (a shared lock, no database access) unless the search would
  // examine more than 20,000 candidates.
  std::optional<StatusOr<IndexPage>> SearchIfInMemory(const IndexQuery& query) override;

  StatusOr<std::optional<StoredDataKey>> FindDataKeyByScope(std::string_view scope) override;
  StatusOr<std::optional<StoredDataKey>> FindDataKeyById(uint64_t key_id) override;
  StatusOr<StoredDataKey> InsertDataKeyIfAbsent(const StoredDataKey& key) override;

  StatusOr<std::optional<std::string>> ReadIndexFingerprint() override;
  Status WriteIndexFingerprint(std::string_view fingerprint) override;

  Status PutApiToken(const ApiToken& token) override;
  StatusOr<std::optional<ApiToken>> FindApiToken(std::string_view token_hash) override;

  void AttachAuditAppender(AuditAppender* appender) override;
  StatusOr<std::optional<std::string>> ReadAuditState() override;
  StatusOr<std::vector<AuditRow>> ReadAuditRows(uint64_t from_sequence, size_t limit) override;
  StatusOr<std::optional<std::string>> ReadAuditNode(int level, uint64_t index) override;
  StatusOr<std::vector<AuditStatement>> ReadAuditStatements() override;
  StatusOr<std::optional<AuditStatement>> FindAuditCheckpoint(uint64_t min_tree_size) override;
  StatusOr<std::vector<AuditStatement>> ReadAuditCheckpointsAfter(uint64_t tree_size,
                                                                  size_t limit) override;
  StatusOr<AuditPage> SearchAudit(const AuditQuery& query) override;
  StatusOr<uint64_t> ReadAuditCursor(std::string_view name) override;
  Status WriteAuditCursor(std::string_view name, uint64_t next_sequence) override;
  StatusOr<std::vector<AuditCursor>> ReadAuditCursors() override;
  StatusOr<int64_t> DeleteAuditCursors(const std::vector<std::string>& names) override;
  StatusOr<std::vector<AuditStatement>> ReadAuditPruneAnchors() override;
  StatusOr<std::optional<uint64_t>> FindFirstAuditSequenceSince(int64_t time_us) override;
  Status PruneAudit(const AuditPrune& prune) override;
  StatusOr<std::vector<AuditIndexFinding>> CheckAuditIndexes(size_t limit) override;

  // writes / transactions is the mean group size. Thread-safe; the two counters are read
  // separately, so they may be one group apart.
  SqliteWriterStats WriterStats() const;

  // Records `version` in schema_migrations, as a newer Kura would. Lets tests check that Open
  // refuses a database from the future.
  Status RecordSchemaVersionForTest(int64_t version);
  // Caps the database at its current size plus `extra_pages` pages (PRAGMA max_page_count on the
  // writer), so tests can make writes fail as on a full disk.
  Status LimitDatabaseGrowthForTest(int64_t extra_pages);

 private:
  class Connection;     // One sqlite3 handle and its prepared-statement cache.
  class ReaderLease;    // A read connection checked out of the pool.
  struct PendingWrite;  // One queued unit of write work and what to do with its result.
  struct Publication;   // A durable group waiting for its search-index changes.

  explicit SqliteStore(const SqliteOptions& options);
  static StatusOr<std::unique_ptr<SqliteStore>> OpenReadOnly(const SqliteOptions& options);
  // Open: the pool of `read_connections` read connections.
  Status OpenReaders();

  // Queues `write` for the writer thread; finishes it at once with Unavailable after Close().
  void Enqueue(PendingWrite write);
  // Queues `work` and waits for its result.
  Status RunAndWait(std::function<Status(Connection&)> work);
  // The writer thread: takes groups off the queue until Close() and the queue is empty.
  void WriterLoop();
  // Hands a durable group with search-index changes to the publisher thread, which applies them
  // and then reports the group (PublishLoop), in commit order.
  void Publish(Publication publication);
  void PublishLoop();
  // The checkpoint thread and the WAL hook that wakes it.
  void CheckpointLoop();
  static int OnWalCommit(void* self, sqlite3* db, const char* name, int wal_pages);
  // Open: builds search_index_ from every current resource's search_rows.
  Status LoadSearchIndex();
  // Runs `group` in one transaction on the writer connection, setting each member's status.
  // `committing` runs just before COMMIT (not when the group fails earlier).
  void RunGroup(std::vector<PendingWrite>& group, std::vector<Status>& statuses,
                const std::function<void()>& committing);
  // Writer thread: inserts audit_rows_ and audit_nodes_, then a transaction's audit tail.
  Status InsertAuditRows(Connection& conn);
  Status InsertAuditTail(Connection& conn, const AuditTransactionTail& tail);
  Status FoldAuditIndexes(Connection& conn);
  StatusOr<std::optional<std::string>> ReadAuditStateOn(Connection& conn);

  Connection* AcquireReader();
  void ReleaseReader(Connection* conn);

  const SqliteOptions options_;

  std::unique_ptr<Connection> writer_conn_;  // Used only by the writer thread after Open.
  std::mutex write_mu_;
  std::condition_variable write_queued_;
  std::deque<PendingWrite> write_queue_;  // Guarded by write_mu_.
  bool closing_ = false;                  // Guarded by write_mu_.
  std::thread writer_thread_;
  std::atomic<int64_t> transactions_{0};
  std::atomic<int64_t> writes_{0};
  std::atomic<int64_t> idle_us_{0};
  std::atomic<int64_t> run_us_{0};
  std::atomic<int64_t> commit_us_{0};
  std::atomic<int64_t> report_us_{0};
  std::atomic<int64_t> publish_us_{0};
  std::atomic<AuditAppender*> audit_appender_{nullptr};
  std::vector<AuditRow> audit_rows_;  // Writer thread only: reused per draft, keys moved out.
  // Writer thread only: audit records written since the last fold (an estimate: records of
  // rolled-back groups count too, and other processes' are not seen).
  int64_t unfolded_audit_records_ = 0;
  std::vector<AuditNode> audit_nodes_;  // Writer thread only.
  // Writer thread only: the records this writer inserted since the last fold, the first
  // fold_entries_committed_ of them durable. The fold files them without reading them back when
  // they are exactly the unfolded records (not after a restart, nor when a command appended).
  std::vector<AuditFoldEntry> fold_entries_;
  size_t fold_entries_committed_ = 0;
  bool folded_in_group_ = false;
  // The search index of current resources. Writer thread: the changes of the running group's
  // successful units (views into their batches), published once the group is durable.
  MemorySearchIndex search_index_;
  std::vector<IndexChange> pending_index_;
  std::mutex publish_mu_;
  std::condition_variable publish_queued_;
  std::deque<Publication> publish_queue_;  // Guarded by publish_mu_.
  bool publish_stop_ = false;              // Guarded by publish_mu_.
  std::thread publisher_thread_;

  std::unique_ptr<Connection> checkpoint_conn_;  // Used only by the checkpoint thread.
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_wanted_;
  bool checkpoint_requested_ = false;  // Guarded by checkpoint_mu_.
  bool checkpoint_stop_ = false;       // Guarded by checkpoint_mu_.
  std::thread checkpoint_thread_;
  std::atomic<int64_t> checkpoints_{0};

  std::vector<std::unique_ptr<Connection>> readers_;  // Owned; fixed after Open.
  std::mutex read_mu_;
  std::condition_variable reader_free_;
  std::vector<Connection*> free_readers_;  // Guarded by read_mu_.
};

}  // namespace kura::store
