// The resource tables against the audit log's write records: what agrees, and each way a
// change behind Kura's back shows.
#include "kura/ops/resource_ledger.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <memory>

#include "kura/audit/temp_dir_util.h"
#include "kura/store/sqlite/sqlite_store.h"

namespace kura::ops {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class ResourceLedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = audit::testing::MakeUniqueTempDir("kura-ledger");
    ASSERT_FALSE(dir_.empty());
    auto opened = store::SqliteStore::Open({.path = dir_ / "kura.db", .search_index = false});
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(*opened);
  }

  void TearDown() override {
    store_->Close();
    store_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Writes version `version` of Observation/`id` to the tables only (a delete marker when
  // `deleted`).
  void Store(const std::string& id, int64_t version, bool deleted = false,
             const std::string& compartment = "") {
    store::ResourceVersion v;
    v.type = "Observation";
    v.id = id;
    v.version = version;
    v.deleted = deleted;
    v.compartment = compartment;
    v.payload = deleted ? "" : "{}";
    store::WriteBatch batch;
    batch.resources.push_back(std::move(v));
    ASSERT_TRUE(store_->Commit(std::move(batch)).ok());
  }

  // Records that write in the ledger only, as the next record of the log; returns its sequence.
  uint64_t Log(const std::string& id, int64_t version, std::string_view action) {
    ledger_.Add(Record(id, version, action));
    return next_sequence_ - 1;
  }

  // Both: what a request does.
  void Write(const std::string& id, int64_t version, bool deleted = false) {
    Store(id, version, deleted);
    Log(id, version,
        deleted ? audit::action::kDelete
                : (version == 1 ? audit::action::kCreate : audit::action::kUpdate));
  }

  audit::AuditRecord Record(const std::string& id, int64_t version, std::string_view action) {
    audit::AuditRecord r;
    r.sequence = next_sequence_++;
    r.category = "fhir";
    r.action = std::string(action);
    r.outcome = audit::Outcome::kSuccess;
    r.resource_type = "Observation";
    r.resource_id = id;
    r.resource_version = std::to_string(version);
    return r;
  }

  // Runs SQL on the database behind the store's back.
  void Tamper(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "kura.db").c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << (error ? error : "");
    sqlite3_free(error);
    sqlite3_close(db);
  }

  // What Compare counted, and the findings it added to a report of its own.
  struct Checked {
    std::vector<audit::VerificationIssue> issues;
    uint64_t issue_count = 0;
    uint64_t resources_checked = 0;
    uint64_t resources_unjudged = 0;
    uint64_t versions_checked = 0;
    uint64_t versions_unjudged = 0;
  };

  Checked Compare(bool log_complete = true) {
    audit::VerificationReport report;
    auto check = ledger_.Compare(*store_, log_complete, report, 100);
    EXPECT_TRUE(check.ok()) << check.status().ToString();
    if (!check.ok()) return {};
    return {.issues = std::move(report.issues),
            .issue_count = report.issue_count,
            .resources_checked = check->resources_checked,
            .resources_unjudged = check->resources_unjudged,
            .versions_checked = check->versions_checked,
            .versions_unjudged = check->versions_unjudged};
  }

  static std::string Reasons(const Checked& check) {
    std::string out;
    for (const auto& issue : check.issues) out += issue.reason + "\n";
    return out;
  }

  fs::path dir_;
  std::unique_ptr<store::SqliteStore> store_;
  ResourceWriteLedger ledger_;
  uint64_t next_sequence_ = 0;
};

TEST_F(ResourceLedgerTest, TablesThatMatchTheWritesPass) {
  Write("a", 1);
  Write("a", 2);
  Write("b", 1);
  Write("b", 2, /*deleted=*/true);
  Write("c", 1);
  // Records that write nothing are not writes: reads, failures, a version that is not one.
  ledger_.Add(Record("c", 9, audit::action::kRead));
  audit::AuditRecord failed = Record("c", 9, audit::action::kUpdate);
  failed.outcome = audit::Outcome::kMinorFailure;
  ledger_.Add(failed);
  audit::AuditRecord unnumbered = Record("c", 0, audit::action::kUpdate);
  unnumbered.resource_version = "2x";
  ledger_.Add(unnumbered);
  // A conditional create that found its match names the existing version.
  ledger_.Add(Record("a", 2, audit::action::kCreate));

  Checked check = Compare();
  EXPECT_EQ(check.issue_count, 0u) << Reasons(check);
  EXPECT_EQ(check.resources_checked, 3u);  // a, b (deleted), c.
  EXPECT_EQ(check.resources_unjudged, 0u);
  EXPECT_EQ(check.versions_checked, 5u);
  EXPECT_EQ(check.versions_unjudged, 0u);
}

TEST_F(ResourceLedgerTest, EachDisagreementIsNamedWithItsRecord) {
  Write("behind", 1);
  const uint64_t rolled_back = Log("behind", 2, audit::action::kUpdate);
  const uint64_t gone = Log("gone", 1, audit::action::kCreate);
  Write("planted-later", 1);
  Store("planted", 1);
  Write("undeleted", 1);
  const uint64_t deleted = Log("undeleted", 2, audit::action::kDelete);
  const uint64_t gone_last = Log("zz-gone", 1, audit::action::kCreate);

  Checked check = Compare();
  ASSERT_EQ(check.issue_count, 10u) << Reasons(check);
  EXPECT_EQ(check.resources_checked, 6u);
  EXPECT_EQ(check.versions_checked, 8u);
  std::vector<std::optional<uint64_t>> sequences;
  for (const auto& issue : check.issues) {
    EXPECT_EQ(issue.kind, audit::IssueKind::kResourceMismatch);
    sequences.push_back(issue.sequence);
  }
  // The current versions, then the history, each in (type, id) order: the versions the records
  // wrote that are missing, and the one no record wrote.
  EXPECT_THAT(sequences,
              ::testing::ElementsAre(rolled_back, gone, std::nullopt, deleted, gone_last,
                                     rolled_back, gone, std::nullopt, deleted, gone_last));
  const std::string reasons = Reasons(check);
  EXPECT_THAT(reasons, HasSubstr("Observation/behind is current at version 1, but its latest "
                                 "write, record " +
                                 std::to_string(rolled_back) + ", made version 2"));
  EXPECT_THAT(reasons, HasSubstr("Observation/gone has no current version, but record " +
                                 std::to_string(gone) + " wrote version 1"));
  EXPECT_THAT(reasons, HasSubstr("Observation/planted is current at version 1, but the audit log "
                                 "records no write of it"));
  EXPECT_THAT(reasons, HasSubstr("Observation/undeleted is current at version 1, but record " +
                                 std::to_string(deleted) + " deleted it (version 2)"));
  EXPECT_THAT(reasons, HasSubstr("Observation/zz-gone has no current version"));
  EXPECT_THAT(reasons, HasSubstr("Observation/behind version 2 is not stored, but record " +
                                 std::to_string(rolled_back) + " wrote it"));
  EXPECT_THAT(reasons, HasSubstr("Observation/planted version 1 is stored, but the audit log "
                                 "records no write of it"));
  EXPECT_THAT(reasons, HasSubstr("Observation/undeleted version 2 is not stored"));

  // After a prune the log no longer knows every resource: one it never names is not judged.
  Checked pruned = Compare(/*log_complete=*/false);
  EXPECT_EQ(pruned.issue_count, 8u) << Reasons(pruned);
  EXPECT_EQ(pruned.resources_unjudged, 1u);
  EXPECT_EQ(pruned.versions_unjudged, 1u);
}

TEST_F(ResourceLedgerTest, EditedHistoryIsNamedWithItsRecord) {
  Write("kept", 1);
  Write("kept", 2);
  Write("kept", 3);
  // A delete marker its record wrote as content, and content its record wrote as a delete.
  Store("flipped", 1);
  Store("flipped", 2, /*deleted=*/true);
  Log("flipped", 1, audit::action::kCreate);
  const uint64_t as_content = Log("flipped", 2, audit::action::kUpdate);
  Store("revived", 1);
  Store("revived", 2);
  Log("revived", 1, audit::action::kCreate);
  const uint64_t as_delete = Log("revived", 2, audit::action::kDelete);
  // A version filed under another patient than the one its record names.
  Store("moved", 1, /*deleted=*/false, "patient-b");
  audit::AuditRecord in_a = Record("moved", 1, audit::action::kCreate);
  in_a.patient_compartments = {"patient-a"};
  ledger_.Add(in_a);
  Store("stays", 1, /*deleted=*/false, "patient-a");
  audit::AuditRecord stays = Record("stays", 1, audit::action::kCreate);
  stays.patient_compartments = {"patient-a", "patient-c"};
  ledger_.Add(stays);
  // A middle version of history removed, the current row untouched.
  Tamper("DELETE FROM resource_versions WHERE id = 'kept' AND version = 2");

  Checked check = Compare();
  const std::string reasons = Reasons(check);
  EXPECT_THAT(reasons, HasSubstr("Observation/flipped version 2 is stored as a delete marker, "
                                 "but record " +
                                 std::to_string(as_content) + " wrote it as content"));
  EXPECT_THAT(reasons, HasSubstr("Observation/revived version 2 is stored as content, but record " +
                                 std::to_string(as_delete) + " wrote it as a delete marker"));
  EXPECT_THAT(reasons, HasSubstr("Observation/moved version 1 is stored in a patient compartment "
                                 "that record " +
                                 std::to_string(in_a.sequence) + " does not name"));
  EXPECT_THAT(reasons, HasSubstr("Observation/kept version 2 is not stored"));
  EXPECT_THAT(reasons, ::testing::Not(HasSubstr("stays")));
  EXPECT_THAT(reasons, ::testing::Not(HasSubstr("kept version 1")));
  EXPECT_THAT(reasons, ::testing::Not(HasSubstr("kept version 3")));
  // flipped and revived are also wrong as current resources; the history adds four findings.
  EXPECT_EQ(check.issue_count, 6u) << reasons;
  EXPECT_EQ(check.versions_checked, 9u);
}

TEST_F(ResourceLedgerTest, AVersionMovedInTimeIsNamedWithItsRecord) {
  auto with_time = [this](const std::string& id, const std::string& micros) {
    audit::AuditRecord r = Record(id, 1, audit::action::kCreate);
    r.details.emplace_back(audit::detail::kVersionLastUpdatedUs, micros);
    ledger_.Add(r);
    return r.sequence;
  };
  Store("on-time", 1);  // Stored at the epoch, as the helper writes every version.
  with_time("on-time", "0");
  Store("moved", 1);
  const uint64_t moved = with_time("moved", "1700000000000000");
  Store("older-record", 1);  // Records written before the detail existed name no time.
  Log("older-record", 1, audit::action::kCreate);

  Checked check = Compare();
  ASSERT_EQ(check.issue_count, 1u) << Reasons(check);
  EXPECT_EQ(check.issues[0].sequence, moved);
  EXPECT_THAT(check.issues[0].reason,
              HasSubstr("Observation/moved version 1 is stored with another lastUpdated than "
                        "record " +
                        std::to_string(moved) + " wrote"));
  EXPECT_EQ(check.versions_checked, 3u);
}

TEST_F(ResourceLedgerTest, ManyResourcesAreComparedPageByPage) {
  // More than one page of the store's listing, with a disagreement on the second page.
  for (int i = 0; i < 2500; ++i) Write("r" + std::to_string(10000 + i), 1);
  const uint64_t last = Log("r11800", 2, audit::action::kUpdate);
  Checked check = Compare();
  EXPECT_EQ(check.resources_checked, 2500u);
  EXPECT_EQ(check.versions_checked, 2501u);
  // As the current version and in the history.
  ASSERT_EQ(check.issue_count, 2u) << Reasons(check);
  EXPECT_EQ(check.issues[0].sequence, last);
  EXPECT_EQ(check.issues[1].sequence, last);
}

}  // namespace
}  // namespace kura::ops
