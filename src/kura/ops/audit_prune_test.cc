// `kura audit prune` over a real data directory: the configured retention prunes what is old
// enough and signed, writes a system/prune record as the CLI, and `kura audit verify` still
// passes on the pruned log.
#include "kura/ops/audit_prune.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

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

  auto opened = OpenDataDirectory(dir_, {});
  ASSERT_TRUE(opened.ok());
  store::AuditQuery query;
  query.action = "prune";
  auto page = opened->db->SearchAudit(query);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->rows.size(), 1u);
  EXPECT_EQ(page->rows[0].actor, kCliActorId);
  opened->db->Close();

  auto again = PruneDataDirectoryAuditLog(dir_, {}, later);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->steps, 0u);
}

}  // namespace
}  // namespace kura::ops
