// SqliteStore: schema and migrations, per-connection statement cache, group commit, read pool.
#include "kura/store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <type_traits>
#include <utility>

#include "kura/base/log.h"
#include "kura/base/thread_name.h"
#include "kura/store/memory_search_index.h"
#include "kura/store/sqlite/audit_postings.h"
#include "kura/store/sqlite/wal_write_buffer.h"

namespace kura::store {
namespace {

// The schema, one entry per version; entry i takes a database from version i to i + 1. Never
// edit an entry that has shipped: append a new one. Open() applies the missing ones in a single
// transaction and records each in schema_migrations(version, applied_at).
//
// Version 1:
//   resource_versions  every version of every resource, in commit order. seq is the rowid and
//                      the global sequence number (CommitResult, history order and paging);
//                      last_updated is microseconds since the epoch; deleted is 0/1; payload is
//                      the opaque (encrypted) record, empty for delete markers.
//   resources          the current-version pointer per (type, id), pointing at its seq.
//   data_keys          wrapped data keys; key_id is the uint64 id stored as its int64 bit
//                      pattern, scope is unique.
//   api_tokens         API credentials keyed by the SHA-256 of the token.
//
// Version 2 (the audit log, audit_log_store.h):
//   audit_log          one row per record, seq = the record's sequence number; record is the
//                      sealed (encrypted) record, the other columns are search keys and hashes.
//   audit_patients     (patient, seq) for every compartment a record touched.
//   audit_nodes        kept Merkle subtree hashes (level >= 1; level 0 only for the leaf
//                      hashes of pruned records that proofs of retained ones still read).
//   audit_state        the appender's state after the last transaction (one row).
//   audit_statements   signed checkpoints (kind 0) and prune anchors (kind 1).
//   audit_cursors      per export sink, the next sequence it has not received.
//
// Version 3 (search, search_index.h):
//   search_index       the index rows of every current, not deleted resource: (type, id, param,
//                      key, key2, low, high), low = high = 0 for rows without a range; key and
//                      key2 are text, or blobs (keyed hashes) for blind parameters.
//
// Version 4: search_index.compartment, the resource's patient compartment ("" when none), and
//   search_index_compartment to read one patient's rows of a parameter together.
//
// Version 5: one secondary index instead of two, search_index_lookup(type, param, key, key2,
//   compartment): an equality on key and key2 reads one patient's rows together as well, and each
//   row costs one index entry fewer to write.
//
// Version 6: the search index moves into memory (memory_search_index.h). search_rows holds each
//   current, not deleted resource's rows in one encoded value, with its compartment, written in the
//   resource's commit; Open() rebuilds the posting lists from it. A table of its own keeps
//   `resources` narrow for reads. The rows of search_index are moved there
//   (MoveIndexRowsToSearchRows) and the table is dropped.
//
// Version 7: a record's patient links are written once, in sequence order, to
//   audit_record_patients(seq, patient), which only ever grows at its end; audit_patients
//   (patient-major, for "who accessed this patient") is filled from it in batches
//   (FoldAuditPatients) and audit_patient_fold.through_seq says how far: links of later records are
//   only in audit_record_patients. Writing each link straight into audit_patients dirtied one
//   B-tree page per distinct patient per group commit.
//
// Version 8: every audit search index is folded, so a group commit appends to audit_log alone.
//   audit_log.patients holds a record's patient ids (a JSON array of strings); audit_log_time,
//   audit_log_actor and audit_record_patients are gone. Every audit_index_fold.through_seq
//   advance (FoldAuditIndexes) files the records since the last one into audit_patients and
//   audit_actors (actor, seq), and adds one audit_time_blocks row with their first and last seq
//   and their earliest and latest time. A search reads the folded indexes up to through_seq and
//   the few records after it row by row. Writing three secondary B-trees per record dirtied about
//   eight of a group commit's twenty WAL pages.
//
// Version 9: index_state holds the fingerprint of the data register the search_rows were built
//   under, so the server can refuse to serve stale (or, after a parameter became blind, clear)
//   index rows until `kura fhir reindex` rebuilt them.
//
// Version 10: the folded patient and actor indexes become posting lists (audit_postings.h):
//   audit_postings(first_seq, kind, key, seqs) holds, per fold block (audit_time_blocks.first_seq)
//   and key, the block's records that name the key, in one value. audit_patients and audit_actors
//   are rebuilt into it from the records (FileFoldedAuditRecordsAsPostings) and dropped. A fold
//   wrote two B-tree entries per record, as much writer time as the records themselves, and held
//   every waiting request behind it for about ten milliseconds every 2,048 records.
//
// Version 11 changes no table: from here on search_rows.index_rows may hold version 2 values (a
//   string table, EncodeIndexRows), which servers before it cannot read. The number makes such a
//   server refuse the database as written by a newer version instead of calling it damaged.
constexpr std::array<const char*, 11> kMigrations = {
    R"sql(
CREATE TABLE resource_versions(
  seq INTEGER PRIMARY KEY,
  type TEXT NOT NULL,
  id TEXT NOT NULL,
  version INTEGER NOT NULL,
  last_updated INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  compartment TEXT NOT NULL,
  payload BLOB NOT NULL,
  UNIQUE(type, id, version));
CREATE INDEX resource_versions_type_seq ON resource_versions(type, seq);
CREATE TABLE resources(
  type TEXT NOT NULL,
  id TEXT NOT NULL,
  version INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  seq INTEGER NOT NULL REFERENCES resource_versions(seq),
  PRIMARY KEY(type, id)) WITHOUT ROWID;
CREATE TABLE data_keys(
  key_id INTEGER PRIMARY KEY,
  scope TEXT NOT NULL UNIQUE,
  kek_version INTEGER NOT NULL,
  wrapped BLOB NOT NULL,
  created_at INTEGER NOT NULL);
CREATE TABLE api_tokens(
  token_hash BLOB PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  revoked INTEGER NOT NULL) WITHOUT ROWID;
)sql",
    R"sql(
CREATE TABLE audit_log(
  seq INTEGER PRIMARY KEY,
  time_us INTEGER NOT NULL,
  category TEXT NOT NULL,
  action TEXT NOT NULL,
  outcome INTEGER NOT NULL,
  actor TEXT NOT NULL,
  record BLOB NOT NULL,
  leaf_hash BLOB NOT NULL,
  chain_hash BLOB NOT NULL);
CREATE INDEX audit_log_time ON audit_log(time_us);
CREATE INDEX audit_log_actor ON audit_log(actor, seq);
CREATE TABLE audit_patients(
  patient TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY(patient, seq)) WITHOUT ROWID;
CREATE TABLE audit_nodes(
  level INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  hash BLOB NOT NULL,
  PRIMARY KEY(level, idx)) WITHOUT ROWID;
CREATE TABLE audit_state(
  id INTEGER PRIMARY KEY CHECK(id = 1),
  state BLOB NOT NULL);
CREATE TABLE audit_statements(
  kind INTEGER NOT NULL,
  tree_size INTEGER NOT NULL,
  time_us INTEGER NOT NULL,
  note TEXT NOT NULL,
  PRIMARY KEY(kind, tree_size)) WITHOUT ROWID;
CREATE TABLE audit_cursors(
  sink TEXT PRIMARY KEY,
  next_seq INTEGER NOT NULL) WITHOUT ROWID;
)sql",
    R"sql(
CREATE TABLE search_index(
  type TEXT NOT NULL,
  id TEXT NOT NULL,
  param TEXT NOT NULL,
  key BLOB NOT NULL,
  key2 BLOB NOT NULL,
  low REAL NOT NULL,
  high REAL NOT NULL,
  PRIMARY KEY(type, id, param, key, key2, low, high)) WITHOUT ROWID;
CREATE INDEX search_index_value ON search_index(type, param, key, key2);
)sql",
    R"sql(
ALTER TABLE search_index ADD COLUMN compartment TEXT NOT NULL DEFAULT '';
CREATE INDEX search_index_compartment ON search_index(compartment, type, param, key, key2);
)sql",
    R"sql(
DROP INDEX search_index_compartment;
DROP INDEX search_index_value;
CREATE INDEX search_index_lookup ON search_index(type, param, key, key2, compartment);
)sql",
    R"sql(
CREATE TABLE search_rows(
  type TEXT NOT NULL,
  id TEXT NOT NULL,
  compartment TEXT NOT NULL,
  index_rows BLOB NOT NULL,
  PRIMARY KEY(type, id)) WITHOUT ROWID;
)sql",
    R"sql(
CREATE TABLE audit_record_patients(
  seq INTEGER NOT NULL,
  patient TEXT NOT NULL,
  PRIMARY KEY(seq, patient)) WITHOUT ROWID;
INSERT INTO audit_record_patients(seq, patient) SELECT seq, patient FROM audit_patients;
CREATE TABLE audit_patient_fold(
  id INTEGER PRIMARY KEY CHECK(id = 1),
  through_seq INTEGER NOT NULL);
INSERT INTO audit_patient_fold(id, through_seq)
  SELECT 1, IFNULL((SELECT MAX(seq) FROM audit_log), -1);
)sql",
    R"sql(
ALTER TABLE audit_log ADD COLUMN patients TEXT NOT NULL DEFAULT '[]';
UPDATE audit_log SET patients = (
    SELECT json_group_array(patient) FROM (
      SELECT patient FROM audit_record_patients r WHERE r.seq = audit_log.seq ORDER BY patient))
  WHERE seq IN (SELECT seq FROM audit_record_patients);
INSERT OR IGNORE INTO audit_patients(patient, seq)
  SELECT patient, seq FROM audit_record_patients
  WHERE seq > (SELECT through_seq FROM audit_patient_fold) ORDER BY patient, seq;
CREATE TABLE audit_actors(
  actor TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY(actor, seq)) WITHOUT ROWID;
INSERT INTO audit_actors(actor, seq) SELECT actor, seq FROM audit_log ORDER BY actor, seq;
CREATE TABLE audit_time_blocks(
  first_seq INTEGER PRIMARY KEY,
  last_seq INTEGER NOT NULL,
  min_time_us INTEGER NOT NULL,
  max_time_us INTEGER NOT NULL);
INSERT INTO audit_time_blocks(first_seq, last_seq, min_time_us, max_time_us)
  SELECT MIN(seq), MAX(seq), MIN(time_us), MAX(time_us) FROM audit_log GROUP BY seq / 2048;
CREATE TABLE audit_index_fold(
  id INTEGER PRIMARY KEY CHECK(id = 1),
  through_seq INTEGER NOT NULL);
INSERT INTO audit_index_fold(id, through_seq)
  SELECT 1, IFNULL((SELECT MAX(seq) FROM audit_log), -1);
DROP TABLE audit_record_patients;
DROP TABLE audit_patient_fold;
DROP INDEX audit_log_time;
DROP INDEX audit_log_actor;
)sql",
    R"sql(
CREATE TABLE index_state(
  id INTEGER PRIMARY KEY CHECK(id = 1),
  register_fingerprint TEXT NOT NULL);
)sql",
    R"sql(
CREATE TABLE audit_postings(
  first_seq INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  key TEXT NOT NULL,
  seqs BLOB NOT NULL,
  PRIMARY KEY(first_seq, kind, key)) WITHOUT ROWID;
CREATE INDEX audit_postings_key ON audit_postings(kind, key, first_seq);
)sql",
    // Version 11: nothing to change (see above).
    "-- search_rows.index_rows values may be version 2 from here on.\n",
};
// The schema version after which MoveIndexRowsToSearchRows runs.
constexpr int64_t kSearchRowsMigration = 6;
// The schema version after which FileFoldedAuditRecordsAsPostings runs.
constexpr int64_t kAuditPostingsMigration = 10;

constexpr const char* kCreateSchemaMigrations =
    "CREATE TABLE IF NOT EXISTS schema_migrations("
    "version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)";

constexpr int kBusyTimeoutMs = 5000;
// WAL size, in multiples of checkpoint_wal_pages, at which the writer checkpoints itself.
constexpr int64_t kWriterCheckpointFactor = 4;
constexpr size_t kApiTokenHashSize = 32;
// Candidates a search may examine on a caller's thread that must not stall (about 1 ms of work);
// a larger search runs through Search() on a thread that may block.
constexpr size_t kInMemorySearchBudget = 20000;

// Every statement a connection runs more than once; prepared on first use and cached.
enum class Sql {
  kBegin,
  kCommit,
  kRollback,
  kSavepoint,
  kRelease,
  kRollbackTo,
  kSchemaVersion,
  kInsertMigration,
  kCurrentState,
  kInsertVersion,
  kInsertCurrent,
  kAdvanceCurrent,
  kReadCurrent,
  kReadVersion,
  kHistorySystem,
  kHistoryType,
  kHistoryInstance,
  kDataKeyByScope,
  kDataKeyById,
  kInsertDataKey,
  kInsertApiToken,
  kFindApiToken,
  kInsertAuditRow,
  kUnfoldedAuditRecords,
  kAuditFoldThrough,
  kAuditUnfoldedSpan,
  kAuditFoldRecords,
  kInsertAuditPosting,
  kDeleteAuditPosting,
  kAuditPostingsOfBlock,
  kAuditPostingsOfKey,
  kInsertAuditTimeBlock,
  kAdvanceAuditIndexFold,
  kInsertAuditNode,
  kUpsertAuditState,
  kInsertAuditStatement,
  kReadAuditState,
  kReadAuditRows,
  kReadAuditLeaf,
  kReadAuditNode,
  kReadAuditStatements,
  kFindAuditCheckpoint,
  kLatestAuditCheckpoint,
  kAuditCheckpointsAfter,
  kReadAuditCursor,
  kWriteAuditCursor,
  kReadAuditCursors,
  kDeleteAuditCursor,
  kReadAuditAnchors,
  kFirstAuditSequenceSince,
  kLowestAuditCursor,
  kLatestAuditAnchor,
  kStraddlingAuditBlock,
  kPruneAuditPostings,
  kPruneAuditTimeBlocks,
  kPruneAuditRows,
  kPruneAuditStatements,
  kPruneAuditNodes,
  kLoadSearchRows,
  kUpsertSearchRows,
  kDeleteSearchRows,
  kListCurrentFirst,
  kListCurrentAfter,
  kListVersionsFirst,
  kListVersionsAfter,
  kReadIndexFingerprint,
  kWriteIndexFingerprint,
  kCount,
};

struct SqlText {
  const char* name;  // For internal error details.
  const char* text;
};

// Result columns of the version queries, shared by ReadVersionRow().
#define KURA_VERSION_COLUMNS "type, id, version, last_updated, deleted, compartment, payload, seq"
// Result columns of the audit row queries, shared by ReadAuditRow() and the audit search.
#define KURA_AUDIT_COLUMNS \
  "seq, time_us, category, action, outcome, actor, record, leaf_hash, chain_hash, patients"

// History statements share their parameter numbers: ?1 before seq, ?2 since, ?3 row limit,
// ?4 type, ?5 id.
constexpr std::array<SqlText, static_cast<size_t>(Sql::kCount)> kSql = {{
    {"begin", "BEGIN IMMEDIATE"},
    {"commit", "COMMIT"},
    {"rollback", "ROLLBACK"},
    {"savepoint", "SAVEPOINT w"},
    {"release", "RELEASE w"},
    {"rollback_to", "ROLLBACK TO w"},
    {"schema_version", "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"},
    {"insert_migration", "INSERT INTO schema_migrations(version, applied_at) VALUES(?1, ?2)"},
    {"current_state", "SELECT version, deleted FROM resources WHERE type = ?1 AND id = ?2"},
    {"insert_version",
     "INSERT INTO resource_versions(type, id, version, last_updated, deleted, compartment, "
     "payload) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
    {"insert_current",
     "INSERT INTO resources(type, id, version, deleted, seq) VALUES(?1, ?2, ?3, ?4, ?5)"},
    {"advance_current",
     "UPDATE resources SET version = ?3, deleted = ?4, seq = ?5 "
     "WHERE type = ?1 AND id = ?2 AND version = ?3 - 1"},
    {"read_current",
     "SELECT v.type, v.id, v.version, v.last_updated, v.deleted, v.compartment, v.payload, v.seq "
     "FROM resources AS r JOIN resource_versions AS v ON v.seq = r.seq "
     "WHERE r.type = ?1 AND r.id = ?2"},
    {"read_version", "SELECT " KURA_VERSION_COLUMNS
                     " FROM resource_versions WHERE type = ?1 AND id = ?2 AND version = ?3"},
    {"history_system",
     "SELECT " KURA_VERSION_COLUMNS " FROM resource_versions WHERE seq < ?1 AND last_updated >= ?2 "
     "ORDER BY seq DESC LIMIT ?3"},
    {"history_type", "SELECT " KURA_VERSION_COLUMNS
                     " FROM resource_versions WHERE type = ?4 AND seq < ?1 AND last_updated >= ?2 "
                     "ORDER BY seq DESC LIMIT ?3"},
    {"history_instance",
     "SELECT " KURA_VERSION_COLUMNS
     " FROM resource_versions WHERE type = ?4 AND id = ?5 AND seq < ?1 AND last_updated >= ?2 "
     "ORDER BY seq DESC LIMIT ?3"},
    {"data_key_by_scope",
     "SELECT key_id, scope, kek_version, wrapped, created_at FROM data_keys WHERE scope = ?1"},
    {"data_key_by_id",
     "SELECT key_id, scope, kek_version, wrapped, created_at FROM data_keys WHERE key_id = ?1"},
    {"insert_data_key",
     "INSERT INTO data_keys(key_id, scope, kek_version, wrapped, created_at) "
     "VALUES(?1, ?2, ?3, ?4, ?5)"},
    {"insert_api_token",
     "INSERT INTO api_tokens(token_hash, name, role, created_at, revoked) "
     "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(token_hash) DO NOTHING"},
    {"find_api_token",
     "SELECT name, role, created_at, revoked FROM api_tokens WHERE token_hash = ?1"},
    {"insert_audit_row",
     "INSERT INTO audit_log(seq, time_us, category, action, outcome, actor, record, leaf_hash, "
     "chain_hash, patients) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"},
    {"unfolded_audit_records",
     "SELECT COUNT(*) FROM audit_log WHERE seq > (SELECT through_seq FROM audit_index_fold)"},
    {"audit_fold_through", "SELECT through_seq FROM audit_index_fold"},
    // Two subqueries, so each is one B-tree seek.
    {"audit_unfolded_span",
     "SELECT (SELECT seq FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT 1), "
     "(SELECT MAX(seq) FROM audit_log)"},
    // What a block's records name, a row per (record, patient) and one for a record naming no
    // patient (CollectAuditFoldBlock).
    {"audit_fold_records",
     "SELECT a.seq, a.actor, a.time_us, p.value FROM audit_log a LEFT JOIN "
     "json_each(CASE WHEN json_valid(a.patients) THEN a.patients ELSE '[]' END) p "
     "WHERE a.seq >= ?1 AND a.seq <= ?2 ORDER BY a.seq"},
    {"insert_audit_posting",
     "INSERT OR REPLACE INTO audit_postings(first_seq, kind, key, seqs) VALUES(?1, ?2, ?3, ?4)"},
    {"delete_audit_posting",
     "DELETE FROM audit_postings WHERE first_seq = ?1 AND kind = ?2 AND key = ?3"},
    {"audit_postings_of_block", "SELECT kind, key, seqs FROM audit_postings WHERE first_seq = ?1"},
    {"audit_postings_of_key",
     "SELECT first_seq, seqs FROM audit_postings WHERE kind = ?1 AND key = ?2 AND first_seq <= ?3 "
     "ORDER BY first_seq DESC"},
    {"insert_audit_time_block",
     "INSERT INTO audit_time_blocks(first_seq, last_seq, min_time_us, max_time_us) "
     "VALUES(?1, ?2, ?3, ?4)"},
    {"advance_audit_index_fold", "UPDATE audit_index_fold SET through_seq = ?1"},
    {"insert_audit_node",
     "INSERT OR REPLACE INTO audit_nodes(level, idx, hash) VALUES(?1, ?2, ?3)"},
    {"upsert_audit_state",
     "INSERT INTO audit_state(id, state) VALUES(1, ?1) "
     "ON CONFLICT(id) DO UPDATE SET state = excluded.state"},
    {"insert_audit_statement",
     "INSERT OR REPLACE INTO audit_statements(kind, tree_size, time_us, note) "
     "VALUES(?1, ?2, ?3, ?4)"},
    {"read_audit_state", "SELECT state FROM audit_state WHERE id = 1"},
    {"read_audit_rows",
     "SELECT " KURA_AUDIT_COLUMNS " FROM audit_log WHERE seq >= ?1 ORDER BY seq LIMIT ?2"},
    // A pruned record's leaf hash lives on as a level-0 node when proofs still need it.
    {"read_audit_leaf",
     "SELECT leaf_hash FROM audit_log WHERE seq = ?1 "
     "UNION ALL SELECT hash FROM audit_nodes WHERE level = 0 AND idx = ?1 LIMIT 1"},
    {"read_audit_node", "SELECT hash FROM audit_nodes WHERE level = ?1 AND idx = ?2"},
    {"read_audit_statements",
     "SELECT kind, tree_size, time_us, note FROM audit_statements ORDER BY kind, tree_size"},
    {"find_audit_checkpoint",
     "SELECT kind, tree_size, time_us, note FROM audit_statements "
     "WHERE kind = 0 AND tree_size >= ?1 ORDER BY tree_size LIMIT 1"},
    {"latest_audit_checkpoint",
     "SELECT kind, tree_size, time_us, note FROM audit_statements "
     "WHERE kind = 0 ORDER BY tree_size DESC LIMIT 1"},
    {"audit_checkpoints_after",
     "SELECT kind, tree_size, time_us, note FROM audit_statements "
     "WHERE kind = 0 AND tree_size > ?1 ORDER BY tree_size LIMIT ?2"},
    {"read_audit_cursor", "SELECT next_seq FROM audit_cursors WHERE sink = ?1"},
    {"write_audit_cursor",
     "INSERT INTO audit_cursors(sink, next_seq) VALUES(?1, ?2) "
     "ON CONFLICT(sink) DO UPDATE SET next_seq = excluded.next_seq"},
    {"read_audit_cursors", "SELECT sink, next_seq FROM audit_cursors ORDER BY sink"},
    {"delete_audit_cursor", "DELETE FROM audit_cursors WHERE sink = ?1"},
    {"read_audit_anchors",
     "SELECT kind, tree_size, time_us, note FROM audit_statements "
     "WHERE kind = 1 ORDER BY tree_size"},
    // The unary + keeps SQLite off the time index: event times are not monotonic in seq, so the
    // answer is the first match in seq order, and a scan from the oldest retained row stops
    // there (after about a day's records when retention runs daily).
    {"first_audit_sequence_since",
     "SELECT seq FROM audit_log WHERE +time_us >= ?1 ORDER BY seq LIMIT 1"},
    {"lowest_audit_cursor",
     "SELECT sink, next_seq FROM audit_cursors ORDER BY next_seq, sink LIMIT 1"},
    {"latest_audit_anchor", "SELECT MAX(tree_size) FROM audit_statements WHERE kind = 1"},
    // The block the prune point falls inside, whose postings keep their retained records.
    {"straddling_audit_block",
     "SELECT first_seq FROM audit_time_blocks WHERE first_seq < ?1 AND last_seq >= ?1 "
     "ORDER BY first_seq DESC LIMIT 1"},
    {"prune_audit_postings", "DELETE FROM audit_postings WHERE first_seq < ?1"},
    // A block that keeps some records keeps its bounds: they still cover what is left.
    {"prune_audit_time_blocks", "DELETE FROM audit_time_blocks WHERE last_seq < ?1"},
    {"prune_audit_rows", "DELETE FROM audit_log WHERE seq < ?1"},
    {"prune_audit_statements", "DELETE FROM audit_statements WHERE tree_size < ?1"},
    {"prune_audit_nodes", "DELETE FROM audit_nodes WHERE level = ?1 AND idx < ?2"},
    {"load_search_rows", "SELECT type, id, compartment, index_rows FROM search_rows"},
    {"upsert_search_rows",
     "INSERT INTO search_rows(type, id, compartment, index_rows) VALUES(?1, ?2, ?3, ?4) "
     "ON CONFLICT(type, id) DO UPDATE SET compartment = excluded.compartment, "
     "index_rows = excluded.index_rows"},
    {"delete_search_rows", "DELETE FROM search_rows WHERE type = ?1 AND id = ?2"},
    {"list_current_first",
     "SELECT type, id, version FROM resources WHERE deleted = 0 ORDER BY type, id LIMIT ?3"},
    {"list_current_after",
     "SELECT type, id, version FROM resources WHERE deleted = 0 AND (type, id) > (?1, ?2) "
     "ORDER BY type, id LIMIT ?3"},
    {"list_versions_first",
     "SELECT type, id, version, deleted, compartment, last_updated FROM resource_versions "
     "ORDER BY type, id, version LIMIT ?3"},
    {"list_versions_after",
     "SELECT type, id, version, deleted, compartment, last_updated FROM resource_versions "
     "WHERE (type, id, version) > (?1, ?2, ?4) ORDER BY type, id, version LIMIT ?3"},
    {"read_index_fingerprint", "SELECT register_fingerprint FROM index_state WHERE id = 1"},
    {"write_index_fingerprint",
     "INSERT INTO index_state(id, register_fingerprint) VALUES(1, ?1) "
     "ON CONFLICT(id) DO UPDATE SET register_fingerprint = excluded.register_fingerprint"},
}};

#undef KURA_VERSION_COLUMNS

// Maps an SQLite result code to a Status with a client-safe message; the SQLite text goes to
// internal_detail only.
Status SqliteError(int rc, sqlite3* db, std::string_view what) {
  std::string detail = "sqlite ";
  detail += what;
  detail += ": ";
  const char* errstr = sqlite3_errstr(rc);
  detail += errstr;
  if (db != nullptr) {
    const char* msg = sqlite3_errmsg(db);
    if (msg != nullptr && std::strcmp(msg, errstr) != 0) {
      detail += " (";
      detail += msg;
      detail += ")";
    }
  }
  detail += " [rc=" + std::to_string(rc) + "]";
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL:
    case SQLITE_READONLY:
    case SQLITE_INTERRUPT:
    case SQLITE_NOLFS:
      return UnavailableError("storage error", std::move(detail));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return DataLossError("storage error", std::move(detail));
    default:
      return InternalError("storage error", std::move(detail));
  }
}

Status ErrnoError(std::string_view what, int err) {
  return UnavailableError("storage error", std::string(what) + ": " + std::strerror(err));
}

// Makes `path` owner-only. Missing files are fine (SQLite creates -wal/-shm lazily, with the
// database file's mode).
Status ChmodOwnerOnlyIfExists(const std::filesystem::path& path) {
  if (::chmod(path.c_str(), 0600) != 0 && errno != ENOENT) {
    return ErrnoError("chmod database companion file", errno);
  }
  return Status();
}

std::filesystem::path WithSuffix(const std::filesystem::path& path, const char* suffix) {
  std::filesystem::path out = path;
  out += suffix;
  return out;
}

// Creates the database file 0600 before SQLite opens it (so the umask does not matter; SQLite
// gives -wal and -shm the database file's mode) and tightens existing files.
Status PrepareDatabaseFiles(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("open database file", errno);
  struct stat st {};
  int err = 0;
  if (::fstat(fd, &st) != 0) {
    err = errno;
  } else if (!S_ISREG(st.st_mode)) {
    err = EINVAL;
  } else if ((st.st_mode & 07777) != 0600) {
    if ((st.st_mode & 077) != 0) log::Warn("store_permissions_tightened", {{"file", "database"}});
    if (::fchmod(fd, 0600) != 0) err = errno;
  }
  ::close(fd);
  if (err != 0) return ErrnoError("prepare database file", err);
  KURA_RETURN_IF_ERROR(ChmodOwnerOnlyIfExists(WithSuffix(path, "-wal")));
  return ChmodOwnerOnlyIfExists(WithSuffix(path, "-shm"));
}

}  // namespace

// One sqlite3 handle with its cache of prepared statements. Thread-compatible: the store hands a
// connection to one thread at a time.
class SqliteStore::Connection {
 public:
  // kReadOnly: a connection of a read-only store (SqliteOptions::read_only).
  enum class Role { kWriter, kReader, kCheckpointer, kReadOnly };

  static StatusOr<std::unique_ptr<Connection>> Open(const std::filesystem::path& path, Role role) {
    sqlite3* db = nullptr;
    const int access = role == Role::kReadOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    int rc = sqlite3_open_v2(path.c_str(), &db, access | SQLITE_OPEN_NOMUTEX, BufferedWalVfsName());
    // The handle exists even when opening failed and must be closed either way.
    std::unique_ptr<Connection> conn(new Connection(db));
    if (rc != SQLITE_OK) return SqliteError(rc, db, "open");
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, kBusyTimeoutMs);
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
    if (role == Role::kWriter) {
      KURA_ASSIGN_OR_RETURN(std::string mode, conn->QueryText("PRAGMA journal_mode=WAL"));
      if (mode != "wal") {
        return UnavailableError("storage error", "could not enable WAL, journal mode " + mode);
      }
      // A 16 MiB page cache (cache_size=-16384: a negative size is in KiB): a group holding a
      // transaction Bundle of 1,000 resources changes about 4 MiB of pages, which SQLite's default
      // 2 MiB cache spilled into the WAL one page per write before COMMIT, then read back to
      // checksum them again (two system calls per page: 40,000 of each in 5 s of the transaction
      // benchmark, against about 3,000 at 16 MiB). Much larger costs every small transaction (an
      // audited read is one) a walk of the cache's hash table when SQLite trims it: a tenth of the
      // writer's time at 64 MiB. Temporary storage in memory: every write runs in a savepoint,
      // whose sub-journal (the original of each page it changes) otherwise spills to a temporary
      // file past 64 KiB, and a group of creates then cost one file created, written page by page
      // and unlinked. Secure delete (Debian's build has it on already; this does not depend on the
      // build): what a write deletes or replaces is zeroed, so index rows of a class the data
      // register has since made blind, and old versions' rows, leave no value behind in free space.
      KURA_RETURN_IF_ERROR(conn->ExecScript(
          "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
          "PRAGMA temp_store=MEMORY; PRAGMA secure_delete=ON; PRAGMA cache_size=-16384"));
    } else if (role == Role::kCheckpointer) {
      KURA_RETURN_IF_ERROR(conn->ExecScript("PRAGMA synchronous=FULL"));
    } else if (role == Role::kReadOnly) {
      KURA_RETURN_IF_ERROR(conn->ExecScript("PRAGMA query_only=1"));
    } else {
      // Readers map the database file: every commit (an audited read is one) makes the other
      // connections drop their page caches, so without a mapping each read the record cache
      // misses would copy its pages out of the OS cache again.
      KURA_RETURN_IF_ERROR(
          conn->ExecScript("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA query_only=1; "
                           "PRAGMA mmap_size=1073741824"));
    }
    return conn;
  }

  ~Connection() {
    for (sqlite3_stmt*& stmt : stmts_) {
      sqlite3_finalize(stmt);
      stmt = nullptr;
    }
    int rc = sqlite3_close(db_);
    if (rc != SQLITE_OK) {
      log::Error("store_close_failed",
                 {{"detail", SqliteError(rc, db_, "close").internal_detail()}});
    }
  }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* db() const { return db_; }

  // The cached statement for `sql`, preparing it on first use.
  StatusOr<sqlite3_stmt*> Get(Sql sql) {
    sqlite3_stmt*& slot = stmts_[static_cast<size_t>(sql)];
    if (slot == nullptr) {
      const SqlText& text = kSql[static_cast<size_t>(sql)];
      int rc = sqlite3_prepare_v3(db_, text.text, -1, SQLITE_PREPARE_PERSISTENT, &slot, nullptr);
      if (rc != SQLITE_OK) {
        sqlite3_finalize(slot);
        slot = nullptr;
        return SqliteError(rc, db_, std::string("prepare ") + text.name);
      }
    }
    return slot;
  }

  // Runs constant SQL text (DDL, pragmas) that takes no parameters.
  Status ExecScript(const char* sql) {
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    return rc == SQLITE_OK ? Status() : SqliteError(rc, db_, "exec");
  }

  // Runs a constant statement returning one text value (e.g. a pragma).
  StatusOr<std::string> QueryText(const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr);
    if (rc != SQLITE_OK) return SqliteError(rc, db_, "prepare");
    rc = sqlite3_step(stmt);
    std::string out;
    if (rc == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      if (text != nullptr) out = reinterpret_cast<const char*>(text);
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SqliteError(rc, db_, "query");
    return out;
  }

  bool InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

  // Ends a transaction that is still open after a failure; errors only get logged because the
  // caller already reports the original one.
  void RollbackIfActive() {
    if (!InTransaction()) return;
    int rc = sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
      log::Error("store_rollback_failed",
                 {{"detail", SqliteError(rc, db_, "rollback").internal_detail()}});
    }
  }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}

  sqlite3* db_;
  std::array<sqlite3_stmt*, static_cast<size_t>(Sql::kCount)> stmts_{};
};

namespace {

// One use of a cached statement: binds, steps, reads columns and resets it (releasing its
// snapshot and the bound buffers, which must outlive this object) on destruction. The first bind
// or prepare error is reported by Step().
class Stmt {
 public:
  template <typename Conn>
  Stmt(Conn& conn, Sql sql) : db_(conn.db()), name_(kSql[static_cast<size_t>(sql)].name) {
    StatusOr<sqlite3_stmt*> stmt = conn.Get(sql);
    if (stmt.ok()) {
      stmt_ = *stmt;
    } else {
      status_ = stmt.status();
    }
  }
  // A statement prepared for this one use (its text varies), finalized on destruction.
  Stmt(sqlite3* db, const std::string& text, const char* name)
      : db_(db), name_(name), owned_(true) {
    int rc = sqlite3_prepare_v2(db, text.c_str(), -1, &stmt_, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt_);
      stmt_ = nullptr;
      status_ = SqliteError(rc, db_, std::string("prepare ") + name_);
    }
  }
  ~Stmt() {
    if (stmt_ == nullptr) return;
    if (owned_) {
      sqlite3_finalize(stmt_);
    } else {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  void BindInt64(int index, int64_t value) {
    if (stmt_ != nullptr) Check(sqlite3_bind_int64(stmt_, index, value));
  }
  void BindDouble(int index, double value) {
    if (stmt_ != nullptr) Check(sqlite3_bind_double(stmt_, index, value));
  }
  void BindText(int index, std::string_view value) {
    if (stmt_ == nullptr) return;
    // A null pointer would bind SQL NULL; an empty string_view may have one.
    const char* data = value.data() != nullptr ? value.data() : "";
    Check(sqlite3_bind_text64(stmt_, index, data, value.size(), SQLITE_STATIC, SQLITE_UTF8));
  }
  void BindBlob(int index, std::string_view value) {
    if (stmt_ == nullptr) return;
    if (value.empty()) {
      Check(sqlite3_bind_zeroblob(stmt_, index, 0));
    } else {
      Check(sqlite3_bind_blob64(stmt_, index, value.data(), value.size(), SQLITE_STATIC));
    }
  }

  // True when a row is available, false when done.
  StatusOr<bool> Step() {
    if (!status_.ok()) return status_;
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(rc, db_, std::string("step ") + name_);
  }
  // Ready to step from the start again, keeping the bindings not bound anew.
  void Reset() {
    if (stmt_ != nullptr) sqlite3_reset(stmt_);
  }
  // Steps a statement that returns no rows.
  Status Run() {
    StatusOr<bool> row = Step();
    return row.status();
  }

  int64_t Int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const { return sqlite3_column_double(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string Text(int col) const {
    const unsigned char* text = sqlite3_column_text(stmt_, col);
    int size = sqlite3_column_bytes(stmt_, col);
    return text == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(text), size);
  }
  std::string Blob(int col) const {
    const void* blob = sqlite3_column_blob(stmt_, col);
    int size = sqlite3_column_bytes(stmt_, col);
    return blob == nullptr ? std::string() : std::string(static_cast<const char*>(blob), size);
  }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && status_.ok()) {
      status_ = SqliteError(rc, db_, std::string("bind ") + name_);
    }
  }

  sqlite3* db_;
  const char* name_;
  bool owned_ = false;
  sqlite3_stmt* stmt_ = nullptr;
  Status status_;
};

// Reads a row laid out as KURA_VERSION_COLUMNS.
ResourceVersion ReadVersionRow(const Stmt& row) {
  ResourceVersion v;
  v.type = row.Text(0);
  v.id = row.Text(1);
  v.version = row.Int64(2);
  v.last_updated = FromMicros(row.Int64(3));
  v.deleted = row.Int64(4) != 0;
  v.compartment = row.Text(5);
  v.payload = row.Blob(6);
  v.sequence = row.Int64(7);
  return v;
}

// audit_log.patients: the ids as a JSON array of strings (SQLite's json_each reads it to fold).
// Written on the writer thread for every record, so without building a JSON tree. The audit log
// refuses a record whose text is not UTF-8, so escaping is all the ids need.
std::string EncodePatientIds(const std::vector<std::string>& ids) {
  std::string out = "[";
  for (const std::string& id : ids) {
    if (out.size() > 1) out += ',';
    out += '"';
    log::AppendJsonEscaped(out, id);
    out += '"';
  }
  out += ']';
  return out;
}

StatusOr<std::vector<std::string>> DecodePatientIds(std::string_view text) {
  nlohmann::json parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  std::vector<std::string> ids;
  if (!parsed.is_array()) return DataLossError("audit row patients are not a JSON array");
  ids.reserve(parsed.size());
  for (const nlohmann::json& id : parsed) {
    if (!id.is_string()) return DataLossError("audit row patients are not a JSON array");
    ids.push_back(id.get<std::string>());
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

// Reads a row laid out as KURA_AUDIT_COLUMNS.
StatusOr<AuditRow> ReadAuditRow(const Stmt& row) {
  AuditRow r;
  r.sequence = static_cast<uint64_t>(row.Int64(0));
  r.time_us = row.Int64(1);
  r.category = row.Text(2);
  r.action = row.Text(3);
  r.outcome = static_cast<int>(row.Int64(4));
  r.actor = row.Text(5);
  r.sealed = row.Blob(6);
  r.leaf_hash = row.Blob(7);
  r.chain_hash = row.Blob(8);
  // A column that does not decode is handed on as such: verification reports the row, where a
  // read error would end it.
  StatusOr<std::vector<std::string>> patients = DecodePatientIds(row.Text(9));
  if (patients.ok()) {
    r.patient_ids = std::move(*patients);
  } else {
    r.patients_readable = false;
  }
  return r;
}

AuditStatement ReadAuditStatementRow(const Stmt& row) {
  AuditStatement s;
  s.kind =
      row.Int64(0) == 1 ? AuditStatement::Kind::kPruneAnchor : AuditStatement::Kind::kCheckpoint;
  s.tree_size = static_cast<uint64_t>(row.Int64(1));
  s.time_us = row.Int64(2);
  s.note = row.Text(3);
  return s;
}

// Sequences travel as SQLite's signed 64-bit integers.
constexpr uint64_t kMaxSequence = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// What a row reader gives per row: its result, or the value inside its StatusOr.
template <typename T>
struct RowValue {
  using type = T;
};
template <typename T>
struct RowValue<StatusOr<T>> {
  using type = T;
};

// Steps `query` to its end and returns read(row) for every row, in order; a reader that returns
// a StatusOr stops it at its first error.
template <typename Read>
auto ReadAllRows(Stmt& query, Read read)
    -> StatusOr<std::vector<typename RowValue<std::invoke_result_t<Read, const Stmt&>>::type>> {
  using Result = std::invoke_result_t<Read, const Stmt&>;
  std::vector<typename RowValue<Result>::type> out;
  while (true) {
    KURA_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) return out;
    if constexpr (std::is_same_v<Result, typename RowValue<Result>::type>) {
      out.push_back(read(query));
    } else {
      KURA_ASSIGN_OR_RETURN(auto value, read(query));
      out.push_back(std::move(value));
    }
  }
}

template <typename Conn>
Status InsertAuditNode(Conn& conn, const AuditNode& node) {
  Stmt insert(conn, Sql::kInsertAuditNode);
  insert.BindInt64(1, node.level);
  insert.BindInt64(2, static_cast<int64_t>(node.index));
  insert.BindBlob(3, node.hash);
  return insert.Run();
}

template <typename Conn>
Status InsertAuditStatement(Conn& conn, const AuditStatement& statement) {
  Stmt insert(conn, Sql::kInsertAuditStatement);
  insert.BindInt64(1, static_cast<int64_t>(statement.kind));
  insert.BindInt64(2, static_cast<int64_t>(statement.tree_size));
  insert.BindInt64(3, statement.time_us);
  insert.BindText(4, statement.note);
  return insert.Run();
}

StoredDataKey ReadDataKeyRow(const Stmt& row) {
  StoredDataKey key;
  key.key_id = std::bit_cast<uint64_t>(row.Int64(0));
  key.scope = row.Text(1);
  key.kek_version = static_cast<uint32_t>(row.Int64(2));
  key.wrapped = row.Blob(3);
  key.created = FromMicros(row.Int64(4));
  return key;
}

Status ValidateBatch(const WriteBatch& batch) {
  std::set<std::pair<std::string_view, std::string_view>> seen;
  for (const ResourceVersion& r : batch.resources) {
    if (r.type.empty() || r.id.empty()) {
      return InvalidArgumentError("resource type and id must not be empty");
    }
    if (r.version < 1) return InvalidArgumentError("resource version must be at least 1");
    if (!r.deleted) KURA_RETURN_IF_ERROR(CheckIndexRows(r.index));
    if (!seen.emplace(r.type, r.id).second) {
      return InvalidArgumentError("a resource appears more than once in one batch");
    }
  }
  for (const IndexRewrite& r : batch.index_rewrites) {
    if (r.type.empty() || r.id.empty()) {
      return InvalidArgumentError("resource type and id must not be empty");
    }
    if (r.version < 1) return InvalidArgumentError("resource version must be at least 1");
    KURA_RETURN_IF_ERROR(CheckIndexRows(r.index));
    if (!seen.emplace(r.type, r.id).second) {
      return InvalidArgumentError("a resource appears more than once in one batch");
    }
  }
  return Status();
}

// Writes the search_rows row of one current resource: `encoded` is EncodeIndexRows of its rows.
template <typename Conn>
Status UpsertSearchRows(Conn& conn, std::string_view type, std::string_view id,
                        std::string_view compartment, std::string_view encoded) {
  Stmt upsert(conn, Sql::kUpsertSearchRows);
  upsert.BindText(1, type);
  upsert.BindText(2, id);
  upsert.BindText(3, compartment);
  upsert.BindBlob(4, encoded);
  return upsert.Run();
}

// Schema version 6: each resource's search_index rows become its search_rows value, then the
// table goes.
template <typename Conn>
Status MoveIndexRowsToSearchRows(Conn& conn) {
  Stmt rows(conn.db(),
            "SELECT type, id, param, key, key2, low, high, typeof(key) = 'blob', compartment "
            "FROM search_index ORDER BY type, id",
            "read search_index");
  std::string type;
  std::string id;
  std::string compartment;
  std::vector<IndexEntry> entries;
  auto flush = [&]() -> Status {
    if (entries.empty()) return Status();
    Status written = UpsertSearchRows(conn, type, id, compartment, EncodeIndexRows(entries));
    entries.clear();
    return written;
  };
  while (true) {
    KURA_ASSIGN_OR_RETURN(bool row, rows.Step());
    if (!row) break;
    std::string row_type = rows.Text(0);
    std::string row_id = rows.Text(1);
    if (row_type != type || row_id != id) {
      KURA_RETURN_IF_ERROR(flush());
      type = std::move(row_type);
      id = std::move(row_id);
      compartment = rows.Text(8);
    }
    IndexEntry e;
    e.param = rows.Text(2);
    e.blind = rows.Int64(7) != 0;
    e.key = e.blind ? rows.Blob(3) : rows.Text(3);
    e.key2 = e.blind ? rows.Blob(4) : rows.Text(4);
    // Version 3 kept 0..0 for rows without a range; a range row of exactly 0..0 reads the same.
    const double low = rows.Double(5);
    const double high = rows.Double(6);
    if (low != 0 || high != 0) {
      e.low = low;
      e.high = high;
    }
    entries.push_back(std::move(e));
  }
  KURA_RETURN_IF_ERROR(flush());
  return conn.ExecScript("DROP TABLE search_index");
}

// One fold block's records: their sequence and time bounds and what they name.
struct AuditFoldBlock {
  int64_t first = -1;  // -1: no records.
  int64_t last = -1;
  int64_t min_time_us = 0;
  int64_t max_time_us = 0;
  AuditPostings postings;

  // Takes in a record (in ascending sequence order) and files it under its actor; its patients
  // go in with AddAuditPosting.
  void AddRecord(int64_t sequence, int64_t time_us, std::string_view actor) {
    if (first < 0) {
      first = sequence;
      min_time_us = max_time_us = time_us;
    }
    last = sequence;
    min_time_us = std::min(min_time_us, time_us);
    max_time_us = std::max(max_time_us, time_us);
    AddAuditPosting(postings, AuditPostingKind::kActor, actor, static_cast<uint64_t>(sequence));
  }
};

// The records with sequence numbers in [from, to] and the patients and actors they name. A
// patients column that is not JSON names none: the audit layer reports the column itself.
template <typename Conn>
StatusOr<AuditFoldBlock> CollectAuditFoldBlock(Conn& conn, int64_t from, int64_t to) {
  AuditFoldBlock block;
  Stmt rows(conn, Sql::kAuditFoldRecords);
  rows.BindInt64(1, from);
  rows.BindInt64(2, to);
  while (true) {
    KURA_ASSIGN_OR_RETURN(bool row, rows.Step());
    if (!row) break;
    const int64_t sequence = rows.Int64(0);
    if (sequence != block.last) block.AddRecord(sequence, rows.Int64(2), rows.Text(1));
    if (!rows.IsNull(3)) {
      AddAuditPosting(block.postings, AuditPostingKind::kPatient, rows.Text(3),
                      static_cast<uint64_t>(sequence));
    }
  }
  return block;
}

// One stored posting list of a block; `sequences` is nullopt when it does not decode.
struct StoredAuditPostingList {
  AuditPostingKind kind = AuditPostingKind::kPatient;
  std::string key;
  std::optional<std::vector<uint64_t>> sequences;
};

// Every posting list of the block that starts at `first_seq`.
template <typename Conn>
StatusOr<std::vector<StoredAuditPostingList>> ReadAuditPostingLists(Conn& conn, int64_t first_seq) {
  std::vector<StoredAuditPostingList> lists;
  Stmt read(conn, Sql::kAuditPostingsOfBlock);
  read.BindInt64(1, first_seq);
  while (true) {
    KURA_ASSIGN_OR_RETURN(bool row, read.Step());
    if (!row) break;
    lists.push_back({static_cast<AuditPostingKind>(read.Int64(0)), read.Text(1),
                     DecodeAuditPostingSequences(static_cast<uint64_t>(first_seq), read.Blob(2))});
  }
  return lists;
}

// Stores one posting list of the block that starts at `first_seq`, in place of the one there.
template <typename Conn>
Status WriteAuditPostingList(Conn& conn, int64_t first_seq, AuditPostingKind kind,
                             std::string_view key, const std::vector<uint64_t>& sequences) {
  const std::string value =
      EncodeAuditPostingSequences(static_cast<uint64_t>(first_seq), sequences);
  Stmt insert(conn, Sql::kInsertAuditPosting);
  insert.BindInt64(1, first_seq);
  insert.BindInt64(2, static_cast<int64_t>(kind));
  insert.BindText(3, key);
  insert.BindBlob(4, value);
  return insert.Run();
}

// Stores `postings` as the posting lists of the block that starts at `first_seq`.
template <typename Conn>
Status WriteAuditPostings(Conn& conn, int64_t first_seq, const AuditPostings& postings) {
  for (const auto& [key, sequences] : postings) {
    KURA_RETURN_IF_ERROR(WriteAuditPostingList(conn, first_seq, key.first, key.second, sequences));
  }
  return Status();
}

// The block `own` makes when it holds exactly the records after `through` (what
// CollectAuditFoldBlock would read back); nullopt when it does not.
template <typename Conn>
StatusOr<std::optional<AuditFoldBlock>> OwnAuditFoldBlock(Conn& conn, int64_t through,
                                                          const std::vector<AuditFoldEntry>& own) {
  if (own.empty()) return std::optional<AuditFoldBlock>();
  Stmt span(conn, Sql::kAuditUnfoldedSpan);
  span.BindInt64(1, through);
  KURA_ASSIGN_OR_RETURN(bool row, span.Step());
  // Inserted in ascending order, so first, last and count pin every sequence in between.
  if (!row || span.IsNull(0) || span.IsNull(1) || span.Int64(0) != own.front().sequence ||
      span.Int64(1) != own.back().sequence ||
      own.back().sequence - own.front().sequence + 1 != static_cast<int64_t>(own.size())) {
    return std::optional<AuditFoldBlock>();
  }
  AuditFoldBlock block;
  for (const AuditFoldEntry& entry : own) {
    block.AddRecord(entry.sequence, entry.time_us, entry.actor);
    for (const std::string& patient : entry.patient_ids) {
      AddAuditPosting(block.postings, AuditPostingKind::kPatient, patient,
                      static_cast<uint64_t>(entry.sequence));
    }
  }
  return std::optional<AuditFoldBlock>(std::move(block));
}

// Files the records after audit_index_fold.through_seq as one block: its posting lists, its
// audit_time_blocks row, and the fold's new end. `own`: the records this writer inserted since
// the last fold, used instead of reading the rows back when they are exactly those records.
template <typename Conn>
Status FoldUnfoldedAuditRecords(Conn& conn, const std::vector<AuditFoldEntry>& own) {
  int64_t through = 0;
  {
    Stmt query(conn, Sql::kAuditFoldThrough);
    KURA_ASSIGN_OR_RETURN(bool row, query.Step());
    // Without the row nothing was ever folded here; verification reports it.
    if (!row || query.IsNull(0)) return Status();
    through = query.Int64(0);
  }
  KURA_ASSIGN_OR_RETURN(std::optional<AuditFoldBlock> own_block,
                        OwnAuditFoldBlock(conn, through, own));
  AuditFoldBlock block;
  if (own_block) {
    block = std::move(*own_block);
  } else {
    KURA_ASSIGN_OR_RETURN(
        block, CollectAuditFoldBlock(conn, through + 1, static_cast<int64_t>(kMaxSequence)));
  }
  if (block.first < 0) return Status();
  KURA_RETURN_IF_ERROR(WriteAuditPostings(conn, block.first, block.postings));
  {
    Stmt insert(conn, Sql::kInsertAuditTimeBlock);
    insert.BindInt64(1, block.first);
    insert.BindInt64(2, block.last);
    insert.BindInt64(3, block.min_time_us);
    insert.BindInt64(4, block.max_time_us);
    KURA_RETURN_IF_ERROR(insert.Run());
  }
  Stmt advance(conn, Sql::kAdvanceAuditIndexFold);
  advance.BindInt64(1, block.last);
  return advance.Run();
}

// Schema version 10: the posting lists of every folded block, from the records it covers (a
// block whose first records were pruned keeps its first_seq as the key), then the per-record
// tables go.
template <typename Conn>
Status FileFoldedAuditRecordsAsPostings(Conn& conn) {
  Stmt blocks(conn.db(),
              "SELECT first_seq, last_seq FROM audit_time_blocks WHERE first_seq <= "
              "(SELECT through_seq FROM audit_index_fold) ORDER BY first_seq",
              "read audit_time_blocks");
  while (true) {
    KURA_ASSIGN_OR_RETURN(bool row, blocks.Step());
    if (!row) break;
    const int64_t first_seq = blocks.Int64(0);
    KURA_ASSIGN_OR_RETURN(AuditFoldBlock block,
                          CollectAuditFoldBlock(conn, first_seq, blocks.Int64(1)));
    KURA_RETURN_IF_ERROR(WriteAuditPostings(conn, first_seq, block.postings));
  }
  return conn.ExecScript("DROP TABLE audit_patients; DROP TABLE audit_actors;");
}

// Applies schema migrations inside the open transaction on `conn`.
template <typename Conn>
Status MigrateInTransaction(Conn& conn) {
  KURA_RETURN_IF_ERROR(conn.ExecScript(kCreateSchemaMigrations));
  int64_t current = 0;
  {
    Stmt query(conn, Sql::kSchemaVersion);
    KURA_ASSIGN_OR_RETURN(bool row, query.Step());
    if (row) current = query.Int64(0);
  }
  const int64_t known = static_cast<int64_t>(kMigrations.size());
  if (current > known) {
    return FailedPreconditionError("the database was written by a newer version of Kura",
                                   "schema version " + std::to_string(current) +
                                       ", this build knows " + std::to_string(known));
  }
  for (int64_t version = current + 1; version <= known; ++version) {
    KURA_RETURN_IF_ERROR(conn.ExecScript(kMigrations[static_cast<size_t>(version - 1)]));
    if (version == kSearchRowsMigration) KURA_RETURN_IF_ERROR(MoveIndexRowsToSearchRows(conn));
    if (version == kAuditPostingsMigration) {
      KURA_RETURN_IF_ERROR(FileFoldedAuditRecordsAsPostings(conn));
    }
    Stmt insert(conn, Sql::kInsertMigration);
    insert.BindInt64(1, version);
    insert.BindInt64(2, ToMicros(Clock::System().Now()));
    KURA_RETURN_IF_ERROR(insert.Run());
  }
  if (current < known) {
    log::Info("store_schema_migrated", {{"from_version", current}, {"to_version", known}});
  }
  return Status();
}

}  // namespace

// A unit of write work waiting in the queue. `work` runs on the writer thread inside its own
// savepoint; `finish` runs on the writer thread once the group is durable (or failed), with the
// unit's own result.
// `audit`, when set, is handed to the AuditAppender after `work` succeeded, inside the same
// savepoint. A unit without a savepoint (an audit record alone) must not change anything when it
// fails, which AuditAppender::Append guarantees.
struct SqliteStore::PendingWrite {
  std::function<Status(Connection&)> work;
  std::function<void(Status)> finish;
  const AuditDraft* audit = nullptr;
  bool savepoint = true;
};

// A durable group whose search-index changes are still to be applied: `index` holds views into
// the batches `group` owns.
struct SqliteStore::Publication {
  std::vector<PendingWrite> group;
  std::vector<Status> statuses;
  std::vector<IndexChange> index;
};

// A read connection checked out of the pool for the lifetime of this object.
class SqliteStore::ReaderLease {
 public:
  explicit ReaderLease(SqliteStore& store) : store_(store), conn_(store.AcquireReader()) {}
  ~ReaderLease() { store_.ReleaseReader(conn_); }
  ReaderLease(const ReaderLease&) = delete;
  ReaderLease& operator=(const ReaderLease&) = delete;
  Connection& conn() { return *conn_; }

 private:
  SqliteStore& store_;
  Connection* conn_;
};

SqliteStore::SqliteStore(const SqliteOptions& options) : options_(options) {}

SqliteStore::~SqliteStore() {
  Close();
  // Readers first, so the writer's close is the last one and checkpoints the WAL.
  free_readers_.clear();
  readers_.clear();
  checkpoint_conn_.reset();
  writer_conn_.reset();
}

void SqliteStore::Close() {
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    closing_ = true;
  }
  write_queued_.notify_one();
  if (writer_thread_.joinable()) writer_thread_.join();
  // After the writer: it may publish until its last group.
  {
    std::lock_guard<std::mutex> lock(publish_mu_);
    publish_stop_ = true;
  }
  publish_queued_.notify_one();
  if (publisher_thread_.joinable()) publisher_thread_.join();
  {
    std::lock_guard<std::mutex> lock(checkpoint_mu_);
    checkpoint_stop_ = true;
  }
  checkpoint_wanted_.notify_one();
  if (checkpoint_thread_.joinable()) checkpoint_thread_.join();
}

// Called by SQLite on the writer thread after each commit with the WAL's size in pages.
int SqliteStore::OnWalCommit(void* self, sqlite3* db, const char*, int wal_pages) {
  auto* store = static_cast<SqliteStore*>(self);
  const int64_t threshold = store->options_.checkpoint_wal_pages;
  if (wal_pages >= kWriterCheckpointFactor * threshold) {
    // Under sustained writes the background checkpoint may never see the WAL's end, and the WAL
    // only starts over once a checkpoint has. Here no commit can slip in meanwhile, and little is
    // left to copy, so this one catches up and bounds the WAL.
    int wal_frames = 0;
    int copied = 0;
    sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &wal_frames, &copied);
    store->checkpoints_.fetch_add(1, std::memory_order_relaxed);
    return SQLITE_OK;
  }
  if (wal_pages >= threshold) {
    {
      std::lock_guard<std::mutex> lock(store->checkpoint_mu_);
      store->checkpoint_requested_ = true;
    }
    store->checkpoint_wanted_.notify_one();
  }
  return SQLITE_OK;
}

// Copies committed WAL frames into the database file off the writer's path. PASSIVE never
// blocks the writer or readers; once a checkpoint has caught up, the writer's next transaction
// starts the WAL again from its beginning, so the file stops growing.
void SqliteStore::CheckpointLoop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(checkpoint_mu_);
      checkpoint_wanted_.wait(lock, [this] { return checkpoint_stop_ || checkpoint_requested_; });
      if (checkpoint_stop_) return;
      checkpoint_requested_ = false;
    }
    int wal_frames = 0;
    int copied = 0;
    const int rc = sqlite3_wal_checkpoint_v2(checkpoint_conn_->db(), nullptr,
                                             SQLITE_CHECKPOINT_PASSIVE, &wal_frames, &copied);
    checkpoints_.fetch_add(1, std::memory_order_relaxed);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      Status error = SqliteError(rc, checkpoint_conn_->db(), "wal checkpoint");
      log::Error("store_checkpoint_failed", {{"detail", error.internal_detail()}});
    }
  }
}

int64_t SqliteStore::SchemaVersion() { return static_cast<int64_t>(kMigrations.size()); }

StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const SqliteOptions& options) {
  if (options.path.empty()) return InvalidArgumentError("database path must not be empty");
  if (options.read_connections < 1) {
    return InvalidArgumentError("read_connections must be at least 1");
  }
  if (options.group_commit_max_batch < 1) {
    return InvalidArgumentError("group_commit_max_batch must be at least 1");
  }
  if (options.checkpoint_wal_pages < 1) {
    return InvalidArgumentError("checkpoint_wal_pages must be at least 1");
  }
  if (options.audit_index_fold_records < 1) {
    return InvalidArgumentError("audit_index_fold_records must be at least 1");
  }
  if (options.read_only) return OpenReadOnly(options);
  KURA_RETURN_IF_ERROR(PrepareDatabaseFiles(options.path));

  std::unique_ptr<SqliteStore> store(new SqliteStore(options));
  KURA_ASSIGN_OR_RETURN(store->writer_conn_,
                        Connection::Open(options.path, Connection::Role::kWriter));
  Connection& writer = *store->writer_conn_;
  KURA_RETURN_IF_ERROR(writer.ExecScript("BEGIN IMMEDIATE"));
  Status migrated = MigrateInTransaction(writer);
  if (migrated.ok()) migrated = writer.ExecScript("COMMIT");
  if (!migrated.ok()) {
    writer.RollbackIfActive();
    return migrated;
  }
  KURA_RETURN_IF_ERROR(store->LoadSearchIndex());
  {
    Stmt unfolded(writer, Sql::kUnfoldedAuditRecords);
    KURA_ASSIGN_OR_RETURN(bool row, unfolded.Step());
    if (row) store->unfolded_audit_records_ = unfolded.Int64(0);
  }
  // SQLite already created these with the database file's mode; make sure anyway.
  KURA_RETURN_IF_ERROR(ChmodOwnerOnlyIfExists(WithSuffix(options.path, "-wal")));
  KURA_RETURN_IF_ERROR(ChmodOwnerOnlyIfExists(WithSuffix(options.path, "-shm")));

  KURA_RETURN_IF_ERROR(store->OpenReaders());
  // The writer never checkpoints (that would hold every queued write behind a database-file
  // fsync); the checkpoint thread does, when the WAL passes checkpoint_wal_pages.
  KURA_ASSIGN_OR_RETURN(store->checkpoint_conn_,
                        Connection::Open(options.path, Connection::Role::kCheckpointer));
  SqliteStore* raw = store.get();
  sqlite3_wal_hook(writer.db(), &SqliteStore::OnWalCommit, raw);
  store->checkpoint_thread_ = std::thread([raw] {
    NameThisThread("kura-checkpoint");
    raw->CheckpointLoop();
  });
  store->publisher_thread_ = std::thread([raw] {
    NameThisThread("kura-publish");
    raw->PublishLoop();
  });
  store->writer_thread_ = std::thread([raw] {
    NameThisThread("kura-writer");
    raw->WriterLoop();
  });
  return store;
}

StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::OpenReadOnly(const SqliteOptions& options) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(options.path, ec)) {
    return FailedPreconditionError("storage error", "no database file to open read-only");
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(options));
  store->closing_ = true;  // No writer thread: nothing is ever queued.
  KURA_ASSIGN_OR_RETURN(store->writer_conn_,
                        Connection::Open(options.path, Connection::Role::kReadOnly));
  {
    Stmt query(*store->writer_conn_, Sql::kSchemaVersion);
    StatusOr<bool> row = query.Step();
    const int64_t version = row.ok() && *row ? query.Int64(0) : -1;
    if (version != SchemaVersion()) {
      return FailedPreconditionError(
          "the database is not of this version's schema, and a read-only open cannot migrate it",
          "schema version " + std::to_string(version) + ", this build knows " +
              std::to_string(SchemaVersion()));
    }
  }
  KURA_RETURN_IF_ERROR(store->LoadSearchIndex());
  KURA_RETURN_IF_ERROR(store->OpenReaders());
  return store;
}

Status SqliteStore::OpenReaders() {
  const Connection::Role role =
      options_.read_only ? Connection::Role::kReadOnly : Connection::Role::kReader;
  readers_.reserve(static_cast<size_t>(options_.read_connections));
  for (int i = 0; i < options_.read_connections; ++i) {
    KURA_ASSIGN_OR_RETURN(std::unique_ptr<Connection> reader,
                          Connection::Open(options_.path, role));
    free_readers_.push_back(reader.get());
    readers_.push_back(std::move(reader));
  }
  return Status();
}

Status SqliteStore::LoadSearchIndex() {
  if (!options_.search_index) return Status();
  Connection& conn = *writer_conn_;
  KURA_RETURN_IF_ERROR(conn.ExecScript("BEGIN"));
  Stmt query(conn, Sql::kLoadSearchRows);
  // Applied in slices, so the decoded rows of a large database never sit in memory all at once.
  constexpr size_t kSlice = 4096;
  struct Loaded {
    std::string type;
    std::string id;
    std::string compartment;
    std::vector<IndexEntry> rows;
  };
  std::vector<Loaded> slice;
  std::vector<IndexChange> changes;
  auto apply = [&] {
    changes.clear();
    for (const Loaded& l : slice) {
      changes.push_back(IndexChange{l.type, l.id, l.compartment, false, &l.rows});
    }
    search_index_.Apply(changes);
    slice.clear();
  };
  Status status;
  while (status.ok()) {
    StatusOr<bool> row = query.Step();
    if (!row.ok()) {
      status = row.status();
      break;
    }
    if (!*row) break;
    StatusOr<std::vector<IndexEntry>> decoded = DecodeIndexRows(query.Blob(3));
    if (!decoded.ok()) {
      status = decoded.status();
      break;
    }
    slice.push_back(Loaded{query.Text(0), query.Text(1), query.Text(2), *std::move(decoded)});
    if (slice.size() == kSlice) apply();
  }
  if (status.ok()) apply();
  conn.RollbackIfActive();
  return status;
}

void SqliteStore::Enqueue(PendingWrite write) {
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    if (!closing_) {
      write_queue_.push_back(std::move(write));
      write_queued_.notify_one();
      return;
    }
  }
  write.finish(options_.read_only
                   ? FailedPreconditionError("storage error", "the store is open read-only")
                   : UnavailableError("storage error", "the store is closed"));
}

Status SqliteStore::RunAndWait(std::function<Status(Connection&)> work) {
  std::promise<Status> result;
  std::future<Status> ready = result.get_future();
  Enqueue({std::move(work), [&result](Status s) { result.set_value(std::move(s)); }});
  return ready.get();
}

// Group commit: while one group's transaction (and its fsync) runs, later writes queue up, and
// the next group takes all of them, so the number of fsyncs per write falls as load rises.
void SqliteStore::WriterLoop() {
  std::vector<PendingWrite> group;
  std::vector<Status> statuses;
  auto mark = std::chrono::steady_clock::now();
  auto since = [&mark] {
    const auto now = std::chrono::steady_clock::now();
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - mark).count();
    mark = now;
    return static_cast<int64_t>(us);
  };
  while (true) {
    group.clear();
    {
      std::unique_lock<std::mutex> lock(write_mu_);
      write_queued_.wait(lock, [this] { return closing_ || !write_queue_.empty(); });
      if (write_queue_.empty()) return;  // Closing and nothing left.
      const size_t take =
          std::min(write_queue_.size(), static_cast<size_t>(options_.group_commit_max_batch));
      for (size_t i = 0; i < take; ++i) {
        group.push_back(std::move(write_queue_.front()));
        write_queue_.pop_front();
      }
    }
    idle_us_.fetch_add(since(), std::memory_order_relaxed);
    statuses.assign(group.size(), Status());
    bool committing = false;  // A group failing before COMMIT counts as running.
    RunGroup(group, statuses, [&] {
      run_us_.fetch_add(since(), std::memory_order_relaxed);
      committing = true;
    });
    (committing ? commit_us_ : run_us_).fetch_add(since(), std::memory_order_relaxed);
    if (options_.search_index && !pending_index_.empty()) {
      // The writer goes on with the next group while the publisher makes this one searchable
      // and reports it. Groups without index changes (audit records alone, keys, tokens)
      // publish nothing, so they report here at once.
      Publish({std::move(group), std::move(statuses), std::move(pending_index_)});
    } else {
      for (size_t i = 0; i < group.size(); ++i) group[i].finish(std::move(statuses[i]));
    }
    pending_index_.clear();
    report_us_.fetch_add(since(), std::memory_order_relaxed);
  }
}

void SqliteStore::Publish(Publication publication) {
  {
    std::lock_guard<std::mutex> lock(publish_mu_);
    publish_queue_.push_back(std::move(publication));
  }
  publish_queued_.notify_one();
}

// In commit order, so a later group's changes to the same resource land after an earlier one's.
// Searches see a group's resources before any of its writers hears back; the batches are freed
// here too, off the writer.
void SqliteStore::PublishLoop() {
  while (true) {
    Publication publication;
    {
      std::unique_lock<std::mutex> lock(publish_mu_);
      publish_queued_.wait(lock, [this] { return publish_stop_ || !publish_queue_.empty(); });
      if (publish_queue_.empty()) return;  // Stopping and nothing left.
      publication = std::move(publish_queue_.front());
      publish_queue_.pop_front();
    }
    const auto start = std::chrono::steady_clock::now();
    search_index_.Apply(publication.index);
    for (size_t i = 0; i < publication.group.size(); ++i) {
      publication.group[i].finish(std::move(publication.statuses[i]));
    }
    publication = Publication{};
    publish_us_.fetch_add(std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::steady_clock::now() - start)
                              .count(),
                          std::memory_order_relaxed);
  }
}

void SqliteStore::RunGroup(std::vector<PendingWrite>& group, std::vector<Status>& statuses,
                           const std::function<void()>& committing) {
  Connection& conn = *writer_conn_;
  AuditAppender* const appender = audit_appender_.load(std::memory_order_acquire);
  bool audit_open = false;  // BeginTransaction ran; EndTransaction must follow.
  transactions_.fetch_add(1, std::memory_order_relaxed);
  writes_.fetch_add(static_cast<int64_t>(group.size()), std::memory_order_relaxed);
  // Nothing of the group is durable: everyone learns the database could not commit.
  pending_index_.clear();
  folded_in_group_ = false;
  if (fold_entries_.size() > 4 * static_cast<size_t>(options_.audit_index_fold_records)) {
    // Folds keep failing: they will read the rows back once they work again.
    fold_entries_.clear();
    fold_entries_committed_ = 0;
  }
  auto fail_group = [&](const Status& cause, std::string_view event) {
    conn.RollbackIfActive();
    pending_index_.clear();
    fold_entries_.resize(fold_entries_committed_);
    if (audit_open) appender->EndTransaction(false);
    Status unavailable = UnavailableError("storage error", cause.internal_detail());
    for (Status& status : statuses) status = unavailable;
    log::Error(event, {{"group_size", static_cast<int64_t>(group.size())},
                       {"code", StatusCodeName(cause.code())},
                       {"detail", cause.internal_detail()}});
  };

  conn.RollbackIfActive();  // Only if an earlier group's rollback failed; normally a no-op.
  if (Status begin = Stmt(conn, Sql::kBegin).Run(); !begin.ok()) {
    fail_group(begin, "store_begin_failed");
    return;
  }
  for (size_t i = 0; i < group.size(); ++i) {
    PendingWrite& unit = group[i];
    Status control = unit.savepoint ? Stmt(conn, Sql::kSavepoint).Run() : Status();
    if (!control.ok()) {
      fail_group(control, "store_group_aborted");
      return;
    }
    const size_t index_mark = pending_index_.size();
    statuses[i] = unit.work ? unit.work(conn) : Status();
    const bool audit = statuses[i].ok() && unit.audit != nullptr;
    if (audit && appender == nullptr) {
      statuses[i] = UnavailableError("audit log unavailable", "no audit appender attached");
    } else if (audit) {
      if (!audit_open) {
        // The state as committed, read inside this write transaction: another process (an
        // administrative command) may have appended since this appender last wrote.
        StatusOr<std::optional<std::string>> saved = ReadAuditStateOn(conn);
        if (!saved.ok()) {
          fail_group(saved.status(), "store_audit_state_failed");
          return;
        }
        statuses[i] = appender->BeginTransaction(*saved);
        audit_open = statuses[i].ok();
      }
      if (audit_open) {
        audit_rows_.clear();
        audit_nodes_.clear();
        statuses[i] = appender->Append(*unit.audit, audit_rows_, audit_nodes_);
      }
      // The appender has advanced the log: these rows must land or the group must fail.
      Status inserted = statuses[i].ok() ? InsertAuditRows(conn) : Status();
      if (!inserted.ok()) {
        fail_group(inserted, "store_audit_insert_failed");
        return;
      }
    }
    if (!statuses[i].ok()) pending_index_.resize(index_mark);  // Rolled back below.
    if (statuses[i].ok()) {
      if (unit.savepoint) control = Stmt(conn, Sql::kRelease).Run();
    } else if (!conn.InTransaction()) {
      // SQLite rolled the whole transaction back (I/O error, full disk...).
      control = statuses[i];
    } else if (unit.savepoint) {
      control = Stmt(conn, Sql::kRollbackTo).Run();
      if (control.ok()) control = Stmt(conn, Sql::kRelease).Run();
    }
    if (!control.ok()) {
      fail_group(control, "store_group_aborted");
      return;
    }
  }
  if (audit_open) {
    StatusOr<AuditTransactionTail> tail = appender->FinishTransaction();
    Status saved = tail.ok() ? InsertAuditTail(conn, *tail) : tail.status();
    if (!saved.ok()) {
      fail_group(saved, "store_audit_tail_failed");
      return;
    }
  }
  if (unfolded_audit_records_ >= options_.audit_index_fold_records) {
    if (Status folded = FoldAuditIndexes(conn); !folded.ok()) {
      fail_group(folded, "store_group_aborted");
      return;
    }
  }
  committing();
  if (Status commit = Stmt(conn, Sql::kCommit).Run(); !commit.ok()) {
    fail_group(commit, "store_commit_failed");
    return;
  }
  if (audit_open) appender->EndTransaction(true);
  if (folded_in_group_) fold_entries_.clear();
  fold_entries_committed_ = fold_entries_.size();
  // Durable: pending_index_ now goes to the search index (WriterLoop).
}

Status SqliteStore::InsertAuditRows(Connection& conn) {
  for (AuditRow& row : audit_rows_) {
    {
      Stmt insert(conn, Sql::kInsertAuditRow);
      insert.BindInt64(1, static_cast<int64_t>(row.sequence));
      insert.BindInt64(2, row.time_us);
      insert.BindText(3, row.category);
      insert.BindText(4, row.action);
      insert.BindInt64(5, row.outcome);
      insert.BindText(6, row.actor);
      insert.BindBlob(7, row.sealed);
      insert.BindBlob(8, row.leaf_hash);
      insert.BindBlob(9, row.chain_hash);
      const std::string patients = EncodePatientIds(row.patient_ids);
      insert.BindText(10, patients);
      KURA_RETURN_IF_ERROR(insert.Run());
    }
    ++unfolded_audit_records_;
    // The row is stored and its draft is done with: the fold keeps its keys.
    fold_entries_.push_back({.sequence = static_cast<int64_t>(row.sequence),
                             .time_us = row.time_us,
                             .actor = std::move(row.actor),
                             .patient_ids = std::move(row.patient_ids)});
  }
  for (const AuditNode& node : audit_nodes_) KURA_RETURN_IF_ERROR(InsertAuditNode(conn, node));
  return Status();
}

// Files the records written since the last fold into the folded audit indexes (posting lists and
// one audit_time_blocks row: FoldUnfoldedAuditRecords), inside the group's transaction. A failed
// fold only leaves them unfolded (searches read those row by row), so it is rolled back on its own
// and retried after as many records again.
Status SqliteStore::FoldAuditIndexes(Connection& conn) {
  const int64_t records = unfolded_audit_records_;
  unfolded_audit_records_ = 0;
  KURA_RETURN_IF_ERROR(Stmt(conn, Sql::kSavepoint).Run());
  Status folded = FoldUnfoldedAuditRecords(conn, fold_entries_);
  if (folded.ok()) folded = Stmt(conn, Sql::kRelease).Run();
  if (folded.ok()) {
    folded_in_group_ = true;
    return folded;
  }
  log::Error("store_audit_fold_failed",
             {{"records", records}, {"detail", folded.internal_detail()}});
  if (!conn.InTransaction()) return folded;  // SQLite rolled the whole group back.
  KURA_RETURN_IF_ERROR(Stmt(conn, Sql::kRollbackTo).Run());
  return Stmt(conn, Sql::kRelease).Run();
}

Status SqliteStore::InsertAuditTail(Connection& conn, const AuditTransactionTail& tail) {
  {
    Stmt upsert(conn, Sql::kUpsertAuditState);
    upsert.BindBlob(1, tail.state);
    KURA_RETURN_IF_ERROR(upsert.Run());
  }
  for (const AuditStatement& statement : tail.statements) {
    KURA_RETURN_IF_ERROR(InsertAuditStatement(conn, statement));
  }
  return Status();
}

SqliteWriterStats SqliteStore::WriterStats() const {
  SqliteWriterStats stats;
  stats.transactions = transactions_.load(std::memory_order_relaxed);
  stats.writes = writes_.load(std::memory_order_relaxed);
  stats.checkpoints = checkpoints_.load(std::memory_order_relaxed);
  stats.idle_us = idle_us_.load(std::memory_order_relaxed);
  stats.run_us = run_us_.load(std::memory_order_relaxed);
  stats.commit_us = commit_us_.load(std::memory_order_relaxed);
  stats.report_us = report_us_.load(std::memory_order_relaxed);
  stats.publish_us = publish_us_.load(std::memory_order_relaxed);
  return stats;
}

SqliteStore::Connection* SqliteStore::AcquireReader() {
  std::unique_lock<std::mutex> lock(read_mu_);
  reader_free_.wait(lock, [this] { return !free_readers_.empty(); });
  Connection* conn = free_readers_.back();
  free_readers_.pop_back();
  return conn;
}

void SqliteStore::ReleaseReader(Connection* conn) {
  {
    std::lock_guard<std::mutex> lock(read_mu_);
    free_readers_.push_back(conn);
  }
  reader_free_.notify_one();
}

namespace {

// The search_rows value of each of `batch`'s resources (empty for deletes), then of each index
// rewrite: encoded by the committing thread, so that the writer only stores them.
std::vector<std::string> EncodeBatchIndexRows(const WriteBatch& batch) {
  std::vector<std::string> encoded;
  encoded.reserve(batch.resources.size() + batch.index_rewrites.size());
  for (const ResourceVersion& r : batch.resources) {
    encoded.push_back(r.deleted ? std::string() : EncodeIndexRows(r.index));
  }
  for (const IndexRewrite& r : batch.index_rewrites) encoded.push_back(EncodeIndexRows(r.index));
  return encoded;
}

// Writes `batch` on the writer connection (inside the caller's savepoint), filling `result`, and
// appends the search-index changes to `index_changes` (views into `batch`). `encoded_rows` is
// EncodeBatchIndexRows(batch).
template <typename Conn>
Status WriteBatchRows(Conn& conn, const WriteBatch& batch,
                      const std::vector<std::string>& encoded_rows, CommitResult& result,
                      std::vector<IndexChange>& index_changes) {
  size_t encoded_at = 0;
  result.sequences.clear();
  result.sequences.reserve(batch.resources.size());
  // The constraints decide version conflicts without reading the current version first: a
  // version already stored breaks UNIQUE(type, id, version), a first version of a resource that
  // exists breaks the primary key of resources, and a later version must follow the current one.
  // The caller's savepoint takes back whatever a refused write had already inserted.
  auto conflict = [](const ResourceVersion& r, std::string_view why) {
    return AbortedError("version conflict",
                        std::string(why) + ", batch has " + std::to_string(r.version));
  };
  // Runs `stmt`; a constraint it breaks is the version conflict `why`.
  auto run_or_conflict = [&](Stmt& stmt, const ResourceVersion& r, std::string_view why) {
    Status run = stmt.Run();
    if (!run.ok() && (sqlite3_extended_errcode(conn.db()) & 0xff) == SQLITE_CONSTRAINT) {
      return conflict(r, why);
    }
    return run;
  };
  for (const ResourceVersion& r : batch.resources) {
    const std::string& encoded = encoded_rows[encoded_at++];
    Stmt insert(conn, Sql::kInsertVersion);
    insert.BindText(1, r.type);
    insert.BindText(2, r.id);
    insert.BindInt64(3, r.version);
    insert.BindInt64(4, ToMicros(r.last_updated));
    insert.BindInt64(5, r.deleted ? 1 : 0);
    insert.BindText(6, r.compartment);
    insert.BindBlob(7, r.payload);
    KURA_RETURN_IF_ERROR(run_or_conflict(insert, r, "the version is already stored"));
    const int64_t seq = sqlite3_last_insert_rowid(conn.db());

    const bool first = r.version == 1;
    Stmt current(conn, first ? Sql::kInsertCurrent : Sql::kAdvanceCurrent);
    current.BindText(1, r.type);
    current.BindText(2, r.id);
    current.BindInt64(3, r.version);
    current.BindInt64(4, r.deleted ? 1 : 0);
    current.BindInt64(5, seq);
    KURA_RETURN_IF_ERROR(run_or_conflict(current, r, "the resource exists"));
    if (!first && sqlite3_changes(conn.db()) != 1) {
      return conflict(r, "the current version is not the one before");
    }
    if (r.deleted) {
      Stmt remove(conn, Sql::kDeleteSearchRows);
      remove.BindText(1, r.type);
      remove.BindText(2, r.id);
      KURA_RETURN_IF_ERROR(remove.Run());
    } else {
      KURA_RETURN_IF_ERROR(UpsertSearchRows(conn, r.type, r.id, r.compartment, encoded));
    }
    index_changes.push_back(IndexChange{r.type, r.id, r.compartment, r.deleted, &r.index});
    result.sequences.push_back(seq);
  }
  for (const IndexRewrite& r : batch.index_rewrites) {
    const std::string& encoded = encoded_rows[encoded_at++];
    Stmt query(conn, Sql::kCurrentState);
    query.BindText(1, r.type);
    query.BindText(2, r.id);
    KURA_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row || query.Int64(0) != r.version || query.Int64(1) != 0) {
      return AbortedError("version conflict", "index rewrite of a version that is not current");
    }
    KURA_RETURN_IF_ERROR(UpsertSearchRows(conn, r.type, r.id, r.compartment, encoded));
    index_changes.push_back(IndexChange{r.type, r.id, r.compartment, false, &r.index});
  }
  return Status();
}

}  // namespace

StatusOr<CommitResult> SqliteStore::Commit(WriteBatch batch) {
  std::promise<StatusOr<CommitResult>> result;
  std::future<StatusOr<CommitResult>> ready = result.get_future();
  CommitAsync(std::move(batch),
              [&result](StatusOr<CommitResult> r) { result.set_value(std::move(r)); });
  return ready.get();
}

void SqliteStore::CommitAsync(WriteBatch batch, CommitCallback done) {
  if (Status valid = ValidateBatch(batch); !valid.ok()) {
    done(std::move(valid));
    return;
  }
  if (batch.resources.empty() && batch.index_rewrites.empty()) {
    if (batch.audit == nullptr) {
      done(CommitResult{});
      return;
    }
    // An audit record alone: no rows of its own to undo, so no savepoint.
    const AuditDraft* draft = batch.audit.get();
    Enqueue({nullptr,
             [audit = std::move(batch.audit), done = std::move(done)](Status status) {
               if (status.ok()) {
                 done(CommitResult{});
               } else {
                 done(std::move(status));
               }
             },
             draft, false});
    return;
  }
  // Shared by the work (which fills the result) and the finish (which reports it).
  struct State {
    WriteBatch batch;
    std::vector<std::string> encoded_rows;
    CommitResult result;
    CommitCallback done;
  };
  std::vector<std::string> encoded_rows = EncodeBatchIndexRows(batch);
  auto state = std::make_shared<State>(
      State{std::move(batch), std::move(encoded_rows), {}, std::move(done)});
  const AuditDraft* draft = state->batch.audit.get();
  Enqueue({[this, state](Connection& conn) {
             return WriteBatchRows(conn, state->batch, state->encoded_rows, state->result,
                                   pending_index_);
           },
           [state](Status status) {
             if (status.ok()) {
               state->done(std::move(state->result));
             } else {
               state->done(std::move(status));
             }
           },
           draft, true});
}

StatusOr<ResourceVersion> SqliteStore::ReadCurrent(std::string_view type, std::string_view id) {
  ReaderLease lease(*this);
  Stmt query(lease.conn(), Sql::kReadCurrent);
  query.BindText(1, type);
  query.BindText(2, id);
  KURA_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return NotFoundError("resource not found");
  return ReadVersionRow(query);
}

StatusOr<ResourceVersion> SqliteStore::ReadVersion(std::string_view type, std::string_view id,
                                                   int64_t version) {
  ReaderLease lease(*this);
  Stmt query(lease.conn(), Sql::kReadVersion);
  query.BindText(1, type);
  query.BindText(2, id);
  query.BindInt64(3, version);
  KURA_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return NotFoundError("resource version not found");
  return ReadVersionRow(query);
}

StatusOr<std::vector<CurrentResource>> SqliteStore::ListCurrent(const CurrentListQuery& q) {
  if (q.limit < 1) return InvalidArgumentError("list limit must be at least 1");
  const bool from_start = q.after_type.empty() && q.after_id.empty();
  ReaderLease lease(*this);
  Stmt query(lease.conn(), from_start ? Sql::kListCurrentFirst : Sql::kListCurrentAfter);
  if (!from_start) {
    query.BindText(1, q.after_type);
    query.BindText(2, q.after_id);
  }
  query.BindInt64(3, q.limit);
  std::vector<CurrentResource> out;
  while (true) {
    KURA_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) break;
    out.push_back(CurrentResource{query.Text(0), query.Text(1), query.Int64(2)});
  }
  return out;
}

StatusOr<std::vector<VersionMeta>> SqliteStore::ListVersions(const VersionListQuery& q) {
  if (q.limit < 1) return InvalidArgumentError("list limit must be at least 1");
  const bool from_start = q.after_type.empty() && q.after_id.empty() && q.after_version == 0;
  ReaderLease lease(*this);
  Stmt query(lease.conn(), from_start ? Sql::kListVersionsFirst : Sql::kListVersionsAfter);
  if (!from_start) {
    query.BindText(1, q.after_type);
    query.BindText(2, q.after_id);
    query.BindInt64(4, q.after_version);
  }
  query.BindInt64(3, q.limit);
  std::vector<VersionMeta> out;
  while (true) {
    KURA_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) break;
    out.push_back(VersionMeta{.type = query.Text(0),
                              .id = query.Text(1),
                              .version = query.Int64(2),
                              .deleted = query.Int64(3) != 0,
                              .compartment = query.Text(4),
                              .last_updated = FromMicros(query.Int64(5))});
  }
  return out;
}

StatusOr<std::optional<std::string>> SqliteStore::ReadIndexFingerprint() {
  ReaderLease lease(*this);
  Stmt query(lease.conn(), Sql::kReadIndexFingerprint);
  KURA_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(query.Text(0));
}

Status SqliteStore::WriteIndexFingerprint(std::string_view fingerprint) {
  if (fingerprint.empty()) return InvalidArgumentError("index fingerprint must not be empty");
  const std::function<Status(Connection&)> work = [fingerprint](Connection& conn) -> Status {
    Stmt write(conn, Sql::kWriteIndexFingerprint);
    write.BindText(1, fingerprint);
    return write.Run();
  };
  return RunAndWait(work);
}

StatusOr<IndexPage> SqliteStore::Search(const IndexQuery& q) {
  if (!options_.search_index) {
    return FailedPreconditionError("storage error", "opened without its search index");
  }
  return search_index_.Search(q);
}

std::optional<StatusOr<IndexPage>> SqliteStore::SearchIfInMemory(const IndexQuery& q) {
  if (!options_.search_index) return Search(q);
  return search_index_.Search(q, kInMemorySearchBudget);
}

StatusOr<HistoryPage> SqliteStore::History(const HistoryQuery& q) {
  if (q.limit < 1) return InvalidArgumentError("history limit must be at least 1");
  if (q.before_sequence < 0) return InvalidArgumentError("history cursor must not be negative");
  if (q.type.empty() && !q.id.empty()) {
    return InvalidArgumentError("instance history needs a resource type");
  }
  const Sql sql = !q.id.empty()     ? Sql::kHistoryInstance
                  : !q.type.empty() ? Sql::kHistoryType
                                    : Sql::kHistorySystem;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  // One row more than asked tells whether another page exists.
  const int64_t fetch = q.limit == kMax ? kMax : q.limit + 1;

  ReaderLease lease(*this);
  Stmt query(lease.conn(), sql);
  query.BindInt64(1, q.before_sequence == 0 ? kMax : q.before_sequence);
  query.BindInt64(2, q.since ? ToMicros(*q.since) : std::numeric_limits<int64_t>::min());
  query.BindInt64(3, fetch);
  if (sql != Sql::kHistorySystem) query.BindText(4, q.type);
  if (sql == Sql::kHistoryInstance) query.BindText(5, q.id);

  HistoryPage page;
  while (true) {
    KURA_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) break;
    if (static_cast<int64_t>(page.versions.size()) == q.limit) {
      page.next_before_sequence = page.versions.back().sequence;
      break;
    }
    page.versions.push_back(ReadVersionRow(query));
  }
  return page;
}

StatusOr<std::optional<StoredDataKey>> SqliteStore::FindDataKeyByScope(std::string_view scope) {
  ReaderLease lease(*this);
  Stmt query(lease.conn(), Sql::kDataKeyByScope);
  query.BindText(1, scope);
  KURA_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return std::optional<StoredDataKey>();
  return std::optional<StoredDataKey>(ReadDataKeyRow(query));
}

StatusOr<std::optional<StoredDataKey>> SqliteStore::FindDataKeyById(uint64_t key_id) {
  ReaderLease lease(*this);
  Stmt query(lease.conn(), Sql::kDataKeyById);
  query.BindInt64(1, std::bit_cast<int64_t>(key_id));
  KURA_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return std::optional<StoredDataKey>();
  return std::optional<StoredDataKey>(ReadDataKeyRow(query));
}

StatusOr<StoredDataKey> SqliteStore::InsertDataKeyIfAbsent(const StoredDataKey& key) {
  if (key.key_id == 0) return InvalidArgumentError("data key id must not be zero");
  if (key.scope.empty()) return InvalidArgumentError("data key scope must not be empty");
  StoredDataKey result;
  const std::function<Status(Connection&)> work = [&key, &result](Connection& conn) -> Status {
    {
      Stmt by_scope(conn, Sql::kDataKeyByScope);
      by_scope.BindText(1, key.scope);
      KURA_ASSIGN_OR_RETURN(bool row, by_scope.Step());
      if (row) {
        result = ReadDataKeyRow(by_scope);
        return Status();
      }
    }
    {
      Stmt by_id(conn, Sql::kDataKeyById);
      by_id.BindInt64(1, std::bit_cast<int64_t>(key.key_id));
      KURA_ASSIGN_OR_RETURN(bool row, by_id.Step());
      if (row) return AlreadyExistsError("data key id already in use");
    }
    Stmt insert(conn, Sql::kInsertDataKey);
    insert.BindInt64(1, std::bit_cast<int64_t>(key.key_id));
    insert.BindText(2, key.scope);
    insert.BindInt64(3, static_cast<int64_t>(key.kek_version));
    insert.BindBlob(4, key.wrapped);
    insert.BindInt64(5, ToMicros(key.created));
    KURA_RETURN_IF_ERROR(insert.Run());
    result = key;
    return Status();
  };
  KURA_RETURN_IF_ERROR(RunAndWait(work));
  return result;
}

Status SqliteStore::PutApiToken(const ApiToken& token) {
  if (token.token_hash.size() != kApiTokenHashSize) {
    return InvalidArgumentError("api token hash must be 32 bytes");
  }
  const std::function<Status(Connection&)> work = [&token](Connection& conn) -> Status {
    Stmt insert(conn, Sql::kInsertApiToken);
    insert.BindBlob(1, token.token_hash);
    insert.BindText(2, token.name);
    insert.BindText(3, token.role);
    insert.BindInt64(4, ToMicros(token.created));
    insert.BindInt64(5, token.revoked ? 1 : 0);
    KURA_RETURN_IF_ERROR(insert.Run());
    if (sqlite3_changes(conn.db()) == 0) return AlreadyExistsError("api token already exists");
    return Status();
  };
  return RunAndWait(work);
}

StatusOr<std::optional<ApiToken>> SqliteStore::FindApiToken(std::string_view token_hash) {
  ReaderLease lease(*this);
  Stmt query(lease.conn(), Sql::kFindApiToken);
  query.BindBlob(1, token_hash);
  KURA_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return std::optional<ApiToken>();
  ApiToken token;
  token.token_hash = std::string(token_hash);
  token.name = query.Text(0);
  token.role = query.Text(1);
  token.created = FromMicros(query.Int64(2));
  token.revoked = query.Int64(3) != 0;
  return std::optional<ApiToken>(std::move(token));
}

void SqliteStore::AttachAuditAppender(AuditAppender* appender) {
  audit_appender_.store(appender, std::memory_order_release);
}

StatusOr<std::optional<std::string>> SqliteStore::ReadAuditState() {
  ReaderLease lease(*this);
  return ReadAuditStateOn(lease.conn());
}

StatusOr<std::optional<std::string>> SqliteStore::ReadAuditStateOn(Connection& conn) {
  Stmt query(conn, Sql::kReadAuditState);
  KURA_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(query.Blob(0));
}

StatusOr<std::vector<AuditRow>> SqliteStore::ReadAuditRows(uint64_t from_sequence, size_t limit) {
  if (limit == 0 || from_sequence > kMaxSequence) return std::vector<AuditRow>();
  ReaderLease lease(*this);
  Stmt query(lease.conn(), Sql::kReadAuditRows);
  query.BindInt64(1, static_cast<int64_t>(from_sequence));
  query.BindInt64(2, static_cast<int64_t>(std::min<uint64_t>(limit, kMaxSequence)));
  return ReadAllRows(query, ReadAuditRow);
}

StatusOr<std::optional<std::string>> SqliteStore::ReadAuditNode(int level, uint64_t index) {
  if (level < 0 || index > kMaxSequence) return std::optional<std::string>();
  ReaderLease lease(*this);
  Stmt query(lease.conn(), level == 0 ? Sql::kReadAuditLeaf : Sql::kReadAuditNode);
  if (level == 0) {
    query.BindInt64(1, static_cast<int64_t>(index));
  } else {
    query.BindInt64(1, level);
    query.BindInt64(2, static_cast<int64_t>(index));
  }
  KURA_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(query.Blob(0));
}

StatusOr<std::vector<AuditStatement>> SqliteStore::ReadAuditStatements() {
  ReaderLease lease(*this);
  Stmt query(lease.conn(), Sql::kReadAuditStatements);
  return ReadAllRows(query, ReadAuditStatementRow);
}

StatusOr<std::optional<AuditStatement>> SqliteStore::FindAuditCheckpoint(uint64_t min_tree_size) {
  if (min_tree_size > kMaxSequence) return std::optional<AuditStatement>();
  ReaderLease lease(*this);
  Stmt query(lease.conn(),
             min_tree_size == 0 ? Sql::kLatestAuditCheckpoint : Sql::kFindAuditCheckpoint);
  if (min_tree_size != 0) query.BindInt64(1, static_cast<int64_t>(min_tree_size));
  KURA_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return std::optional<AuditStatement>();
  return std::optional<AuditStatement>(ReadAuditStatementRow(query));
}

StatusOr<std::vector<AuditStatement>> SqliteStore::ReadAuditCheckpointsAfter(uint64_t tree_size,
                                                                             size_t limit) {
  if (limit == 0 || tree_size >= kMaxSequence) return std::vector<AuditStatement>();
  ReaderLease lease(*this);
  Stmt query(lease.conn(), Sql::kAuditCheckpointsAfter);
  query.BindInt64(1, static_cast<int64_t>(tree_size));
  query.BindInt64(2, static_cast<int64_t>(std::min<uint64_t>(limit, kMaxSequence)));
  return ReadAllRows(query, ReadAuditStatementRow);
}

namespace {

// Binds the row filters of an audit search (parameters ?2 to ?7, and ?8 for the patient when the
// statement reads the patients column).
void BindAuditFilters(Stmt& query, const AuditQuery& q, bool bind_patient) {
  if (!q.actor.empty()) query.BindText(2, q.actor);
  if (!q.category.empty()) query.BindText(3, q.category);
  if (!q.action.empty()) query.BindText(4, q.action);
  if (q.outcome) query.BindInt64(5, *q.outcome);
  if (q.since_us) query.BindInt64(6, *q.since_us);
  if (q.until_us) query.BindInt64(7, *q.until_us);
  if (bind_patient && !q.patient_id.empty()) query.BindText(8, q.patient_id);
}

// Ends the read transaction a reader connection opened for one snapshot, however the reading ends.
template <typename Conn>
struct EndSnapshot {
  Conn& conn;
  ~EndSnapshot() { conn.RollbackIfActive(); }
};

// The folded part of a keyed audit search, inside SearchAudit's read transaction: the posting
// lists of the patient (or else the actor) from the newest block down, each listed record read
// by its key and kept when the other filters hold, until `rows` holds `wanted`.
template <typename Conn>
Status SearchFoldedAudit(Conn& conn, const AuditQuery& q, const std::string& row_filters,
                         int64_t before, int64_t wanted, std::vector<AuditRow>& rows) {
  // The sequence range [low, high] the folded part may answer from.
  int64_t high = before - 1;
  int64_t low = 0;
  {
    Stmt bounds(conn.db(),
                "SELECT (SELECT through_seq FROM audit_index_fold), "
                "IFNULL((SELECT MAX(last_seq) FROM audit_time_blocks WHERE min_time_us < ?7), -1), "
                "IFNULL((SELECT MIN(first_seq) FROM audit_time_blocks WHERE max_time_us >= ?6), "
                "(SELECT through_seq FROM audit_index_fold) + 1)",
                "audit_search_bounds");
    bounds.BindInt64(6, q.since_us.value_or(0));
    bounds.BindInt64(7, q.until_us.value_or(0));
    KURA_ASSIGN_OR_RETURN(bool row, bounds.Step());
    if (!row || bounds.IsNull(0)) return Status();  // Nothing was ever folded.
    high = std::min(high, bounds.Int64(0));
    if (q.until_us) high = std::min(high, bounds.Int64(1));
    if (q.since_us) low = bounds.Int64(2);
  }
  if (high < low) return Status();
  const bool by_patient = !q.patient_id.empty();
  Stmt lists(conn, Sql::kAuditPostingsOfKey);
  lists.BindInt64(
      1, static_cast<int64_t>(by_patient ? AuditPostingKind::kPatient : AuditPostingKind::kActor));
  lists.BindText(2, by_patient ? q.patient_id : q.actor);
  lists.BindInt64(3, high);
  Stmt record(conn.db(),
              "SELECT " KURA_AUDIT_COLUMNS " FROM audit_log a WHERE a.seq = ?1" + row_filters,
              "audit_search_record");
  BindAuditFilters(record, q, /*bind_patient=*/false);
  // Strictly below what the rows already hold: blocks do not overlap, but an edited index might.
  uint64_t below = static_cast<uint64_t>(high) + 1;
  if (!rows.empty()) below = std::min(below, rows.back().sequence);
  while (static_cast<int64_t>(rows.size()) < wanted) {
    KURA_ASSIGN_OR_RETURN(bool row, lists.Step());
    if (!row) break;
    const auto first_seq = static_cast<uint64_t>(lists.Int64(0));
    std::optional<std::vector<uint64_t>> sequences =
        DecodeAuditPostingSequences(first_seq, lists.Blob(1));
    if (!sequences) {
      return DataLossError("an audit search index entry cannot be read",
                           "audit_postings block " + std::to_string(first_seq));
    }
    for (auto it = sequences->rbegin(); it != sequences->rend(); ++it) {
      if (*it >= below) continue;
      if (*it < static_cast<uint64_t>(low)) return Status();
      record.Reset();
      record.BindInt64(1, static_cast<int64_t>(*it));
      KURA_ASSIGN_OR_RETURN(bool found, record.Step());
      if (!found) continue;  // Filtered out (or pruned meanwhile).
      KURA_ASSIGN_OR_RETURN(AuditRow read, ReadAuditRow(record));
      below = *it;
      rows.push_back(std::move(read));
      if (static_cast<int64_t>(rows.size()) == wanted) return Status();
    }
  }
  return Status();
}

}  // namespace

StatusOr<AuditPage> SqliteStore::SearchAudit(const AuditQuery& q) {
  if (q.limit < 1) return InvalidArgumentError("audit search limit must be at least 1");
  // Fixed fragments with fixed parameter numbers: the text varies with which filters are set,
  // never with their values. Two parts: the records after the last fold, filtered row by row
  // (at most about audit_index_fold_records of them), and the folded ones, reached through
  // the posting lists when a patient or an actor is asked for, and narrowed to a sequence range
  // by the time blocks. Both parts yield rows in descending sequence order and stop at the
  // limit; with a patient or an actor they are read in one snapshot (one read transaction).
  const std::string folded = "(SELECT through_seq FROM audit_index_fold)";
  std::string row_filters;
  if (!q.actor.empty()) row_filters += " AND a.actor = ?2";
  if (!q.category.empty()) row_filters += " AND a.category = ?3";
  if (!q.action.empty()) row_filters += " AND a.action = ?4";
  if (q.outcome) row_filters += " AND a.outcome = ?5";
  if (q.since_us) row_filters += " AND a.time_us >= ?6";
  if (q.until_us) row_filters += " AND a.time_us < ?7";
  const bool keyed = !q.patient_id.empty() || !q.actor.empty();
  const int64_t before = q.before_sequence == 0 || q.before_sequence > kMaxSequence
                             ? std::numeric_limits<int64_t>::max()
                             : static_cast<int64_t>(q.before_sequence);
  // One row more than asked tells whether another page exists.
  const int64_t wanted = q.limit == std::numeric_limits<int64_t>::max() ? q.limit : q.limit + 1;
  std::string sql = "SELECT " KURA_AUDIT_COLUMNS " FROM audit_log a WHERE a.seq > " + folded +
                    " AND a.seq < ?1" + row_filters;
  if (!q.patient_id.empty()) {
    sql += " AND EXISTS (SELECT 1 FROM json_each(a.patients) WHERE value = ?8)";
  }
  if (!keyed) {
    // Without a key the folded part reads audit_log too, in the same statement (one snapshot).
    sql += " UNION ALL SELECT " KURA_AUDIT_COLUMNS " FROM audit_log a WHERE 1" + row_filters;
    // One bound, so SQLite can use it as the range end.
    sql += " AND a.seq <= MIN(" + folded + ", ?1 - 1";
    if (q.until_us) {
      sql += ", IFNULL((SELECT MAX(last_seq) FROM audit_time_blocks WHERE min_time_us < ?7), -1)";
    }
    sql += ")";
    if (q.since_us) {
      sql +=
          " AND a.seq >= IFNULL((SELECT MIN(first_seq) FROM audit_time_blocks WHERE "
          "max_time_us >= ?6), " +
          folded + " + 1)";
    }
  }
  sql += " ORDER BY 1 DESC LIMIT ?9";

  ReaderLease lease(*this);
  Connection& conn = lease.conn();
  EndSnapshot<Connection> end_snapshot{conn};
  if (keyed) KURA_RETURN_IF_ERROR(conn.ExecScript("BEGIN"));
  std::vector<AuditRow> rows;
  {
    Stmt query(conn.db(), sql, "audit_search");
    query.BindInt64(1, before);
    BindAuditFilters(query, q, /*bind_patient=*/true);
    query.BindInt64(9, wanted);
    while (static_cast<int64_t>(rows.size()) < wanted) {
      KURA_ASSIGN_OR_RETURN(bool row, query.Step());
      if (!row) break;
      KURA_ASSIGN_OR_RETURN(AuditRow read, ReadAuditRow(query));
      rows.push_back(std::move(read));
    }
  }
  if (keyed && static_cast<int64_t>(rows.size()) < wanted) {
    KURA_RETURN_IF_ERROR(SearchFoldedAudit(conn, q, row_filters, before, wanted, rows));
  }
  AuditPage page;
  if (static_cast<int64_t>(rows.size()) > q.limit) {
    rows.resize(static_cast<size_t>(q.limit));
    page.next_before_sequence = rows.back().sequence;
  }
  page.rows = std::move(rows);
  return page;
}

StatusOr<uint64_t> SqliteStore::ReadAuditCursor(std::string_view name) {
  ReaderLease lease(*this);
  Stmt query(lease.conn(), Sql::kReadAuditCursor);
  query.BindText(1, name);
  KURA_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return uint64_t{0};
  return static_cast<uint64_t>(query.Int64(0));
}

Status SqliteStore::WriteAuditCursor(std::string_view name, uint64_t next_sequence) {
  if (name.empty()) return InvalidArgumentError("audit cursor name must not be empty");
  if (next_sequence > kMaxSequence) return InvalidArgumentError("audit cursor out of range");
  const std::function<Status(Connection&)> work = [name, next_sequence](Connection& conn) {
    Stmt upsert(conn, Sql::kWriteAuditCursor);
    upsert.BindText(1, name);
    upsert.BindInt64(2, static_cast<int64_t>(next_sequence));
    return upsert.Run();
  };
  return RunAndWait(work);
}

StatusOr<int64_t> SqliteStore::DeleteAuditCursors(const std::vector<std::string>& names) {
  int64_t deleted = 0;
  const std::function<Status(Connection&)> work = [&names, &deleted](Connection& conn) -> Status {
    deleted = 0;  // A retried unit starts over.
    for (const std::string& name : names) {
      Stmt remove(conn, Sql::kDeleteAuditCursor);
      remove.BindText(1, name);
      KURA_RETURN_IF_ERROR(remove.Run());
      deleted += sqlite3_changes(conn.db());
    }
    return Status();
  };
  KURA_RETURN_IF_ERROR(RunAndWait(work));
  return deleted;
}

StatusOr<std::vector<AuditCursor>> SqliteStore::ReadAuditCursors() {
  ReaderLease lease(*this);
  Stmt query(lease.conn(), Sql::kReadAuditCursors);
  return ReadAllRows(query, [](const Stmt& row) {
    return AuditCursor{row.Text(0), static_cast<uint64_t>(row.Int64(1))};
  });
}

StatusOr<std::vector<AuditStatement>> SqliteStore::ReadAuditPruneAnchors() {
  ReaderLease lease(*this);
  Stmt query(lease.conn(), Sql::kReadAuditAnchors);
  return ReadAllRows(query, ReadAuditStatementRow);
}

namespace {

// CheckAuditIndexes reads every folded row once for its time block, then each block's rows again
// for what they name, against the block's posting lists (a block's worth of keys in memory at a
// time), and last the posting lists of no folded block.
#define KURA_AUDIT_FOLD_THROUGH "(SELECT through_seq FROM audit_index_fold)"
constexpr const char* kAuditFoldedRowsCheck =
    "SELECT a.seq, "
    // Blocks do not overlap, so the one that starts last at or before a record must hold it.
    "EXISTS (SELECT 1 FROM audit_time_blocks b WHERE b.first_seq = (SELECT MAX(first_seq) FROM "
    "audit_time_blocks WHERE first_seq <= a.seq) AND b.last_seq >= a.seq AND "
    "b.min_time_us <= a.time_us AND b.max_time_us >= a.time_us) "
    "FROM audit_log a WHERE a.seq <= " KURA_AUDIT_FOLD_THROUGH " ORDER BY a.seq";
constexpr const char* kAuditFoldState =
    "SELECT " KURA_AUDIT_FOLD_THROUGH ", (SELECT MAX(seq) FROM audit_log)";
constexpr const char* kAuditFoldedBlocks =
    "SELECT first_seq, last_seq FROM audit_time_blocks WHERE first_seq <= " KURA_AUDIT_FOLD_THROUGH
    " ORDER BY first_seq";
constexpr const char* kAuditStrayPostings =
    "SELECT first_seq, seqs FROM audit_postings WHERE first_seq > " KURA_AUDIT_FOLD_THROUGH
    " OR first_seq NOT IN (SELECT first_seq FROM audit_time_blocks) ORDER BY first_seq LIMIT ?1";
#undef KURA_AUDIT_FOLD_THROUGH

std::string RecordFinding(uint64_t sequence, std::string_view what) {
  return "record " + std::to_string(sequence) + " " + std::string(what);
}

// `expected` (what a block's rows name) against `stored` (its posting lists): each record a list
// lacks, and each a list holds that its row does not name. Keys whose list did not decode
// (`unreadable`, reported already) are not compared.
void CompareAuditPostings(const AuditPostings& expected, const AuditPostings& stored,
                          const std::set<std::pair<AuditPostingKind, std::string>>& unreadable,
                          const std::function<void(std::optional<uint64_t>, std::string)>& add) {
  static const std::vector<uint64_t> kNone;
  std::set<std::pair<AuditPostingKind, std::string>> keys;
  for (const auto& entry : expected) keys.insert(entry.first);
  for (const auto& entry : stored) keys.insert(entry.first);
  for (const auto& key : keys) {
    if (unreadable.contains(key)) continue;
    const auto want = expected.find(key);
    const auto have = stored.find(key);
    const std::vector<uint64_t>& wanted = want == expected.end() ? kNone : want->second;
    const std::vector<uint64_t>& held = have == stored.end() ? kNone : have->second;
    const bool patient = key.first == AuditPostingKind::kPatient;
    std::vector<uint64_t> difference;
    std::set_difference(wanted.begin(), wanted.end(), held.begin(), held.end(),
                        std::back_inserter(difference));
    for (uint64_t sequence : difference) {
      add(sequence, RecordFinding(sequence, patient ? "is folded, but audit_postings does not file "
                                                      "it under every patient its row names"
                                                    : "is folded, but audit_postings does not file "
                                                      "it under its actor"));
    }
    difference.clear();
    std::set_difference(held.begin(), held.end(), wanted.begin(), wanted.end(),
                        std::back_inserter(difference));
    for (uint64_t sequence : difference) {
      add(sequence, RecordFinding(sequence, patient ? "is filed in audit_postings under a patient "
                                                      "its row does not name"
                                                    : "is filed in audit_postings under an actor "
                                                      "its row does not name"));
    }
  }
}

}  // namespace

StatusOr<std::vector<AuditIndexFinding>> SqliteStore::CheckAuditIndexes(size_t limit) {
  std::vector<AuditIndexFinding> findings;
  if (limit == 0) return findings;
  const std::function<void(std::optional<uint64_t>, std::string)> add =
      [&findings, limit](std::optional<uint64_t> sequence, std::string what) {
        if (findings.size() < limit) findings.push_back({sequence, std::move(what)});
      };
  ReaderLease lease(*this);
  Connection& conn = lease.conn();
  // One snapshot for every statement below: with a server appending and folding meanwhile, the
  // blocks would otherwise be read after a fold the row scan did not see.
  KURA_RETURN_IF_ERROR(conn.ExecScript("BEGIN"));
  EndSnapshot<Connection> end_snapshot{conn};
  {
    // Without the fold's row every search finds nothing; past the last record it would keep
    // the next records out of the patient and actor indexes for good.
    Stmt fold(conn.db(), kAuditFoldState, "audit_check_fold");
    KURA_ASSIGN_OR_RETURN(bool row, fold.Step());
    if (row && fold.IsNull(0)) {
      // Every folded entry would be reported too; this one finding says it.
      add(std::nullopt, "audit_index_fold has no row: every audit search would come back empty");
      return findings;
    }
    if (row && !fold.IsNull(1) && fold.Int64(0) > fold.Int64(1)) {
      add(std::nullopt, "audit_index_fold says records up to " + std::to_string(fold.Int64(0)) +
                            " are folded, but the log ends at " + std::to_string(fold.Int64(1)));
    }
  }
  {
    Stmt rows(conn.db(), kAuditFoldedRowsCheck, "audit_check_folded_rows");
    while (true) {
      KURA_ASSIGN_OR_RETURN(bool row, rows.Step());
      if (!row) break;
      if (rows.Int64(1) == 0) {
        const auto sequence = static_cast<uint64_t>(rows.Int64(0));
        add(sequence, RecordFinding(sequence,
                                    "is folded, but no audit_time_blocks row covers it "
                                    "and its time"));
      }
    }
  }
  {
    Stmt blocks(conn.db(), kAuditFoldedBlocks, "audit_check_blocks");
    while (true) {
      KURA_ASSIGN_OR_RETURN(bool row, blocks.Step());
      if (!row) break;
      const int64_t first_seq = blocks.Int64(0);
      KURA_ASSIGN_OR_RETURN(AuditFoldBlock block,
                            CollectAuditFoldBlock(conn, first_seq, blocks.Int64(1)));
      KURA_ASSIGN_OR_RETURN(std::vector<StoredAuditPostingList> lists,
                            ReadAuditPostingLists(conn, first_seq));
      AuditPostings stored;
      std::set<std::pair<AuditPostingKind, std::string>> unreadable;
      for (StoredAuditPostingList& list : lists) {
        if (!list.sequences) {
          add(static_cast<uint64_t>(first_seq), "the audit_postings entry list of the block at " +
                                                    std::to_string(first_seq) + " cannot be read");
          unreadable.insert({list.kind, std::move(list.key)});
          continue;
        }
        stored[{list.kind, std::move(list.key)}] = std::move(*list.sequences);
      }
      CompareAuditPostings(block.postings, stored, unreadable, add);
    }
  }
  {
    Stmt stray(conn.db(), kAuditStrayPostings, "audit_check_stray_postings");
    stray.BindInt64(1, static_cast<int64_t>(std::min<uint64_t>(limit, kMaxSequence)));
    while (true) {
      KURA_ASSIGN_OR_RETURN(bool row, stray.Step());
      if (!row) break;
      const auto first_seq = static_cast<uint64_t>(stray.Int64(0));
      std::optional<std::vector<uint64_t>> sequences =
          DecodeAuditPostingSequences(first_seq, stray.Blob(1));
      const uint64_t sequence = sequences && !sequences->empty() ? sequences->front() : first_seq;
      add(sequence,
          RecordFinding(sequence, "is filed in audit_postings under a block that is not folded"));
    }
  }
  std::stable_sort(findings.begin(), findings.end(),
                   [](const AuditIndexFinding& a, const AuditIndexFinding& b) {
                     return a.sequence.value_or(0) < b.sequence.value_or(0);
                   });
  return findings;
}

StatusOr<std::optional<uint64_t>> SqliteStore::FindFirstAuditSequenceSince(int64_t time_us) {
  ReaderLease lease(*this);
  Stmt query(lease.conn(), Sql::kFirstAuditSequenceSince);
  query.BindInt64(1, time_us);
  KURA_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return std::optional<uint64_t>();
  return std::optional<uint64_t>(static_cast<uint64_t>(query.Int64(0)));
}

namespace {

// Deletes the posting lists of the blocks below the prune point `first`, and drops the pruned
// records from the lists of the block it falls inside (which keeps its first_seq, as its
// audit_time_blocks row keeps its bounds).
template <typename Conn>
Status PruneAuditPostings(Conn& conn, int64_t first) {
  std::optional<int64_t> straddling;
  {
    Stmt query(conn, Sql::kStraddlingAuditBlock);
    query.BindInt64(1, first);
    KURA_ASSIGN_OR_RETURN(bool row, query.Step());
    if (row) straddling = query.Int64(0);
  }
  {
    Stmt drop(conn, Sql::kPruneAuditPostings);
    drop.BindInt64(1, straddling.value_or(first));
    KURA_RETURN_IF_ERROR(drop.Run());
  }
  if (!straddling) return Status();
  KURA_ASSIGN_OR_RETURN(std::vector<StoredAuditPostingList> lists,
                        ReadAuditPostingLists(conn, *straddling));
  for (StoredAuditPostingList& list : lists) {
    if (!list.sequences) continue;  // An unreadable list stays for verification to report.
    std::erase_if(*list.sequences,
                  [first](uint64_t sequence) { return sequence < static_cast<uint64_t>(first); });
    if (list.sequences->empty()) {
      Stmt drop(conn, Sql::kDeleteAuditPosting);
      drop.BindInt64(1, *straddling);
      drop.BindInt64(2, static_cast<int64_t>(list.kind));
      drop.BindText(3, list.key);
      KURA_RETURN_IF_ERROR(drop.Run());
      continue;
    }
    KURA_RETURN_IF_ERROR(
        WriteAuditPostingList(conn, *straddling, list.kind, list.key, *list.sequences));
  }
  return Status();
}

// Writer thread, inside the prune's savepoint: everything PruneAudit deletes and stores, after
// checking that no export cursor and no other prune stands in the way.
template <typename Conn>
Status ApplyAuditPrune(Conn& conn, const AuditPrune& prune) {
  const auto first = static_cast<int64_t>(prune.first_retained_sequence);
  {
    Stmt lowest(conn, Sql::kLowestAuditCursor);
    KURA_ASSIGN_OR_RETURN(bool row, lowest.Step());
    if (row && lowest.Int64(1) < first) {
      return FailedPreconditionError(
          "the audit log cannot be pruned past an export cursor",
          "sink " + lowest.Text(0) + " is at " + std::to_string(lowest.Int64(1)));
    }
  }
  {
    Stmt latest(conn, Sql::kLatestAuditAnchor);
    KURA_ASSIGN_OR_RETURN(bool row, latest.Step());
    if (row && !latest.IsNull(0) && latest.Int64(0) >= first) {
      return AbortedError("the audit log was already pruned this far",
                          "stored anchor at " + std::to_string(latest.Int64(0)));
    }
  }
  KURA_RETURN_IF_ERROR(PruneAuditPostings(conn, first));
  {
    Stmt drop(conn, Sql::kPruneAuditTimeBlocks);
    drop.BindInt64(1, first);
    KURA_RETURN_IF_ERROR(drop.Run());
  }
  {
    Stmt drop(conn, Sql::kPruneAuditRows);
    drop.BindInt64(1, first);
    KURA_RETURN_IF_ERROR(drop.Run());
  }
  {
    Stmt drop(conn, Sql::kPruneAuditStatements);
    drop.BindInt64(1, first);
    KURA_RETURN_IF_ERROR(drop.Run());
  }
  // PruneAudit checked that the anchor's tree_size is `first`.
  KURA_RETURN_IF_ERROR(InsertAuditStatement(conn, prune.anchor));
  for (const AuditNodeFloor& floor : prune.node_floors) {
    Stmt drop(conn, Sql::kPruneAuditNodes);
    drop.BindInt64(1, floor.level);
    drop.BindInt64(2, static_cast<int64_t>(std::min(floor.first_kept_index, kMaxSequence)));
    KURA_RETURN_IF_ERROR(drop.Run());
  }
  for (const AuditNode& node : prune.kept_leaves) KURA_RETURN_IF_ERROR(InsertAuditNode(conn, node));
  return Status();
}

}  // namespace

Status SqliteStore::PruneAudit(const AuditPrune& prune) {
  if (prune.first_retained_sequence == 0 || prune.first_retained_sequence > kMaxSequence) {
    return InvalidArgumentError("audit prune needs a first retained sequence above 0");
  }
  if (prune.anchor.kind != AuditStatement::Kind::kPruneAnchor ||
      prune.anchor.tree_size != prune.first_retained_sequence || prune.anchor.note.empty()) {
    return InvalidArgumentError("audit prune needs its prune anchor");
  }
  if (prune.record == nullptr) return InvalidArgumentError("audit prune needs its audit record");
  for (const AuditNode& node : prune.kept_leaves) {
    if (node.level != 0 || node.index >= prune.first_retained_sequence) {
      return InvalidArgumentError("kept audit leaves must be pruned leaves");
    }
  }
  // The unit runs in the writer's queue like a commit: its own savepoint, and the appender adds
  // the prune's record after the deletion succeeded, so both land or neither does.
  std::promise<Status> result;
  std::future<Status> ready = result.get_future();
  Enqueue({[&prune](Connection& conn) { return ApplyAuditPrune(conn, prune); },
           [&result](Status s) { result.set_value(std::move(s)); }, prune.record.get(), true});
  return ready.get();
}

Status SqliteStore::RecordSchemaVersionForTest(int64_t version) {
  const std::function<Status(Connection&)> work = [version](Connection& conn) -> Status {
    Stmt insert(conn, Sql::kInsertMigration);
    insert.BindInt64(1, version);
    insert.BindInt64(2, ToMicros(Clock::System().Now()));
    return insert.Run();
  };
  return RunAndWait(work);
}

Status SqliteStore::LimitDatabaseGrowthForTest(int64_t extra_pages) {
  const std::function<Status(Connection&)> work = [extra_pages](Connection& conn) -> Status {
    KURA_ASSIGN_OR_RETURN(std::string pages, conn.QueryText("PRAGMA page_count"));
    const std::string pragma =
        "PRAGMA max_page_count=" + std::to_string(std::stoll(pages) + extra_pages);
    return conn.QueryText(pragma.c_str()).status();
  };
  return RunAndWait(work);
}

}  // namespace kura::store
