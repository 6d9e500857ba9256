// End-to-end audit log tests: a log written through AuditChain with signed checkpoints, then
// every kind of tampering an attacker with write access to the database could try, each of which
// LogVerifier must detect and name.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "kura/audit/chain.h"
#include "kura/audit/checkpoint.h"
#include "kura/audit/inclusion.h"
#include "kura/audit/test_util.h"
#include "kura/audit/verifier.h"

namespace kura::audit {
namespace {

using testing::SampleRecord;
using testing::SignerFromSeedHex;

constexpr char kOrigin[] = "kura.test/audit";
constexpr char kSeed[] = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
constexpr char kAttackerSeed[] = "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7";
constexpr int64_t kStart = 1700000000000000;

StoredRecord ToStored(const SealedRecord& s) {
  return StoredRecord{s.sequence, s.canonical, s.chain_hash, std::nullopt};
}

// A 100-record log, checkpoints every 10 records (sizes 10, 20, ..., 100) as the policy decides.
class AuditLogTest : public ::testing::Test {
 protected:
  AuditLogTest() : signer_(SignerFromSeedHex(kSeed)), clock_(FromMicros(kStart)) {}

  void SetUp() override {
    options_.origin = kOrigin;
    options_.trusted_keys = {*CheckpointVerifierKey(kOrigin, signer_)};
    Build(100);
  }

  // The chain state after the first `n` stored records, replayed from their canonical bytes.
  LogHead HeadAfter(int n) {
    AuditChain replay;
    for (int i = 0; i < n; ++i) {
      auto decoded = DecodeAuditRecord(records_[i].canonical);
      EXPECT_TRUE(decoded.ok() && replay.Append(*decoded).ok()) << "record " << i;
    }
    return replay.head();
  }

  void Build(int n) {
    CheckpointPolicy policy{.every_records = 10, .every = std::chrono::hours(1)};
    CheckpointMark last{0, clock_.Now()};
    for (int i = 0; i < n; ++i) {
      clock_.Advance(std::chrono::milliseconds(1));
      auto sealed = chain_.Append(SampleRecord(i));
      ASSERT_TRUE(sealed.ok()) << sealed.status().ToString();
      ASSERT_EQ(sealed->sequence, static_cast<uint64_t>(i));
      leaf_hashes_.push_back(sealed->leaf_hash);
      records_.push_back(ToStored(*sealed));
      if (policy.Due(chain_.size(), clock_.Now(), last)) {
        Checkpoint c = CheckpointOf(chain_.head(), kOrigin, clock_.Now());
        checkpoints_.push_back(*SignCheckpoint(c, signer_));
        parsed_checkpoints_.push_back(c);
        last = {chain_.size(), clock_.Now()};
      }
    }
  }

  VerificationReport Verify(const std::vector<StoredRecord>& records,
                            const std::vector<std::string>& checkpoints,
                            const std::vector<std::string>& anchors = {}) {
    auto report = VerifyLog(records, options_, checkpoints, anchors);
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    return std::move(report).value();
  }
  VerificationReport Verify(const std::vector<StoredRecord>& records) {
    return Verify(records, checkpoints_);
  }

  // Recomputes the stored chain hashes from record `from` on, as an attacker without the
  // signing key can.
  static void Rechain(std::vector<StoredRecord>& records, size_t from) {
    Hash prev = from == 0 ? ChainStart() : records[from - 1].chain_hash;
    for (size_t i = from; i < records.size(); ++i) {
      records[i].chain_hash = ChainNext(prev, HashLeaf(records[i].canonical));
      prev = records[i].chain_hash;
    }
  }

  // Re-encodes every record from `from` on with its position as sequence, then re-chains.
  static void RenumberAndRechain(std::vector<StoredRecord>& records, size_t from) {
    for (size_t i = from; i < records.size(); ++i) {
      AuditRecord r = *DecodeAuditRecord(records[i].canonical);
      r.sequence = i;
      records[i].sequence = i;
      records[i].canonical = *EncodeAuditRecord(r);
    }
    Rechain(records, from);
  }

  // A forged record for position `seq`, chained onto records[seq - 1].
  StoredRecord Forge(uint64_t seq) const {
    AuditRecord r = SampleRecord(seq);
    r.actor.id = "attacker";
    r.sequence = seq;
    StoredRecord out{seq, *EncodeAuditRecord(r), {}, std::nullopt};
    out.chain_hash = ChainNext(records_[seq - 1].chain_hash, HashLeaf(out.canonical));
    return out;
  }

  static void ExpectFirst(const VerificationReport& report, IssueKind kind, uint64_t sequence) {
    ASSERT_FALSE(report.ok()) << "tampering went unnoticed";
    ASSERT_FALSE(report.issues.empty());
    EXPECT_EQ(report.issues[0].kind, kind) << "got " << IssueKindName(report.issues[0].kind) << "\n"
                                           << report.Summary();
    EXPECT_EQ(report.issues[0].sequence, sequence) << report.Summary();
    EXPECT_EQ(report.FirstBadSequence(), sequence) << report.Summary();
  }

  crypto::Ed25519Signer signer_;
  FakeClock clock_;
  VerifyOptions options_;
  AuditChain chain_;
  std::vector<Hash> leaf_hashes_;
  std::vector<StoredRecord> records_;
  std::vector<std::string> checkpoints_;
  std::vector<Checkpoint> parsed_checkpoints_;
};

TEST_F(AuditLogTest, IntactLogVerifies) {
  ASSERT_EQ(checkpoints_.size(), 10u);
  VerificationReport report = Verify(records_);
  EXPECT_TRUE(report.ok()) << report.Summary();
  EXPECT_EQ(report.tree_size, 100u);
  EXPECT_EQ(report.records_checked, 100u);
  EXPECT_EQ(report.checkpoints_matched, 10u);
  EXPECT_EQ(report.latest_checkpoint_size, 100u);
  EXPECT_EQ(report.unsigned_tail, 0u);
  EXPECT_EQ(report.root, chain_.Root());
  EXPECT_EQ(report.chain_head, chain_.head().chain_head);
  EXPECT_FALSE(report.FirstBadSequence().has_value());
  EXPECT_EQ(report.Summary().substr(0, 3), "OK:");
  EXPECT_EQ(report.ToJson()["ok"], true);
  // Checkpoints in any order, with duplicates (store copy + sink copy), change nothing.
  std::vector<std::string> shuffled = checkpoints_;
  std::reverse(shuffled.begin(), shuffled.end());
  shuffled.push_back(checkpoints_[3]);
  EXPECT_TRUE(Verify(records_, shuffled).ok());
}

TEST_F(AuditLogTest, UnsignedTailIsReported) {
  records_.resize(95);
  checkpoints_.resize(9);  // Sizes 10..90.
  VerificationReport report = Verify(records_);
  EXPECT_TRUE(report.ok()) << report.Summary();
  EXPECT_EQ(report.unsigned_tail, 5u);
}

TEST_F(AuditLogTest, FlippedByteAnywhereInARecordIsDetected) {
  const std::string original = records_[37].canonical;
  for (size_t i = 0; i < original.size(); ++i) {
    std::vector<StoredRecord> tampered = records_;
    tampered[37].canonical[i] = static_cast<char>(tampered[37].canonical[i] ^ 0x04);
    VerificationReport report = Verify(tampered);
    ASSERT_FALSE(report.ok()) << "byte " << i;
    // Bytes 1..8 are the embedded sequence number: the record then claims another position.
    ExpectFirst(report, (i >= 1 && i <= 8) ? IssueKind::kReordered : IssueKind::kModified, 37);
  }
}

TEST_F(AuditLogTest, FlippedStoredChainHashIsDetected) {
  records_[37].chain_hash[0] ^= 1;
  ExpectFirst(Verify(records_), IssueKind::kModified, 37);
}

TEST_F(AuditLogTest, TruncatedRecordBytesAreDetected) {
  records_[37].canonical.resize(records_[37].canonical.size() - 3);
  VerificationReport report = Verify(records_);
  ExpectFirst(report, IssueKind::kModified, 37);
  EXPECT_NE(report.issues[0].reason.find("does not decode"), std::string::npos);
}

TEST_F(AuditLogTest, ModifiedAndRechainedRecordIsCaughtByTheNextCheckpoint) {
  AuditRecord r = *DecodeAuditRecord(records_[37].canonical);
  r.actor.id = "someone-else";
  records_[37].canonical = *EncodeAuditRecord(r);
  Rechain(records_, 37);
  VerificationReport report = Verify(records_);
  // The chain is self-consistent again; the checkpoint for 40 records is not.
  ExpectFirst(report, IssueKind::kCheckpointMismatch, 30);
  EXPECT_NE(report.issues[0].reason.find("[30, 40)"), std::string::npos) << report.Summary();
  EXPECT_EQ(report.issue_count, 1u) << "later checkpoints are not reported again";
}

TEST_F(AuditLogTest, DeletedRecordIsDetected) {
  records_.erase(records_.begin() + 37);
  VerificationReport report = Verify(records_);
  ExpectFirst(report, IssueKind::kDeleted, 37);
  EXPECT_NE(report.issues[0].reason.find("[37, 38)"), std::string::npos);
}

TEST_F(AuditLogTest, DeletedAndRenumberedRecordIsCaughtByCheckpoints) {
  records_.erase(records_.begin() + 37);
  RenumberAndRechain(records_, 37);
  VerificationReport report = Verify(records_);
  ExpectFirst(report, IssueKind::kCheckpointMismatch, 30);
  // The log is also one record short of the last checkpoint.
  bool truncated = std::any_of(report.issues.begin(), report.issues.end(),
                               [](const auto& i) { return i.kind == IssueKind::kTruncated; });
  EXPECT_TRUE(truncated) << report.Summary();
}

TEST_F(AuditLogTest, DeletedFirstRecordIsDetected) {
  records_.erase(records_.begin());
  VerificationReport report = Verify(records_);
  ExpectFirst(report, IssueKind::kDeleted, 0);
  EXPECT_NE(report.issues[0].reason.find("no signed prune anchor"), std::string::npos);
}

TEST_F(AuditLogTest, InsertedRecordIsDetected) {
  // Before the genuine record with the same sequence, correctly chained onto its predecessor.
  std::vector<StoredRecord> before = records_;
  before.insert(before.begin() + 37, Forge(37));
  ExpectFirst(Verify(before), IssueKind::kInserted, 37);
  // After it.
  std::vector<StoredRecord> after = records_;
  after.insert(after.begin() + 38, Forge(37));
  VerificationReport report = Verify(after);
  ExpectFirst(report, IssueKind::kInserted, 37);
  EXPECT_EQ(report.issue_count, 1u) << report.Summary();
}

TEST_F(AuditLogTest, InsertedAndRenumberedRecordIsCaughtByCheckpoints) {
  records_.insert(records_.begin() + 37, Forge(37));
  RenumberAndRechain(records_, 37);
  ASSERT_EQ(records_.size(), 101u);
  ExpectFirst(Verify(records_), IssueKind::kCheckpointMismatch, 30);
}

TEST_F(AuditLogTest, SwappedNeighboursAreDetected) {
  std::swap(records_[37], records_[38]);
  VerificationReport report = Verify(records_);
  ExpectFirst(report, IssueKind::kReordered, 37);
  EXPECT_EQ(report.issue_count, 1u) << report.Summary();
}

TEST_F(AuditLogTest, SwappedDistantRecordsAreDetected) {
  std::swap(records_[20], records_[60]);
  VerificationReport report = Verify(records_);
  ExpectFirst(report, IssueKind::kReordered, 20);
}

TEST_F(AuditLogTest, SwappedContentsUnderKeptSequenceNumbersAreDetected) {
  std::swap(records_[37].canonical, records_[38].canonical);
  std::swap(records_[37].chain_hash, records_[38].chain_hash);
  VerificationReport report = Verify(records_);
  ExpectFirst(report, IssueKind::kReordered, 37);
  EXPECT_NE(report.issues[0].reason.find("holds record 38"), std::string::npos);
}

TEST_F(AuditLogTest, SwappedRenumberedAndRechainedRecordsAreCaughtByCheckpoints) {
  std::swap(records_[37], records_[38]);
  RenumberAndRechain(records_, 37);
  ExpectFirst(Verify(records_), IssueKind::kCheckpointMismatch, 30);
}

TEST_F(AuditLogTest, TruncatedTailIsDetected) {
  records_.resize(95);
  VerificationReport report = Verify(records_);
  ExpectFirst(report, IssueKind::kTruncated, 95);
  EXPECT_NE(report.issues[0].reason.find("covers 100"), std::string::npos);
}

TEST_F(AuditLogTest, TruncationBelowACheckpointIsDetectedThroughTheSinkCopy) {
  // The attacker cuts the log to 55 records and deletes the store's later checkpoints. The
  // copy of the latest checkpoint shipped to an external sink still exposes the cut.
  records_.resize(55);
  std::vector<std::string> store(checkpoints_.begin(), checkpoints_.begin() + 5);  // 10..50.
  std::vector<std::string> with_sink = store;
  with_sink.push_back(checkpoints_.back());
  ExpectFirst(Verify(records_, with_sink), IssueKind::kTruncated, 55);
  // Threat model, stated as a test: without any copy outside the attacker's reach, a cut after
  // the last surviving checkpoint looks like an unsigned tail. This is why checkpoints ship.
  VerificationReport store_only = Verify(records_, store);
  EXPECT_TRUE(store_only.ok());
  EXPECT_EQ(store_only.unsigned_tail, 5u);
}

TEST_F(AuditLogTest, ReplacedCheckpointSignatureIsDetected) {
  std::string& note = checkpoints_[4];
  const size_t sig = note.rfind(' ') + 1;
  note[sig + 10] = note[sig + 10] == 'A' ? 'B' : 'A';
  VerificationReport report = Verify(records_);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.issues[0].kind, IssueKind::kBadCheckpoint) << report.Summary();
  EXPECT_FALSE(report.issues[0].sequence.has_value());
  EXPECT_EQ(report.checkpoints_matched, 9u);
}

TEST_F(AuditLogTest, HistoryRewrittenAndResignedWithAnotherKeyIsDetected) {
  auto attacker = SignerFromSeedHex(kAttackerSeed);
  AuditRecord r = *DecodeAuditRecord(records_[37].canonical);
  r.purpose = "routine";
  records_[37].canonical = *EncodeAuditRecord(r);
  Rechain(records_, 37);
  // Rebuild every checkpoint from the forged records and sign with the attacker's key.
  std::vector<std::string> forged;
  AuditChain replay;
  for (const StoredRecord& s : records_) {
    AuditRecord rec = *DecodeAuditRecord(s.canonical);
    ASSERT_TRUE(replay.Append(rec).ok());
    if (replay.size() % 10 == 0) {
      forged.push_back(
          *SignCheckpoint(CheckpointOf(replay.head(), kOrigin, clock_.Now()), attacker));
    }
  }
  VerificationReport report = Verify(records_, forged);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.issues[0].kind, IssueKind::kBadCheckpoint);
  EXPECT_EQ(report.checkpoints_matched, 0u);
  // Together with the genuine copies from the sink, the rewrite is pinned down.
  std::vector<std::string> all = forged;
  all.insert(all.end(), checkpoints_.begin(), checkpoints_.end());
  VerificationReport with_sink = Verify(records_, all);
  auto mismatch = std::find_if(with_sink.issues.begin(), with_sink.issues.end(), [](const auto& i) {
    return i.kind == IssueKind::kCheckpointMismatch;
  });
  ASSERT_NE(mismatch, with_sink.issues.end()) << with_sink.Summary();
  EXPECT_EQ(mismatch->sequence, 30u);
}

TEST_F(AuditLogTest, CheckpointForAnotherOriginIsRejected) {
  Checkpoint c = parsed_checkpoints_.back();
  c.origin = "kura.test/other";
  checkpoints_.push_back(*SignCheckpoint(c, signer_));
  VerificationReport report = Verify(records_);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.issues[0].kind, IssueKind::kBadCheckpoint);
}

TEST_F(AuditLogTest, SignedCheckpointDisagreeingWithTheLogIsAMismatch) {
  // A correctly signed checkpoint whose root is not this log's (e.g. a fork).
  Checkpoint c = parsed_checkpoints_[2];  // Size 30.
  c.root[0] ^= 1;
  checkpoints_.push_back(*SignCheckpoint(c, signer_));
  ExpectFirst(Verify(records_), IssueKind::kCheckpointMismatch, 20);
  Checkpoint d = parsed_checkpoints_[2];
  d.chain_head[0] ^= 1;
  checkpoints_.pop_back();
  checkpoints_.push_back(*SignCheckpoint(d, signer_));
  ExpectFirst(Verify(records_), IssueKind::kCheckpointMismatch, 20);
}

TEST_F(AuditLogTest, KeyRotationKeepsOldCheckpointsVerifiable) {
  auto next_key = SignerFromSeedHex(kAttackerSeed);  // Here: the legitimate successor key.
  clock_.Advance(std::chrono::seconds(1));
  checkpoints_.push_back(
      *SignCheckpoint(CheckpointOf(chain_.head(), kOrigin, clock_.Now()), next_key));
  options_.trusted_keys.push_back(*CheckpointVerifierKey(kOrigin, next_key));
  VerificationReport report = Verify(records_);
  EXPECT_TRUE(report.ok()) << report.Summary();
  EXPECT_EQ(report.checkpoints_matched, 11u);
}

TEST_F(AuditLogTest, EmptyLog) {
  std::vector<StoredRecord> none;
  EXPECT_TRUE(Verify(none, {}).ok());
  std::string empty_checkpoint =
      *SignCheckpoint(CheckpointOf(LogHead{}, kOrigin, clock_.Now()), signer_);
  VerificationReport empty = Verify(none, {empty_checkpoint});
  EXPECT_TRUE(empty.ok()) << empty.Summary();
  EXPECT_EQ(empty.checkpoints_matched, 1u);
  ExpectFirst(Verify(none, checkpoints_), IssueKind::kTruncated, 0);
}

TEST_F(AuditLogTest, PrunedLogVerifiesFromItsAnchor) {
  // Prune everything before record 45: sign an anchor at 45 (state replayed from the records).
  const LogHead head45 = HeadAfter(45);
  std::string anchor = *SignPruneAnchor(PruneAnchorOf(head45, kOrigin, clock_.Now()), signer_);
  std::vector<StoredRecord> pruned(records_.begin() + 45, records_.end());

  VerificationReport report = Verify(pruned, checkpoints_, {anchor});
  EXPECT_TRUE(report.ok()) << report.Summary();
  EXPECT_EQ(report.first_sequence, 45u);
  EXPECT_EQ(report.tree_size, 100u);
  EXPECT_EQ(report.root, chain_.Root()) << "the root still covers the pruned records";
  EXPECT_EQ(report.checkpoints_matched, 6u);    // 50..100
  EXPECT_EQ(report.checkpoints_unchecked, 4u);  // 10..40, before the prune point

  // The full log with the anchor: the anchor is checked when the verifier passes 45.
  EXPECT_TRUE(Verify(records_, checkpoints_, {anchor}).ok());

  // Records missing after the anchor.
  std::vector<StoredRecord> more_missing(records_.begin() + 48, records_.end());
  ExpectFirst(Verify(more_missing, checkpoints_, {anchor}), IssueKind::kDeleted, 45);

  // Without the anchor the missing prefix is a deletion.
  ExpectFirst(Verify(pruned, checkpoints_, {}), IssueKind::kDeleted, 0);

  // An anchor signed by another key does not count.
  auto attacker = SignerFromSeedHex(kAttackerSeed);
  std::string forged = *SignPruneAnchor(PruneAnchorOf(head45, kOrigin, clock_.Now()), attacker);
  VerificationReport forged_report = Verify(pruned, checkpoints_, {forged});
  ASSERT_FALSE(forged_report.ok());
  EXPECT_EQ(forged_report.issues[0].kind, IssueKind::kBadCheckpoint);
  EXPECT_EQ(forged_report.issues[1].kind, IssueKind::kDeleted);

  // A genuine-looking anchor whose state is wrong is exposed by the next checkpoint.
  PruneAnchor wrong = PruneAnchorOf(head45, kOrigin, clock_.Now());
  wrong.chain_head[3] ^= 1;
  std::string wrong_note = *SignPruneAnchor(wrong, signer_);
  EXPECT_FALSE(Verify(pruned, checkpoints_, {wrong_note}).ok());
  ExpectFirst(Verify(records_, checkpoints_, {wrong_note}), IssueKind::kCheckpointMismatch, 40);

  // An anchor beyond the end of the log means the log was cut.
  ExpectFirst(
      Verify(std::vector<StoredRecord>(records_.begin(), records_.begin() + 40), {}, {anchor}),
      IssueKind::kTruncated, 40);
}

TEST_F(AuditLogTest, PruningToAnAnchorAtACheckpointChecksThatCheckpoint) {
  std::string anchor =
      *SignPruneAnchor(PruneAnchorOf(HeadAfter(50), kOrigin, clock_.Now()), signer_);
  std::vector<StoredRecord> pruned(records_.begin() + 50, records_.end());
  VerificationReport report = Verify(pruned, checkpoints_, {anchor});
  EXPECT_TRUE(report.ok()) << report.Summary();
  EXPECT_EQ(report.checkpoints_matched, 6u);  // 50 (against the anchor) ..100
}

class FailingReader final : public StoredRecordReader {
 public:
  FailingReader(const std::vector<StoredRecord>& records, size_t fail_at)
      : records_(records), fail_at_(fail_at) {}
  StatusOr<std::optional<StoredRecord>> Next() override {
    if (pos_ == fail_at_) return UnavailableError("database unavailable");
    if (pos_ == records_.size()) return std::optional<StoredRecord>();
    return std::optional<StoredRecord>(records_[pos_++]);
  }

 private:
  const std::vector<StoredRecord>& records_;
  size_t fail_at_;
  size_t pos_ = 0;
};

TEST_F(AuditLogTest, StreamingReaderAndReadErrors) {
  FailingReader ok_reader(records_, SIZE_MAX);
  auto report = VerifyLog(ok_reader, options_, checkpoints_, {});
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok()) << report->Summary();

  FailingReader failing(records_, 42);
  auto failed = VerifyLog(failing, options_, checkpoints_, {});
  ASSERT_TRUE(failed.ok());
  ExpectFirst(*failed, IssueKind::kReadError, 42);
  EXPECT_EQ(failed->checkpoints_matched, 4u);
}

TEST_F(AuditLogTest, VerificationStopsWhenAskedTo) {
  int asked = 0;
  options_.keep_going = [&asked] { return ++asked < 2; };
  FailingReader whole(records_, SIZE_MAX);
  auto completed = VerifyLog(whole, options_, checkpoints_, {});
  ASSERT_TRUE(completed.ok()) << completed.status().ToString();
  EXPECT_TRUE(completed->ok()) << completed->Summary();
  EXPECT_EQ(asked, 1);  // Asked before the first record and then every few thousand.
  FailingReader again(records_, SIZE_MAX);
  auto stopped = VerifyLog(again, options_, checkpoints_, {});
  EXPECT_EQ(stopped.status().code(), StatusCode::kAborted);
  EXPECT_EQ(asked, 2);
}

TEST_F(AuditLogTest, VerifierRejectsBadOptions) {
  VerifyOptions no_keys{.origin = kOrigin, .trusted_keys = {}};
  EXPECT_EQ(VerifyLog(records_, no_keys, checkpoints_, {}).status().code(),
            StatusCode::kInvalidArgument);
  VerifyOptions bad_origin = options_;
  bad_origin.origin = "two words";
  EXPECT_EQ(VerifyLog(records_, bad_origin, checkpoints_, {}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(AuditLogTest, IssueListIsCapped) {
  options_.max_issues = 3;
  for (size_t i = 0; i < records_.size(); i += 2) records_[i].chain_hash[0] ^= 1;
  VerificationReport report = Verify(records_);
  EXPECT_EQ(report.issues.size(), 3u);
  EXPECT_GT(report.issue_count, 3u);
  EXPECT_NE(report.Summary().find("more"), std::string::npos);
}

TEST_F(AuditLogTest, InclusionProofsForEveryRecordAgainstEveryCheckpoint) {
  InMemoryLeafHashes source(leaf_hashes_);
  std::vector<NoteVerifierKey>& trusted = options_.trusted_keys;
  for (const std::string& note : checkpoints_) {
    auto checkpoint = VerifyCheckpoint(note, kOrigin, trusted);
    ASSERT_TRUE(checkpoint.ok());
    for (uint64_t seq = 0; seq < checkpoint->tree_size; ++seq) {
      auto proof = ProveRecordInclusion(seq, *checkpoint, source);
      ASSERT_TRUE(proof.ok()) << proof.status().ToString();
      ASSERT_TRUE(VerifyRecordInclusion(records_[seq].canonical, *proof, *checkpoint).ok());
    }
    EXPECT_EQ(ProveRecordInclusion(checkpoint->tree_size, *checkpoint, source).status().code(),
              StatusCode::kInvalidArgument);
  }
  const Checkpoint& latest = parsed_checkpoints_.back();
  auto proof = *ProveRecordInclusion(37, latest, source);
  // Another record, an edited record, another checkpoint: all rejected.
  EXPECT_FALSE(VerifyRecordInclusion(records_[38].canonical, proof, latest).ok());
  std::string edited = records_[37].canonical;
  edited.back() = static_cast<char>(edited.back() ^ 1);
  EXPECT_FALSE(VerifyRecordInclusion(edited, proof, latest).ok());
  EXPECT_FALSE(VerifyRecordInclusion(records_[37].canonical, proof, parsed_checkpoints_[5]).ok());
  // JSON round trip for the API.
  auto json = InclusionProofToJson(proof);
  EXPECT_EQ(json["sequence"], 37);
  EXPECT_EQ(json["tree_size"], 100);
  auto back = InclusionProofFromJson(json);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, proof);
  json["extra"] = 1;
  EXPECT_FALSE(InclusionProofFromJson(json).ok());
  auto bad = InclusionProofToJson(proof);
  bad["path"][0] = "not base64!";
  EXPECT_FALSE(InclusionProofFromJson(bad).ok());
}

TEST_F(AuditLogTest, ConsecutiveCheckpointsAreConsistent) {
  InMemoryLeafHashes source(leaf_hashes_);
  for (size_t i = 1; i < parsed_checkpoints_.size(); ++i) {
    const Checkpoint& a = parsed_checkpoints_[i - 1];
    const Checkpoint& b = parsed_checkpoints_[i];
    auto path = ConsistencyPath(a.tree_size, b.tree_size, source);
    ASSERT_TRUE(path.ok());
    EXPECT_TRUE(VerifyConsistency(a.tree_size, b.tree_size, a.root, b.root, *path).ok());
  }
}

TEST(AuditChainTest, RollBackRestoresTheExactState) {
  AuditChain chain;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(chain.Append(SampleRecord(i)).ok());
  LogHead saved = chain.head();
  for (int i = 3; i < 8; ++i) ASSERT_TRUE(chain.Append(SampleRecord(i)).ok());
  chain.RollBackTo(saved);
  EXPECT_EQ(chain.size(), 3u);
  auto sealed = chain.Append(SampleRecord(99));
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->sequence, 3u) << "sequence numbers stay gapless";

  AuditChain fresh;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(fresh.Append(SampleRecord(i)).ok());
  ASSERT_TRUE(fresh.Append(SampleRecord(99)).ok());
  EXPECT_EQ(fresh.head(), chain.head());
}

TEST(AuditChainTest, InvalidRecordLeavesStateUnchanged) {
  AuditChain chain;
  ASSERT_TRUE(chain.Append(SampleRecord(0)).ok());
  LogHead before = chain.head();
  AuditRecord bad = SampleRecord(1);
  bad.category.clear();
  EXPECT_EQ(chain.Append(bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(chain.head(), before);
}

TEST(AuditChainTest, AppendingAnEarlierEncodingEqualsAppendingTheRecord) {
  AuditChain by_record;
  AuditChain by_encoding;
  for (int i = 0; i < 9; ++i) {
    AuditRecord record = SampleRecord(i);
    record.sequence = 12345;  // Whatever the draft held; the chain numbers it.
    auto encoded = EncodeAuditRecord(record);
    ASSERT_TRUE(encoded.ok());
    auto a = by_record.Append(record);
    auto b = by_encoding.AppendEncoded(*encoded);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(b->sequence, static_cast<uint64_t>(i));
    EXPECT_EQ(a->canonical, b->canonical);
    EXPECT_EQ(a->leaf_hash, b->leaf_hash);
    EXPECT_EQ(a->chain_hash, b->chain_hash);
  }
  EXPECT_EQ(by_record.head(), by_encoding.head());
  const LogHead before = by_encoding.head();
  EXPECT_EQ(by_encoding.AppendEncoded("not a record").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(by_encoding.head(), before);
}

TEST(AuditChainTest, ChainLinkDefinition) {
  // H_1 = SHA-256("kura-audit-chain-v1" || 0^32 || SHA-256(0x00 || c_0)).
  AuditChain chain;
  auto sealed = chain.Append(SampleRecord(0));
  ASSERT_TRUE(sealed.ok());
  std::string input = "kura-audit-chain-v1" + std::string(32, '\0');
  Hash leaf = crypto::Sha256(std::string(1, '\0') + sealed->canonical);
  input.append(reinterpret_cast<const char*>(leaf.data()), leaf.size());
  EXPECT_EQ(sealed->leaf_hash, leaf);
  EXPECT_EQ(sealed->chain_hash, crypto::Sha256(input));
  EXPECT_EQ(chain.Root(), leaf);
}

TEST(AuditChainTest, ResumedChainContinuesIdentically) {
  AuditChain a;
  for (int i = 0; i < 21; ++i) ASSERT_TRUE(a.Append(SampleRecord(i)).ok());
  auto frontier = MerkleFrontier::FromHashes(a.size(), a.head().frontier.hashes());
  ASSERT_TRUE(frontier.ok());
  AuditChain b(LogHead{a.head().chain_head, *frontier});
  for (int i = 21; i < 40; ++i) {
    auto x = a.Append(SampleRecord(i));
    auto y = b.Append(SampleRecord(i));
    ASSERT_TRUE(x.ok() && y.ok());
    EXPECT_EQ(x->chain_hash, y->chain_hash);
  }
  EXPECT_EQ(a.Root(), b.Root());
}

// The worked example of docs/formats/audit-log.md, computed independently in Python from the
// written format: two "system start" records, their hashes, and the checkpoint of size 2 signed
// with RFC 8032 TEST 1's key.
TEST(AuditFormatTest, IndependentlyComputedWorkedExample) {
  using testing::HashFromHex;
  AuditChain replay;
  AuditRecord first;
  first.time_us = kStart;
  first.category = "system";
  first.action = "start";
  first.actor.kind = "system";
  first.details = {{"version", "0.1.0"}};
  auto s0 = replay.Append(first);
  auto s1 = replay.Append(first);
  ASSERT_TRUE(s0.ok() && s1.ok());
  EXPECT_EQ(testing::Hex(s0->canonical),
            "01000000000000000000060a24181e40000000000673797374656d000000057374617274000000000000"
            "00000673797374656d000000000000000000000000000000000000000000000000000000000000000000"
            "0000000000000000000000000000010000000776657273696f6e00000005302e312e30");
  EXPECT_EQ(s0->leaf_hash,
            HashFromHex("fbceba2a70e0a01986f5fb450a10d0633f171dc9c87309e8cb9725b649149baa"));
  EXPECT_EQ(s0->chain_hash,
            HashFromHex("2047e0aaa58abd937a4e848fa14b75216b0086dfb1c1dd15533f76989563d02b"));
  EXPECT_EQ(s1->leaf_hash,
            HashFromHex("3ad0dcb0b01fc3f96cb9014f82952c4b82818e8ded860c9be4d16521a40dc9ca"));
  EXPECT_EQ(s1->chain_hash,
            HashFromHex("2d2d9822970ba8f7e01804c6649b04744ab44d05235a2c6433f256897408f13e"));
  EXPECT_EQ(replay.Root(),
            HashFromHex("92a682dc19778debc8c48f3d24b88d6441855909fb98dc933ee6f7ea24f00928"));

  auto signer = SignerFromSeedHex(kSeed);
  auto note =
      SignCheckpoint(CheckpointOf(replay.head(), "kura.example/audit", FromMicros(kStart)), signer);
  ASSERT_TRUE(note.ok());
  EXPECT_EQ(*note,
            "kura.example/audit\n"
            "2\n"
            "kqaC3Bl3jevIxI89JLiNZEGFWQn7mNyTPub36iTwCSg=\n"
            "chain LS2YIpcLqPfgGATGZJsEdEq0TQUjWixkM/JWiXQI8T4=\n"
            "time 1700000000000000\n"
            "\n"
            "\xe2\x80\x94 kura.example/audit "
            "hs5zhU8sC5yq+NC/thAypcPYclA3EdcRvAdtiCpgKdj18OiXS6UOEhx3m68GVKiaMyuVDMc/"
            "kVyK4te6JamATmOXaAs=\n");
  EXPECT_EQ(CheckpointVerifierKey("kura.example/audit", signer)->ToString(),
            "kura.example/audit+86ce7385+AddamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea");
}

TEST(VerificationRecordTest, DescribesTheRunAsAnAuditRecord) {
  VerificationReport report;
  report.tree_size = 10;
  AuditRecord ok = VerificationAuditRecord(report, kStart);
  EXPECT_EQ(ok.category, "system");
  EXPECT_EQ(ok.action, "verify");
  EXPECT_EQ(ok.outcome, Outcome::kSuccess);
  EXPECT_TRUE(EncodeAuditRecord(ok).ok());
  report.issues.push_back({IssueKind::kDeleted, 4, "records [4, 5) are missing"});
  report.issue_count = 1;
  AuditRecord bad = VerificationAuditRecord(report, kStart);
  EXPECT_EQ(bad.outcome, Outcome::kSeriousFailure);
  auto encoded = EncodeAuditRecord(bad);
  ASSERT_TRUE(encoded.ok());
  auto json = AuditRecordToJson(*DecodeAuditRecord(*encoded));
  EXPECT_EQ(json["details"]["verify.first_bad_sequence"], "4");
  EXPECT_EQ(json["details"]["verify.first_issue"], "deleted");
}

}  // namespace
}  // namespace kura::audit
