// AuditLog: the running audit log, joining the log format (chain.h, checkpoint.h) to a store.
//
// Writing. Callers put records into a WriteBatch as a draft (AuditLog::Draft); the store's writer
// hands each draft to this object (it is the store's AuditAppender), which numbers the records,
// advances the hash chain and the Merkle tree, encrypts each canonical record under the audit
// data key and returns the rows the store inserts in the same transaction. At the end of each
// transaction it saves its state (log head and last checkpoint) and, when the CheckpointPolicy
// says so, signs a checkpoint that commits in the same transaction. A failed transaction rolls
// the in-memory head back, so sequence numbers stay gapless.
//
// Reading. Rows decrypt with the key their record names; inclusion proofs read the Merkle nodes
// the appender kept (every fourth level) and VerifyStoredLog checks the whole stored log.
//
// Retention. Prune deletes the records older than a cutoff in steps. Each step first verifies
// the records it is about to delete against the signed checkpoints and the previous prune anchor
// (a log that does not verify is never pruned: that would destroy the evidence), then signs a
// prune anchor for the new first record and hands the store one transaction that deletes the
// rows, keeps the few hashes later inclusion proofs need, stores the anchor and appends a
// `system`/`prune` record. It never passes an export cursor or the latest signed checkpoint.
// docs/formats/audit-log.md, "Retention and pruning".
//
// Keys. Records are sealed with AES-256-GCM under the tenant's "audit" data key (associated data
// kAuditRecordAad). Checkpoints are signed with an Ed25519 key whose seed is kept only wrapped by
// the key provider (LoadOrCreateCheckpointSigner); its public key is what verifiers trust.
//
// The appender methods run only on the store's writer thread; everything else is thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "kura/audit/chain.h"
#include "kura/audit/checkpoint.h"
#include "kura/audit/inclusion.h"
#include "kura/audit/record.h"
#include "kura/audit/verifier.h"
#include "kura/base/clock.h"
#include "kura/base/status.h"
#include "kura/crypto/aead.h"
#include "kura/crypto/key_provider.h"
#include "kura/crypto/signature.h"
#include "kura/store/audit_log_store.h"
#include "kura/store/store.h"

namespace kura::audit {

// Associated data of every sealed record. It does not bind the sequence on purpose: the
// canonical record carries its own sequence, so a record moved to another row still decrypts
// and the verifier reports exactly what happened (reordered, inserted) instead of "modified".
inline constexpr std::string_view kAuditRecordAad = "kura/audit-record/v1";
// Data key scope of the audit record key (DataKeyring).
inline constexpr std::string_view kAuditKeyScope = "audit";
// Scope under which the wrapped checkpoint signing seed is stored, and its wrapping label.
inline constexpr std::string_view kCheckpointSigningScope = "audit-checkpoint-signing";
inline constexpr std::string_view kCheckpointSigningLabel = "kura/audit-checkpoint-signing/v1";
// The store keeps the Merkle subtree hashes of every level that is a multiple of this, so a
// perfect subtree of any level is at most 2^(step-1) reads away.
inline constexpr int kKeptNodeLevelStep = 4;

// Looks up a data key by the id a sealed record names (DataKeyring::KeyById).
using AuditKeyLookup = std::function<StatusOr<std::shared_ptr<const crypto::AeadKey>>(uint64_t)>;

// The tenant's checkpoint signing key: unwrapped from the store, or created, wrapped with the
// provider's primary KEK (label kCheckpointSigningLabel, bound to tenant and key id) and stored
// on first use. DataLoss when the stored key does not unwrap.
[[nodiscard]] StatusOr<crypto::Ed25519Signer> LoadOrCreateCheckpointSigner(
    store::Store& store, const crypto::KeyProvider& provider, std::string_view tenant);

// The same key without ever creating one: nullopt when the store holds none. For readers
// (`kura audit verify`) that must not change what they inspect.
[[nodiscard]] StatusOr<std::optional<crypto::Ed25519Signer>> LoadCheckpointSigner(
    store::Store& store, const crypto::KeyProvider& provider, std::string_view tenant);

// The log origin (checkpoint first line) of a tenant's audit log.
[[nodiscard]] std::string AuditOrigin(std::string_view tenant);

struct AuditLogOptions {
  std::string origin;
  CheckpointPolicy checkpoint_policy;
};

struct AuditPruneOptions {
  // Who the `system`/`prune` record names (the server, or an administrative command).
  Actor actor{.kind = "system", .id = "kura", .role = {}, .tenant = {}, .client_id = {}};
  // Most records one step deletes (one transaction, one anchor, one record): a first prune of a
  // long log then neither holds the store's writer (and every commit waiting on it) for long
  // nor keeps more than this many records' checkpoints in memory while verifying them.
  uint64_t max_records_per_step = 50000;
  // Asked before each step; false ends the run early (server shutdown). Null: run to the end.
  std::function<bool()> keep_going;
};

struct AuditPruneResult {
  uint64_t records_pruned = 0;           // By this run.
  uint64_t steps = 0;                    // Anchors signed and prune records written.
  uint64_t first_retained_sequence = 0;  // After the run; 0 while the log was never pruned.
  // Why records older than the cutoff stay, when some do: "export cursor <sink>" (that sink has
  // not received them) or "not covered by a signed checkpoint yet". Empty otherwise.
  std::string held_back_by;
};

// A record's plaintext and proof against a signed checkpoint.
struct InclusionEvidence {
  AuditRecord record;
  std::string canonical;
  RecordInclusionProof proof;
  std::string checkpoint_note;
};

class AuditLog final : public store::AuditAppender {
 public:
  // Continues the log from the state the store saved (an empty log when none) and attaches
  // itself to `store` as its appender. `store` must outlive the AuditLog, and the AuditLog must
  // outlive the store's writes (close the store first). DataLoss when the saved state is corrupt.
  [[nodiscard]] static StatusOr<std::unique_ptr<AuditLog>> Open(
      store::AuditLogStore& store, std::shared_ptr<const crypto::AeadKey> record_key,
      AuditKeyLookup key_lookup, crypto::Ed25519Signer signer, AuditLogOptions options,
      const Clock& clock);

  // Drafts for WriteBatch::audit.
  [[nodiscard]] static std::shared_ptr<const store::AuditDraft> Draft(AuditRecord record);
  [[nodiscard]] static std::shared_ptr<const store::AuditDraft> Draft(
      std::vector<AuditRecord> records);
  // `record`, and a checkpoint over it and everything before it in the same commit, whatever
  // the policy's time says. For a record written just before its writer goes away (the server's
  // stop record, an administrative command): otherwise the log's tail would stay unsigned, and
  // could be cut off unnoticed, until a server next runs the policy.
  [[nodiscard]] static std::shared_ptr<const store::AuditDraft> SignedDraft(AuditRecord record);
  // A draft without records: its transaction still runs the checkpoint policy, so a quiet log
  // gets its tail signed (commit one when CheckpointDue says so).
  [[nodiscard]] static std::shared_ptr<const store::AuditDraft> Heartbeat();

  // store::AuditAppender, on the writer thread only.
  Status BeginTransaction(const std::optional<std::string>& saved_state) override;
  Status Append(const store::AuditDraft& draft, std::vector<store::AuditRow>& rows,
                std::vector<store::AuditNode>& nodes) override;
  StatusOr<store::AuditTransactionTail> FinishTransaction() override;
  void EndTransaction(bool committed) override;

  // Records durable so far.
  uint64_t committed_size() const { return committed_size_.load(std::memory_order_acquire); }
  // True when the committed log has records no checkpoint covers and the policy's time is up.
  bool CheckpointDue(TimePoint now) const;
  // Called on the writer thread after each durable transaction with the new size; must not
  // block (e.g. wake an exporter). Set before the first write.
  void SetCommitListener(std::function<void(uint64_t committed_size)> listener);

  // Retention: deletes every record before the first one (by sequence) whose time is at or after
  // `cutoff`, but never a record an export cursor has not passed or no stored checkpoint covers
  // (see the class comment). Idempotent: nothing to delete is an OK result with no steps and
  // nothing written. Runs alongside appends; concurrent calls take turns. Not on the writer
  // thread (it waits for the writer). DataLoss when the stored prune anchor or the records to
  // delete do not verify (nothing of that step is deleted); the store's errors otherwise
  // (FailedPrecondition when a sink's cursor moved back below the step). A prune another
  // process finished first ends the run with OK.
  [[nodiscard]] StatusOr<AuditPruneResult> Prune(TimePoint cutoff,
                                                 const AuditPruneOptions& options = {});

  const std::string& origin() const { return options_.origin; }
  const NoteVerifierKey& verifier_key() const { return verifier_key_; }
  store::AuditLogStore& store() { return store_; }
  const AuditKeyLookup& key_lookup() const { return key_lookup_; }

 private:
  AuditLog(store::AuditLogStore& store, std::shared_ptr<const crypto::AeadKey> record_key,
           AuditKeyLookup key_lookup, crypto::Ed25519Signer signer, NoteVerifierKey verifier_key,
           AuditLogOptions options, const Clock& clock)
      : store_(store),
        record_key_(std::move(record_key)),
        key_lookup_(std::move(key_lookup)),
        signer_(std::move(signer)),
        verifier_key_(std::move(verifier_key)),
        options_(std::move(options)),
        clock_(clock) {}

  // One prune step from the current first retained record towards `target`; false when there
  // is nothing (more) to delete.
  StatusOr<bool> PruneStep(uint64_t target, TimePoint cutoff, const AuditPruneOptions& options,
                           AuditPruneResult& result);

  store::AuditLogStore& store_;
  const std::shared_ptr<const crypto::AeadKey> record_key_;
  const AuditKeyLookup key_lookup_;
  const crypto::Ed25519Signer signer_;
  const NoteVerifierKey verifier_key_;
  const AuditLogOptions options_;
  const Clock& clock_;

  // Writer thread only.
  AuditChain chain_;
  LogHead transaction_start_;
  CheckpointMark last_checkpoint_;
  CheckpointMark pending_checkpoint_;
  bool sign_requested_ = false;  // A SignedDraft is in the open transaction.
  std::string committed_state_;  // The state blob last committed ("" for a log never written).
  std::string pending_state_;
  std::function<void(uint64_t)> on_commit_;

  std::atomic<uint64_t> committed_size_{0};
  mutable std::mutex mark_mu_;
  CheckpointMark committed_checkpoint_;  // Guarded by mark_mu_.
  std::mutex prune_mu_;                  // Held for a whole Prune run.
};

// The plaintext canonical record of a row: decrypted with the key it names and checked against
// the row's leaf hash. DataLoss when it does not decrypt or does not match.
[[nodiscard]] StatusOr<std::string> OpenAuditRow(const store::AuditRow& row,
                                                 const AuditKeyLookup& key_lookup);

// Decrypted records of a search over the clear index columns, newest first. DataLoss when a
// matching row fails its integrity check (it is never skipped or shown altered).
struct AuditRecordPage {
  std::vector<AuditRecord> records;
  uint64_t next_before_sequence = 0;  // 0 on the last page.
};
[[nodiscard]] StatusOr<AuditRecordPage> SearchAuditRecords(store::AuditLogStore& store,
                                                           const AuditKeyLookup& key_lookup,
                                                           const store::AuditQuery& query);
// One record by sequence; NotFound when there is none (yet, or pruned).
[[nodiscard]] StatusOr<AuditRecord> ReadAuditRecord(store::AuditLogStore& store,
                                                    const AuditKeyLookup& key_lookup,
                                                    uint64_t sequence);

// Record `sequence` with its inclusion proof against the smallest stored checkpoint that covers
// it (or the checkpoint of exactly `tree_size` records when non-zero). NotFound when the record
// or a covering checkpoint does not exist (yet); DataLoss when stored data does not add up.
[[nodiscard]] StatusOr<InclusionEvidence> ProveStoredInclusion(
    store::AuditLogStore& store, const AuditKeyLookup& key_lookup, std::string_view origin,
    std::span<const NoteVerifierKey> trusted, uint64_t sequence, uint64_t tree_size);

// Verifies every stored record against the stored checkpoints and prune anchors plus
// `extra_notes` (signed notes from external sinks; checkpoints and anchors alike). A row that
// does not decrypt or whose leaf hash does not match its record counts as modified. Each row's
// clear index columns are compared with its record, and the store's folded search indexes with
// the rows (store::AuditLogStore::CheckAuditIndexes): an edit that hides a record from searches
// is an index mismatch. `on_record` as for VerifyLog.
[[nodiscard]] StatusOr<VerificationReport> VerifyStoredLog(
    store::AuditLogStore& store, const AuditKeyLookup& key_lookup, const VerifyOptions& options,
    std::span<const std::string> extra_notes, const RecordObserver& on_record = nullptr);

}  // namespace kura::audit
