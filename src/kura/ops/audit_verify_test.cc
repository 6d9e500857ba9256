// Audited administrative commands and `kura audit verify` over real data directories: init and
// token create leave records, verification trusts the key provider's checkpoint key (and agrees
// with the writer on how it is wrapped), records only clean runs, reads SIEM checkpoint files,
// and administrative commands fail closed when the audit log cannot be written.
#include "kura/ops/audit_verify.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>

#include "kura/audit/audit_log.h"
#include "kura/audit/export_format.h"
#include "kura/audit/exporter.h"
#include "kura/ops/audit_access.h"
#include "kura/ops/data_dir.h"
#include "kura/ops/data_dir_fixture.h"

namespace kura::ops {
namespace {

namespace fs = std::filesystem;

using testing::Sql;

class AuditVerifyTest : public testing::DataDirTest {
 protected:
  AuditVerifyTest() : DataDirTest("kura-ops") {}

  fs::path db() const { return dir_ / "kura.db"; }
  int64_t Count(const std::string& where = "1") const {
    return std::stoll(Sql(db(), "SELECT COUNT(*) FROM audit_log WHERE " + where));
  }
  StatusOr<AuditVerifyOutcome> Verify(bool record = true, std::vector<fs::path> files = {}) {
    return VerifyDataDirectoryAuditLog(
        {.data_dir = dir_, .checkpoint_files = std::move(files), .record = record}, {},
        Clock::System());
  }
};

TEST_F(AuditVerifyTest, InitIsAudited) {
  EXPECT_EQ(Count(), 1);
  EXPECT_EQ(Count("category = 'admin' AND action = 'init' AND actor = 'kura-cli'"), 1);
}

TEST_F(AuditVerifyTest, VerifierKeyMatchesTheWritersKey) {
  auto opened = OpenDataDirectory(dir_, {});
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  auto key = LoadCheckpointVerifierKey(*opened->db, *opened->keys, opened->config.tenant);
  ASSERT_TRUE(key.ok()) << key.status().message();
  ASSERT_TRUE(key->has_value());
  auto access = OpenAuditLog(*opened->db, *opened->keys, opened->config, Clock::System());
  ASSERT_TRUE(access.ok()) << access.status().message();
  EXPECT_EQ((*key)->ToString(), access->log->verifier_key().ToString());
  opened->db->Close();
}

TEST_F(AuditVerifyTest, VerifierKeyIsNeverCreated) {
  Sql(db(), "DELETE FROM data_keys WHERE scope = 'audit-checkpoint-signing'");
  auto opened = OpenDataDirectory(dir_, {});
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  auto key = LoadCheckpointVerifierKey(*opened->db, *opened->keys, opened->config.tenant);
  ASSERT_TRUE(key.ok()) << key.status().message();
  EXPECT_FALSE(key->has_value());
  opened->db->Close();
  EXPECT_EQ(Sql(db(), "SELECT COUNT(*) FROM data_keys WHERE scope = 'audit-checkpoint-signing'"),
            "0");
}

TEST_F(AuditVerifyTest, CleanRunIsRecordedAndNoRecordWritesNothing) {
  auto first = Verify();
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_TRUE(first->report.ok()) << first->report.Summary();
  EXPECT_EQ(first->report.records_checked, 1u);
  EXPECT_TRUE(first->recorded);
  EXPECT_FALSE(first->verifier_key.empty());
  EXPECT_EQ(Count("category = 'system' AND action = 'verify' AND actor = 'kura-cli'"), 1);

  auto second = Verify(/*record=*/false);
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_TRUE(second->report.ok()) << second->report.Summary();
  EXPECT_EQ(second->report.records_checked, 2u);
  EXPECT_FALSE(second->recorded);
  EXPECT_EQ(Count(), 2);
}

TEST_F(AuditVerifyTest, TamperedLogIsReportedAndNotAppendedTo) {
  ASSERT_TRUE(IssueAdminToken(dir_, "a").ok());
  ASSERT_TRUE(IssueAdminToken(dir_, "b").ok());
  Sql(db(), "DELETE FROM audit_log WHERE seq = 1");
  auto run = Verify();
  ASSERT_TRUE(run.ok()) << run.status().message();
  ASSERT_FALSE(run->report.ok());
  EXPECT_EQ(run->report.issues[0].kind, audit::IssueKind::kDeleted);
  EXPECT_FALSE(run->recorded);
  EXPECT_EQ(Count(), 2);
}

TEST_F(AuditVerifyTest, MissingSigningKeyIsAnIssue) {
  Sql(db(), "DELETE FROM data_keys WHERE scope = 'audit-checkpoint-signing'");
  auto run = Verify();
  ASSERT_TRUE(run.ok()) << run.status().message();
  ASSERT_FALSE(run->report.ok());
  EXPECT_EQ(run->report.issues[0].kind, audit::IssueKind::kBadCheckpoint);
  EXPECT_TRUE(run->verifier_key.empty());
  EXPECT_FALSE(run->recorded);
}

TEST_F(AuditVerifyTest, WrongKeyFileCannotRun) {
  fs::remove(dir_ / "keys/master.key");
  ASSERT_TRUE(crypto::LocalKeyFileProvider::CreateKeyFile(dir_ / "keys/master.key").ok());
  auto run = Verify();
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().code(), StatusCode::kDataLoss);
}

TEST_F(AuditVerifyTest, MissingDatabaseIsNeverCreated) {
  fs::remove(db());
  auto run = Verify();
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(fs::exists(db()));
}

TEST_F(AuditVerifyTest, ExternalCheckpointFiles) {
  fs::path file = root_ / "siem.log";
  {
    std::ofstream out(file);
    audit::AuditRecord record;
    record.category = "fhir";
    record.action = "read";
    out << audit::FormatJsonLine(record);
    out << audit::FormatCheckpointJsonLine("note one\n", 5, 1700000000000000);
    out << "\n"
        << "garbage\n";
    audit::SyslogFormatOptions syslog;
    out << audit::FormatCheckpointSyslog5424("note two\n", 10, 1700000000000000, syslog) << "\n";
    out << audit::FormatCheckpointCef("note three\n", 15, 1700000000000000, {}) << "\n";
  }
  auto read = ReadExternalCheckpoints(file);
  ASSERT_TRUE(read.ok()) << read.status().message();
  EXPECT_THAT(read->notes, ::testing::ElementsAre("note one\n", "note two\n", "note three\n"));
  EXPECT_EQ(read->lines, 6u);
  EXPECT_FALSE(ReadExternalCheckpoints(root_ / "missing").ok());

  // Notes that are not signed checkpoints of this log are findings, and nothing is recorded.
  auto run = Verify(true, {file});
  ASSERT_TRUE(run.ok()) << run.status().message();
  EXPECT_EQ(run->external_checkpoints, 3u);
  ASSERT_FALSE(run->report.ok());
  EXPECT_EQ(run->report.issues[0].kind, audit::IssueKind::kBadCheckpoint);
  EXPECT_FALSE(run->recorded);
}

TEST_F(AuditVerifyTest, TokenCreateIsAuditedAndFailsClosed) {
  auto token = IssueAdminToken(dir_, "laptop");
  ASSERT_TRUE(token.ok()) << token.status().message();
  EXPECT_EQ(Count("action = 'token-create' AND actor = 'kura-cli'"), 1);
  // The command's record is signed in its own commit: nothing is left for a server to sign.
  auto signed_log = Verify(false);
  ASSERT_TRUE(signed_log.ok()) << signed_log.status().message();
  EXPECT_TRUE(signed_log->report.ok()) << signed_log->report.Summary();
  EXPECT_EQ(signed_log->report.unsigned_tail, 0u) << signed_log->report.Summary();
  const std::string tokens = Sql(db(), "SELECT COUNT(*) FROM api_tokens");

  // An audit log that cannot be continued: no token.
  Sql(db(), "UPDATE audit_state SET state = x'00'");
  auto refused = IssueAdminToken(dir_, "laptop2");
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), ::testing::HasSubstr("audit record"));
  EXPECT_EQ(Sql(db(), "SELECT COUNT(*) FROM api_tokens"), tokens);

  EXPECT_EQ(IssueAdminToken(dir_, "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(IssueAdminToken(dir_, "a\nb").status().code(), StatusCode::kInvalidArgument);
}

// The chain hash the store holds for record `sequence`, as the exporter would have marked it.
audit::DeliveryMark StoredMark(const fs::path& data_dir, uint64_t sequence) {
  auto opened = OpenDataDirectory(data_dir, {});
  EXPECT_TRUE(opened.ok()) << opened.status().message();
  if (!opened.ok()) return {};
  auto rows = opened->db->ReadAuditRows(sequence, 1);
  opened->db->Close();
  EXPECT_TRUE(rows.ok() && !rows->empty());
  if (!rows.ok() || rows->empty()) return {};
  return {.sequence = sequence, .chain_hash = rows->front().chain_hash};
}

TEST_F(AuditVerifyTest, TheDeliveryMarkCatchesADatabaseRolledBackBehindItsSinks) {
  // An older copy of the whole database, checkpoints included: it verifies on its own.
  const fs::path copy = root_ / "older";
  fs::create_directories(copy);
  for (const auto& entry : fs::directory_iterator(dir_)) {
    if (entry.path().filename().string().starts_with("kura.db")) {
      fs::copy_file(entry.path(), copy / entry.path().filename());
    }
  }
  ASSERT_TRUE(IssueAdminToken(dir_, "a").ok());
  ASSERT_TRUE(IssueAdminToken(dir_, "b").ok());
  const audit::DeliveryMark delivered = StoredMark(dir_, 2);
  ASSERT_TRUE(audit::WriteDeliveryMark(AuditDeliveryMarkPath(dir_), delivered).ok());

  auto current = Verify(false);
  ASSERT_TRUE(current.ok()) << current.status().message();
  EXPECT_TRUE(current->report.ok()) << current->report.Summary();
  EXPECT_EQ(current->delivery_mark, AuditDeliveryMarkPath(dir_));
  EXPECT_EQ(current->delivery_mark_record, std::optional<uint64_t>(2));

  for (const auto& entry : fs::directory_iterator(dir_)) {
    if (entry.path().filename().string().starts_with("kura.db")) fs::remove(entry.path());
  }
  for (const auto& entry : fs::directory_iterator(copy)) {
    fs::copy_file(entry.path(), dir_ / entry.path().filename());
  }
  auto restored = VerifyDataDirectoryAuditLog(
      {.data_dir = dir_, .checkpoint_files = {}, .record = false, .use_delivery_mark = false}, {},
      Clock::System());
  ASSERT_TRUE(restored.ok()) << restored.status().message();
  EXPECT_TRUE(restored->report.ok()) << restored->report.Summary();

  auto marked = Verify();
  ASSERT_TRUE(marked.ok()) << marked.status().message();
  ASSERT_FALSE(marked->report.ok());
  EXPECT_EQ(marked->report.issues[0].kind, audit::IssueKind::kTruncated);
  EXPECT_EQ(marked->report.issues[0].sequence, std::optional<uint64_t>(1));
  EXPECT_THAT(marked->report.issues[0].reason, ::testing::HasSubstr("delivery mark"));
  EXPECT_FALSE(marked->recorded);
  EXPECT_EQ(Count(), 1);
}

TEST_F(AuditVerifyTest, TheDeliveryMarkCatchesAReplacedLog) {
  audit::DeliveryMark other = StoredMark(dir_, 0);
  ASSERT_EQ(other.chain_hash.size(), 32u);
  other.chain_hash[0] = static_cast<char>(other.chain_hash[0] ^ 1);
  ASSERT_TRUE(audit::WriteDeliveryMark(AuditDeliveryMarkPath(dir_), other).ok());
  auto run = Verify();
  ASSERT_TRUE(run.ok()) << run.status().message();
  ASSERT_FALSE(run->report.ok());
  EXPECT_EQ(run->report.issues[0].kind, audit::IssueKind::kModified);
  EXPECT_EQ(run->report.issues[0].sequence, std::optional<uint64_t>(0));
  EXPECT_FALSE(run->recorded);
}

TEST_F(AuditVerifyTest, AnUnusableDeliveryMarkStopsTheRunUnlessLeftOut) {
  {
    std::ofstream out(AuditDeliveryMarkPath(dir_));
    out << "not a mark\n";
  }
  auto run = Verify(false);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(run.status().message(), ::testing::HasSubstr("--no-delivery-mark"));
  auto without = VerifyDataDirectoryAuditLog(
      {.data_dir = dir_, .checkpoint_files = {}, .record = false, .use_delivery_mark = false}, {},
      Clock::System());
  ASSERT_TRUE(without.ok()) << without.status().message();
  EXPECT_TRUE(without->report.ok()) << without->report.Summary();
  EXPECT_FALSE(without->delivery_mark_record.has_value());
}

}  // namespace
}  // namespace kura::ops
