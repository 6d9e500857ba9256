// AuditExporter: ships the stored audit log to SIEM sinks as a durable outbox.
//
// Every record, in sequence order, and every signed checkpoint goes to each configured sink: a
// syslog receiver (RFC 5424 with structured data, or CEF in the message; TCP or TLS) and/or a
// JSON-lines file. The outbox is the audit log itself: each sink keeps a durable cursor in the
// store (AuditLogStore::ReadAuditCursor, under the sink's name: the next sequence not yet
// delivered; and under "<name>/checkpoints": the tree size of the last checkpoint delivered).
// A sink reads rows from its cursor in batches, opens and formats them, sends them, and only
// then moves its cursor, so nothing committed is ever skipped: after a receiver outage, a
// broken connection or a restart it resends from the cursor. Receivers may therefore see a
// message twice (the sequence number or tree size identifies it), never a gap or a reordering.
// A checkpoint of tree size N goes out right after record N-1 and before record N. Beside the
// database the exporter keeps a delivery mark (the last record any sink received), by which
// `kura serve` notices a database restored from an older copy before it sends receivers new
// records under sequence numbers they already hold (CheckDeliveryMarkMatchesLog).
//
// A syslog receiver never acknowledges, so a send that returned OK only means the kernel took
// the bytes. The cursor of a syslog sink therefore moves one step late: over a batch once a
// later send (or an idle-time check) found the connection still open, and over everything on
// an orderly close (which waits for the receiver to have read all bytes). docs/formats/
// audit-export.md ("Delivery") describes the guarantees.
//
// A row that does not open (it does not decrypt, does not match its leaf hash, or carries
// another sequence number) stalls its sink at that sequence: the exporter logs
// audit_export_stalled with the sequence and retries slowly, but never skips it, because a hole
// in the SIEM's copy would hide exactly what tampering wants hidden; `kura audit verify`
// explains the cause. A gap in the stored sequence stalls a sink the same way unless a prune
// anchor says those records were pruned.
//
// Thread-safety: Notify, Stats and Stop are thread-safe; one background thread per exporter
// does all store reads, formatting and I/O for all its sinks (a sink that is down is retried on
// its own schedule and does not hold back the others, except for the bounded time one connect
// attempt takes).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kura/audit/audit_log.h"
#include "kura/audit/export_format.h"
#include "kura/audit/syslog_client.h"
#include "kura/base/status.h"
#include "kura/store/audit_log_store.h"

namespace kura::audit {

// Default cursor names; they are stored, so changing one makes that sink start over.
inline constexpr std::string_view kSyslogSinkName = "syslog";
inline constexpr std::string_view kJsonLinesSinkName = "json-lines";
// Suffix of a sink's checkpoint cursor name.
inline constexpr std::string_view kCheckpointCursorSuffix = "/checkpoints";

struct AuditSyslogSinkOptions {
  // Cursor name: 1 to 64 characters of [a-z0-9._-], unique per exporter.
  std::string name = std::string(kSyslogSinkName);
  std::string url;                 // audit.syslog_url: tcp://host:port or tls://host[:port].
  std::string format = "rfc5424";  // audit.syslog_format: "rfc5424" or "cef".
  // Facility, hostname, app name, ...; `payload` is set from `format`.
  SyslogFormatOptions message{};
  // For tls:// URLs only (audit.syslog_ca_file, _client_certificate, _client_key,
  // _server_name).
  SyslogTlsOptions tls{};
  // Deadline of each connect (with handshake), send and close.
  std::chrono::milliseconds io_timeout{5000};
};

struct AuditJsonLinesSinkOptions {
  std::string name = std::string(kJsonLinesSinkName);  // As for syslog.
  std::filesystem::path path{};                        // audit.json_lines_file.
};

struct AuditExporterOptions {
  std::optional<AuditSyslogSinkOptions> syslog;
  std::optional<AuditJsonLinesSinkOptions> json_lines;
  // Records read (and sent) per batch, 1..65536.
  size_t batch_size = 256;
  // Safety net besides Notify(): how often the store is polled for new records (e.g. written by
  // another process) and an idle syslog connection is checked so its cursor can move.
  std::chrono::milliseconds poll_interval{1000};
  // Reconnect backoff after a failure: doubles from min to max, reset by a success.
  std::chrono::milliseconds backoff_min{100};
  std::chrono::milliseconds backoff_max{30000};
  // How often a stalled sink (a row that does not open) tries the row again.
  std::chrono::milliseconds stall_retry{60000};
  // Where to keep the delivery mark (WriteDeliveryMark): the last record any sink received, kept
  // outside the database so that a database restored from an older copy is noticed
  // (CheckDeliveryMarkMatchesLog) also when no sink can be read back. Empty: none. Written at
  // most every `delivery_mark_interval` and when the exporter stops.
  std::filesystem::path delivery_mark{};
  std::chrono::milliseconds delivery_mark_interval{1000};
};

// A sink's state, for metrics and the admin console.
struct AuditSinkStats {
  std::string name;
  uint64_t records_shipped = 0;        // Since start: how far the cursor moved.
  uint64_t checkpoints_shipped = 0;    // Since start, likewise.
  uint64_t cursor = 0;                 // Durable: the next sequence not yet delivered.
  uint64_t checkpoint_cursor = 0;      // Durable: tree size of the last checkpoint delivered.
  bool connected = false;              // Syslog: connected. File: open.
  std::optional<uint64_t> stalled_at;  // The sequence that does not open, while stalled.
  uint64_t attempts = 0;               // Rounds run so far (each one reads the store).
  uint64_t failures = 0;               // Failed connects, sends and store operations so far.
  std::string last_error;              // Client-safe text of the latest failure; "" after success.
};

// Refuses to continue a log that a JSON-lines sink file has seen further, or differently: the
// file's last record has a sequence the log has not reached, or its last checkpoint covers more
// records than the log holds, was not signed by the log's key, or names another chain head than
// the stored record at its size says. That is what a database restored from an older copy (or
// replaced by another log) looks like next to the file that kept what had been shipped: the log
// would go on under sequence numbers the file already holds with other records. Syslog
// receivers cannot be read back, so only this sink is checked. FailedPrecondition saying what
// differs and what to do; OK for a missing or empty file, or one that agrees. Reads the file
// backwards, at most its last kSinkFileCheckBytes.
inline constexpr uint64_t kSinkFileCheckBytes = uint64_t{64} << 20;
[[nodiscard]] Status CheckSinkFileMatchesLog(const std::filesystem::path& file,
                                             store::AuditLogStore& store, const AuditLog& log);

// What the end of a JSON-lines audit file says about the log it copied, from its complete lines
// (a line cut short by a crash is not read): the last record's sequence and the last
// checkpoint's signed note (not verified here), when found within the last `max_bytes`.
struct JsonLinesFileTail {
  std::optional<uint64_t> last_record;
  std::optional<std::string> last_checkpoint;
};
// nullopt when the file does not exist; FailedPrecondition when it cannot be read.
[[nodiscard]] StatusOr<std::optional<JsonLinesFileTail>> ReadJsonLinesFileTail(
    const std::filesystem::path& file, uint64_t max_bytes = kSinkFileCheckBytes);

// The delivery mark: the sequence of the last record a sink received and that record's chain
// hash. One line, "kura-audit-delivered/v1 <sequence> <base64 chain hash>\n", in a file of mode
// 0600 replaced atomically (written, synced, renamed), so a crash leaves the old mark or the new.
// docs/formats/data-directory.md describes it.
struct DeliveryMark {
  uint64_t sequence = 0;
  std::string chain_hash;  // 32 bytes.
};
[[nodiscard]] Status WriteDeliveryMark(const std::filesystem::path& file, const DeliveryMark& mark);
// nullopt when the file does not exist; FailedPrecondition when it cannot be read or is not a
// delivery mark.
[[nodiscard]] StatusOr<std::optional<DeliveryMark>> ReadDeliveryMark(
    const std::filesystem::path& file);

// How a delivery mark compares with a stored log of `log_size` records.
enum class DeliveryMarkMatch {
  kAgrees,      // The stored record at the mark's sequence has the mark's chain hash.
  kPruned,      // That record was pruned, so there is nothing to compare.
  kBeyondLog,   // The mark names a record the log does not hold.
  kOtherChain,  // The stored record there has another chain hash.
};
[[nodiscard]] StatusOr<DeliveryMarkMatch> CompareDeliveryMark(const DeliveryMark& mark,
                                                              store::AuditLogStore& store,
                                                              uint64_t log_size);

// Refuses to continue a log whose sinks already received more of it, or another log: the mark's
// record is beyond the log, or the stored record at its sequence has another chain hash. That is
// what a database restored from an older copy (or replaced) looks like to the mark the exporter
// kept beside it, and going on would send receivers new records under sequence numbers they hold
// for others; unlike CheckSinkFileMatchesLog it covers syslog receivers, which cannot be read
// back. FailedPrecondition saying what differs and what to do (also for a mark that cannot be
// read); OK when there is no mark, when it agrees, or when its record was pruned.
[[nodiscard]] Status CheckDeliveryMarkMatchesLog(const std::filesystem::path& file,
                                                 store::AuditLogStore& store, const AuditLog& log);

class AuditExporter {
 public:
  // Validates `options` and starts the exporter thread. The first round runs at once, so
  // whatever is committed and not yet delivered goes out without waiting for Notify.
  // `store` and `key_lookup` (what OpenAuditRow needs) must outlive the exporter; keep the store
  // open until Stop has returned.
  // InvalidArgument naming the setting for a bad configuration (no sink, bad URL or format,
  // facility, TLS files with tcp://, a client certificate without its key, a TLS file or the
  // JSON-lines file that cannot be used, bad intervals or names); an error from the store when
  // the cursors cannot be read. A receiver that is down is not an error: it is retried.
  [[nodiscard]] static StatusOr<std::unique_ptr<AuditExporter>> Start(store::AuditLogStore& store,
                                                                      AuditKeyLookup key_lookup,
                                                                      AuditExporterOptions options);

  // Stop() without a drain.
  ~AuditExporter();
  AuditExporter(const AuditExporter&) = delete;
  AuditExporter& operator=(const AuditExporter&) = delete;

  // New records are durable: ship them. Cheap and non-blocking (a flag and a condition
  // variable), so AuditLog's commit listener may call it on the store's writer thread. Harmless
  // after Stop; whoever calls it must not outlive the exporter.
  void Notify();

  // Stops the thread and closes every connection in an orderly way. With a non-zero
  // `drain_timeout` it first keeps shipping, until every sink that can make progress has
  // delivered what is committed or the timeout has passed, so a clean shutdown leaves receivers
  // current. Backoff waits end at once; an I/O operation in progress finishes first (bounded by
  // io_timeout). Idempotent; later calls return at once.
  void Stop(std::chrono::milliseconds drain_timeout = std::chrono::milliseconds(0));

  // One entry per sink, in the order syslog, JSON lines.
  std::vector<AuditSinkStats> Stats() const;

 private:
  class Impl;
  explicit AuditExporter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kura::audit
