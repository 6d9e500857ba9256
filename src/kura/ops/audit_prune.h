// Audit log retention for a data directory: the cutoff that `audit.retention_days` sets, the
// retention run `kura serve` schedules (at start-up, then daily) and `kura audit prune`, which
// applies it once (e.g. from cron while the server is down, or right after lowering the setting).
//
// Retention never shortens what the configuration promises: every record younger than
// retention_days days stays, and so does every record an export sink has not received or no
// signed checkpoint covers yet (audit::AuditLog::Prune). Thread-compatible free functions.
#pragma once

#include <filesystem>

#include "kura/audit/audit_log.h"
#include "kura/base/clock.h"
#include "kura/base/config.h"
#include "kura/base/status.h"

namespace kura::ops {

// now - audit.retention_days days: records older than this may go.
[[nodiscard]] TimePoint AuditRetentionCutoff(const Config& config, TimePoint now);

// Prunes `log` to the configured retention as of clock.Now(). `options` as for
// audit::AuditLog::Prune; an actor without a tenant gets the configured one. Prune's errors.
[[nodiscard]] StatusOr<audit::AuditPruneResult> ApplyAuditRetention(
    audit::AuditLog& log, const Config& config, const Clock& clock,
    audit::AuditPruneOptions options = {});

// `kura audit prune`: opens the data directory (OpenDataDirectory's errors) and its audit log,
// and applies the configured retention as the CLI actor. Safe while `kura serve` runs on the same
// directory (the two continue each other's log; concurrent prunes take turns in the database).
[[nodiscard]] StatusOr<audit::AuditPruneResult> PruneDataDirectoryAuditLog(
    const std::filesystem::path& data_dir, const Environment& env, const Clock& clock);

}  // namespace kura::ops
