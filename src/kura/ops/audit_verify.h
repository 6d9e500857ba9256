// Audit log verification of a data directory (`kura audit verify`).
//
// Trust comes from the data directory's own key provider: the checkpoint signing key is stored
// only wrapped, so whoever edits the database without the key file cannot sign a checkpoint the
// verifier accepts. Checkpoint copies kept outside the database (a SIEM, the JSON-lines sink)
// are the other input: only they reveal a tail cut off together with its stored checkpoints.
//
// Verification itself only reads. A run whose log verifies then documents itself with a
// `system`/`verify` record; a run that finds anything never writes, because every new record
// would be chained onto the tampered head and the evidence would be extended, not preserved.
// Safe to run while `kura serve` runs on the same directory (a separate SQLite connection in WAL
// mode; the server's appender continues from whatever this process appended).
//
// Thread-compatible free functions.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kura/audit/note.h"
#include "kura/audit/record.h"
#include "kura/audit/verifier.h"
#include "kura/base/clock.h"
#include "kura/base/config.h"
#include "kura/base/status.h"
#include "kura/crypto/key_provider.h"
#include "kura/ops/audit_access.h"
#include "kura/store/audit_log_store.h"
#include "kura/store/store.h"

namespace kura::ops {

// The verifier key of the tenant's checkpoints, unwrapped exactly as
// audit::LoadOrCreateCheckpointSigner does, but never creating a key: a verifier that made up
// its own key would trust whatever it is shown. nullopt when the store holds no signing key;
// DataLoss when the stored key does not unwrap (another key file, or an edited key row);
// whatever the store returns when it cannot be read.
[[nodiscard]] StatusOr<std::optional<audit::NoteVerifierKey>> LoadCheckpointVerifierKey(
    store::Store& store, const crypto::KeyProvider& provider, std::string_view tenant);

// Signed notes from a file of exported lines as a receiver stored them (JSON lines, RFC 5424 or
// CEF, one message per line): checkpoints (audit::ExtractCheckpointNote) and the prune anchors
// that `system`/`prune` records carry (audit::ExtractPruneAnchorNote), which let a log whose
// stored anchor is gone still be verified from its first retained record. Lines that hold neither
// (other records, blank lines, other messages) are skipped, not errors: a SIEM export mixes them.
// The notes are not verified here. FailedPrecondition when the file cannot be read.
struct ExternalCheckpoints {
  std::vector<std::string> notes;
  uint64_t lines = 0;  // Lines read.
};
[[nodiscard]] StatusOr<ExternalCheckpoints> ReadExternalCheckpoints(
    const std::filesystem::path& file);

// The `system`/`verify` record of a verification run (audit::VerificationAuditRecord plus how
// many records and external checkpoints it saw), acted by whoever ran it: `acted_by`'s actor and
// details (CliAuditRecord for the command, the server's own system record for its scheduled run).
[[nodiscard]] audit::AuditRecord VerifyRunAuditRecord(const audit::VerificationReport& report,
                                                      uint64_t external_checkpoints,
                                                      int64_t time_us,
                                                      const audit::AuditRecord& acted_by);

struct AuditVerifyOptions {
  std::filesystem::path data_dir;
  std::vector<std::filesystem::path> checkpoint_files;  // ReadExternalCheckpoints each.
  // Append the verify record when the log verifies. Off for forensic copies, which should stay
  // byte for byte as they were taken.
  bool record = true;
  // Also check the log against the end of the JSON-lines audit file kura.toml configures
  // (audit.json_lines_file), when it exists: its latest checkpoint joins the external ones, and
  // a record in it beyond the log's end is a truncation. Off for a copy checked against a file
  // that has moved on since the copy was taken.
  bool use_sink_file = true;
  // Also check the log against the exporter's delivery mark in the data directory
  // (AuditDeliveryMarkPath): a log that ends before the record a sink already received, or holds
  // another record under its sequence number, was rolled back or replaced. Covers syslog
  // receivers, which cannot be read back. Off for a copy checked after the live mark moved on.
  bool use_delivery_mark = true;
  // Also compare the resource tables with the writes the log records (ResourceWriteLedger).
  // Done only while no server or exclusive command uses the directory (their writes would race
  // the comparison); the run holds the directory's lock shared meanwhile.
  bool check_resources = true;
};

struct AuditVerifyOutcome {
  audit::VerificationReport report;
  // The trusted checkpoint key in its published text form (safe to pin in sinks); empty when
  // the store holds no signing key.
  std::string verifier_key;
  uint64_t external_checkpoints = 0;  // Notes found in the checkpoint files.
  // The configured JSON-lines audit file (empty when none is configured or use_sink_file is
  // off), whether it exists, and what its end held.
  std::filesystem::path sink_file;
  bool sink_file_found = false;
  bool sink_file_checkpoint = false;  // Its latest checkpoint was checked.
  std::optional<uint64_t> sink_file_last_record;
  // The delivery mark (empty path when use_delivery_mark is off) and the record it names, when
  // it exists.
  std::filesystem::path delivery_mark;
  std::optional<uint64_t> delivery_mark_record;
  // The resource comparison: how many resources it judged and how many it could not (written
  // only before the prune point), or why it did not run.
  uint64_t resources_checked = 0;
  uint64_t resources_unjudged = 0;
  uint64_t versions_checked = 0;  // Likewise for every stored version (the history).
  uint64_t versions_unjudged = 0;
  std::string resources_not_checked;
  bool recorded = false;            // The verify record is durable.
  std::string not_recorded_reason;  // Why not, when !recorded.
  // Not OK when the log verified and the verify record could not be written: the command then
  // fails (audit fails closed), although the report itself stands.
  Status record_status;
};

// Verifies the whole stored audit log of `options.data_dir` against the stored checkpoints and
// prune anchors plus those in the checkpoint files. Loads the configuration (with `env`
// overrides), checks data directory permissions, loads the key file and opens the existing
// database (never creating one). Findings are in the report, not the Status; an error Status
// means verification could not run: FailedPrecondition (missing directory, configuration or
// database, permissions, unreadable checkpoint file), DataLoss (a key that does not unwrap), or
// what the store returns.
[[nodiscard]] StatusOr<AuditVerifyOutcome> VerifyDataDirectoryAuditLog(
    const AuditVerifyOptions& options, const Environment& env, const Clock& clock);

// What a running server's scheduled verification found (VerifyServedAuditLog).
struct ServedLogVerification {
  audit::VerificationReport report;
  uint64_t external_checkpoints = 0;  // 1 when the JSON-lines file's latest checkpoint joined.
};

// Verifies the log `kura serve` is appending to, from inside the server: every stored record
// against the stored checkpoints and prune anchors, the end of the configured JSON-lines audit
// file and the delivery mark (both read first, so records appended during the run cannot look
// like a cut-off tail), and the folded search indexes against the rows. The resource tables are
// not compared: the server's own writes would race the comparison (`kura audit verify` does it
// while the server is stopped). Must not overlap a prune of the same log. `keep_going` as
// VerifyOptions's (Aborted when it says stop). Errors as VerifyStoredLog, and
// FailedPrecondition when the JSON-lines file or the delivery mark cannot be read.
[[nodiscard]] StatusOr<ServedLogVerification> VerifyServedAuditLog(
    store::AuditLogStore& store, const AuditLogAccess& access, const Config& config,
    std::function<bool()> keep_going = nullptr);

}  // namespace kura::ops
