// Audit log retention for a data directory: the cutoff that `audit.retention_days` sets, the
// retention run `kura serve` schedules (at start-up, then daily) and `kura audit prune`, which
// applies it once (e.g. from cron while the server is down, or right after lowering the setting).
//
// Retention never shortens what the configuration promises: every record younger than
// retention_days days stays, and so does every record an export sink has not received or no
// signed checkpoint covers yet (audit::AuditLog::Prune). Thread-compatible free functions.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

// An export sink as the database knows it: how far it got, and whether kura.toml still
// configures it. Retention waits for every sink with a cursor, configured or not.
struct AuditSinkPosition {
  std::string name;
  std::optional<uint64_t> next_sequence;         // The next record it has not received.
  std::optional<uint64_t> checkpoint_tree_size;  // The last checkpoint it received.
  bool configured = false;
};

// `kura audit sinks`: every sink with a stored cursor, and each configured one, by name.
// OpenDataDirectory's errors.
[[nodiscard]] StatusOr<std::vector<AuditSinkPosition>> ListAuditSinks(
    const std::filesystem::path& data_dir, const Environment& env);

// `kura audit forget-sink`: removes a sink's cursors, so that retention no longer keeps records
// for a SIEM that is gone for good (a removed sink's cursor otherwise holds pruning back forever).
// Refused with FailedPrecondition while kura.toml configures the sink (the exporter would start
// it over from the beginning of the log); NotFound when it has no cursor. Audited before the
// cursors go (admin/audit-sink-forget, resource kura:AuditSink/NAME, the sequence it had
// reached); when the record cannot be written nothing is removed. Returns the sink's position as
// it was.
[[nodiscard]] StatusOr<AuditSinkPosition> ForgetAuditSink(const std::filesystem::path& data_dir,
                                                          const Environment& env,
                                                          std::string_view name);

}  // namespace kura::ops
