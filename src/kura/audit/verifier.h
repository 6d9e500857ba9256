// LogVerifier: checks a stored audit log against its signed checkpoints and prune anchors, in
// one streaming pass with O(log n) memory (plus the checkpoints), and says what was tampered
// with and where.
//
// Inputs: the records as the store holds them (sequence, canonical bytes, stored chain hash) in
// ascending sequence order; every checkpoint and prune anchor note that can be found (the store's
// own copies and, crucially, the copies shipped to external sinks: a checkpoint only an attacker
// could delete cannot prove a truncation); the trusted public keys and the log's origin.
//
// Findings (IssueKind): a record whose bytes or chain hash changed (modified), sequence gaps
// (deleted), repeated sequences (inserted), records out of place (reordered), a log shorter than
// a signed checkpoint or anchor (truncated), checkpoints whose signature or syntax is bad (bad
// checkpoint), signed checkpoints or anchors the records do not reproduce (checkpoint
// mismatch: history was rewritten and re-chained), and clear index columns that do not say what
// the sealed record says (index mismatch: a search would miss or misfile the record). Records after
// the last checkpoint are only protected by the chain until the next checkpoint; the report counts
// them (unsigned_tail). The algorithm is specified in docs/formats/audit-log.md, "Verification".
//
// LogVerifier is thread-compatible (one pass, one thread). VerifyLog is thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kura/audit/chain.h"
#include "kura/audit/checkpoint.h"
#include "kura/audit/merkle.h"
#include "kura/audit/note.h"
#include "kura/audit/record.h"
#include "kura/base/status.h"

namespace kura::audit {

// The clear columns a store keeps beside a sealed record so that the log can be searched without
// decrypting it. They are outside the seal and the chain, so only a comparison with the record
// shows that someone changed them to hide the record from a search.
struct RecordIndexColumns {
  int64_t time_us = 0;
  std::string category;
  std::string action;
  int outcome = 0;
  std::string actor;                     // The actor's id.
  std::vector<std::string> patient_ids;  // Sorted.
  bool patients_readable = true;         // False when the stored column did not decode.
};

// The names of the columns of `index` ("time", "category", "action", "outcome", "actor",
// "patients") that differ from `record`; empty when they all agree.
[[nodiscard]] std::vector<std::string_view> DifferingIndexColumns(const RecordIndexColumns& index,
                                                                  const AuditRecord& record);

// One record as read back from the store.
struct StoredRecord {
  uint64_t sequence = 0;  // The store's sequence column.
  std::string canonical;
  Hash chain_hash{};  // The stored H_{sequence + 1}.
  // The row's clear index columns, when the store keeps any; compared with the record.
  std::optional<RecordIndexColumns> index;
};

// A cursor over the stored log in ascending sequence order; the store implements it.
class StoredRecordReader {
 public:
  virtual ~StoredRecordReader() = default;
  // The next record, nullopt at the end. An error ends verification with a read-error issue.
  [[nodiscard]] virtual StatusOr<std::optional<StoredRecord>> Next() = 0;
};

enum class IssueKind {
  kModified,            // Record bytes or stored chain hash changed; record does not decode.
  kDeleted,             // Sequence gap (or missing prefix without a prune anchor).
  kInserted,            // A sequence number appears again.
  kReordered,           // A record appears out of place, or holds another record's contents.
  kTruncated,           // The log ends before a signed checkpoint or prune anchor says it does.
  kBadCheckpoint,       // A checkpoint or anchor note is malformed, forged or untrusted.
  kCheckpointMismatch,  // A valid signed checkpoint or anchor disagrees with the records.
  kReadError,           // The store could not be read to the end.
  kIndexMismatch,       // Clear index columns or folded search indexes disagree with a record.
  kResourceMismatch,    // The resource tables disagree with the writes the records name.
};
[[nodiscard]] std::string_view IssueKindName(IssueKind kind);  // "modified", "deleted", ...

struct VerificationIssue {
  IssueKind kind;
  // The first record concerned, when there is one.
  std::optional<uint64_t> sequence;
  std::string reason;  // One sentence for operators; ids and sizes only, never record content.
};

struct VerificationReport {
  std::vector<VerificationIssue> issues;  // In detection order, at most max_issues.
  uint64_t issue_count = 0;               // Including those not kept.
  uint64_t first_sequence = 0;            // Where verification started (0 or a prune anchor).
  uint64_t records_checked = 0;
  uint64_t tree_size = 0;  // Records [0, tree_size) were accounted for.
  Hash root{};             // Of the records as read (meaningless when !ok()).
  Hash chain_head{};
  uint64_t checkpoints_matched = 0;    // Signed checkpoints the records reproduce.
  uint64_t checkpoints_unchecked = 0;  // Before the prune point, or after an earlier failure.
  uint64_t latest_checkpoint_size = 0;
  uint64_t unsigned_tail = 0;  // Records after the latest matched checkpoint.
  bool read_failed = false;    // The store could not be read to the end (a read-error issue).

  bool ok() const { return issue_count == 0; }
  // The smallest sequence number any issue names.
  [[nodiscard]] std::optional<uint64_t> FirstBadSequence() const;
  // Human-readable lines for `kura audit verify`.
  [[nodiscard]] std::string Summary() const;
  [[nodiscard]] nlohmann::ordered_json ToJson() const;
  // Adds a finding made outside the record stream (the store's folded indexes), keeping at most
  // `max_issues` of them in `issues` like the verifier does.
  void AddIssue(VerificationIssue issue, size_t max_issues);
};

// Sees each record that decodes and sits at its own sequence, in sequence order: checks that
// need the records' content (such as comparing the resource tables with the writes the log
// recorded) ride on the verifier's pass instead of decoding every record again.
using RecordObserver = std::function<void(const AuditRecord&)>;

struct VerifyOptions {
  std::string origin;                         // The log's origin (checkpoint first line).
  std::vector<NoteVerifierKey> trusted_keys;  // Current and retired checkpoint keys.
  size_t max_issues = 100;
  // Asked every few thousand records read; false ends VerifyLog (the reader form) with Aborted (a
  // server shutting down does not wait for a long run). Null: run to the end.
  std::function<bool()> keep_going = nullptr;
};

// Streaming verifier. Create, feed every stored record in ascending sequence order with Add,
// then Finish. Memory: O(log n) for the tree plus the checkpoints and anchors given.
class LogVerifier {
 public:
  // `checkpoint_notes` and `anchor_notes` are signed notes in any order, duplicates allowed.
  // InvalidArgument when the origin is invalid or no key is trusted; bad notes do not fail
  // Create, they become kBadCheckpoint issues.
  [[nodiscard]] static StatusOr<LogVerifier> Create(VerifyOptions options,
                                                    std::span<const std::string> checkpoint_notes,
                                                    std::span<const std::string> anchor_notes,
                                                    RecordObserver on_record = nullptr);

  void Add(const StoredRecord& record);
  // Records that the store failed mid-way; Finish still reports what was checked.
  void AddReadError(const Status& status);
  [[nodiscard]] VerificationReport Finish() &&;

 private:
  struct Gap {
    uint64_t from;
    uint64_t to;  // Exclusive.
    size_t issue;
  };
  explicit LogVerifier(VerifyOptions options) : options_(std::move(options)) {}
  void Start(std::optional<uint64_t> first_sequence);
  void CheckStatementsAt(uint64_t size);
  void AddIssue(IssueKind kind, std::optional<uint64_t> sequence, std::string reason);

  VerifyOptions options_;
  RecordObserver on_record_;
  std::vector<Checkpoint> checkpoints_;  // Verified, sorted by tree size.
  std::vector<PruneAnchor> anchors_;     // Verified, sorted by first sequence.
  size_t next_checkpoint_ = 0;
  size_t next_anchor_ = 0;
  bool started_ = false;
  bool tree_valid_ = true;  // False once a gap makes the recomputed tree meaningless.
  bool read_failed_ = false;
  bool record_issue_since_checkpoint_ = false;  // A record-level finding after the last match.
  uint64_t expected_ = 0;                       // The next sequence number.
  uint64_t last_matched_checkpoint_ = 0;
  LogHead head_;
  std::vector<Gap> gaps_;
  VerificationReport report_;
};

// Verifies everything `reader` yields. Same contract as LogVerifier.
[[nodiscard]] StatusOr<VerificationReport> VerifyLog(StoredRecordReader& reader,
                                                     const VerifyOptions& options,
                                                     std::span<const std::string> checkpoint_notes,
                                                     std::span<const std::string> anchor_notes,
                                                     const RecordObserver& on_record = nullptr);
// Convenience over records held in memory (tests, small exports).
[[nodiscard]] StatusOr<VerificationReport> VerifyLog(std::span<const StoredRecord> records,
                                                     const VerifyOptions& options,
                                                     std::span<const std::string> checkpoint_notes,
                                                     std::span<const std::string> anchor_notes);

// The "system"/"verify" audit record that documents a verification run (outcome success or
// serious failure; tree size, issue count, first bad sequence in details).
[[nodiscard]] AuditRecord VerificationAuditRecord(const VerificationReport& report,
                                                  int64_t time_us);

}  // namespace kura::audit
