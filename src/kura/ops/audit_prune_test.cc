// `kura audit prune` over a real data directory: the configured retention prunes what is old
// enough and signed, writes a system/prune record as the CLI, and `kura audit verify` still
// passes on the pruned log.
#include "kura/ops/audit_prune.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "kura/audit/export_format.h"
#include "kura/ops/audit_access.h"
#include "kura/ops/audit_verify.h"
#include "kura/ops/data_dir.h"
#include "kura/ops/data_dir_fixture.h"

namespace kura::ops {
namespace {

namespace fs = std::filesystem;

class AuditPruneCommandTest : public testing::DataDirTest {
 protected:
  AuditPruneCommandTest() : DataDirTest("kura-ops-prune") {}

  // The stored audit rows of `action`.
  std::vector<store::AuditRow> RowsOfAction(std::string_view action) {
    auto opened = OpenDataDirectory(dir_, {});
    EXPECT_TRUE(opened.ok()) << opened.status().message();
    if (!opened.ok()) return {};
    store::AuditQuery query;
    query.action = std::string(action);
    auto page = opened->db->SearchAudit(query);
    EXPECT_TRUE(page.ok()) << page.status().message();
    opened->db->Close();
    return page.ok() ? page->rows : std::vector<store::AuditRow>();
  }

  // Appends `count` records written now and has them signed, with `clock` as the log's clock.
  void AppendSigned(int count, FakeClock& clock) {
    auto opened = OpenDataDirectory(dir_, {});
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    auto access = OpenAuditLog(*opened->db, *opened->keys, opened->config, clock);
    ASSERT_TRUE(access.ok()) << access.status().message();
    for (int i = 0; i < count; ++i) {
      audit::AuditRecord record = CliAuditRecord(audit::category::kAdmin, "test");
      ASSERT_TRUE(AppendAuditRecord(*opened->db, record, opened->config, Clock::System()).ok());
    }
    clock.Advance(std::chrono::minutes(2));
    store::WriteBatch heartbeat;
    heartbeat.audit = audit::AuditLog::Heartbeat();
    ASSERT_TRUE(opened->db->Commit(std::move(heartbeat)).ok());
    opened->db->Close();
  }
};

TEST_F(AuditPruneCommandTest, CutoffIsRetentionDaysBeforeNow) {
  Config config;
  config.audit.retention_days = 2;
  const TimePoint now = FromMicros(1700000000000000);
  EXPECT_EQ(AuditRetentionCutoff(config, now), now - std::chrono::hours(48));
  EXPECT_EQ(Config().audit.retention_days, 2192);
}

TEST_F(AuditPruneCommandTest, PrunesWhatRetentionAllowsAndVerifyStillPasses) {
  // Seven years on, today's records are past the default six-year retention.
  FakeClock later(Clock::System().Now() + std::chrono::hours(24) * 2557);
  AppendSigned(5, later);  // The init record and five more, signed at 6.

  // Today nothing is old enough.
  auto today = PruneDataDirectoryAuditLog(dir_, {}, Clock::System());
  ASSERT_TRUE(today.ok()) << today.status().ToString();
  EXPECT_EQ(today->steps, 0u);

  auto pruned = PruneDataDirectoryAuditLog(dir_, {}, later);
  ASSERT_TRUE(pruned.ok()) << pruned.status().ToString();
  EXPECT_EQ(pruned->records_pruned, 6u);
  EXPECT_EQ(pruned->first_retained_sequence, 6u);

  auto verified = VerifyDataDirectoryAuditLog(
      {.data_dir = dir_, .checkpoint_files = {}, .record = true}, {}, Clock::System());
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_TRUE(verified->report.ok()) << verified->report.Summary();
  EXPECT_EQ(verified->report.first_sequence, 6u);
  EXPECT_EQ(verified->report.records_checked, 1u);  // The prune record.
  EXPECT_TRUE(verified->recorded);

  std::vector<store::AuditRow> rows = RowsOfAction("prune");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].actor, kCliActorId);

  auto again = PruneDataDirectoryAuditLog(dir_, {}, later);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->steps, 0u);
}

// The prune record carries the anchor its step signed. When the stored anchor is gone, `kura
// audit verify` finds the log's start unexplained, unless it is given a SIEM's copy of the prune
// record (here as an RFC 5424 line) with --checkpoints.
TEST_F(AuditPruneCommandTest, ASiemCopyOfThePruneRecordStandsInForALostAnchor) {
  FakeClock later(Clock::System().Now() + std::chrono::hours(24) * 2557);
  AppendSigned(5, later);
  auto pruned = PruneDataDirectoryAuditLog(dir_, {}, later);
  ASSERT_TRUE(pruned.ok()) << pruned.status().ToString();
  ASSERT_EQ(pruned->first_retained_sequence, 6u);

  const fs::path siem = root_ / "siem.log";
  {
    auto opened = OpenDataDirectory(dir_, {});
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    auto access = OpenAuditLog(*opened->db, *opened->keys, opened->config, later);
    ASSERT_TRUE(access.ok()) << access.status().message();
    auto record = audit::ReadAuditRecord(*opened->db, access->key_lookup, 6);
    ASSERT_TRUE(record.ok()) << record.status().message();
    ASSERT_EQ(record->action, audit::action::kPrune);
    std::ofstream(siem) << audit::FormatSyslog5424(*record, {}) << "\n";
    opened->db->Close();
  }
  testing::Sql(dir_ / "kura.db", "DELETE FROM audit_statements WHERE kind = 1");

  auto alone = VerifyDataDirectoryAuditLog(
      {.data_dir = dir_, .checkpoint_files = {}, .record = false}, {}, Clock::System());
  ASSERT_TRUE(alone.ok()) << alone.status().ToString();
  EXPECT_FALSE(alone->report.ok());
  auto with_copy = VerifyDataDirectoryAuditLog(
      {.data_dir = dir_, .checkpoint_files = {siem}, .record = false}, {}, Clock::System());
  ASSERT_TRUE(with_copy.ok()) << with_copy.status().ToString();
  EXPECT_TRUE(with_copy->report.ok()) << with_copy->report.Summary();
  EXPECT_EQ(with_copy->report.first_sequence, 6u);
  EXPECT_EQ(with_copy->external_checkpoints, 1u);
}

// A sink removed from kura.toml keeps its cursor, which holds retention back until the sink is
// forgotten; forgetting is refused while the sink is configured, and audited.
TEST_F(AuditPruneCommandTest, AForgottenSinkNoLongerHoldsRetentionBack) {
  FakeClock later(Clock::System().Now() + std::chrono::hours(24) * 2557);
  AppendSigned(5, later);  // Records 0-5, signed at 6.
  {
    auto opened = OpenDataDirectory(dir_, {});
    ASSERT_TRUE(opened.ok());
    ASSERT_TRUE(opened->db->WriteAuditCursor("syslog", 2).ok());
    ASSERT_TRUE(opened->db->WriteAuditCursor("syslog/checkpoints", 0).ok());
    opened->db->Close();
  }
  auto held = PruneDataDirectoryAuditLog(dir_, {}, later);
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  EXPECT_EQ(held->first_retained_sequence, 0u);
  EXPECT_EQ(held->held_back_by, "export cursor syslog/checkpoints");

  const Environment configured = {{"KURA_AUDIT_SYSLOG_URL", "tcp://127.0.0.1:9"}};
  auto listed = ListAuditSinks(dir_, configured);
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "syslog");
  EXPECT_TRUE((*listed)[0].configured);
  EXPECT_EQ((*listed)[0].next_sequence, 2u);
  EXPECT_EQ((*listed)[0].checkpoint_tree_size, 0u);
  EXPECT_EQ(ForgetAuditSink(dir_, configured, "syslog").status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(ForgetAuditSink(dir_, {}, "json-lines").status().code(), StatusCode::kNotFound);

  auto forgotten = ForgetAuditSink(dir_, {}, "syslog");
  ASSERT_TRUE(forgotten.ok()) << forgotten.status().ToString();
  EXPECT_FALSE(forgotten->configured);
  EXPECT_EQ(forgotten->next_sequence, 2u);
  listed = ListAuditSinks(dir_, {});
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
  EXPECT_EQ(ForgetAuditSink(dir_, {}, "syslog").status().code(), StatusCode::kNotFound);
  // The refused and the not-found ones wrote nothing.
  EXPECT_EQ(RowsOfAction("audit-sink-forget").size(), 1u);

  // Records 0-6 (the forget record is 6, signed in its own commit) are all older than the
  // cutoff: only the prune's own record (7) stays.
  auto pruned = PruneDataDirectoryAuditLog(dir_, {}, later);
  ASSERT_TRUE(pruned.ok()) << pruned.status().ToString();
  EXPECT_EQ(pruned->first_retained_sequence, 7u);
  EXPECT_EQ(pruned->held_back_by.find("export cursor"), std::string::npos);
}

}  // namespace
}  // namespace kura::ops
