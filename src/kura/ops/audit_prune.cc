// Audit retention: the configured cutoff, and `kura audit prune`.
#include "kura/ops/audit_prune.h"

#include "kura/ops/audit_access.h"
#include "kura/ops/data_dir.h"

namespace kura::ops {

TimePoint AuditRetentionCutoff(const Config& config, TimePoint now) {
  return now - std::chrono::hours(24) * config.audit.retention_days;
}

StatusOr<audit::AuditPruneResult> ApplyAuditRetention(audit::AuditLog& log, const Config& config,
                                                      const Clock& clock,
                                                      audit::AuditPruneOptions options) {
  if (options.actor.tenant.empty()) options.actor.tenant = config.tenant;
  return log.Prune(AuditRetentionCutoff(config, clock.Now()), options);
}

StatusOr<audit::AuditPruneResult> PruneDataDirectoryAuditLog(const std::filesystem::path& data_dir,
                                                             const Environment& env,
                                                             const Clock& clock) {
  KURA_ASSIGN_OR_RETURN(OpenedDataDirectory dir, OpenDataDirectory(data_dir, env));
  KURA_ASSIGN_OR_RETURN(AuditLogAccess access, OpenAuditLog(*dir.db, *dir.keys, dir.config, clock));
  // Held by `dir`, which closes the store before the log it appends through.
  dir.audit.emplace(std::move(access));
  audit::AuditPruneOptions options;
  options.actor = CliAuditRecord(audit::category::kSystem, audit::action::kPrune).actor;
  StatusOr<audit::AuditPruneResult> result =
      ApplyAuditRetention(*dir.audit->log, dir.config, clock, std::move(options));
  dir.db->Close();
  return result;
}

}  // namespace kura::ops
