// Audit retention: the configured cutoff, and `kura audit prune`.
#include "kura/ops/audit_prune.h"

#include <map>

#include "kura/audit/exporter.h"
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

namespace {

bool SinkConfigured(const Config& config, std::string_view name) {
  return (name == audit::kSyslogSinkName && !config.audit.syslog_url.empty()) ||
         (name == audit::kJsonLinesSinkName && !config.audit.json_lines_file.empty());
}

StatusOr<std::vector<AuditSinkPosition>> SinkPositions(OpenedDataDirectory& dir) {
  KURA_ASSIGN_OR_RETURN(std::vector<store::AuditCursor> cursors, dir.db->ReadAuditCursors());
  std::map<std::string, AuditSinkPosition, std::less<>> sinks;
  for (std::string_view name : {audit::kSyslogSinkName, audit::kJsonLinesSinkName}) {
    if (SinkConfigured(dir.config, name)) sinks[std::string(name)].configured = true;
  }
  for (const store::AuditCursor& cursor : cursors) {
    std::string_view name = cursor.name;
    const bool checkpoints = name.ends_with(audit::kCheckpointCursorSuffix);
    if (checkpoints) name.remove_suffix(audit::kCheckpointCursorSuffix.size());
    AuditSinkPosition& sink = sinks[std::string(name)];
    (checkpoints ? sink.checkpoint_tree_size : sink.next_sequence) = cursor.next_sequence;
    sink.configured = SinkConfigured(dir.config, name);
  }
  std::vector<AuditSinkPosition> out;
  for (auto& [name, sink] : sinks) {
    sink.name = name;
    out.push_back(std::move(sink));
  }
  return out;
}

}  // namespace

StatusOr<std::vector<AuditSinkPosition>> ListAuditSinks(const std::filesystem::path& data_dir,
                                                        const Environment& env) {
  KURA_ASSIGN_OR_RETURN(OpenedDataDirectory dir, OpenDataDirectory(data_dir, env));
  StatusOr<std::vector<AuditSinkPosition>> sinks = SinkPositions(dir);
  dir.db->Close();
  return sinks;
}

StatusOr<AuditSinkPosition> ForgetAuditSink(const std::filesystem::path& data_dir,
                                            const Environment& env, std::string_view name) {
  KURA_ASSIGN_OR_RETURN(OpenedDataDirectory dir, OpenDataDirectory(data_dir, env));
  KURA_ASSIGN_OR_RETURN(std::vector<AuditSinkPosition> sinks, SinkPositions(dir));
  const AuditSinkPosition* found = nullptr;
  for (const AuditSinkPosition& sink : sinks) {
    if (sink.name == name) found = &sink;
  }
  if (found != nullptr && found->configured) {
    return FailedPreconditionError("audit sink " + std::string(name) +
                                   " is configured in kura.toml; remove it there first (kept, the "
                                   "exporter would start it over from the beginning of the log)");
  }
  if (found == nullptr || (!found->next_sequence && !found->checkpoint_tree_size)) {
    return NotFoundError("no audit sink " + std::string(name) + " has a stored position");
  }
  audit::AuditRecord record = CliAuditRecord(audit::category::kAdmin, "audit-sink-forget");
  record.resource_type = "kura:AuditSink";
  record.resource_id = std::string(name);
  record.details.emplace_back("sink.next_sequence",
                              found->next_sequence ? std::to_string(*found->next_sequence) : "");
  KURA_RETURN_IF_ERROR(AppendCliAuditRecord(dir, record));
  const std::string cursor(name);
  StatusOr<int64_t> deleted =
      dir.db->DeleteAuditCursors({cursor, cursor + std::string(audit::kCheckpointCursorSuffix)});
  if (!deleted.ok()) {
    record.outcome = audit::Outcome::kMajorFailure;
    record.outcome_reason = "store-failed";
    (void)AppendCliAuditRecord(dir, std::move(record));
    return deleted.status();
  }
  AuditSinkPosition was = *found;
  dir.db->Close();
  return was;
}

}  // namespace kura::ops
