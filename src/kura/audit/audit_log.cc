// AuditLog: appender, saved state, signing key, proofs and verification over a store.
#include "kura/audit/audit_log.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "kura/base/random.h"

namespace kura::audit {
namespace {

// The drafts AuditLog makes. Records are complete except for their sequence. On the caller's
// thread, each record's compartment list is sorted and deduplicated (the writer thread copies it
// into the row's patient ids as it is) and the record is checked and encoded: the single writer
// only numbers the encoding (AuditChain::AppendEncoded).
class RecordDraft final : public store::AuditDraft {
 public:
  explicit RecordDraft(std::vector<AuditRecord> records, bool sign_now = false)
      : records(Normalized(std::move(records))),
        encoded(Encoded(this->records)),
        sign_now(sign_now) {}
  const std::vector<AuditRecord> records;
  // encoded[i] is records[i] encoded, or why it does not encode.
  const std::vector<StatusOr<std::string>> encoded;
  // Its transaction signs a checkpoint over everything unsigned, whatever the policy says.
  const bool sign_now;

 private:
  static std::vector<AuditRecord> Normalized(std::vector<AuditRecord> records) {
    for (AuditRecord& record : records) {
      std::vector<std::string>& ids = record.patient_compartments;
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    }
    return records;
  }
  static std::vector<StatusOr<std::string>> Encoded(const std::vector<AuditRecord>& records) {
    std::vector<StatusOr<std::string>> out;
    out.reserve(records.size());
    // The sequence encoded here is a placeholder; the writer sets the real one.
    for (const AuditRecord& record : records) out.push_back(EncodeAuditRecord(record));
    return out;
  }
};

// Saved appender state: "KAS1" | u64 size | chain head | u32 n | n frontier hashes |
// u64 last checkpoint size | i64 last checkpoint time (us).
constexpr std::string_view kStateMagic = "KAS1";

void PutU64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}

bool TakeU64(std::string_view& in, uint64_t& v) {
  if (in.size() < 8) return false;
  v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  in.remove_prefix(8);
  return true;
}

bool TakeHash(std::string_view& in, Hash& h) {
  if (in.size() < kHashBytes) return false;
  std::memcpy(h.data(), in.data(), kHashBytes);
  in.remove_prefix(kHashBytes);
  return true;
}

std::string HashBytes(const Hash& h) {
  return std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

std::string EncodeState(const LogHead& head, const CheckpointMark& mark) {
  std::string out(kStateMagic);
  PutU64(out, head.size());
  out += HashBytes(head.chain_head);
  PutU64(out, head.frontier.hashes().size());
  for (const Hash& h : head.frontier.hashes()) out += HashBytes(h);
  PutU64(out, mark.tree_size);
  PutU64(out, static_cast<uint64_t>(ToMicros(mark.time)));
  return out;
}

StatusOr<std::pair<LogHead, CheckpointMark>> DecodeState(std::string_view in) {
  const Status corrupt = DataLossError("audit log state is corrupt");
  if (!in.starts_with(kStateMagic)) return corrupt;
  in.remove_prefix(kStateMagic.size());
  uint64_t size = 0;
  uint64_t count = 0;
  LogHead head;
  if (!TakeU64(in, size) || !TakeHash(in, head.chain_head) || !TakeU64(in, count) || count > 64) {
    return corrupt;
  }
  std::vector<Hash> hashes(count);
  for (Hash& h : hashes) {
    if (!TakeHash(in, h)) return corrupt;
  }
  StatusOr<MerkleFrontier> frontier = MerkleFrontier::FromHashes(size, std::move(hashes));
  if (!frontier.ok()) return corrupt;
  head.frontier = std::move(*frontier);
  CheckpointMark mark;
  uint64_t time_us = 0;
  if (!TakeU64(in, mark.tree_size) || !TakeU64(in, time_us) || !in.empty()) return corrupt;
  mark.time = FromMicros(static_cast<int64_t>(time_us));
  return std::make_pair(std::move(head), mark);
}

std::string SigningKeyAad(std::string_view tenant, uint64_t key_id) {
  std::string aad(kCheckpointSigningLabel);
  aad += '|';
  aad += tenant;
  aad += '|';
  aad += std::to_string(key_id);
  return aad;
}

// Perfect subtree hashes from the nodes the appender kept: a kept level is one read, any other
// level combines at most 2^(kKeptNodeLevelStep - 1) nodes of the kept level below it.
class StoredSubtrees final : public SubtreeHashSource {
 public:
  explicit StoredSubtrees(store::AuditLogStore& store) : store_(store) {}

  StatusOr<Hash> PerfectSubtreeHash(int level, uint64_t index) const override {
    if (level < 0 || level > 63) return InvalidArgumentError("bad subtree level");
    const int base = level - level % kKeptNodeLevelStep;
    const int span_bits = level - base;
    std::vector<Hash> parts;
    parts.reserve(size_t{1} << span_bits);
    for (uint64_t i = index << span_bits; i < (index + 1) << span_bits; ++i) {
      KURA_ASSIGN_OR_RETURN(std::optional<std::string> stored, store_.ReadAuditNode(base, i));
      if (!stored) return NotFoundError("subtree is not complete");
      Hash h{};
      if (stored->size() != kHashBytes) return DataLossError("stored audit node is corrupt");
      std::memcpy(h.data(), stored->data(), kHashBytes);
      parts.push_back(h);
    }
    return parts.size() == 1 ? parts.front() : MerkleRoot(parts);
  }

 private:
  store::AuditLogStore& store_;
};

RecordIndexColumns IndexColumnsOf(const store::AuditRow& row) {
  return RecordIndexColumns{.time_us = row.time_us,
                            .category = row.category,
                            .action = row.action,
                            .outcome = row.outcome,
                            .actor = row.actor,
                            .patient_ids = row.patient_ids,
                            .patients_readable = row.patients_readable};
}

// Feeds stored rows to the verifier, page by page, opening each.
class StoredRowReader final : public StoredRecordReader {
 public:
  StoredRowReader(store::AuditLogStore& store, const AuditKeyLookup& keys,
                  uint64_t from_sequence = 0)
      : store_(store), keys_(keys), from_(from_sequence) {}

  StatusOr<std::optional<StoredRecord>> Next() override {
    if (next_ == page_.size()) {
      if (done_) return std::optional<StoredRecord>();
      KURA_ASSIGN_OR_RETURN(page_, store_.ReadAuditRows(from_, kPageSize));
      next_ = 0;
      done_ = page_.size() < kPageSize;
      if (page_.empty()) return std::optional<StoredRecord>();
      from_ = page_.back().sequence + 1;
    }
    store::AuditRow& row = page_[next_++];
    StoredRecord out;
    out.sequence = row.sequence;
    // A row that does not open is handed on with no record bytes: the verifier reports it as
    // modified at its sequence and keeps going.
    StatusOr<std::string> canonical = OpenAuditRow(row, keys_);
    if (canonical.ok()) out.canonical = std::move(*canonical);
    if (row.chain_hash.size() == kHashBytes) {
      std::memcpy(out.chain_hash.data(), row.chain_hash.data(), kHashBytes);
    }
    out.index = IndexColumnsOf(row);
    return std::optional<StoredRecord>(std::move(out));
  }

 private:
  static constexpr size_t kPageSize = 1024;
  store::AuditLogStore& store_;
  const AuditKeyLookup& keys_;
  std::vector<store::AuditRow> page_;
  size_t next_ = 0;
  uint64_t from_ = 0;
  bool done_ = false;
};

}  // namespace

std::string AuditOrigin(std::string_view tenant) {
  std::string origin = "kura/";
  origin += tenant;
  origin += "/audit";
  return origin;
}

StatusOr<std::optional<crypto::Ed25519Signer>> LoadCheckpointSigner(
    store::Store& store, const crypto::KeyProvider& provider, std::string_view tenant) {
  KURA_ASSIGN_OR_RETURN(std::optional<store::StoredDataKey> stored,
                        store.FindDataKeyByScope(kCheckpointSigningScope));
  if (!stored) return std::optional<crypto::Ed25519Signer>();
  StatusOr<SecretBytes> seed =
      provider.UnwrapKey(stored->wrapped, SigningKeyAad(tenant, stored->key_id));
  if (!seed.ok()) {
    return DataLossError(
        "the audit checkpoint signing key does not unwrap (another key file, another tenant, or "
        "an edited key)",
        seed.status().internal_detail());
  }
  KURA_ASSIGN_OR_RETURN(crypto::Ed25519Signer signer,
                        crypto::Ed25519Signer::FromSeed(std::move(*seed)));
  return std::optional<crypto::Ed25519Signer>(std::move(signer));
}

StatusOr<crypto::Ed25519Signer> LoadOrCreateCheckpointSigner(store::Store& store,
                                                             const crypto::KeyProvider& provider,
                                                             std::string_view tenant) {
  KURA_ASSIGN_OR_RETURN(std::optional<crypto::Ed25519Signer> existing,
                        LoadCheckpointSigner(store, provider, tenant));
  if (existing) return std::move(*existing);
  KURA_ASSIGN_OR_RETURN(crypto::Ed25519Signer fresh, crypto::Ed25519Signer::Generate());
  KURA_ASSIGN_OR_RETURN(SecretBytes seed, fresh.ExportSeedForWrapping());
  store::StoredDataKey key;
  key.key_id = RandomNonZeroUint64();
  key.scope = std::string(kCheckpointSigningScope);
  key.kek_version = provider.PrimaryKekVersion();
  KURA_ASSIGN_OR_RETURN(key.wrapped, provider.WrapKey(seed, SigningKeyAad(tenant, key.key_id)));
  key.created = Clock::System().Now();
  // A concurrent creator may have won; then its key is the one.
  KURA_ASSIGN_OR_RETURN(store::StoredDataKey kept, store.InsertDataKeyIfAbsent(key));
  if (kept.key_id == key.key_id) return fresh;
  KURA_ASSIGN_OR_RETURN(existing, LoadCheckpointSigner(store, provider, tenant));
  if (!existing) return DataLossError("the audit checkpoint signing key disappeared");
  return std::move(*existing);
}

StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(
    store::AuditLogStore& store, std::shared_ptr<const crypto::AeadKey> record_key,
    AuditKeyLookup key_lookup, crypto::Ed25519Signer signer, AuditLogOptions options,
    const Clock& clock) {
  if (record_key == nullptr) return InvalidArgumentError("audit log needs a record key");
  KURA_ASSIGN_OR_RETURN(NoteVerifierKey verifier, CheckpointVerifierKey(options.origin, signer));
  KURA_ASSIGN_OR_RETURN(std::optional<std::string> saved, store.ReadAuditState());
  std::unique_ptr<AuditLog> log(new AuditLog(store, std::move(record_key), std::move(key_lookup),
                                             std::move(signer), std::move(verifier),
                                             std::move(options), clock));
  if (saved) {
    KURA_ASSIGN_OR_RETURN(auto state, DecodeState(*saved));
    log->chain_ = AuditChain(std::move(state.first));
    log->last_checkpoint_ = state.second;
    log->committed_state_ = *saved;
  } else {
    // The policy's clock starts with the log, not at the epoch.
    log->last_checkpoint_ = {0, clock.Now()};
  }
  log->committed_size_.store(log->chain_.size(), std::memory_order_release);
  log->committed_checkpoint_ = log->last_checkpoint_;
  store.AttachAuditAppender(log.get());
  return log;
}

std::shared_ptr<const store::AuditDraft> AuditLog::Draft(AuditRecord record) {
  std::vector<AuditRecord> records;
  records.push_back(std::move(record));
  return std::make_shared<RecordDraft>(std::move(records));
}

std::shared_ptr<const store::AuditDraft> AuditLog::Draft(std::vector<AuditRecord> records) {
  return std::make_shared<RecordDraft>(std::move(records));
}

std::shared_ptr<const store::AuditDraft> AuditLog::SignedDraft(AuditRecord record) {
  std::vector<AuditRecord> records;
  records.push_back(std::move(record));
  return std::make_shared<RecordDraft>(std::move(records), /*sign_now=*/true);
}

std::shared_ptr<const store::AuditDraft> AuditLog::Heartbeat() {
  return std::make_shared<RecordDraft>(std::vector<AuditRecord>());
}

Status AuditLog::BeginTransaction(const std::optional<std::string>& saved_state) {
  if (saved_state.value_or(std::string()) != committed_state_) {
    // Another writer (an administrative command, another node) appended: continue its log.
    if (!saved_state) return DataLossError("audit log state disappeared from the store");
    KURA_ASSIGN_OR_RETURN(auto state, DecodeState(*saved_state));
    if (state.first.size() < chain_.size()) {
      return DataLossError("the stored audit log is shorter than the log this server wrote");
    }
    chain_ = AuditChain(std::move(state.first));
    last_checkpoint_ = state.second;
    committed_state_ = *saved_state;
  }
  transaction_start_ = chain_.head();
  pending_checkpoint_ = last_checkpoint_;
  sign_requested_ = false;
  return Status::Ok();
}

Status AuditLog::Append(const store::AuditDraft& draft, std::vector<store::AuditRow>& rows,
                        std::vector<store::AuditNode>& nodes) {
  const auto* records = dynamic_cast<const RecordDraft*>(&draft);
  if (records == nullptr) return InvalidArgumentError("not an audit log draft");
  if (records->sign_now) sign_requested_ = true;
  // All or nothing: a draft whose second record fails leaves no trace of its first.
  LogHead before = chain_.head();
  const size_t rows_before = rows.size();
  const size_t nodes_before = nodes.size();
  auto keep_node = [&nodes](int level, uint64_t index, const Hash& hash) {
    if (level % kKeptNodeLevelStep == 0) nodes.push_back({level, index, HashBytes(hash)});
  };
  Status failed;
  for (size_t i = 0; i < records->records.size(); ++i) {
    const AuditRecord& record = records->records[i];
    const StatusOr<std::string>& encoded = records->encoded[i];
    if (!encoded.ok()) {
      failed = encoded.status();
      break;
    }
    StatusOr<SealedRecord> sealed = chain_.AppendEncoded(*encoded, keep_node);
    if (!sealed.ok()) {
      failed = sealed.status();
      break;
    }
    StatusOr<std::string> ciphertext = record_key_->Encrypt(sealed->canonical, kAuditRecordAad);
    if (!ciphertext.ok()) {
      failed = ciphertext.status();
      break;
    }
    store::AuditRow& row = rows.emplace_back();
    row.sequence = sealed->sequence;
    row.time_us = record.time_us;
    row.category = record.category;
    row.action = record.action;
    row.outcome = static_cast<int>(record.outcome);
    row.actor = record.actor.id;
    row.patient_ids = record.patient_compartments;  // Sorted and unique (RecordDraft).
    row.sealed = std::move(*ciphertext);
    row.leaf_hash = HashBytes(sealed->leaf_hash);
    row.chain_hash = HashBytes(sealed->chain_hash);
  }
  if (failed.ok()) return failed;
  chain_.RollBackTo(std::move(before));
  rows.resize(rows_before);
  nodes.resize(nodes_before);
  return failed;
}

StatusOr<store::AuditTransactionTail> AuditLog::FinishTransaction() {
  store::AuditTransactionTail tail;
  const TimePoint now = clock_.Now();
  const bool unsigned_records = chain_.size() > last_checkpoint_.tree_size;
  if (options_.checkpoint_policy.Due(chain_.size(), now, last_checkpoint_) ||
      (sign_requested_ && unsigned_records)) {
    const Checkpoint checkpoint = CheckpointOf(chain_.head(), options_.origin, now);
    KURA_ASSIGN_OR_RETURN(std::string note, SignCheckpoint(checkpoint, signer_));
    tail.statements.push_back({store::AuditStatement::Kind::kCheckpoint, checkpoint.tree_size,
                               checkpoint.time_us, std::move(note)});
    pending_checkpoint_ = {checkpoint.tree_size, now};
  }
  tail.state = EncodeState(chain_.head(), pending_checkpoint_);
  pending_state_ = tail.state;
  return tail;
}

void AuditLog::EndTransaction(bool committed) {
  if (!committed) {
    chain_.RollBackTo(transaction_start_);
    return;
  }
  last_checkpoint_ = pending_checkpoint_;
  committed_state_ = std::move(pending_state_);
  {
    std::lock_guard<std::mutex> lock(mark_mu_);
    committed_checkpoint_ = last_checkpoint_;
  }
  committed_size_.store(chain_.size(), std::memory_order_release);
  if (on_commit_) on_commit_(chain_.size());
}

bool AuditLog::CheckpointDue(TimePoint now) const {
  std::lock_guard<std::mutex> lock(mark_mu_);
  return options_.checkpoint_policy.Due(committed_size(), now, committed_checkpoint_);
}

void AuditLog::SetCommitListener(std::function<void(uint64_t)> listener) {
  on_commit_ = std::move(listener);
}

StatusOr<AuditPruneResult> AuditLog::Prune(TimePoint cutoff, const AuditPruneOptions& options) {
  if (options.max_records_per_step == 0) {
    return InvalidArgumentError("an audit prune step must delete at least one record");
  }
  std::lock_guard<std::mutex> lock(prune_mu_);
  // Found once per run: the query scans from the oldest stored row.
  KURA_ASSIGN_OR_RETURN(std::optional<uint64_t> since,
                        store_.FindFirstAuditSequenceSince(ToMicros(cutoff)));
  // No record is that recent: all of them are older than the cutoff. (Records another process
  // appended since this one last committed wait for the next run.)
  const uint64_t target = since.value_or(committed_size());
  AuditPruneResult result;
  while (!options.keep_going || options.keep_going()) {
    KURA_ASSIGN_OR_RETURN(bool pruned, PruneStep(target, cutoff, options, result));
    if (!pruned) break;
  }
  return result;
}

StatusOr<bool> AuditLog::PruneStep(uint64_t target, TimePoint cutoff,
                                   const AuditPruneOptions& options, AuditPruneResult& result) {
  // Where the retained log starts, and the state a verifier resumes from there.
  KURA_ASSIGN_OR_RETURN(std::vector<store::AuditStatement> anchors, store_.ReadAuditPruneAnchors());
  uint64_t start = 0;
  LogHead head;
  std::vector<std::string> anchor_notes;
  if (!anchors.empty()) {
    StatusOr<PruneAnchor> anchor =
        VerifyPruneAnchor(anchors.back().note, options_.origin, {&verifier_key_, 1});
    if (!anchor.ok()) {
      return DataLossError("the stored audit prune anchor does not verify; nothing was pruned",
                           anchor.status().internal_detail());
    }
    start = anchor->first_sequence;
    head.chain_head = anchor->chain_head;
    head.frontier = anchor->frontier;
    anchor_notes.push_back(std::move(anchors.back().note));
  }
  result.first_retained_sequence = start;

  // Up to the cutoff, but never past what a sink has not received, nor past the latest signed
  // checkpoint: the records to delete must be covered by a signature other than the new anchor.
  uint64_t limit = target;
  result.held_back_by.clear();
  KURA_ASSIGN_OR_RETURN(std::optional<store::AuditStatement> latest, store_.FindAuditCheckpoint(0));
  if (const uint64_t covered = latest ? latest->tree_size : 0; covered < limit) {
    limit = covered;
    result.held_back_by = "not covered by a signed checkpoint yet";
  }
  KURA_ASSIGN_OR_RETURN(std::vector<store::AuditCursor> cursors, store_.ReadAuditCursors());
  for (const store::AuditCursor& cursor : cursors) {
    if (cursor.next_sequence < limit) {
      limit = cursor.next_sequence;
      result.held_back_by = "export cursor " + cursor.name;
    }
  }
  const uint64_t step_end =
      start > std::numeric_limits<uint64_t>::max() - options.max_records_per_step
          ? std::numeric_limits<uint64_t>::max()
          : start + options.max_records_per_step;
  if (std::max(limit, start) >= target) result.held_back_by.clear();  // Nothing old stays.
  const uint64_t first = std::min(limit, step_end);
  if (first <= start) return false;

  // Verify [start, end) where end is the checkpoint that signs record first - 1, and compute the
  // tree frontier and chain head at `first` from the records themselves.
  KURA_ASSIGN_OR_RETURN(std::optional<store::AuditStatement> cover,
                        store_.FindAuditCheckpoint(first));
  if (!cover) return false;  // Only when the checkpoints changed under us; try again next run.
  const uint64_t end = cover->tree_size;
  std::vector<std::string> checkpoint_notes;
  constexpr size_t kCheckpointPage = 256;
  for (uint64_t after = start == 0 ? 0 : start - 1;;) {
    KURA_ASSIGN_OR_RETURN(std::vector<store::AuditStatement> page,
                          store_.ReadAuditCheckpointsAfter(after, kCheckpointPage));
    bool done = page.size() < kCheckpointPage;
    for (store::AuditStatement& c : page) {
      if (c.tree_size > end) {
        done = true;
        break;
      }
      after = c.tree_size;
      checkpoint_notes.push_back(std::move(c.note));
    }
    if (done) break;
  }
  KURA_ASSIGN_OR_RETURN(LogVerifier verifier, LogVerifier::Create({.origin = options_.origin,
                                                                   .trusted_keys = {verifier_key_}},
                                                                  checkpoint_notes, anchor_notes));
  // Proofs of retained records read pruned leaves only inside the aligned block of
  // 2^kKeptNodeLevelStep leaves that holds `first` (levels below the first kept node level).
  const uint64_t block = uint64_t{1} << kKeptNodeLevelStep;
  const uint64_t keep_leaves_from = std::max(start, first & ~(block - 1));
  std::vector<store::AuditNode> kept_leaves;
  StoredRowReader reader(store_, key_lookup_, start);
  uint64_t next = start;
  while (next < end) {
    StatusOr<std::optional<StoredRecord>> read = reader.Next();
    if (!read.ok()) {
      verifier.AddReadError(read.status());
      break;
    }
    if (!read->has_value()) break;
    const StoredRecord& record = **read;
    verifier.Add(record);
    if (record.sequence != next) break;  // The verifier reports the gap or repetition.
    if (record.sequence < first) {
      const Hash leaf = HashLeaf(record.canonical);
      head.frontier.Append(leaf);
      head.chain_head = record.chain_hash;
      if (record.sequence >= keep_leaves_from) {
        kept_leaves.push_back({0, record.sequence, HashBytes(leaf)});
      }
    }
    next = record.sequence + 1;
  }
  VerificationReport report = std::move(verifier).Finish();
  if (!report.ok() || report.tree_size != end || head.size() != first) {
    return DataLossError(
        "the audit records due for pruning do not verify; nothing was pruned (run kura audit "
        "verify)",
        report.Summary());
  }

  const TimePoint now = clock_.Now();
  store::AuditPrune prune;
  prune.first_retained_sequence = first;
  KURA_ASSIGN_OR_RETURN(std::string note,
                        SignPruneAnchor(PruneAnchorOf(head, options_.origin, now), signer_));
  std::string anchor_base64 =
      Base64Encode({reinterpret_cast<const uint8_t*>(note.data()), note.size()});
  prune.anchor = {store::AuditStatement::Kind::kPruneAnchor, first, ToMicros(now), std::move(note)};
  prune.kept_leaves = std::move(kept_leaves);
  // A kept level b is read for subtrees of levels b .. b + step - 1 only, so of its nodes left
  // of `first` just those in the aligned group of 2^step around first >> b stay useful.
  for (int level = 0; level < 64; level += kKeptNodeLevelStep) {
    const uint64_t floor = ((first >> level) >> kKeptNodeLevelStep) << kKeptNodeLevelStep;
    if (floor == 0) break;
    prune.node_floors.push_back({level, floor});
  }
  AuditRecord record;
  record.time_us = ToMicros(now);
  record.category = std::string(category::kSystem);
  record.action = std::string(action::kPrune);
  record.outcome = Outcome::kSuccess;
  record.actor = options.actor;
  record.details = {
      {"prune.records", std::to_string(first - start)},
      {"prune.first_sequence", std::to_string(first)},
      {"prune.previous_first_sequence", std::to_string(start)},
      {"prune.cutoff", FormatMicrosUtc(ToMicros(cutoff))},
      {std::string(detail::kPruneAnchor), std::move(anchor_base64)},
  };
  prune.record = Draft(std::move(record));
  Status committed = store_.PruneAudit(prune);
  if (committed.code() == StatusCode::kAborted) return false;  // Another process pruned further.
  KURA_RETURN_IF_ERROR(committed);
  result.records_pruned += first - start;
  ++result.steps;
  result.first_retained_sequence = first;
  return true;
}

StatusOr<std::string> OpenAuditRow(const store::AuditRow& row, const AuditKeyLookup& key_lookup) {
  std::optional<uint64_t> key_id = crypto::PeekRecordKeyId(row.sealed);
  if (!key_id) return crypto::DecryptionFailed("audit row is not a sealed record");
  KURA_ASSIGN_OR_RETURN(std::shared_ptr<const crypto::AeadKey> key, key_lookup(*key_id));
  KURA_ASSIGN_OR_RETURN(std::string canonical, key->Decrypt(row.sealed, kAuditRecordAad));
  if (HashBytes(HashLeaf(canonical)) != row.leaf_hash) {
    return DataLossError("audit row does not match its leaf hash");
  }
  return canonical;
}

StatusOr<InclusionEvidence> ProveStoredInclusion(store::AuditLogStore& store,
                                                 const AuditKeyLookup& key_lookup,
                                                 std::string_view origin,
                                                 std::span<const NoteVerifierKey> trusted,
                                                 uint64_t sequence, uint64_t tree_size) {
  KURA_ASSIGN_OR_RETURN(std::vector<store::AuditRow> rows, store.ReadAuditRows(sequence, 1));
  if (rows.empty() || rows.front().sequence != sequence) {
    return NotFoundError("no audit record with that sequence");
  }
  KURA_ASSIGN_OR_RETURN(std::optional<store::AuditStatement> statement,
                        store.FindAuditCheckpoint(tree_size != 0 ? tree_size : sequence + 1));
  if (!statement || (tree_size != 0 && statement->tree_size != tree_size)) {
    return NotFoundError("no signed checkpoint covers that record yet");
  }
  KURA_ASSIGN_OR_RETURN(Checkpoint checkpoint, VerifyCheckpoint(statement->note, origin, trusted));
  InclusionEvidence evidence;
  KURA_ASSIGN_OR_RETURN(evidence.canonical, OpenAuditRow(rows.front(), key_lookup));
  KURA_ASSIGN_OR_RETURN(evidence.record, DecodeAuditRecord(evidence.canonical));
  StoredSubtrees subtrees(store);
  KURA_ASSIGN_OR_RETURN(evidence.proof, ProveRecordInclusion(sequence, checkpoint, subtrees));
  // Never hand out a proof that does not check: stored nodes may have been altered.
  KURA_RETURN_IF_ERROR(VerifyRecordInclusion(evidence.canonical, evidence.proof, checkpoint));
  evidence.checkpoint_note = std::move(statement->note);
  return evidence;
}

StatusOr<VerificationReport> VerifyStoredLog(store::AuditLogStore& store,
                                             const AuditKeyLookup& key_lookup,
                                             const VerifyOptions& options,
                                             std::span<const std::string> extra_notes,
                                             const RecordObserver& on_record) {
  KURA_ASSIGN_OR_RETURN(std::vector<store::AuditStatement> statements, store.ReadAuditStatements());
  std::vector<std::string> checkpoints;
  std::vector<std::string> anchors;
  for (store::AuditStatement& s : statements) {
    (s.kind == store::AuditStatement::Kind::kPruneAnchor ? anchors : checkpoints)
        .push_back(std::move(s.note));
  }
  for (const std::string& note : extra_notes) {
    (std::string_view(note).starts_with(kPruneAnchorMagic) ? anchors : checkpoints).push_back(note);
  }
  StoredRowReader reader(store, key_lookup);
  KURA_ASSIGN_OR_RETURN(VerificationReport report,
                        VerifyLog(reader, options, checkpoints, anchors, on_record));
  // The records and their columns are checked; what the store folded from the columns is next.
  StatusOr<std::vector<store::AuditIndexFinding>> findings =
      store.CheckAuditIndexes(options.max_issues);
  if (!findings.ok()) {
    report.AddIssue(
        {IssueKind::kReadError, std::nullopt,
         "the audit search indexes could not be checked: " + findings.status().message()},
        options.max_issues);
    report.read_failed = true;
    return report;
  }
  for (store::AuditIndexFinding& finding : *findings) {
    report.AddIssue({IssueKind::kIndexMismatch, finding.sequence, std::move(finding.what)},
                    options.max_issues);
  }
  return report;
}

namespace {

// The decoded record of a row, which must carry the row's sequence (a sealed record moved to
// another row still decrypts and names its own).
StatusOr<AuditRecord> OpenAuditRecord(const store::AuditRow& row,
                                      const AuditKeyLookup& key_lookup) {
  KURA_ASSIGN_OR_RETURN(std::string canonical, OpenAuditRow(row, key_lookup));
  KURA_ASSIGN_OR_RETURN(AuditRecord record, DecodeAuditRecord(canonical));
  if (record.sequence != row.sequence) {
    return DataLossError(
        "audit record failed its integrity check",
        "row " + std::to_string(row.sequence) + " holds record " + std::to_string(record.sequence));
  }
  // The columns a search matched on are outside the seal: a row whose columns were edited would
  // otherwise be served under a filter its record does not meet.
  if (!DifferingIndexColumns(IndexColumnsOf(row), record).empty()) {
    return DataLossError(
        "audit record failed its integrity check",
        "the index columns of row " + std::to_string(row.sequence) + " differ from its record");
  }
  return record;
}

}  // namespace

StatusOr<AuditRecordPage> SearchAuditRecords(store::AuditLogStore& store,
                                             const AuditKeyLookup& key_lookup,
                                             const store::AuditQuery& query) {
  KURA_ASSIGN_OR_RETURN(store::AuditPage page, store.SearchAudit(query));
  AuditRecordPage out;
  out.next_before_sequence = page.next_before_sequence;
  out.records.reserve(page.rows.size());
  for (const store::AuditRow& row : page.rows) {
    KURA_ASSIGN_OR_RETURN(AuditRecord record, OpenAuditRecord(row, key_lookup));
    out.records.push_back(std::move(record));
  }
  return out;
}

StatusOr<AuditRecord> ReadAuditRecord(store::AuditLogStore& store, const AuditKeyLookup& key_lookup,
                                      uint64_t sequence) {
  KURA_ASSIGN_OR_RETURN(std::vector<store::AuditRow> rows, store.ReadAuditRows(sequence, 1));
  if (rows.empty() || rows.front().sequence != sequence) {
    return NotFoundError("no such audit record");
  }
  return OpenAuditRecord(rows.front(), key_lookup);
}

}  // namespace kura::audit
