// `kura audit verify`: the verifier key, external checkpoint files and the verification run.
#include "kura/ops/audit_verify.h"

#include <algorithm>
#include <fstream>

#include "kura/audit/audit_log.h"
#include "kura/audit/checkpoint.h"
#include "kura/audit/export_format.h"
#include "kura/audit/exporter.h"
#include "kura/crypto/signature.h"
#include "kura/ops/audit_access.h"
#include "kura/ops/data_dir.h"
#include "kura/ops/resource_ledger.h"
#include "kura/store/data_keyring.h"

namespace kura::ops {
namespace {

// Whether the store holds any trace of an audit log besides what the verifier counted.
StatusOr<bool> HasAuditStatements(store::AuditLogStore& store) {
  KURA_ASSIGN_OR_RETURN(std::vector<store::AuditStatement> statements, store.ReadAuditStatements());
  return !statements.empty();
}

// The end of the JSON-lines audit file, when there is one: its latest checkpoint joins
// `extra_notes`. Read before the log, whose records only grow meanwhile, so the file never
// holds a record the log lacks unless the log lost it.
StatusOr<std::optional<audit::JsonLinesFileTail>> ReadSinkFileEnd(
    const std::filesystem::path& file, std::vector<std::string>& extra_notes) {
  KURA_ASSIGN_OR_RETURN(std::optional<audit::JsonLinesFileTail> tail,
                        audit::ReadJsonLinesFileTail(file));
  if (tail && tail->last_checkpoint) extra_notes.push_back(*tail->last_checkpoint);
  return tail;
}

// Only committed records are exported, so the file never legitimately holds one the log lacks.
void CheckSinkFileNotAhead(std::optional<uint64_t> sink_last_record, size_t max_issues,
                           audit::VerificationReport& report) {
  if (!sink_last_record || *sink_last_record < report.tree_size) return;
  report.AddIssue({audit::IssueKind::kTruncated, report.tree_size,
                   "the log ends after " + std::to_string(report.tree_size) +
                       " records but the JSON-lines audit file holds record " +
                       std::to_string(*sink_last_record)},
                  max_issues);
}

// The exporter's delivery mark, read before the log for the same reason as the sink file's end.
// A mark that cannot be used stops the run: it is the only trace a syslog receiver leaves here.
StatusOr<std::optional<audit::DeliveryMark>> ReadMarkForVerification(
    const std::filesystem::path& file) {
  StatusOr<std::optional<audit::DeliveryMark>> mark = audit::ReadDeliveryMark(file);
  if (mark.ok()) return mark;
  return FailedPreconditionError(
      "the audit delivery mark " + file.string() +
      " cannot be read or is not a delivery mark; keep it (it is evidence) and verify the log "
      "without it: kura audit verify --no-delivery-mark");
}

// Sinks receive only committed records, so the mark never names a record the log lacks, nor
// another record than the log holds under its number, unless the log was rolled back or
// replaced after they received it.
Status CheckDeliveryMark(const std::optional<audit::DeliveryMark>& mark,
                         store::AuditLogStore& store, size_t max_issues,
                         audit::VerificationReport& report) {
  if (!mark || report.read_failed) return Status::Ok();
  KURA_ASSIGN_OR_RETURN(audit::DeliveryMarkMatch match,
                        audit::CompareDeliveryMark(*mark, store, report.tree_size));
  const std::string sequence = std::to_string(mark->sequence);
  switch (match) {
    case audit::DeliveryMarkMatch::kAgrees:
    case audit::DeliveryMarkMatch::kPruned:
      break;
    case audit::DeliveryMarkMatch::kBeyondLog:
      report.AddIssue(
          {audit::IssueKind::kTruncated, report.tree_size,
           "the log ends after " + std::to_string(report.tree_size) +
               " records but the delivery mark says a sink received record " + sequence +
               ": the database was rolled back or restored from an older copy"},
          max_issues);
      break;
    case audit::DeliveryMarkMatch::kOtherChain:
      report.AddIssue({audit::IssueKind::kModified, mark->sequence,
                       "record " + sequence +
                           " has another chain hash than the one the delivery mark says a sink "
                           "received: the database holds another audit log than its sinks"},
                      max_issues);
      break;
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::optional<audit::NoteVerifierKey>> LoadCheckpointVerifierKey(
    store::Store& store, const crypto::KeyProvider& provider, std::string_view tenant) {
  KURA_ASSIGN_OR_RETURN(std::optional<crypto::Ed25519Signer> signer,
                        audit::LoadCheckpointSigner(store, provider, tenant));
  if (!signer) return std::optional<audit::NoteVerifierKey>();
  // Only the public half is kept; the signer (and its secret) ends with this scope.
  KURA_ASSIGN_OR_RETURN(audit::NoteVerifierKey key,
                        audit::CheckpointVerifierKey(audit::AuditOrigin(tenant), *signer));
  return std::optional<audit::NoteVerifierKey>(std::move(key));
}

StatusOr<ExternalCheckpoints> ReadExternalCheckpoints(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return FailedPreconditionError("cannot read checkpoint file " + file.string());
  }
  ExternalCheckpoints out;
  std::string line;
  while (std::getline(in, line)) {
    ++out.lines;
    StatusOr<std::string> note = audit::ExtractCheckpointNote(line);
    if (!note.ok()) note = audit::ExtractPruneAnchorNote(line);
    if (note.ok()) out.notes.push_back(std::move(*note));
  }
  if (in.bad()) return FailedPreconditionError("cannot read checkpoint file " + file.string());
  return out;
}

audit::AuditRecord VerifyRunAuditRecord(const audit::VerificationReport& report,
                                        uint64_t external_checkpoints, int64_t time_us,
                                        const audit::AuditRecord& acted_by) {
  audit::AuditRecord record = audit::VerificationAuditRecord(report, time_us);
  record.actor = acted_by.actor;
  for (const auto& detail : acted_by.details) record.details.push_back(detail);
  record.details.emplace_back("verify.records_checked", std::to_string(report.records_checked));
  record.details.emplace_back("verify.external_checkpoints", std::to_string(external_checkpoints));
  return record;
}

StatusOr<AuditVerifyOutcome> VerifyDataDirectoryAuditLog(const AuditVerifyOptions& options,
                                                         const Environment& env,
                                                         const Clock& clock) {
  // Unreadable inputs stop the run before the database is opened.
  AuditVerifyOutcome outcome;
  std::vector<std::string> extra_notes;
  for (const std::filesystem::path& file : options.checkpoint_files) {
    KURA_ASSIGN_OR_RETURN(ExternalCheckpoints external, ReadExternalCheckpoints(file));
    for (std::string& note : external.notes) extra_notes.push_back(std::move(note));
  }
  outcome.external_checkpoints = extra_notes.size();

  // Without a record to append, nothing needs write access: the copy stays as it is.
  KURA_ASSIGN_OR_RETURN(
      OpenedDataDirectory dir,
      OpenDataDirectory(options.data_dir, env,
                        options.record ? DataDirectoryUse::kCommand : DataDirectoryUse::kReadOnly));
  if (options.use_sink_file && !dir.config.audit.json_lines_file.empty()) {
    outcome.sink_file = ResolvePath(dir.config, dir.config.audit.json_lines_file);
    KURA_ASSIGN_OR_RETURN(std::optional<audit::JsonLinesFileTail> tail,
                          ReadSinkFileEnd(outcome.sink_file, extra_notes));
    if (tail) {
      outcome.sink_file_found = true;
      outcome.sink_file_last_record = tail->last_record;
      outcome.sink_file_checkpoint = tail->last_checkpoint.has_value();
    }
  }
  std::optional<audit::DeliveryMark> mark;
  if (options.use_delivery_mark) {
    outcome.delivery_mark = AuditDeliveryMarkPath(dir.config.data_dir);
    KURA_ASSIGN_OR_RETURN(mark, ReadMarkForVerification(outcome.delivery_mark));
    if (mark) outcome.delivery_mark_record = mark->sequence;
  }
  // Held (shared) to the end of the run, so no server starts writing resources meanwhile.
  DataDirectoryLock quiet;
  if (!options.check_resources) {
    outcome.resources_not_checked = "--no-resources";
  } else if (StatusOr<DataDirectoryLock> lock =
                 DataDirectoryLock::AcquireShared(dir.config.data_dir);
             lock.ok()) {
    quiet = std::move(*lock);
  } else if (lock.status().code() == StatusCode::kFailedPrecondition) {
    outcome.resources_not_checked =
        "a kura server or command is using the data directory, and its writes would race the "
        "comparison; stop it or verify a copy";
  } else {
    outcome.resources_not_checked = lock.status().message();
  }
  const std::string& tenant = dir.config.tenant;
  KURA_ASSIGN_OR_RETURN(std::optional<audit::NoteVerifierKey> trusted,
                        LoadCheckpointVerifierKey(*dir.db, *dir.keys, tenant));
  audit::VerifyOptions verify;
  verify.origin = audit::AuditOrigin(tenant);
  if (trusted) {
    outcome.verifier_key = trusted->ToString();
    verify.trusted_keys.push_back(*trusted);
  } else {
    // No signing key: nothing can be trusted, but the records can still be checked for gaps,
    // order and chain links. A key made up for this run signs nothing anyone has seen, so every
    // checkpoint found is reported as untrusted rather than silently ignored.
    KURA_ASSIGN_OR_RETURN(crypto::Ed25519Signer ephemeral, crypto::Ed25519Signer::Generate());
    KURA_ASSIGN_OR_RETURN(audit::NoteVerifierKey key,
                          audit::CheckpointVerifierKey(verify.origin, ephemeral));
    verify.trusted_keys.push_back(std::move(key));
  }
  // Looks keys up only; never creates one.
  store::DataKeyring keyring(*dir.db, *dir.keys, tenant, 16);
  const audit::AuditKeyLookup key_lookup = [&keyring](uint64_t key_id) {
    return keyring.KeyById(key_id);
  };
  ResourceWriteLedger ledger;
  audit::RecordObserver to_ledger;
  if (outcome.resources_not_checked.empty()) {
    to_ledger = [&ledger](const audit::AuditRecord& record) { ledger.Add(record); };
  }
  KURA_ASSIGN_OR_RETURN(
      outcome.report, audit::VerifyStoredLog(*dir.db, key_lookup, verify, extra_notes, to_ledger));
  if (outcome.resources_not_checked.empty() && outcome.report.read_failed) {
    outcome.resources_not_checked = "the audit log could not be read to the end";
  }
  if (outcome.resources_not_checked.empty()) {
    KURA_ASSIGN_OR_RETURN(ResourceCheck resources,
                          ledger.Compare(*dir.db, outcome.report.first_sequence == 0,
                                         outcome.report, verify.max_issues));
    outcome.resources_checked = resources.resources_checked;
    outcome.resources_unjudged = resources.resources_unjudged;
    outcome.versions_checked = resources.versions_checked;
    outcome.versions_unjudged = resources.versions_unjudged;
  }
  CheckSinkFileNotAhead(outcome.sink_file_last_record, verify.max_issues, outcome.report);
  KURA_RETURN_IF_ERROR(CheckDeliveryMark(mark, *dir.db, verify.max_issues, outcome.report));
  if (!trusted) {
    KURA_ASSIGN_OR_RETURN(bool has_statements, HasAuditStatements(*dir.db));
    if (outcome.report.records_checked > 0 || has_statements || !extra_notes.empty()) {
      // Every writer creates the key before its first record, so a log without one had its key
      // deleted or was planted.
      outcome.report.issues.insert(
          outcome.report.issues.begin(),
          audit::VerificationIssue{audit::IssueKind::kBadCheckpoint, std::nullopt,
                                   "the audit log has records or checkpoints but the store holds "
                                   "no checkpoint signing key: none of it can be trusted"});
      ++outcome.report.issue_count;
    }
  }

  if (!options.record) {
    outcome.not_recorded_reason = "--no-record";
  } else if (!outcome.report.ok()) {
    // A record appended now would be chained onto the tampered head: it would extend the
    // evidence instead of preserving it, and a later run would find the same issues anyway.
    outcome.not_recorded_reason = "the log does not verify; nothing is appended to it";
  } else {
    outcome.record_status = AppendCliAuditRecord(
        dir,
        VerifyRunAuditRecord(outcome.report, outcome.external_checkpoints, ToMicros(clock.Now()),
                             CliAuditRecord(audit::category::kSystem, audit::action::kVerify)));
    outcome.recorded = outcome.record_status.ok();
    if (!outcome.recorded) outcome.not_recorded_reason = outcome.record_status.message();
  }
  return outcome;
}

StatusOr<ServedLogVerification> VerifyServedAuditLog(store::AuditLogStore& store,
                                                     const AuditLogAccess& access,
                                                     const Config& config,
                                                     std::function<bool()> keep_going) {
  ServedLogVerification out;
  std::vector<std::string> extra_notes;
  std::optional<uint64_t> sink_last_record;
  if (!config.audit.json_lines_file.empty()) {
    KURA_ASSIGN_OR_RETURN(
        std::optional<audit::JsonLinesFileTail> tail,
        ReadSinkFileEnd(ResolvePath(config, config.audit.json_lines_file), extra_notes));
    if (tail) sink_last_record = tail->last_record;
  }
  KURA_ASSIGN_OR_RETURN(std::optional<audit::DeliveryMark> mark,
                        ReadMarkForVerification(AuditDeliveryMarkPath(config.data_dir)));
  out.external_checkpoints = extra_notes.size();
  audit::VerifyOptions verify;
  verify.origin = access.log->origin();
  verify.trusted_keys.push_back(access.log->verifier_key());
  verify.keep_going = std::move(keep_going);
  KURA_ASSIGN_OR_RETURN(out.report,
                        audit::VerifyStoredLog(store, access.key_lookup, verify, extra_notes));
  CheckSinkFileNotAhead(sink_last_record, verify.max_issues, out.report);
  KURA_RETURN_IF_ERROR(CheckDeliveryMark(mark, store, verify.max_issues, out.report));
  return out;
}

}  // namespace kura::ops
