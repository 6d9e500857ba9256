// AuditLog over a real SqliteStore: records commit with their writes, stay gapless when units or
// transactions fail, survive reopening, are encrypted at rest, get signed checkpoints and
// inclusion proofs, and every kind of tampering with the database is caught by VerifyStoredLog.
#include "kura/audit/audit_log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "kura/audit/audit_log_fixture.h"
#include "kura/audit/tamper_util.h"
#include "kura/audit/test_util.h"
#include "kura/store/sqlite/schema_test_util.h"
#include "kura/store/sqlite/sqlite_store.h"

namespace kura::audit {
namespace {

using store::AuditRow;
using store::ResourceVersion;
using store::SqliteStore;
using store::WriteBatch;
using testing::kOrigin;
using testing::ModifyRecordByteSql;
using testing::Tamper;

ResourceVersion Resource(std::string id, int64_t version) {
  ResourceVersion v;
  v.type = "Observation";
  v.id = std::move(id);
  v.version = version;
  v.last_updated = FromMicros(1700000000000000);
  v.payload = "{}";
  return v;
}

class AuditLogTest : public testing::AuditLogFixture {
 protected:
  AuditLogTest() : AuditLogFixture("kura-audit-log", '\x11', FromMicros(1700000000000000)) {}
};

TEST_F(AuditLogTest, RecordsCommitWithTheirWritesInOrderAndDecryptBack) {
  WriteBatch batch;
  batch.resources.push_back(Resource("a", 1));
  batch.audit = AuditLog::Draft(Event(1));
  ASSERT_TRUE(store_->Commit(std::move(batch)).ok());
  AppendEvents(2, 4);

  std::vector<AuditRow> rows = AllRows();
  ASSERT_EQ(rows.size(), 5u);
  for (uint64_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].sequence, i);
    auto canonical = OpenAuditRow(rows[i], lookup());
    ASSERT_TRUE(canonical.ok());
    auto record = DecodeAuditRecord(*canonical);
    ASSERT_TRUE(record.ok());
    AuditRecord expected = Event(i + 1);
    expected.sequence = i;
    EXPECT_EQ(*canonical, *EncodeAuditRecord(expected));
    EXPECT_EQ(record->request_id, expected.request_id);
    EXPECT_EQ(rows[i].actor, expected.actor.id);
    EXPECT_EQ(rows[i].action, expected.action);
    // Sealed: the plaintext's identifiers do not appear in the stored bytes.
    EXPECT_EQ(rows[i].sealed.find(expected.request_id), std::string::npos);
  }
  EXPECT_EQ(log_->committed_size(), 5u);
  EXPECT_TRUE(Verify().ok());
}

TEST_F(AuditLogTest, AFailedUnitLeavesNoRecordAndNoGap) {
  AppendEvents(0, 2);
  WriteBatch conflict;
  conflict.resources.push_back(Resource("never", 5));  // Not current + 1: the unit fails.
  conflict.audit = AuditLog::Draft(Event(99));
  EXPECT_EQ(store_->Commit(std::move(conflict)).status().code(), StatusCode::kAborted);
  AuditRecord invalid = Event(100);
  invalid.category.clear();  // Does not encode: the unit fails, nothing else does.
  WriteBatch bad;
  bad.resources.push_back(Resource("b", 1));
  bad.audit = AuditLog::Draft({Event(101), invalid});
  EXPECT_EQ(store_->Commit(std::move(bad)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ReadCurrent("Observation", "b").status().code(), StatusCode::kNotFound);
  AppendEvents(2, 1);

  std::vector<AuditRow> rows = AllRows();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2].sequence, 2u);
  EXPECT_EQ(rows[2].actor, Event(2).actor.id);
  EXPECT_TRUE(Verify().ok());
}

TEST_F(AuditLogTest, AFailedTransactionRollsTheHeadBack) {
  AppendEvents(0, 3);
  ASSERT_TRUE(store_->LimitDatabaseGrowthForTest(0).ok());
  // Big enough that the rows cannot fit in the pages the database has left.
  std::vector<AuditRecord> many;
  for (uint64_t i = 0; i < 400; ++i) {
    AuditRecord r = Event(i);
    r.purpose = std::string(2000, 'x');
    many.push_back(r);
  }
  WriteBatch batch;
  batch.audit = AuditLog::Draft(std::move(many));
  EXPECT_EQ(store_->Commit(std::move(batch)).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(log_->committed_size(), 3u);
  ASSERT_TRUE(store_->LimitDatabaseGrowthForTest(1 << 20).ok());
  AppendEvents(3, 2);
  EXPECT_EQ(AllRows().size(), 5u);
  EXPECT_TRUE(Verify().ok());
}

TEST_F(AuditLogTest, WithoutAnAppenderDraftsFailClosed) {
  store_->AttachAuditAppender(nullptr);
  WriteBatch batch;
  batch.resources.push_back(Resource("a", 1));
  batch.audit = AuditLog::Draft(Event(1));
  EXPECT_EQ(store_->Commit(std::move(batch)).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(store_->ReadCurrent("Observation", "a").status().code(), StatusCode::kNotFound);
}

TEST_F(AuditLogTest, ReopeningContinuesTheSameChain) {
  AppendEvents(0, 7);
  Close();
  Open();
  EXPECT_EQ(log_->committed_size(), 7u);
  AppendEvents(7, 6);
  VerificationReport report = Verify();
  EXPECT_TRUE(report.ok()) << report.Summary();
  EXPECT_EQ(report.records_checked, 13u);
  EXPECT_EQ(report.checkpoints_matched, 1u);  // At 10 records.
}

TEST_F(AuditLogTest, TwoWritersOnOneDatabaseContinueEachOthersLog) {
  // An administrative command appends while the server runs: each picks up the other's records.
  auto other_store = SqliteStore::Open({.path = db_path()});
  ASSERT_TRUE(other_store.ok());
  auto other_log =
      AuditLog::Open(**other_store, key_, lookup(), testing::SignerFromSeedHex(seed_hex_),
                     {.origin = std::string(kOrigin),
                      .checkpoint_policy = {.every_records = 10, .every = std::chrono::hours(1)}},
                     clock_);
  ASSERT_TRUE(other_log.ok());
  for (uint64_t round = 0; round < 4; ++round) {
    AppendEvents(round * 10, 3);
    for (uint64_t i = 0; i < 4; ++i) {
      WriteBatch batch;
      batch.audit = AuditLog::Draft(Event(round * 10 + 3 + i));
      ASSERT_TRUE((*other_store)->Commit(std::move(batch)).ok());
    }
  }
  (*other_store)->Close();
  std::vector<AuditRow> rows = AllRows();
  ASSERT_EQ(rows.size(), 28u);
  for (uint64_t i = 0; i < rows.size(); ++i) EXPECT_EQ(rows[i].sequence, i);
  VerificationReport report = Verify();
  EXPECT_TRUE(report.ok()) << report.Summary();
  EXPECT_EQ(report.records_checked, 28u);
  EXPECT_EQ(report.checkpoints_matched, 2u);  // At 10 and 20 records, whoever signed them.
}

TEST_F(AuditLogTest, CheckpointsAreSignedEveryNRecordsAndOnHeartbeatsWhenTimeIsUp) {
  AppendEvents(0, 25);
  // A checkpoint once ten records have passed since the last one, at the end of a transaction.
  EXPECT_EQ(StatementSizes(), (std::vector<uint64_t>{10, 20}));
  EXPECT_FALSE(log_->CheckpointDue(clock_.Now()));
  clock_.Advance(std::chrono::hours(2));
  EXPECT_TRUE(log_->CheckpointDue(clock_.Now()));
  WriteBatch heartbeat;
  heartbeat.audit = AuditLog::Heartbeat();
  ASSERT_TRUE(store_->Commit(std::move(heartbeat)).ok());
  EXPECT_FALSE(log_->CheckpointDue(clock_.Now()));
  auto latest = store_->FindAuditCheckpoint(0);
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->tree_size, 25u);
  auto checkpoint = VerifyCheckpoint((*latest)->note, kOrigin, {&log_->verifier_key(), 1});
  ASSERT_TRUE(checkpoint.ok());
  EXPECT_EQ(checkpoint->tree_size, 25u);
  EXPECT_EQ(AllRows().size(), 25u);  // A heartbeat adds no record.
  EXPECT_EQ(Verify().unsigned_tail, 0u);
}

TEST_F(AuditLogTest, ASignedDraftLeavesTheLogSignedWhateverThePolicySays) {
  AppendEvents(0, 13);  // Checkpoint at 10; 10..12 unsigned, the policy's hour not up.
  EXPECT_EQ(Verify().unsigned_tail, 3u);
  AppendEvents(13, 2);
  EXPECT_EQ(Verify().unsigned_tail, 5u);
  WriteBatch last;
  last.audit = AuditLog::SignedDraft(Event(15));
  ASSERT_TRUE(store_->Commit(std::move(last)).ok());
  auto latest = store_->FindAuditCheckpoint(0);
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->tree_size, 16u);
  VerificationReport report = Verify();
  EXPECT_TRUE(report.ok()) << report.Summary();
  EXPECT_EQ(report.unsigned_tail, 0u);
  EXPECT_FALSE(log_->CheckpointDue(clock_.Now() + std::chrono::hours(2)));

  // Nothing unsigned: no second checkpoint of the same size, and later commits follow the policy.
  AppendEvents(16, 3);
  EXPECT_EQ(StatementSizes(), (std::vector<uint64_t>{10, 16}));
}

TEST_F(AuditLogTest, InclusionProofsVerifyAgainstSignedCheckpoints) {
  Close();
  Open({.every_records = 300, .every = std::chrono::hours(1)});
  std::vector<AuditRecord> batch_records;
  for (uint64_t i = 0; i < 300; ++i) batch_records.push_back(Event(i));
  WriteBatch batch;
  batch.audit = AuditLog::Draft(std::move(batch_records));
  ASSERT_TRUE(store_->Commit(std::move(batch)).ok());
  AppendEvents(300, 5);  // After the checkpoint: not provable yet.

  std::vector<Hash> leaves;
  for (const AuditRow& row : AllRows()) {
    Hash h{};
    std::copy(row.leaf_hash.begin(), row.leaf_hash.end(), h.begin());
    leaves.push_back(h);
  }
  leaves.resize(300);
  InMemoryLeafHashes reference(leaves);
  for (uint64_t sequence : {0ull, 1ull, 15ull, 16ull, 255ull, 256ull, 299ull}) {
    auto evidence =
        ProveStoredInclusion(*store_, lookup(), kOrigin, {&log_->verifier_key(), 1}, sequence, 0);
    ASSERT_TRUE(evidence.ok()) << sequence << ": " << evidence.status().message();
    EXPECT_EQ(evidence->record.sequence, sequence);
    EXPECT_EQ(evidence->proof.tree_size, 300u);
    auto checkpoint =
        VerifyCheckpoint(evidence->checkpoint_note, kOrigin, {&log_->verifier_key(), 1});
    ASSERT_TRUE(checkpoint.ok());
    EXPECT_TRUE(VerifyRecordInclusion(evidence->canonical, evidence->proof, *checkpoint).ok());
    auto expected_path = InclusionPath(sequence, 300, reference);
    ASSERT_TRUE(expected_path.ok());
    EXPECT_EQ(evidence->proof.path, *expected_path);
  }
  EXPECT_EQ(ProveStoredInclusion(*store_, lookup(), kOrigin, {&log_->verifier_key(), 1}, 302, 0)
                .status()
                .code(),
            StatusCode::kNotFound);
  EXPECT_EQ(ProveStoredInclusion(*store_, lookup(), kOrigin, {&log_->verifier_key(), 1}, 999, 0)
                .status()
                .code(),
            StatusCode::kNotFound);
  // An altered kept node never yields a proof that would not check.
  // Node (4, 1) covers leaves 16..31: the level-4 sibling on leaf 3's path.
  Tamper(db_path(), "UPDATE audit_nodes SET hash = zeroblob(32) WHERE level = 4 AND idx = 1");
  EXPECT_FALSE(
      ProveStoredInclusion(*store_, lookup(), kOrigin, {&log_->verifier_key(), 1}, 3, 0).ok());
}

TEST_F(AuditLogTest, SearchFiltersOnTheClearIndexColumnsNewestFirst) {
  AppendEvents(0, 40);
  store::AuditQuery query;
  query.actor = "acct-2";
  query.limit = 3;
  std::vector<uint64_t> seen;
  for (int pages = 0; pages < 20; ++pages) {
    auto page = store_->SearchAudit(query);
    ASSERT_TRUE(page.ok());
    for (const AuditRow& row : page->rows) {
      EXPECT_EQ(row.actor, "acct-2");
      seen.push_back(row.sequence);
    }
    if (page->next_before_sequence == 0) break;
    query.before_sequence = page->next_before_sequence;
  }
  std::vector<uint64_t> expected;
  for (uint64_t i = 40; i-- > 0;) {
    if (Event(i).actor.id == "acct-2") expected.push_back(i);
  }
  EXPECT_EQ(seen, expected);

  store::AuditQuery by_patient;
  by_patient.patient_id = "pat-5";
  by_patient.action = "read";
  by_patient.since_us = Event(10).time_us;
  by_patient.limit = 100;
  auto page = store_->SearchAudit(by_patient);
  ASSERT_TRUE(page.ok());
  std::set<uint64_t> got;
  for (const AuditRow& row : page->rows) {
    got.insert(row.sequence);
    EXPECT_THAT(row.patient_ids, ::testing::Contains("pat-5"));
  }
  std::set<uint64_t> want;
  for (uint64_t i = 10; i < 40; ++i) {
    AuditRecord r = Event(i);
    bool touches = std::find(r.patient_compartments.begin(), r.patient_compartments.end(),
                             "pat-5") != r.patient_compartments.end();
    if (touches && r.action == "read") want.insert(i);
  }
  EXPECT_EQ(got, want);
  EXPECT_FALSE(want.empty());
}

// What SearchAudit must answer for `query` over `events` (event i has sequence i), newest first.
std::vector<uint64_t> Expected(const std::vector<AuditRecord>& events,
                               const store::AuditQuery& query) {
  std::vector<uint64_t> out;
  for (uint64_t i = events.size(); i-- > 0;) {
    const AuditRecord& r = events[i];
    const auto& patients = r.patient_compartments;
    if (!query.actor.empty() && r.actor.id != query.actor) continue;
    if (!query.category.empty() && r.category != query.category) continue;
    if (!query.action.empty() && r.action != query.action) continue;
    if (query.outcome && static_cast<int>(r.outcome) != *query.outcome) continue;
    if (query.since_us && r.time_us < *query.since_us) continue;
    if (query.until_us && r.time_us >= *query.until_us) continue;
    if (!query.patient_id.empty() &&
        std::find(patients.begin(), patients.end(), query.patient_id) == patients.end()) {
      continue;
    }
    if (query.before_sequence != 0 && i >= query.before_sequence) continue;
    out.push_back(i);
  }
  return out;
}

// Queries over every filter and their combinations, for the events Scrambled() makes.
std::vector<store::AuditQuery> SampleQueries() {
  constexpr int64_t kBase = 1700000000000000;
  std::vector<store::AuditQuery> queries(16);
  queries[1].patient_id = "pat-3";
  queries[2].patient_id = "pat-12";
  queries[3].actor = "acct-2";
  queries[4].actor = "acct-4";
  queries[4].patient_id = "pat-0";
  queries[5].since_us = kBase + 10'000;
  queries[6].until_us = kBase + 25'000;
  queries[7].since_us = kBase + 12'000;
  queries[7].until_us = kBase + 30'000;
  queries[8].actor = "acct-1";
  queries[8].since_us = kBase + 5'000;
  queries[8].until_us = kBase + 33'000;
  queries[9].patient_id = "pat-1";
  queries[9].until_us = kBase + 20'000;
  queries[10].action = "read";
  queries[10].outcome = static_cast<int>(Outcome::kSuccess);
  queries[11].category = "fhir";
  queries[11].before_sequence = 30;
  queries[12].actor = "acct-3";
  queries[12].before_sequence = 20;
  queries[13].since_us = kBase + 1'000'000;  // After every event.
  queries[14].until_us = kBase;              // Before every event.
  queries[15].patient_id = "pat-2";
  queries[15].action = "search";
  queries[15].since_us = kBase + 8'000;
  return queries;
}

// Events whose times are out of sequence order, as concurrent requests give them.
std::vector<AuditRecord> Scrambled(uint64_t count) {
  std::vector<AuditRecord> events;
  for (uint64_t i = 0; i < count; ++i) {
    AuditRecord r = testing::SampleRecord(i);
    r.sequence = 0;
    r.time_us = 1700000000000000 + static_cast<int64_t>((i * 17) % count) * 1000;
    events.push_back(std::move(r));
  }
  return events;
}

class AuditIndexFoldTest : public AuditLogTest {
 protected:
  void Append(const std::vector<AuditRecord>& events, uint64_t from, uint64_t to) {
    for (uint64_t i = from; i < to; ++i) {
      WriteBatch batch;
      batch.audit = AuditLog::Draft(events[i]);
      ASSERT_TRUE(store_->Commit(std::move(batch)).ok());
    }
  }

  // Every sample query, whole and in pages of 3, against what the events say.
  void ExpectSearchesMatch(const std::vector<AuditRecord>& events) {
    const std::vector<store::AuditQuery> queries = SampleQueries();
    for (size_t q = 0; q < queries.size(); ++q) {
      const std::vector<uint64_t> want = Expected(events, queries[q]);
      EXPECT_EQ(SearchSequences(queries[q]), want) << "query " << q;
      EXPECT_EQ(SearchSequences(queries[q], 3), want) << "query " << q << " paged";
    }
    for (const AuditRow& row : AllRows()) {
      std::vector<std::string> want = events[row.sequence].patient_compartments;
      std::sort(want.begin(), want.end());
      want.erase(std::unique(want.begin(), want.end()), want.end());
      EXPECT_EQ(row.patient_ids, want) << row.sequence;
    }
  }

  // The folded indexes hold exactly the records up to FoldedThrough(), and the time blocks cover
  // them without gaps, each with its records' earliest and latest time.
  void ExpectFoldedIndexesComplete(const std::vector<AuditRecord>& events) {
    const int64_t folded = FoldedThrough();
    int64_t links = 0;
    for (int64_t i = 0; i <= folded; ++i) {
      std::set<std::string> unique(events[i].patient_compartments.begin(),
                                   events[i].patient_compartments.end());
      links += static_cast<int64_t>(unique.size());
    }
    const auto patients = PostingEntries(store::AuditPostingKind::kPatient);
    const auto actors = PostingEntries(store::AuditPostingKind::kActor);
    EXPECT_EQ(static_cast<int64_t>(patients.size()), links);
    EXPECT_EQ(static_cast<int64_t>(actors.size()), folded + 1);
    int64_t last_patient_entry = -1;
    for (const auto& [patient, sequence] : patients) {
      const std::vector<std::string>& named = events[sequence].patient_compartments;
      EXPECT_NE(std::find(named.begin(), named.end(), patient), named.end()) << sequence;
      last_patient_entry = std::max(last_patient_entry, static_cast<int64_t>(sequence));
    }
    if (links > 0) {
      EXPECT_EQ(last_patient_entry, folded);
    }
    std::set<uint64_t> with_actor;
    for (const auto& [actor, sequence] : actors) {
      EXPECT_EQ(actor, events[sequence].actor.id) << sequence;
      with_actor.insert(sequence);
    }
    EXPECT_EQ(static_cast<int64_t>(with_actor.size()), folded + 1);
    if (!with_actor.empty()) {
      EXPECT_EQ(static_cast<int64_t>(*with_actor.rbegin()), folded);
    }
    // Each block's lists hang off its first record.
    for (const PostingList& list : PostingLists()) {
      EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM audit_time_blocks WHERE first_seq = " +
                         std::to_string(list.first_seq)),
                1)
          << list.first_seq;
    }
    EXPECT_EQ(QueryInt("SELECT IFNULL(MIN(first_seq), 0) FROM audit_time_blocks"), 0);
    EXPECT_EQ(QueryInt("SELECT IFNULL(MAX(last_seq), -1) FROM audit_time_blocks"), folded);
    EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM audit_time_blocks b WHERE first_seq > 0 AND NOT "
                       "EXISTS (SELECT 1 FROM audit_time_blocks p WHERE p.last_seq = "
                       "b.first_seq - 1)"),
              0);
    EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM audit_time_blocks b WHERE min_time_us != (SELECT "
                       "MIN(time_us) FROM audit_log WHERE seq BETWEEN b.first_seq AND "
                       "b.last_seq) OR max_time_us != (SELECT MAX(time_us) FROM audit_log "
                       "WHERE seq BETWEEN b.first_seq AND b.last_seq)"),
              0);
  }

  // Turns the database back into what version 7 wrote: patient links in audit_record_patients,
  // those up to `folded_through` also in audit_patients, the actor and time indexes on
  // audit_log itself.
  void DowngradeToVersionSeven(int64_t folded_through) {
    Close();
    Tamper(db_path(), std::string(store::testing::kUndoSchemaElevenSql) +
                          store::testing::kUndoSchemaTenSql + R"sql(
CREATE TABLE audit_record_patients(
  seq INTEGER NOT NULL, patient TEXT NOT NULL, PRIMARY KEY(seq, patient)) WITHOUT ROWID;
INSERT INTO audit_record_patients SELECT a.seq, p.value FROM audit_log a, json_each(a.patients) p;
CREATE TABLE audit_patient_fold(id INTEGER PRIMARY KEY CHECK(id = 1), through_seq INTEGER NOT NULL);
INSERT INTO audit_patient_fold VALUES(1, )sql" +
                          std::to_string(folded_through) + R"sql();
DELETE FROM audit_patients WHERE seq > (SELECT through_seq FROM audit_patient_fold);
DELETE FROM schema_migrations WHERE version = 8;
)sql" + std::string(store::testing::kUndoSchemaNineSql) +
                          std::string(store::testing::kUndoSchemaEightSql));
  }

  // Opens the downgraded database with the default options and checks that the migrations made
  // the first `migrated` events a log whose indexes are all folded and whose searches are right,
  // and that the log carries on with the rest of `events`.
  void ExpectMigratedLog(const std::vector<AuditRecord>& events, size_t migrated) {
    store_options_ = {};
    Open();
    EXPECT_EQ(QueryInt("SELECT MAX(version) FROM schema_migrations"), SqliteStore::SchemaVersion());
    EXPECT_EQ(FoldedThrough(), static_cast<int64_t>(migrated) - 1);
    const std::vector<AuditRecord> before(events.begin(),
                                          events.begin() + static_cast<ptrdiff_t>(migrated));
    ExpectFoldedIndexesComplete(before);
    ExpectSearchesMatch(before);
    Append(events, migrated, events.size());
    ExpectSearchesMatch(events);
    EXPECT_TRUE(Verify().ok());
  }
};

// Records go to audit_log alone; every few records the writer files them into posting lists
// (audit_postings) and one audit_time_blocks row. Searches on every filter, paged or not, and reads
// see every record on either side of the fold.
TEST_F(AuditIndexFoldTest, IndexesAreFoldedInBatchesAndSearchesSeeBothSidesOfTheFold) {
  ReopenFoldingEvery(7);
  const std::vector<AuditRecord> events = Scrambled(50);
  Append(events, 0, 40);
  EXPECT_EQ(FoldedThrough(), 34);  // Five folds of seven.
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM audit_time_blocks"), 5);
  ExpectFoldedIndexesComplete(events);
  std::vector<AuditRecord> appended(events.begin(), events.begin() + 40);
  ExpectSearchesMatch(appended);

  // A reopened store counts the records still to fold (35..39) and goes on from there.
  Close();
  Open();
  Append(events, 40, 50);
  EXPECT_EQ(FoldedThrough(), 48);
  ExpectFoldedIndexesComplete(events);
  ExpectSearchesMatch(events);
  EXPECT_TRUE(Verify().ok());
}

// The writer folds the records it inserted itself from memory, but only when they are all the
// unfolded ones: records another writer (an administrative command) appended in between are
// read back with the rest, and the fold after that goes on from memory.
TEST_F(AuditIndexFoldTest, RecordsAnotherWriterAppendedAreFoldedToo) {
  ReopenFoldingEvery(7);
  const std::vector<AuditRecord> events = Scrambled(21);
  Append(events, 0, 5);
  {
    auto other_store = SqliteStore::Open({.path = db_path()});
    ASSERT_TRUE(other_store.ok());
    auto other_log =
        AuditLog::Open(**other_store, key_, lookup(), testing::SignerFromSeedHex(seed_hex_),
                       {.origin = std::string(kOrigin), .checkpoint_policy = {}}, clock_);
    ASSERT_TRUE(other_log.ok());
    for (uint64_t i = 5; i < 7; ++i) {
      WriteBatch batch;
      batch.audit = AuditLog::Draft(events[i]);
      ASSERT_TRUE((*other_store)->Commit(std::move(batch)).ok());
    }
    (*other_store)->Close();
  }
  Append(events, 7, 9);  // This writer's seventh record: the fold takes 0..8.
  EXPECT_EQ(FoldedThrough(), 8);
  const std::vector<AuditRecord> first(events.begin(), events.begin() + 9);
  ExpectFoldedIndexesComplete(first);
  Append(events, 9, 21);  // 9..15 folded from memory; 16..20 not yet.
  EXPECT_EQ(FoldedThrough(), 15);
  ExpectFoldedIndexesComplete(events);
  ExpectSearchesMatch(events);
  EXPECT_TRUE(Verify().ok());
}

// The same answers with nothing folded yet and with everything folded.
TEST_F(AuditIndexFoldTest, SearchesAreTheSameUnfoldedAndFolded) {
  const std::vector<AuditRecord> events = Scrambled(30);
  Append(events, 0, 30);
  EXPECT_EQ(FoldedThrough(), -1);
  ExpectSearchesMatch(events);
  ReopenFoldingEvery(1);
  AppendEvents(30, 1);  // The fold at this commit takes all 31 records.
  EXPECT_EQ(FoldedThrough(), 30);
  std::vector<AuditRecord> all = events;
  all.push_back(Event(30));
  ExpectFoldedIndexesComplete(all);
  ExpectSearchesMatch(all);
}

// Patient ids that need escaping in audit_log.patients, or are not ASCII, read back as written
// and are found before and after the fold. One that is not UTF-8 never gets there: the record is
// refused and nothing is written.
TEST_F(AuditIndexFoldTest, PatientIdsOfAnyTextReadBackAndAreFound) {
  const std::vector<std::string> ids = {"quote\"back\\slash", "tab\there", "p\xc3\xa4tient"};
  std::vector<AuditRecord> events = Scrambled(3);
  for (size_t i = 0; i < ids.size(); ++i) events[i].patient_compartments = {ids[i]};
  Append(events, 0, 3);
  {
    AuditRecord bad = Event(3);
    bad.patient_compartments = {std::string("bad\xff", 4)};
    WriteBatch batch;
    batch.audit = AuditLog::Draft(bad);
    EXPECT_FALSE(store_->Commit(std::move(batch)).ok());
  }
  const std::vector<AuditRow> rows = AllRows();
  ASSERT_EQ(rows.size(), 3u);
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(rows[i].patient_ids, std::vector{ids[i]}) << i;
  }
  for (bool folded : {false, true}) {
    if (folded) {
      ReopenFoldingEvery(1);
      AppendEvents(3, 1);
      ASSERT_EQ(FoldedThrough(), 3);
    }
    for (size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(SearchPatient(ids[i]), std::vector<uint64_t>{i}) << i << " folded " << folded;
    }
  }
}

// Migration 8 moves a version-7 database's patient links into audit_log.patients, folds the links
// version 7 had not folded yet, and builds the actor index and the time blocks of every record.
TEST_F(AuditIndexFoldTest, MigrationEightFoldsEveryIndexOfAVersionSevenLog) {
  ReopenFoldingEvery(7);
  const std::vector<AuditRecord> events = Scrambled(36);
  Append(events, 0, 30);
  DowngradeToVersionSeven(13);
  ASSERT_GT(QueryInt("SELECT COUNT(*) FROM audit_record_patients WHERE seq > 13"), 0);
  ExpectMigratedLog(events, 30);
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM sqlite_schema WHERE name IN ('audit_record_patients', "
                     "'audit_patient_fold', 'audit_log_time', 'audit_log_actor')"),
            0);
}

// A version-6 database kept every link in audit_patients; migrations 7 to 10 keep them all.
TEST_F(AuditIndexFoldTest, MigrationsKeepEveryPatientLinkOfAVersionSixLog) {
  const std::vector<AuditRecord> events = Scrambled(25);
  Append(events, 0, 20);
  DowngradeToVersionSeven(19);
  Tamper(db_path(),
         "INSERT OR IGNORE INTO audit_patients SELECT patient, seq FROM audit_record_patients; "
         "DROP TABLE audit_record_patients; DROP TABLE audit_patient_fold; "
         "DELETE FROM schema_migrations WHERE version = 7");
  ExpectMigratedLog(events, 20);
}

TEST_F(AuditLogTest, ExportCursorsAreDurable) {
  EXPECT_EQ(*store_->ReadAuditCursor("syslog"), 0u);
  ASSERT_TRUE(store_->WriteAuditCursor("syslog", 42).ok());
  Close();
  Open();
  EXPECT_EQ(*store_->ReadAuditCursor("syslog"), 42u);
  EXPECT_EQ(*store_->ReadAuditCursor("file"), 0u);
  // Deleting names the ones that existed, and is durable too.
  ASSERT_TRUE(store_->WriteAuditCursor("syslog/checkpoints", 40).ok());
  ASSERT_TRUE(store_->WriteAuditCursor("json-lines", 7).ok());
  StatusOr<int64_t> deleted = store_->DeleteAuditCursors({"syslog", "syslog/checkpoints", "file"});
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_EQ(*deleted, 2);
  Close();
  Open();
  StatusOr<std::vector<store::AuditCursor>> left = store_->ReadAuditCursors();
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].name, "json-lines");
  EXPECT_EQ((*left)[0].next_sequence, 7u);
}

TEST_F(AuditLogTest, CheckpointsAfterATreeSizeComeAscendingWithoutPruneAnchors) {
  AppendEvents(0, 45);  // Checkpoints at 10, 20, 30, 40.
  Tamper(db_path(),
         "INSERT INTO audit_statements(kind, tree_size, time_us, note) VALUES(1, 25, 0, 'a')");
  auto sizes = [&](uint64_t after, size_t limit) {
    std::vector<uint64_t> out;
    auto checkpoints = store_->ReadAuditCheckpointsAfter(after, limit);
    EXPECT_TRUE(checkpoints.ok()) << checkpoints.status().ToString();
    if (!checkpoints.ok()) return out;
    for (const auto& c : *checkpoints) {
      EXPECT_EQ(c.kind, store::AuditStatement::Kind::kCheckpoint);
      EXPECT_FALSE(c.note.empty());
      out.push_back(c.tree_size);
    }
    return out;
  };
  EXPECT_EQ(sizes(0, 100), (std::vector<uint64_t>{10, 20, 30, 40}));
  EXPECT_EQ(sizes(10, 2), (std::vector<uint64_t>{20, 30}));  // Strictly after, at most `limit`.
  EXPECT_EQ(sizes(15, 100), (std::vector<uint64_t>{20, 30, 40}));
  EXPECT_TRUE(sizes(40, 100).empty());
  EXPECT_TRUE(sizes(0, 0).empty());
  EXPECT_TRUE(sizes(UINT64_MAX, 100).empty());
}

// --- Tampering with the database -------------------------------------------------------------

class AuditLogTamperTest : public AuditLogTest {
 protected:
  void SetUp() override {
    AuditLogTest::SetUp();
    AppendEvents(0, 30);  // Checkpoints at 10, 20, 30.
    ASSERT_TRUE(Verify().ok());
  }
};

TEST_F(AuditLogTamperTest, ModifiedRecordBytes) {
  Tamper(db_path(), ModifyRecordByteSql(12));
  VerificationReport report = Verify();
  EXPECT_TRUE(HasIssue(report, IssueKind::kModified)) << report.Summary();
  EXPECT_EQ(report.FirstBadSequence(), 12u);
}

TEST_F(AuditLogTamperTest, ModifiedChainHash) {
  Tamper(db_path(), "UPDATE audit_log SET chain_hash = zeroblob(32) WHERE seq = 4");
  VerificationReport report = Verify();
  EXPECT_TRUE(HasIssue(report, IssueKind::kModified)) << report.Summary();
  EXPECT_EQ(report.FirstBadSequence(), 4u);
}

TEST_F(AuditLogTamperTest, DeletedRecord) {
  Tamper(db_path(), "DELETE FROM audit_log WHERE seq = 17");
  VerificationReport report = Verify();
  EXPECT_TRUE(HasIssue(report, IssueKind::kDeleted)) << report.Summary();
  EXPECT_EQ(report.FirstBadSequence(), 17u);
}

TEST_F(AuditLogTamperTest, InsertedRecord) {
  // Shift everything from 15 up by one and put a copy of record 3 into the hole.
  Tamper(db_path(),
         "UPDATE audit_log SET seq = -seq - 1 WHERE seq >= 15;"
         "UPDATE audit_log SET seq = -seq WHERE seq < 0;"
         "INSERT INTO audit_log SELECT 15, time_us, category, action, outcome, actor, record, "
         "leaf_hash, chain_hash, patients FROM audit_log WHERE seq = 3;");
  VerificationReport report = Verify();
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(report.FirstBadSequence(), 15u) << report.Summary();
}

TEST_F(AuditLogTamperTest, ReorderedRecords) {
  Tamper(db_path(),
         "UPDATE audit_log SET seq = -1 WHERE seq = 21;"
         "UPDATE audit_log SET seq = 21 WHERE seq = 22;"
         "UPDATE audit_log SET seq = 22 WHERE seq = -1;");
  VerificationReport report = Verify();
  EXPECT_TRUE(HasIssue(report, IssueKind::kReordered)) << report.Summary();
  EXPECT_EQ(report.FirstBadSequence(), 21u);
}

TEST_F(AuditLogTamperTest, TruncatedLog) {
  Tamper(db_path(), "DELETE FROM audit_log WHERE seq >= 25");
  VerificationReport report = Verify();
  EXPECT_TRUE(HasIssue(report, IssueKind::kTruncated)) << report.Summary();
}

TEST_F(AuditLogTamperTest, TruncationWithTheCheckpointsDeletedIsCaughtByShippedCopies) {
  auto statements = store_->ReadAuditStatements();
  ASSERT_TRUE(statements.ok());
  std::vector<std::string> shipped;
  for (const auto& s : *statements) shipped.push_back(s.note);
  Tamper(db_path(), "DELETE FROM audit_log WHERE seq >= 25; DELETE FROM audit_statements;");
  EXPECT_TRUE(Verify().ok());  // Nothing left in the database to contradict it...
  VerificationReport report = Verify(shipped);
  EXPECT_TRUE(HasIssue(report, IssueKind::kTruncated))
      << report.Summary();  // ...but the copies do.
}

TEST_F(AuditLogTamperTest, RewrittenHistoryWithAForgedCheckpoint) {
  Tamper(db_path(),
         "UPDATE audit_statements SET note = replace(note, 'chain ', 'chain x') "
         "WHERE tree_size = 20");
  VerificationReport report = Verify();
  EXPECT_TRUE(HasIssue(report, IssueKind::kBadCheckpoint)) << report.Summary();
}

// --- Tampering with the search indexes --------------------------------------------------------
// The clear index columns and the folded indexes are outside the seal and the chain. Editing them
// leaves every record intact but hides a record from the searches a security officer runs, so
// verification compares them with the records.

class AuditIndexTamperTest : public AuditLogTest {
 protected:
  void SetUp() override {
    AuditLogTest::SetUp();
    ReopenFoldingEvery(8);
    AppendEvents(0, 30);
    ASSERT_EQ(FoldedThrough(), 23);  // 0..23 folded, 24..29 searched row by row.
    VerificationReport report = Verify();
    ASSERT_TRUE(report.ok()) << report.Summary();
  }

  // The index-mismatch findings of `report`: their sequences (nullopt for none), in order.
  static std::vector<std::optional<uint64_t>> IndexFindings(const VerificationReport& report) {
    std::vector<std::optional<uint64_t>> out;
    for (const VerificationIssue& issue : report.issues) {
      if (issue.kind == IssueKind::kIndexMismatch) out.push_back(issue.sequence);
    }
    return out;
  }

  // Only index findings, each naming one of `sequences` (each at least once), and nothing about
  // the records themselves.
  static void ExpectOnlyIndexFindingsAt(const VerificationReport& report,
                                        const std::vector<uint64_t>& sequences) {
    EXPECT_FALSE(report.ok());
    EXPECT_EQ(report.issue_count, report.issues.size()) << report.Summary();
    std::vector<uint64_t> named;
    for (const VerificationIssue& issue : report.issues) {
      EXPECT_EQ(issue.kind, IssueKind::kIndexMismatch) << report.Summary();
      ASSERT_TRUE(issue.sequence.has_value()) << report.Summary();
      named.push_back(*issue.sequence);
    }
    std::sort(named.begin(), named.end());
    named.erase(std::unique(named.begin(), named.end()), named.end());
    EXPECT_EQ(named, sequences) << report.Summary();
    EXPECT_EQ(report.records_checked, 30u);
    EXPECT_EQ(report.checkpoints_matched, 3u);  // The records and their chain are intact.
  }
};

TEST_F(AuditIndexTamperTest, AnEditedActorColumnIsFoundOnEitherSideOfTheFold) {
  // Record 12 (folded) and 27 (not yet) moved to another actor's name.
  Tamper(db_path(), "UPDATE audit_log SET actor = 'acct-0' WHERE seq IN (12, 27)");
  VerificationReport report = Verify();
  ExpectOnlyIndexFindingsAt(report, {12, 27});
  EXPECT_NE(report.Summary().find("(actor)"), std::string::npos) << report.Summary();

  // A search that the edit steers the record into refuses to serve it.
  store::AuditQuery query;
  query.actor = "acct-0";
  query.limit = 100;
  auto found = SearchAuditRecords(*store_, lookup(), query);
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.status().code(), StatusCode::kDataLoss);
}

TEST_F(AuditIndexTamperTest, EditedPatientsColumnsAreFoundAndAMalformedOneDoesNotStopTheRun) {
  Tamper(db_path(),
         "UPDATE audit_log SET patients = '[\"pat-4\"]' WHERE seq = 4;"
         "UPDATE audit_log SET patients = '[]' WHERE seq = 26;"
         "UPDATE audit_log SET patients = 'not json' WHERE seq = 28;");
  VerificationReport report = Verify();
  ExpectOnlyIndexFindingsAt(report, {4, 26, 28});
  EXPECT_NE(report.Summary().find("(patients)"), std::string::npos) << report.Summary();
}

TEST_F(AuditIndexTamperTest, EditedTimeCategoryActionAndOutcomeColumnsAreFound) {
  Tamper(db_path(),
         "UPDATE audit_log SET time_us = time_us + 1 WHERE seq = 25;"
         "UPDATE audit_log SET category = 'system' WHERE seq = 26;"
         "UPDATE audit_log SET action = 'read' WHERE seq = 28;"  // 28 is a search.
         "UPDATE audit_log SET outcome = 0 WHERE seq = 21;");    // 21 failed (minor).
  VerificationReport report = Verify();
  ExpectOnlyIndexFindingsAt(report, {21, 25, 26, 28});
  const std::string summary = report.Summary();
  for (const char* column : {"(time)", "(category)", "(action)", "(outcome)"}) {
    EXPECT_NE(summary.find(column), std::string::npos) << column << "\n" << summary;
  }
}

TEST_F(AuditIndexTamperTest, AFoldedRecordTakenOutOfItsPatientsOrActorsIndexIsFound) {
  std::string sql;
  bool patient_edited = false;
  bool actor_edited = false;
  for (PostingList list : PostingLists()) {
    const bool patient = list.kind == store::AuditPostingKind::kPatient && list.key == "pat-5";
    const uint64_t taken = patient ? 5 : 17;
    if (!patient && list.kind != store::AuditPostingKind::kActor) continue;
    auto at = std::find(list.sequences.begin(), list.sequences.end(), taken);
    if (at == list.sequences.end()) continue;
    list.sequences.erase(at);
    sql += WritePostingListSql(list);
    (patient ? patient_edited : actor_edited) = true;
  }
  ASSERT_TRUE(patient_edited && actor_edited);
  Tamper(db_path(), sql);
  ExpectOnlyIndexFindingsAt(Verify(), {5, 17});
}

TEST_F(AuditIndexTamperTest, EntriesPlantedInTheFoldedIndexesAreFound) {
  using store::AuditPostingKind;
  Tamper(db_path(), WritePostingListSql({0, AuditPostingKind::kPatient, "pat-99", {3}}) +
                        WritePostingListSql({0, AuditPostingKind::kActor, "acct-9", {7}}) +
                        // Filed ahead of the fold: under a block that does not exist yet.
                        WritePostingListSql({24, AuditPostingKind::kActor, "acct-0", {25}}));
  ExpectOnlyIndexFindingsAt(Verify(), {3, 7, 25});
}

TEST_F(AuditIndexTamperTest, AnUnreadablePostingListIsFoundAndFailsAPatientSearch) {
  Tamper(db_path(),
         "UPDATE audit_postings SET seqs = x'80' WHERE first_seq = 8 AND kind = 0 AND "
         "key = 'pat-1'");
  ExpectOnlyIndexFindingsAt(Verify(), {8});
  store::AuditQuery query;
  query.patient_id = "pat-1";
  query.limit = 100;
  StatusOr<store::AuditPage> found = store_->SearchAudit(query);
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.status().code(), StatusCode::kDataLoss);
}

TEST_F(AuditIndexTamperTest, ATimeBlockNarrowedOrCutShortIsFound) {
  // Records are 1 ms apart: block [0, 7] narrowed to the time of record 0 hides 1..7 from a
  // time-range search, and block [8, 15] ending at 13 leaves 14 and 15 in none.
  Tamper(db_path(),
         "UPDATE audit_time_blocks SET max_time_us = min_time_us WHERE first_seq = 0;"
         "UPDATE audit_time_blocks SET last_seq = 13 WHERE first_seq = 8;");
  ExpectOnlyIndexFindingsAt(Verify(), {1, 2, 3, 4, 5, 6, 7, 14, 15});
}

TEST_F(AuditIndexTamperTest, AMissingOrOverstatedFoldMarkIsFound) {
  Tamper(db_path(), "UPDATE audit_index_fold SET through_seq = 1000");
  VerificationReport report = Verify();
  EXPECT_FALSE(report.ok());
  ASSERT_FALSE(IndexFindings(report).empty()) << report.Summary();
  EXPECT_EQ(IndexFindings(report).front(), std::nullopt);
  EXPECT_NE(report.Summary().find("the log ends at 29"), std::string::npos) << report.Summary();

  Tamper(db_path(), "DELETE FROM audit_index_fold");
  report = Verify();
  EXPECT_EQ(IndexFindings(report), (std::vector<std::optional<uint64_t>>{std::nullopt}))
      << report.Summary();
  EXPECT_NE(report.Summary().find("would come back empty"), std::string::npos) << report.Summary();
}

}  // namespace
}  // namespace kura::audit
