// Audit log retention over a real SqliteStore: AuditLog::Prune deletes the oldest records behind
// a signed prune anchor, and what stays still verifies, still proves inclusion, keeps growing and
// still exposes tampering; pruning never passes an export cursor or an unverified record.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <map>
#include <set>

#include "kura/audit/audit_log.h"
#include "kura/audit/audit_log_fixture.h"
#include "kura/audit/export_format.h"
#include "kura/audit/tamper_util.h"
#include "kura/audit/test_util.h"
#include "kura/store/sqlite/sqlite_store.h"

namespace kura::audit {
namespace {

using store::AuditRow;
using store::WriteBatch;
using testing::kOrigin;
using testing::ModifyRecordByteSql;
using testing::Tamper;

constexpr int64_t kFirstEventUs = 1700000000000000;  // SampleRecord(i) is 1 ms after (i - 1).

TimePoint TimeOf(uint64_t i) { return FromMicros(kFirstEventUs + static_cast<int64_t>(i) * 1000); }

Hash ToHash(const std::string& bytes) {
  Hash h{};
  std::copy(bytes.begin(), bytes.end(), h.begin());
  return h;
}

class AuditPruneTest : public testing::AuditLogFixture {
 protected:
  // Prune anchors and prune records are dated a day after the events.
  AuditPruneTest()
      : AuditLogFixture("kura-audit-prune", '\x22',
                        FromMicros(kFirstEventUs) + std::chrono::hours(24)) {}

  AuditPruneResult Prune(TimePoint cutoff, AuditPruneOptions options = {}) {
    auto result = log_->Prune(cutoff, options);
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    return result.ok() ? *result : AuditPruneResult{};
  }

  std::vector<Hash> LeafHashes() {
    std::vector<Hash> out;
    for (const AuditRow& row : AllRows()) out.push_back(ToHash(row.leaf_hash));
    return out;
  }

  std::vector<uint64_t> StatementSizes(store::AuditStatement::Kind kind) {
    std::vector<uint64_t> out;
    auto statements = store_->ReadAuditStatements();
    EXPECT_TRUE(statements.ok());
    if (!statements.ok()) return out;
    for (const auto& s : *statements) {
      if (s.kind == kind) out.push_back(s.tree_size);
    }
    return out;
  }

  // Proves `sequence` against the checkpoint of `tree_size` and compares the path with the one
  // computed from every leaf.
  void ExpectProof(uint64_t sequence, uint64_t tree_size, const std::vector<Hash>& all_leaves) {
    SCOPED_TRACE("sequence " + std::to_string(sequence) + " in " + std::to_string(tree_size));
    auto evidence = ProveStoredInclusion(*store_, lookup(), kOrigin, {&log_->verifier_key(), 1},
                                         sequence, tree_size);
    ASSERT_TRUE(evidence.ok()) << evidence.status().ToString();
    EXPECT_EQ(evidence->record.sequence, sequence);
    auto checkpoint =
        VerifyCheckpoint(evidence->checkpoint_note, kOrigin, {&log_->verifier_key(), 1});
    ASSERT_TRUE(checkpoint.ok());
    EXPECT_TRUE(VerifyRecordInclusion(evidence->canonical, evidence->proof, *checkpoint).ok());
    ASSERT_GE(all_leaves.size(), tree_size);
    InMemoryLeafHashes reference(std::span<const Hash>(all_leaves.data(), tree_size));
    auto expected = InclusionPath(sequence, tree_size, reference);
    ASSERT_TRUE(expected.ok());
    EXPECT_EQ(evidence->proof.path, *expected);
  }
};

TEST_F(AuditPruneTest, DeletesWhatIsOlderThanTheCutoffAndTheRestStillVerifies) {
  AppendEvents(0, 100);  // Checkpoints at 10, 20, ..., 100.
  const std::vector<Hash> leaves = LeafHashes();
  const Hash chain_37 = ToHash(AllRows()[36].chain_hash);
  AuditPruneResult result = Prune(TimeOf(37));
  EXPECT_EQ(result.records_pruned, 37u);
  EXPECT_EQ(result.steps, 1u);
  EXPECT_EQ(result.first_retained_sequence, 37u);
  EXPECT_EQ(result.held_back_by, "");

  std::vector<AuditRow> rows = AllRows();
  ASSERT_EQ(rows.size(), 64u);  // 37..99 and the prune record.
  EXPECT_EQ(rows.front().sequence, 37u);
  auto record = ReadAuditRecord(*store_, lookup(), 100);
  ASSERT_TRUE(record.ok()) << record.status().ToString();
  EXPECT_EQ(record->category, "system");
  EXPECT_EQ(record->action, "prune");
  EXPECT_EQ(record->actor.id, "kura");
  EXPECT_THAT(record->details,
              ::testing::Contains(std::pair<std::string, std::string>("prune.records", "37")));
  EXPECT_THAT(record->details, ::testing::Contains(std::pair<std::string, std::string>(
                                   "prune.first_sequence", "37")));
  EXPECT_EQ(ReadAuditRecord(*store_, lookup(), 36).status().code(), StatusCode::kNotFound);

  // Checkpoints of pruned records only are gone; the anchor stands in for them.
  EXPECT_EQ(StatementSizes(store::AuditStatement::Kind::kCheckpoint),
            (std::vector<uint64_t>{40, 50, 60, 70, 80, 90, 100}));
  EXPECT_EQ(StatementSizes(store::AuditStatement::Kind::kPruneAnchor), (std::vector<uint64_t>{37}));
  auto anchors = store_->ReadAuditPruneAnchors();
  ASSERT_TRUE(anchors.ok() && anchors->size() == 1u);
  auto anchor = VerifyPruneAnchor(anchors->front().note, kOrigin, {&log_->verifier_key(), 1});
  ASSERT_TRUE(anchor.ok());
  EXPECT_EQ(anchor->first_sequence, 37u);
  EXPECT_EQ(anchor->chain_head, chain_37);
  MerkleFrontier frontier;
  for (uint64_t i = 0; i < 37; ++i) frontier.Append(leaves[i]);
  EXPECT_EQ(anchor->frontier, frontier);

  VerificationReport report = Verify();
  EXPECT_TRUE(report.ok()) << report.Summary();
  EXPECT_EQ(report.first_sequence, 37u);
  EXPECT_EQ(report.records_checked, 64u);
  EXPECT_EQ(report.tree_size, 101u);
  EXPECT_EQ(report.checkpoints_matched, 7u);

  // Leaves 32..36 (the aligned block of 16 around 37) stay as hashes for proofs; older ones go.
  auto kept = store_->ReadAuditNode(0, 36);
  ASSERT_TRUE(kept.ok() && kept->has_value());
  EXPECT_EQ(ToHash(**kept), leaves[36]);
  auto gone = store_->ReadAuditNode(0, 31);
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
}

TEST_F(AuditPruneTest, FoldedIndexEntriesOfPrunedRecordsGoToo) {
  // Folds every 19 records: at the prune, the folded indexes hold records on both sides of it,
  // and the latest records are not folded yet.
  ReopenFoldingEvery(19);
  AppendEvents(0, 60);
  const int64_t folded = FoldedThrough();
  ASSERT_EQ(folded, 56);
  auto entries = [this](store::AuditPostingKind kind, bool pruned) {
    int64_t n = 0;
    for (const auto& entry : PostingEntries(kind)) n += (entry.second < 25) == pruned;
    return n;
  };
  for (auto kind : {store::AuditPostingKind::kPatient, store::AuditPostingKind::kActor}) {
    ASSERT_GT(entries(kind, true), 0);
  }
  ASSERT_EQ(QueryInt("SELECT COUNT(*) FROM audit_time_blocks"), 3);
  Prune(TimeOf(25));
  for (auto kind : {store::AuditPostingKind::kPatient, store::AuditPostingKind::kActor}) {
    EXPECT_EQ(entries(kind, true), 0);
    EXPECT_GT(entries(kind, false), 0);
  }
  // No list of the block that is gone; those of the block the prune point is in kept its key.
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM audit_postings WHERE first_seq < 19"), 0);
  EXPECT_GT(QueryInt("SELECT COUNT(*) FROM audit_postings WHERE first_seq = 19"), 0);
  // The block of records 0..18 is gone; that of 19..37 still bounds the records left in it.
  EXPECT_EQ(QueryInt("SELECT MIN(first_seq) FROM audit_time_blocks"), 19);
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM audit_time_blocks"), 2);
  const std::vector<uint64_t> want = EventsTouching("pat-1", 25, 60);
  EXPECT_EQ(SearchPatient("pat-1"), want);
  ASSERT_FALSE(want.empty());
  EXPECT_GT(want.front(), static_cast<uint64_t>(folded));
  store::AuditQuery by_actor;
  by_actor.actor = "acct-3";
  by_actor.since_us = kFirstEventUs + 20 * 1000;
  std::vector<uint64_t> want_actor;
  for (uint64_t i = 60; i-- > 25;) {
    if (i % 5 == 3) want_actor.push_back(i);
  }
  EXPECT_EQ(SearchSequences(by_actor), want_actor);
}

TEST_F(AuditPruneTest, IsIdempotentAndWritesNothingWhenNothingIsOldEnough) {
  AppendEvents(0, 30);
  AuditPruneResult nothing = Prune(TimeOf(0));
  EXPECT_EQ(nothing.steps, 0u);
  EXPECT_EQ(nothing.first_retained_sequence, 0u);
  EXPECT_EQ(AllRows().size(), 30u);
  EXPECT_TRUE(StatementSizes(store::AuditStatement::Kind::kPruneAnchor).empty());

  EXPECT_EQ(Prune(TimeOf(15)).records_pruned, 15u);
  const size_t rows = AllRows().size();
  AuditPruneResult again = Prune(TimeOf(15));
  EXPECT_EQ(again.steps, 0u);
  EXPECT_EQ(again.records_pruned, 0u);
  EXPECT_EQ(again.first_retained_sequence, 15u);
  EXPECT_EQ(AllRows().size(), rows);  // No second prune record.
  EXPECT_TRUE(Verify().ok());
}

TEST_F(AuditPruneTest, FirstRetainedIsTheFirstRecordBySequenceAtOrAfterTheCutoff) {
  // Record 12 carries a later time than its neighbours (the clock stepped): it and everything
  // after it stay, although 13..19 are older than the cutoff.
  AppendEvents(0, 12);
  AuditRecord ahead = Event(12);
  ahead.time_us = ToMicros(TimeOf(50));
  WriteBatch batch;
  batch.audit = AuditLog::Draft(ahead);
  ASSERT_TRUE(store_->Commit(std::move(batch)).ok());
  AppendEvents(13, 17);
  EXPECT_EQ(Prune(TimeOf(20)).first_retained_sequence, 12u);
  EXPECT_EQ(AllRows().front().sequence, 12u);
  EXPECT_TRUE(Verify().ok());
}

TEST_F(AuditPruneTest, EverythingOldGoesUpToTheLatestSignedCheckpoint) {
  AppendEvents(0, 25);  // Checkpoints at 10 and 20; 20..24 are not signed yet.
  AuditPruneResult result = Prune(TimeOf(1000));
  EXPECT_EQ(result.first_retained_sequence, 20u);
  EXPECT_EQ(result.held_back_by, "not covered by a signed checkpoint yet");
  VerificationReport report = Verify();
  EXPECT_TRUE(report.ok()) << report.Summary();
  EXPECT_EQ(report.first_sequence, 20u);
}

TEST_F(AuditPruneTest, NeverPassesAnExportCursor) {
  AppendEvents(0, 45);  // Checkpoints at 10, 20, 30, 40.
  ASSERT_TRUE(store_->WriteAuditCursor("syslog", 25).ok());
  ASSERT_TRUE(store_->WriteAuditCursor("syslog/checkpoints", 30).ok());
  AuditPruneResult held = Prune(TimeOf(44));
  EXPECT_EQ(held.first_retained_sequence, 25u);
  EXPECT_EQ(held.held_back_by, "export cursor syslog");

  ASSERT_TRUE(store_->WriteAuditCursor("syslog", 44).ok());
  AuditPruneResult checkpoints_held = Prune(TimeOf(44));
  EXPECT_EQ(checkpoints_held.first_retained_sequence, 30u);
  EXPECT_EQ(checkpoints_held.held_back_by, "export cursor syslog/checkpoints");
  EXPECT_EQ(AllRows().front().sequence, 30u);

  // The store itself refuses, whatever it is handed.
  store::AuditPrune past;
  past.first_retained_sequence = 31;
  past.anchor = {store::AuditStatement::Kind::kPruneAnchor, 31, 0, "not checked here"};
  past.record = AuditLog::Draft(Event(1000));
  EXPECT_EQ(store_->PruneAudit(past).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(AllRows().front().sequence, 30u);
  EXPECT_EQ(StatementSizes(store::AuditStatement::Kind::kPruneAnchor), (std::vector<uint64_t>{30}));
  VerificationReport report = Verify();
  EXPECT_TRUE(report.ok()) << report.Summary();
}

TEST_F(AuditPruneTest, TheStoreRefusesAnOlderOrEqualPrune) {
  AppendEvents(0, 30);
  Prune(TimeOf(20));
  store::AuditPrune stale;
  stale.first_retained_sequence = 20;
  stale.anchor = {store::AuditStatement::Kind::kPruneAnchor, 20, 0, "stale"};
  stale.record = AuditLog::Draft(Event(1000));
  EXPECT_EQ(store_->PruneAudit(stale).code(), StatusCode::kAborted);
  stale.anchor.tree_size = 19;
  EXPECT_EQ(store_->PruneAudit(stale).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Verify().ok());
}

TEST_F(AuditPruneTest, InclusionProofsOfRetainedRecordsStillVerify) {
  Close();
  Open({.every_records = 600, .every = std::chrono::hours(1)});
  AppendEvents(0, 600, /*one_batch=*/true);  // One checkpoint, at 600.
  std::vector<Hash> leaves = LeafHashes();

  // 300 = 256 + 32 + 8 + 4: the paths of retained leaves need subtrees of every level left of
  // 300, some from kept nodes (levels 8, 4), some from pruned leaves kept as hashes (288..299).
  ASSERT_EQ(Prune(TimeOf(300)).first_retained_sequence, 300u);
  for (uint64_t s : {300u, 301u, 303u, 304u, 319u, 320u, 383u, 384u, 511u, 512u, 599u}) {
    ExpectProof(s, 600, leaves);
  }
  EXPECT_EQ(ProveStoredInclusion(*store_, lookup(), kOrigin, {&log_->verifier_key(), 1}, 299, 600)
                .status()
                .code(),
            StatusCode::kNotFound);
  // What no retained proof reads any more is gone: level-4 nodes left of the group of 16 around
  // 300 >> 4, and leaves left of 288.
  auto node = [&](int level, uint64_t index) {
    auto got = store_->ReadAuditNode(level, index);
    EXPECT_TRUE(got.ok());
    return got.ok() && got->has_value();
  };
  EXPECT_FALSE(node(4, 15));
  EXPECT_TRUE(node(4, 16));
  EXPECT_TRUE(node(8, 0));
  EXPECT_FALSE(node(0, 287));
  EXPECT_TRUE(node(0, 288));

  // A second prune at an odd sequence trims the kept leaves of the first.
  ASSERT_EQ(Prune(TimeOf(377)).first_retained_sequence, 377u);
  for (uint64_t s : {377u, 378u, 383u, 384u, 400u, 511u, 512u, 599u}) ExpectProof(s, 600, leaves);
  EXPECT_FALSE(node(0, 300));
  EXPECT_FALSE(node(0, 367));
  EXPECT_TRUE(node(0, 368));

  // Later checkpoints prove old and new records alike.
  AppendEvents(600, 600, /*one_batch=*/true);
  auto latest = store_->FindAuditCheckpoint(0);
  ASSERT_TRUE(latest.ok() && latest->has_value());
  const uint64_t size = (*latest)->tree_size;
  ASSERT_EQ(size, 1202u);  // 600 events, 2 prune records, 600 events.
  std::vector<Hash> all = leaves;
  std::vector<AuditRow> rows = AllRows();
  for (const AuditRow& row : rows) {
    if (row.sequence >= 600) all.push_back(ToHash(row.leaf_hash));
  }
  for (uint64_t s : {377u, 599u, 600u, 601u, 1000u, 1201u}) ExpectProof(s, size, all);
  VerificationReport report = Verify();
  EXPECT_TRUE(report.ok()) << report.Summary();
}

TEST_F(AuditPruneTest, TheLogContinuesAfterAPruneAndAcrossReopening) {
  AppendEvents(0, 50);
  ASSERT_EQ(Prune(TimeOf(23)).first_retained_sequence, 23u);
  AppendEvents(50, 20);
  Close();
  Open();
  EXPECT_EQ(log_->committed_size(), 71u);
  AppendEvents(70, 15);
  EXPECT_EQ(log_->committed_size(), 86u);
  VerificationReport report = Verify();
  EXPECT_TRUE(report.ok()) << report.Summary();
  EXPECT_EQ(report.first_sequence, 23u);
  EXPECT_EQ(report.records_checked, 86u - 23u);
  EXPECT_EQ(report.checkpoints_matched, 6u);  // 30, 40, ..., 80.
  // And it prunes again from where it stands. The first prune's record (50) is dated after the
  // cutoff, so it and everything after it stay.
  ASSERT_EQ(Prune(TimeOf(60)).first_retained_sequence, 50u);
  EXPECT_TRUE(Verify().ok());
}

TEST_F(AuditPruneTest, StepsAreBoundedAndOnlyTheLatestAnchorIsKept) {
  AppendEvents(0, 100);
  AuditPruneResult result = Prune(TimeOf(90), {.max_records_per_step = 16, .keep_going = nullptr});
  EXPECT_EQ(result.steps, 6u);  // 16, 32, 48, 64, 80, 90.
  EXPECT_EQ(result.records_pruned, 90u);
  EXPECT_EQ(StatementSizes(store::AuditStatement::Kind::kPruneAnchor), (std::vector<uint64_t>{90}));
  store::AuditQuery prunes;
  prunes.action = "prune";
  prunes.limit = 100;
  auto page = store_->SearchAudit(prunes);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->rows.size(), 6u);
  VerificationReport report = Verify();
  EXPECT_TRUE(report.ok()) << report.Summary();
  EXPECT_EQ(report.first_sequence, 90u);
}

TEST_F(AuditPruneTest, StopsBetweenStepsWhenAskedTo) {
  AppendEvents(0, 100);
  int steps_allowed = 2;
  AuditPruneResult result = Prune(
      TimeOf(90),
      {.max_records_per_step = 16, .keep_going = [&steps_allowed] { return steps_allowed-- > 0; }});
  EXPECT_EQ(result.steps, 2u);
  EXPECT_EQ(result.first_retained_sequence, 32u);
  EXPECT_TRUE(Verify().ok());
}

TEST_F(AuditPruneTest, RefusesToPruneRecordsThatDoNotVerify) {
  AppendEvents(0, 30);
  Tamper(db_path(), ModifyRecordByteSql(5));
  auto result = log_->Prune(TimeOf(20));
  EXPECT_EQ(result.status().code(), StatusCode::kDataLoss);
  // The evidence stays: nothing was deleted, no anchor was signed.
  EXPECT_EQ(AllRows().size(), 30u);
  EXPECT_TRUE(StatementSizes(store::AuditStatement::Kind::kPruneAnchor).empty());
}

TEST_F(AuditPruneTest, RefusesToPruneRecordsRechainedAfterTheirCheckpoint) {
  AppendEvents(0, 30);
  // A hole inside the range to prune: deleting past it would hide it for good.
  Tamper(db_path(), "DELETE FROM audit_log WHERE seq = 13");
  EXPECT_EQ(log_->Prune(TimeOf(20)).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(AllRows().front().sequence, 0u);
}

TEST_F(AuditPruneTest, RefusesToContinueFromAForgedAnchor) {
  AppendEvents(0, 40);
  Prune(TimeOf(15));
  Tamper(db_path(),
         "UPDATE audit_statements SET note = replace(note, 'first 15', 'first 16') WHERE kind = 1");
  EXPECT_EQ(log_->Prune(TimeOf(30)).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(AllRows().front().sequence, 15u);
}

// --- Tampering after a prune ------------------------------------------------------------------

class AuditPruneTamperTest : public AuditPruneTest {
 protected:
  void SetUp() override {
    AuditPruneTest::SetUp();
    AppendEvents(0, 60);
    ASSERT_EQ(Prune(TimeOf(25)).first_retained_sequence, 25u);
    ASSERT_TRUE(Verify().ok());
  }
};

TEST_F(AuditPruneTamperTest, ModifiedRetainedRecord) {
  Tamper(db_path(), ModifyRecordByteSql(33));
  VerificationReport report = Verify();
  EXPECT_TRUE(HasIssue(report, IssueKind::kModified)) << report.Summary();
  EXPECT_EQ(report.FirstBadSequence(), 33u);
}

TEST_F(AuditPruneTamperTest, DeletedAnchorLeavesAnUnexplainedMissingPrefix) {
  Tamper(db_path(), "DELETE FROM audit_statements WHERE kind = 1");
  VerificationReport report = Verify();
  EXPECT_TRUE(HasIssue(report, IssueKind::kDeleted)) << report.Summary();
  EXPECT_EQ(report.FirstBadSequence(), 0u);
}

// Each prune record carries the anchor its step signed, so every sink's copy of the log keeps it:
// given that copy, a log whose stored anchor is gone verifies again from its first retained
// record, and the copy's anchor cannot stand in for records deleted after it.
TEST_F(AuditPruneTamperTest, TheSinkCopyOfThePruneRecordExplainsTheMissingPrefix) {
  const uint64_t prune_sequence = AllRows().back().sequence;
  auto prune = ReadAuditRecord(*store_, lookup(), prune_sequence);
  ASSERT_TRUE(prune.ok()) << prune.status().ToString();
  ASSERT_EQ(prune->action, action::kPrune);
  auto stored = store_->ReadAuditPruneAnchors();
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  auto shipped = ExtractPruneAnchorNote(FormatJsonLine(*prune));
  ASSERT_TRUE(shipped.ok()) << shipped.status().ToString();
  EXPECT_EQ(*shipped, stored->front().note);

  Tamper(db_path(), "DELETE FROM audit_statements WHERE kind = 1");
  EXPECT_FALSE(Verify().ok());
  VerificationReport with_copy = Verify({*shipped});
  EXPECT_TRUE(with_copy.ok()) << with_copy.Summary();
  EXPECT_EQ(with_copy.first_sequence, 25u);

  Tamper(db_path(), "DELETE FROM audit_log WHERE seq < 28");
  VerificationReport cut = Verify({*shipped});
  EXPECT_TRUE(HasIssue(cut, IssueKind::kDeleted)) << cut.Summary();
  EXPECT_EQ(cut.FirstBadSequence(), 25u);
}

TEST_F(AuditPruneTamperTest, ForgedAnchor) {
  Tamper(db_path(),
         "UPDATE audit_statements SET note = replace(note, 'chain ', 'chain x') WHERE kind = 1");
  VerificationReport report = Verify();
  EXPECT_TRUE(HasIssue(report, IssueKind::kBadCheckpoint)) << report.Summary();
  EXPECT_FALSE(report.ok());
}

TEST_F(AuditPruneTamperTest, DeletedFirstRetainedRecords) {
  // Pruning further by hand, without an anchor for it.
  Tamper(db_path(), "DELETE FROM audit_log WHERE seq < 28");
  VerificationReport report = Verify();
  EXPECT_TRUE(HasIssue(report, IssueKind::kDeleted)) << report.Summary();
  EXPECT_EQ(report.FirstBadSequence(), 25u);
}

TEST_F(AuditPruneTamperTest, AnchorMovedToAnotherSequence) {
  // An anchor only states its own first sequence: relabelling the row changes nothing it says.
  Tamper(db_path(), "UPDATE audit_statements SET tree_size = 20 WHERE kind = 1");
  EXPECT_TRUE(Verify().ok());
  Tamper(db_path(), "DELETE FROM audit_log WHERE seq = 25");
  VerificationReport report = Verify();
  EXPECT_TRUE(HasIssue(report, IssueKind::kDeleted)) << report.Summary();
  EXPECT_EQ(report.FirstBadSequence(), 25u);
}

}  // namespace
}  // namespace kura::audit
