// AuditLogStore: how a backend keeps the audit log, without knowing what an audit record is.
//
// The audit layer owns the log's format (chain, Merkle tree, encryption, checkpoints); the store
// owns durability and order. They meet in two places:
//   - Writes. A WriteBatch may carry an AuditDraft (opaque here). The backend's writer hands each
//     draft, in commit order and inside the transaction that holds the batch's resources, to the
//     attached AuditAppender, which turns it into rows; the backend inserts them in the same
//     transaction. So a write and its audit record are durable together or not at all, and a
//     batch with only a draft (a read's record) is durable before CommitAsync reports back.
//   - Reads. Rows in sequence order (verification, export), tree nodes (inclusion proofs), the
//     appender's saved state (start-up), signed statements (checkpoints, prune anchors), a search
//     over the clear index columns, and per-sink export cursors (the durable outbox).
//   - Retention. PruneAudit deletes the oldest records in one write transaction together with
//     the signed prune anchor (and the audit record) that the audit layer prepared for it.
//
// A backend that implements this interface passes the audit cases of store_conformance_test.cc.
// Implementations are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kura/base/status.h"

namespace kura::store {

// What the layer above wants recorded; the store only passes it to the AuditAppender.
class AuditDraft {
 public:
  virtual ~AuditDraft() = default;
};

// One audit record as persisted. `sealed` is opaque (the encrypted record); the other columns
// exist so the log can be searched, proven and exported without decrypting everything.
struct AuditRow {
  uint64_t sequence = 0;  // Gapless, ascending in commit order.
  int64_t time_us = 0;    // Event time, microseconds since the Unix epoch.
  std::string category;
  std::string action;
  int outcome = 0;
  std::string actor;                     // Actor id (not secret, not PHI).
  std::vector<std::string> patient_ids;  // Compartments the event touched, sorted.
  // False when the stored patient ids did not decode (then patient_ids is empty); only a row
  // edited outside Kura has such a column.
  bool patients_readable = true;
  std::string sealed;
  std::string leaf_hash;   // 32 bytes.
  std::string chain_hash;  // 32 bytes.
};

// A complete Merkle subtree hash the appender chose to keep (so proofs need few reads).
struct AuditNode {
  // >= 1 for what the appender keeps; level 0 hashes are the rows' leaf_hash, and level 0 nodes
  // only hold leaf hashes of pruned records that proofs of retained records still need.
  int level = 0;
  uint64_t index = 0;
  std::string hash;  // 32 bytes.
};

// A signed statement about the log: a checkpoint (tree_size > 0) or a prune anchor.
struct AuditStatement {
  enum class Kind { kCheckpoint = 0, kPruneAnchor = 1 };
  Kind kind = Kind::kCheckpoint;
  uint64_t tree_size = 0;  // Checkpoint: records covered. Anchor: first retained sequence.
  int64_t time_us = 0;
  std::string note;  // The signed note text.
};

// An export sink's durable position (AuditLogStore::ReadAuditCursor).
struct AuditCursor {
  std::string name;
  uint64_t next_sequence = 0;
};

// Kept nodes of `level` with an index below `first_kept_index` are no longer needed.
struct AuditNodeFloor {
  int level = 0;
  uint64_t first_kept_index = 0;
};

// One prune step as the audit layer prepared it (audit::AuditLog::Prune), applied atomically by
// AuditLogStore::PruneAudit.
struct AuditPrune {
  // Rows with a smaller sequence are deleted, with their patient links, every checkpoint of a
  // smaller tree size (it covers deleted records only) and every older prune anchor.
  uint64_t first_retained_sequence = 0;
  AuditStatement anchor;  // Kind kPruneAnchor, tree_size == first_retained_sequence.
  // Leaf hashes of deleted rows that inclusion proofs of retained records still need, stored as
  // level-0 nodes, so ReadAuditNode(0, index) keeps answering for them.
  std::vector<AuditNode> kept_leaves;
  // Kept nodes that no proof of a retained record reads any more.
  std::vector<AuditNodeFloor> node_floors;
  // The audit record of the prune, appended in the same transaction (as a WriteBatch's draft).
  std::shared_ptr<const AuditDraft> record;
};

// What one transaction adds to the log beyond its rows.
struct AuditTransactionTail {
  std::string state;                       // Replaces the saved appender state.
  std::vector<AuditStatement> statements;  // New checkpoints to keep.
};

// Turns drafts into rows. The audit layer implements it; a backend calls it only from its
// writer, one transaction at a time:
//   BeginTransaction, then Append for each draft in commit order, then FinishTransaction (when
//   any Append ran or a heartbeat draft asked for it), then EndTransaction(committed).
class AuditAppender {
 public:
  virtual ~AuditAppender() = default;
  // `saved_state` is the state as committed, read inside the write transaction (nullopt for a
  // log never written): when it is not what this appender last saved, another writer appended
  // and the appender continues from it. An error fails the draft's unit.
  virtual Status BeginTransaction(const std::optional<std::string>& saved_state) = 0;
  // Rows (and nodes to keep) for `draft`, continuing the log. On error nothing changed: the
  // backend fails the draft's unit alone.
  virtual Status Append(const AuditDraft& draft, std::vector<AuditRow>& rows,
                        std::vector<AuditNode>& nodes) = 0;
  // The state and statements to store with the transaction.
  virtual StatusOr<AuditTransactionTail> FinishTransaction() = 0;
  // The transaction is durable (true) or rolled back (false: forget everything since Begin).
  virtual void EndTransaction(bool committed) = 0;
};

// Something the search structures derived from the rows' index columns (folded indexes,
// summaries) say that the columns do not, or leave out what they do say.
struct AuditIndexFinding {
  std::optional<uint64_t> sequence;  // The record concerned, when there is one.
  std::string what;                  // One sentence naming the structure; never a column value.
};

// Search over the clear index columns, newest first.
struct AuditQuery {
  std::string actor;       // Exact actor id, or "" for any.
  std::string patient_id;  // Records touching this compartment, or "" for any.
  std::string action;      // Exact, or "".
  std::string category;    // Exact, or "".
  std::optional<int> outcome;
  std::optional<int64_t> since_us;  // time_us >= since.
  std::optional<int64_t> until_us;  // time_us < until.
  uint64_t before_sequence = 0;     // Paging cursor: only sequence < this; 0 = from the newest.
  int64_t limit = 50;               // >= 1.
};

struct AuditPage {
  std::vector<AuditRow> rows;
  uint64_t next_before_sequence = 0;  // 0 when this is the last page.
};

class AuditLogStore {
 public:
  virtual ~AuditLogStore() = default;

  // From now on batches with an AuditDraft go to `appender` (which must outlive the store's
  // writes). Batches with a draft fail with Unavailable while none is attached.
  virtual void AttachAuditAppender(AuditAppender* appender) = 0;

  // The state the last committed transaction saved; nullopt for a log never written.
  virtual StatusOr<std::optional<std::string>> ReadAuditState() = 0;
  // Up to `limit` rows with sequence >= from_sequence, ascending.
  virtual StatusOr<std::vector<AuditRow>> ReadAuditRows(uint64_t from_sequence, size_t limit) = 0;
  // The hash of a kept subtree (level >= 1) or of a leaf (level 0); nullopt when not kept.
  virtual StatusOr<std::optional<std::string>> ReadAuditNode(int level, uint64_t index) = 0;
  // Every kept checkpoint and prune anchor, by kind then tree_size.
  virtual StatusOr<std::vector<AuditStatement>> ReadAuditStatements() = 0;
  // The smallest checkpoint covering at least `min_tree_size` records, or the latest one when
  // min_tree_size is 0; nullopt when there is none.
  virtual StatusOr<std::optional<AuditStatement>> FindAuditCheckpoint(uint64_t min_tree_size) = 0;
  // Up to `limit` checkpoints with tree_size > `tree_size`, ascending: what an exporter has not
  // shipped yet, without reading every statement again.
  virtual StatusOr<std::vector<AuditStatement>> ReadAuditCheckpointsAfter(uint64_t tree_size,
                                                                          size_t limit) = 0;
  virtual StatusOr<AuditPage> SearchAudit(const AuditQuery& query) = 0;

  // Export cursors: the next sequence sink `name` has not yet received (0 when unknown).
  virtual StatusOr<uint64_t> ReadAuditCursor(std::string_view name) = 0;
  virtual Status WriteAuditCursor(std::string_view name, uint64_t next_sequence) = 0;
  // Every stored cursor, by name.
  virtual StatusOr<std::vector<AuditCursor>> ReadAuditCursors() = 0;
  // Removes the named cursors in one durable write (a sink that is gone for good, whose cursor
  // would otherwise hold retention back forever); returns how many existed.
  virtual StatusOr<int64_t> DeleteAuditCursors(const std::vector<std::string>& names) = 0;

  // Every kept prune anchor, ascending by first retained sequence (normally at most one: a
  // prune deletes the anchors it supersedes).
  virtual StatusOr<std::vector<AuditStatement>> ReadAuditPruneAnchors() = 0;
  // The smallest sequence of a stored record whose time_us is >= `time_us`; nullopt when no
  // record is that recent. Event times need not grow with the sequence (clock steps, records
  // drafted before others committed), so this is not "the first record by time".
  virtual StatusOr<std::optional<uint64_t>> FindFirstAuditSequenceSince(int64_t time_us) = 0;
  // Checks what the backend derived from the rows' index columns for searching against those
  // columns: every record it covers is found under each of its patients, its actor and its time,
  // and it names nothing the rows do not. Up to `limit` findings, ascending by sequence. With
  // the audit layer comparing each row's columns with its sealed record, this shows an edit that
  // hides a record from searches while leaving the record itself intact.
  virtual StatusOr<std::vector<AuditIndexFinding>> CheckAuditIndexes(size_t limit) = 0;
  // Applies `prune` in one write transaction, ordered with every other write (never inside a
  // group's half-written state): deletes what AuditPrune says, stores the anchor and the kept
  // leaves, and appends `prune.record` through the attached appender. All or nothing.
  // Never passes an export cursor: FailedPrecondition when any cursor (records or checkpoints
  // of a sink) is below first_retained_sequence, because that sink has not received what would
  // be deleted. Aborted when an anchor at or past first_retained_sequence is already stored (a
  // concurrent prune won). InvalidArgument for a first sequence of 0, an anchor of another kind
  // or size, or no record; Unavailable when no appender is attached or the commit fails.
  virtual Status PruneAudit(const AuditPrune& prune) = 0;
};

}  // namespace kura::store
