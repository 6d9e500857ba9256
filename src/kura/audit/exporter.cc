// AuditExporter: one thread that drives every sink's outbox round by round. A round for a sink
// (Step) confirms what is in flight, reads the next rows and checkpoints after its position,
// interleaves them, sends them as one batch and moves the durable cursors when the transport
// says the batch is delivered. Failures only ever move a sink back to its durable cursor.
#include "kura/audit/exporter.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <fstream>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <span>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "kura/audit/json_lines_sink.h"
#include "kura/audit/record.h"
#include "kura/base/log.h"
#include "kura/base/random.h"
#include "kura/base/thread_name.h"

namespace kura::audit {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using store::AuditRow;
using store::AuditStatement;

constexpr size_t kMaxBatchSize = 65536;
constexpr size_t kMaxSinkNameLength = 64;

// Where a sink's messages go. Formats and moves bytes; the exporter thread alone uses it.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual bool connected() const = 0;
  // Makes the transport usable. Unavailable: try again later; other codes: a setting to fix.
  virtual Status Connect() = 0;
  virtual std::string FormatRecord(const AuditRecord& record) const = 0;
  virtual std::string FormatCheckpoint(const AuditStatement& checkpoint) const = 0;
  // OK means delivered when durable_on_send(), otherwise only that the bytes left the process
  // (Check and Close confirm them later). On failure the transport is disconnected.
  virtual Status Send(std::span<const std::string> messages) = 0;
  virtual bool durable_on_send() const = 0;
  // OK while the connection stands (the receiver has not closed it).
  virtual Status Check() = 0;
  // Orderly close; OK means the receiver has read everything sent.
  virtual Status Close() = 0;
};

class SyslogTransport final : public Transport {
 public:
  SyslogTransport(SyslogEndpoint endpoint, SyslogTlsOptions tls, SyslogFormatOptions format,
                  milliseconds timeout)
      : endpoint_(std::move(endpoint)),
        tls_(std::move(tls)),
        format_(std::move(format)),
        timeout_(timeout) {}

  bool connected() const override { return client_ != nullptr; }

  Status Connect() override {
    KURA_ASSIGN_OR_RETURN(client_, SyslogClient::Connect(endpoint_, tls_, timeout_));
    return Status::Ok();
  }

  std::string FormatRecord(const AuditRecord& record) const override {
    return FrameOctetCounting(FormatSyslog5424(record, format_));
  }

  std::string FormatCheckpoint(const AuditStatement& c) const override {
    return FrameOctetCounting(FormatCheckpointSyslog5424(c.note, c.tree_size, c.time_us, format_));
  }

  Status Send(std::span<const std::string> messages) override {
    if (client_ == nullptr) return UnavailableError("syslog receiver unavailable", "not connected");
    Status sent = client_->Send(messages);
    if (!sent.ok()) client_.reset();
    return sent;
  }

  bool durable_on_send() const override { return false; }

  // An empty send only collects the receiver's close, if it happened.
  Status Check() override { return Send({}); }

  Status Close() override {
    if (client_ == nullptr) return Status::Ok();
    Status closed = client_->Close();
    client_.reset();
    return closed;
  }

 private:
  const SyslogEndpoint endpoint_;
  const SyslogTlsOptions tls_;
  const SyslogFormatOptions format_;
  const milliseconds timeout_;
  std::unique_ptr<SyslogClient> client_;
};

class JsonLinesTransport final : public Transport {
 public:
  JsonLinesTransport(std::filesystem::path path, std::unique_ptr<JsonLinesFile> file)
      : path_(std::move(path)), file_(std::move(file)) {}

  bool connected() const override { return file_ != nullptr; }

  Status Connect() override {
    if (file_ == nullptr) {
      KURA_ASSIGN_OR_RETURN(file_, JsonLinesFile::Open(path_));
    }
    return Status::Ok();
  }

  std::string FormatRecord(const AuditRecord& record) const override {
    return FormatJsonLine(record);
  }

  std::string FormatCheckpoint(const AuditStatement& c) const override {
    return FormatCheckpointJsonLine(c.note, c.tree_size, c.time_us);
  }

  // A failed append cut the file back; the file stays open (it follows rotation itself).
  Status Send(std::span<const std::string> messages) override {
    if (file_ == nullptr) return UnavailableError("audit export file unavailable", "not open");
    return file_->Append(messages);
  }

  bool durable_on_send() const override { return true; }
  Status Check() override { return Status::Ok(); }

  Status Close() override {
    file_.reset();
    return Status::Ok();
  }

 private:
  const std::filesystem::path path_;
  std::unique_ptr<JsonLinesFile> file_;
};

enum class StepResult {
  kMore,     // Another batch is ready now.
  kIdle,     // Caught up with the stored log.
  kWaiting,  // Backing off or stalled until next_attempt.
};

// One sink's outbox. Exporter thread only, except `stats` (Impl::stats_mu_).
struct Sink {
  std::string name;
  std::string checkpoint_name;
  std::string_view kind;  // "syslog" or "json-lines", for logs.
  std::unique_ptr<Transport> transport;

  // Durable cursors, as stored.
  uint64_t cursor = 0;
  uint64_t checkpoint_cursor = 0;
  // Position after what was sent; ahead of the cursors while a syslog batch awaits confirmation.
  uint64_t sent = 0;
  uint64_t sent_checkpoint = 0;
  uint64_t in_flight_records = 0;
  uint64_t in_flight_checkpoints = 0;
  // The last record sent, and the last one the cursor has moved over (for the delivery mark).
  std::optional<DeliveryMark> sent_last;
  std::optional<DeliveryMark> cursor_last;

  SteadyClock::time_point next_attempt{};
  milliseconds backoff{0};
  bool in_outage = false;  // A failure was logged and nothing succeeded since.
  std::optional<uint64_t> stalled_at;
  StepResult last = StepResult::kMore;

  AuditSinkStats stats;
};

// What one round sends.
struct Batch {
  std::vector<std::string> messages;
  uint64_t next = 0;             // Position after the batch.
  uint64_t next_checkpoint = 0;  // Tree size of the last checkpoint in it (or the old one).
  uint64_t records = 0;
  uint64_t checkpoints = 0;
  std::optional<DeliveryMark> last;  // The last record in it.
  bool more = false;                 // Stopped early because of the batch limits.
  std::optional<uint64_t> stall_at;
  std::string_view stall_reason;
  Status error;  // A transient failure met while building; the partial batch still goes out.
};

Status ValidateSinkName(std::string_view name, std::string_view setting) {
  bool valid = !name.empty() && name.size() <= kMaxSinkNameLength;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
      valid = false;
    }
  }
  if (!valid) {
    return InvalidArgumentError(
        std::string(setting) + ": sink name must be 1 to 64 characters of a-z, 0-9, '.', '_', '-'");
  }
  return Status::Ok();
}

Status ValidateTlsFile(const std::filesystem::path& path, std::string_view setting) {
  if (path.empty()) return Status::Ok();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return InvalidArgumentError(std::string(setting) + ": not a readable file",
                                "no regular file at " + path.string());
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<Transport>> MakeSyslogTransport(const AuditSyslogSinkOptions& o) {
  StatusOr<SyslogEndpoint> endpoint = ParseSyslogUrl(o.url);
  if (!endpoint.ok()) {
    return InvalidArgumentError("audit.syslog_url: " + endpoint.status().message());
  }
  SyslogFormatOptions format = o.message;
  if (o.format == "rfc5424") {
    format.payload = SyslogPayload::kStructuredData;
  } else if (o.format == "cef") {
    format.payload = SyslogPayload::kCef;
  } else {
    return InvalidArgumentError("audit.syslog_format: must be rfc5424 or cef");
  }
  Status valid = ValidateSyslogFormatOptions(format);
  if (!valid.ok()) return InvalidArgumentError("audit.syslog: " + valid.message());
  const SyslogTlsOptions& tls = o.tls;
  if (endpoint->transport == SyslogEndpoint::Transport::kTcp &&
      (!tls.ca_file.empty() || !tls.client_certificate_file.empty() ||
       !tls.client_key_file.empty() || !tls.server_name.empty())) {
    // Someone who set a CA file expects TLS; plain TCP would silently ship in clear.
    return InvalidArgumentError(
        "audit.syslog_url: TLS settings (audit.syslog_ca_file, audit.syslog_client_certificate, "
        "audit.syslog_client_key, audit.syslog_server_name) need a tls:// URL");
  }
  if (tls.client_certificate_file.empty() != tls.client_key_file.empty()) {
    return InvalidArgumentError(
        "audit.syslog_client_certificate and audit.syslog_client_key must be set together");
  }
  KURA_RETURN_IF_ERROR(ValidateTlsFile(tls.ca_file, "audit.syslog_ca_file"));
  KURA_RETURN_IF_ERROR(
      ValidateTlsFile(tls.client_certificate_file, "audit.syslog_client_certificate"));
  KURA_RETURN_IF_ERROR(ValidateTlsFile(tls.client_key_file, "audit.syslog_client_key"));
  if (o.io_timeout <= milliseconds(0)) {
    return InvalidArgumentError("audit export: syslog io_timeout must be positive");
  }
  return std::unique_ptr<Transport>(
      std::make_unique<SyslogTransport>(*endpoint, tls, std::move(format), o.io_timeout));
}

StatusOr<std::unique_ptr<Transport>> MakeJsonLinesTransport(const AuditJsonLinesSinkOptions& o) {
  if (o.path.empty()) return InvalidArgumentError("audit.json_lines_file: must not be empty");
  StatusOr<std::unique_ptr<JsonLinesFile>> file = JsonLinesFile::Open(o.path);
  if (!file.ok()) {
    return InvalidArgumentError("audit.json_lines_file: " + file.status().message(),
                                file.status().internal_detail());
  }
  return std::unique_ptr<Transport>(std::make_unique<JsonLinesTransport>(o.path, std::move(*file)));
}

Status ValidateTiming(const AuditExporterOptions& o) {
  if (o.batch_size < 1 || o.batch_size > kMaxBatchSize) {
    return InvalidArgumentError("audit export: batch_size must be 1 to 65536");
  }
  if (o.poll_interval <= milliseconds(0) || o.backoff_min <= milliseconds(0) ||
      o.backoff_max < o.backoff_min || o.stall_retry <= milliseconds(0)) {
    return InvalidArgumentError(
        "audit export: poll_interval, backoff_min and stall_retry must be positive and "
        "backoff_max at least backoff_min");
  }
  return Status::Ok();
}

}  // namespace

class AuditExporter::Impl {
 public:
  Impl(store::AuditLogStore& store, AuditKeyLookup key_lookup, AuditExporterOptions options,
       std::vector<Sink> sinks)
      : store_(store),
        key_lookup_(std::move(key_lookup)),
        options_(std::move(options)),
        sinks_(std::move(sinks)) {
    for (Sink& sink : sinks_) stats_.push_back(sink.stats);
  }

  ~Impl() { Stop(milliseconds(0)); }

  Status StartThread() {
    try {
      thread_ = std::thread([this] {
        NameThisThread("kura-export");
        Run();
      });
    } catch (const std::system_error& e) {
      return ResourceExhaustedError("cannot start the audit exporter",
                                    std::string("audit exporter thread: ") + e.what());
    }
    return Status::Ok();
  }

  void Notify() {
    {
      std::lock_guard lock(mu_);
      wake_ = true;
    }
    cv_.notify_one();
  }

  void Stop(milliseconds drain_timeout) {
    std::lock_guard join_lock(join_mu_);
    {
      std::lock_guard lock(mu_);
      if (!stop_) {
        stop_ = true;
        drain_until_ = SteadyClock::now() + std::max(drain_timeout, milliseconds(0));
      }
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

  std::vector<AuditSinkStats> Stats() const {
    std::lock_guard lock(stats_mu_);
    return stats_;
  }

 private:
  // True once Stop was called and any drain time is over.
  bool Quitting() {
    std::lock_guard lock(mu_);
    return stop_ && SteadyClock::now() >= drain_until_;
  }

  void Run() {
    while (!Quitting()) {
      bool draining = false;
      SteadyClock::time_point drain_until;
      {
        std::lock_guard lock(mu_);
        wake_ = false;
        draining = stop_;
        drain_until = drain_until_;
      }
      bool more = false;
      bool drained = true;
      SteadyClock::time_point next_wake = SteadyClock::now() + options_.poll_interval;
      for (size_t i = 0; i < sinks_.size(); ++i) {
        Sink& sink = sinks_[i];
        if (Quitting()) break;
        if (SteadyClock::now() >= sink.next_attempt) {
          ++sink.stats.attempts;
          sink.last = StepGuarded(sink);
          Publish(i);
        }
        if (sink.last == StepResult::kMore) more = true;
        if (sink.last == StepResult::kWaiting) next_wake = std::min(next_wake, sink.next_attempt);
        // A drain waits for a sink that is down only while it may still come back in time; a
        // stalled sink cannot make progress at all.
        if (sink.last == StepResult::kMore ||
            (sink.last == StepResult::kWaiting && !sink.stalled_at &&
             sink.next_attempt < drain_until)) {
          drained = false;
        }
      }
      if (draining) {
        if (drained) break;
        next_wake = std::min(next_wake, drain_until);
      }
      WriteMarkIfDue(false);
      if (more) continue;
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, next_wake, [this, draining] { return wake_ || (stop_ && !draining); });
    }
    for (size_t i = 0; i < sinks_.size(); ++i) {
      CloseSink(sinks_[i]);
      Publish(i);
    }
    WriteMarkIfDue(true);  // The orderly closes above confirmed the last batches.
  }

  // Keeps the furthest record any sink has received for the delivery mark.
  void NoteDelivered(const DeliveryMark& mark) {
    if (options_.delivery_mark.empty() || (marked_ && mark.sequence <= marked_->sequence)) return;
    if (!mark_pending_ || mark.sequence > mark_pending_->sequence) mark_pending_ = mark;
  }

  // Writes the pending delivery mark when the interval has passed (or `now`). A failure is
  // logged once per outage and retried: a mark that lags only narrows what the start-up check
  // can see, while one that ran ahead of the database could refuse a sound start, so the mark
  // only ever names records whose cursor is durable.
  void WriteMarkIfDue(bool now) {
    if (!mark_pending_) return;
    const SteadyClock::time_point t = SteadyClock::now();
    if (!now && t < mark_due_) return;
    mark_due_ = t + options_.delivery_mark_interval;
    Status written = WriteDeliveryMark(options_.delivery_mark, *mark_pending_);
    if (!written.ok()) {
      if (!mark_failing_) {
        log::Warn("audit_delivery_mark_failed", {{"path", options_.delivery_mark.string()},
                                                 {"code", StatusCodeName(written.code())},
                                                 {"detail", written.internal_detail()}});
      }
      mark_failing_ = true;
      return;
    }
    mark_failing_ = false;
    marked_ = std::move(mark_pending_);
    mark_pending_.reset();
  }

  StepResult StepGuarded(Sink& sink) {
    try {
      return Step(sink);
    } catch (const std::exception& e) {
      // Allocation failure or a third-party throw: the state of the batch is unknown, so start
      // over from the durable cursor after a pause.
      return Fail(sink, InternalError("audit export failed", std::string("exception: ") + e.what()),
                  "internal");
    }
  }

  StepResult Step(Sink& sink) {
    if (!sink.transport->connected()) {
      Status connected = sink.transport->Connect();
      if (!connected.ok()) return Fail(sink, connected, "connect");
      // Whatever was in flight on the old connection may be lost: resend from the cursors.
      RewindToCursors(sink);
    } else if (InFlight(sink)) {
      // Still connected since the last batch: the most a syslog receiver ever confirms short of
      // closing the connection.
      Status check = sink.transport->Check();
      if (!check.ok()) return Fail(sink, check, "send");
      Status committed = Commit(sink);
      if (!committed.ok()) return Fail(sink, committed, "store");
    }

    StatusOr<std::vector<AuditRow>> rows = store_.ReadAuditRows(sink.sent, options_.batch_size);
    if (!rows.ok()) return Fail(sink, rows.status(), "store");
    StatusOr<std::vector<AuditStatement>> checkpoints =
        store_.ReadAuditCheckpointsAfter(sink.sent_checkpoint, options_.batch_size);
    if (!checkpoints.ok()) return Fail(sink, checkpoints.status(), "store");
    StatusOr<Batch> batch = BuildBatch(sink, *rows, *checkpoints);
    if (!batch.ok()) return Fail(sink, batch.status(), "store");

    if (!batch->messages.empty()) {
      Status sent = sink.transport->Send(batch->messages);
      if (!sent.ok()) return Fail(sink, sent, "send");
      sink.sent = batch->next;
      sink.sent_checkpoint = batch->next_checkpoint;
      if (batch->last) sink.sent_last = std::move(batch->last);
      sink.in_flight_records += batch->records;
      sink.in_flight_checkpoints += batch->checkpoints;
      if (sink.transport->durable_on_send()) {
        Status committed = Commit(sink);
        if (!committed.ok()) return Fail(sink, committed, "store");
      }
    } else if (batch->next != sink.sent) {
      // Nothing to send, but a gap explained by pruning moved the position (nothing was in
      // flight: that was settled above).
      sink.sent = batch->next;
      Status committed = Commit(sink);
      if (!committed.ok()) return Fail(sink, committed, "store");
    }
    if (!batch->error.ok()) return Fail(sink, batch->error, "keys");
    Recovered(sink);
    if (batch->stall_at) return Stall(sink, *batch->stall_at, batch->stall_reason);
    if (sink.stalled_at && sink.sent > *sink.stalled_at) {
      log::Info("audit_export_resumed", {{"sink", sink.name}, {"sequence", *sink.stalled_at}});
      sink.stalled_at.reset();
    }
    return batch->more ? StepResult::kMore : StepResult::kIdle;
  }

  // Interleaves rows and checkpoints: checkpoint N right after record N-1. Stops at the first
  // row that cannot be exported as it is, and before a row that an unread checkpoint might
  // have to precede.
  StatusOr<Batch> BuildBatch(const Sink& sink, const std::vector<AuditRow>& rows,
                             const std::vector<AuditStatement>& checkpoints) {
    Batch batch;
    batch.next = sink.sent;
    batch.next_checkpoint = sink.sent_checkpoint;
    // With a full page of checkpoints, later ones are unread: no row at or past the last one.
    const bool checkpoints_full = checkpoints.size() == options_.batch_size;
    const uint64_t row_limit =
        checkpoints_full ? checkpoints.back().tree_size : std::numeric_limits<uint64_t>::max();
    size_t next_checkpoint = 0;
    auto add_checkpoints_up_to = [&](uint64_t tree_size) {
      while (next_checkpoint < checkpoints.size() &&
             checkpoints[next_checkpoint].tree_size <= tree_size) {
        batch.messages.push_back(sink.transport->FormatCheckpoint(checkpoints[next_checkpoint]));
        batch.next_checkpoint = checkpoints[next_checkpoint].tree_size;
        ++batch.checkpoints;
        ++next_checkpoint;
      }
    };
    const AuditRow* last_shipped = nullptr;
    for (const AuditRow& row : rows) {
      if (row.sequence != batch.next) {
        KURA_ASSIGN_OR_RETURN(bool pruned, PrunedBefore(row.sequence));
        if (row.sequence < batch.next || !pruned) {
          batch.stall_at = batch.next;
          batch.stall_reason = "missing";
          break;
        }
        log::Warn("audit_export_skipped_pruned",
                  {{"sink", sink.name}, {"from", batch.next}, {"to", row.sequence}});
        batch.next = row.sequence;
      }
      add_checkpoints_up_to(batch.next);
      if (row.sequence >= row_limit) {
        batch.more = true;
        break;
      }
      StatusOr<std::string> canonical = OpenAuditRow(row, key_lookup_);
      if (!canonical.ok()) {
        // A data key that cannot be fetched right now is an outage, not a bad row.
        if (canonical.status().code() == StatusCode::kUnavailable) {
          batch.error = canonical.status();
        } else {
          batch.stall_at = row.sequence;
          batch.stall_reason = "unreadable";
        }
        break;
      }
      StatusOr<AuditRecord> record = DecodeAuditRecord(*canonical);
      if (!record.ok() || record->sequence != row.sequence) {
        // A sealed record moved to another row decrypts fine but names its own sequence.
        batch.stall_at = row.sequence;
        batch.stall_reason = record.ok() ? "sequence-mismatch" : "undecodable";
        break;
      }
      batch.messages.push_back(sink.transport->FormatRecord(*record));
      last_shipped = &row;
      ++batch.records;
      batch.next = row.sequence + 1;
    }
    if (last_shipped != nullptr) {
      batch.last =
          DeliveryMark{.sequence = last_shipped->sequence, .chain_hash = last_shipped->chain_hash};
    }
    if (!batch.stall_at && batch.error.ok() && !batch.more) {
      add_checkpoints_up_to(batch.next);
      // More rows may be stored, or more checkpoints that are due. Checkpoints left over here
      // are ahead of the stored rows read and wait for them.
      batch.more = rows.size() == options_.batch_size ||
                   (checkpoints_full && next_checkpoint == checkpoints.size());
    }
    return batch;
  }

  // True when a prune anchor says the records before `sequence` may be gone. Reads the anchors
  // alone (normally one), not every stored checkpoint.
  StatusOr<bool> PrunedBefore(uint64_t sequence) {
    KURA_ASSIGN_OR_RETURN(std::vector<AuditStatement> anchors, store_.ReadAuditPruneAnchors());
    return std::any_of(anchors.begin(), anchors.end(),
                       [sequence](const AuditStatement& a) { return a.tree_size >= sequence; });
  }

  static bool InFlight(const Sink& sink) {
    return sink.sent != sink.cursor || sink.sent_checkpoint != sink.checkpoint_cursor;
  }

  // Forgets what is in flight: the next batch starts again at the durable cursors.
  static void RewindToCursors(Sink& sink) {
    sink.sent = sink.cursor;
    sink.sent_checkpoint = sink.checkpoint_cursor;
    sink.sent_last = sink.cursor_last;
    sink.in_flight_records = 0;
    sink.in_flight_checkpoints = 0;
  }

  // Makes what was sent durable. The record cursor goes first: a crash in between only resends
  // checkpoints, which are then still behind the records they cover.
  Status Commit(Sink& sink) {
    if (sink.sent != sink.cursor) {
      KURA_RETURN_IF_ERROR(store_.WriteAuditCursor(sink.name, sink.sent));
      sink.cursor = sink.sent;
      sink.stats.records_shipped += sink.in_flight_records;
      sink.in_flight_records = 0;
      sink.cursor_last = sink.sent_last;
      if (sink.cursor_last) NoteDelivered(*sink.cursor_last);
    }
    if (sink.sent_checkpoint != sink.checkpoint_cursor) {
      KURA_RETURN_IF_ERROR(store_.WriteAuditCursor(sink.checkpoint_name, sink.sent_checkpoint));
      sink.checkpoint_cursor = sink.sent_checkpoint;
      sink.stats.checkpoints_shipped += sink.in_flight_checkpoints;
      sink.in_flight_checkpoints = 0;
    }
    return Status::Ok();
  }

  // Logs the first failure of an outage and backs off; the sink resends from its durable
  // cursors (after reconnecting, when the transport broke).
  StepResult Fail(Sink& sink, const Status& status, std::string_view step) {
    ++sink.stats.failures;
    sink.stats.last_error = status.message();
    if (!sink.in_outage) {
      sink.in_outage = true;
      std::string_view code = StatusCodeName(status.code());
      const std::string& detail = status.internal_detail();
      if (status.code() == StatusCode::kUnavailable) {
        log::Warn("audit_export_unavailable", {{"sink", sink.name},
                                               {"step", step},
                                               {"code", code},
                                               {"detail", detail},
                                               {"cursor", sink.cursor}});
      } else {
        log::Error("audit_export_failed", {{"sink", sink.name},
                                           {"step", step},
                                           {"code", code},
                                           {"detail", detail},
                                           {"cursor", sink.cursor}});
      }
    }
    if (step == "internal") {
      // An exception left the batch in an unknown state: send it again.
      RewindToCursors(sink);
    }
    // A setting to fix will not fix itself soon: retry at the slowest pace.
    milliseconds wait =
        status.code() == StatusCode::kUnavailable
            ? (sink.backoff.count() == 0 ? options_.backoff_min
                                         : std::min(sink.backoff * 2, options_.backoff_max))
            : options_.backoff_max;
    sink.backoff = wait;
    sink.next_attempt = SteadyClock::now() + wait;
    return StepResult::kWaiting;
  }

  void Recovered(Sink& sink) {
    if (sink.in_outage) {
      log::Info("audit_export_recovered",
                {{"sink", sink.name}, {"failures", sink.stats.failures}, {"cursor", sink.cursor}});
    }
    sink.in_outage = false;
    sink.backoff = milliseconds(0);
    if (!sink.stalled_at) sink.stats.last_error.clear();
  }

  StepResult Stall(Sink& sink, uint64_t sequence, std::string_view reason) {
    if (sink.stalled_at != sequence) {
      log::Error("audit_export_stalled", {{"sink", sink.name},
                                          {"sequence", sequence},
                                          {"reason", reason},
                                          {"hint", "run kura audit verify"}});
    }
    sink.stalled_at = sequence;
    sink.stats.last_error = "audit record " + std::to_string(sequence) + " cannot be exported (" +
                            std::string(reason) + "); run kura audit verify";
    // Come back soon while a batch awaits confirmation, then only slowly.
    sink.next_attempt =
        SteadyClock::now() + (InFlight(sink) ? options_.poll_interval : options_.stall_retry);
    return StepResult::kWaiting;
  }

  void CloseSink(Sink& sink) {
    Status closed = UnavailableError("not connected");
    if (sink.transport->connected()) {
      try {
        closed = sink.transport->Close();
      } catch (const std::exception& e) {
        closed = InternalError("audit export failed", std::string("exception: ") + e.what());
      }
    }
    bool committed = false;
    if (closed.ok()) {
      // The receiver has read everything: what was in flight is delivered.
      Status status = Commit(sink);
      committed = status.ok();
      if (!status.ok()) {
        log::Warn("audit_export_cursor_not_saved",
                  {{"sink", sink.name}, {"detail", status.internal_detail()}});
      }
    }
    log::Info("audit_export_stopped", {{"sink", sink.name},
                                       {"cursor", sink.cursor},
                                       {"checkpoint_cursor", sink.checkpoint_cursor},
                                       {"closed_cleanly", closed.ok() && committed}});
  }

  void Publish(size_t i) {
    Sink& sink = sinks_[i];
    sink.stats.cursor = sink.cursor;
    sink.stats.checkpoint_cursor = sink.checkpoint_cursor;
    sink.stats.connected = sink.transport->connected();
    sink.stats.stalled_at = sink.stalled_at;
    std::lock_guard lock(stats_mu_);
    stats_[i] = sink.stats;
  }

  store::AuditLogStore& store_;
  const AuditKeyLookup key_lookup_;
  const AuditExporterOptions options_;
  std::vector<Sink> sinks_;  // Exporter thread only (after the start).
  // The delivery mark, exporter thread only: written, waiting to be written, when next.
  std::optional<DeliveryMark> marked_;
  std::optional<DeliveryMark> mark_pending_;
  SteadyClock::time_point mark_due_{};
  bool mark_failing_ = false;

  std::mutex mu_;
  std::condition_variable cv_;
  bool wake_ = false;                    // Guarded by mu_.
  bool stop_ = false;                    // Guarded by mu_.
  SteadyClock::time_point drain_until_;  // Guarded by mu_.

  std::mutex join_mu_;  // Serializes Stop.
  std::thread thread_;

  mutable std::mutex stats_mu_;
  std::vector<AuditSinkStats> stats_;  // Guarded by stats_mu_.
};

StatusOr<std::unique_ptr<AuditExporter>> AuditExporter::Start(store::AuditLogStore& store,
                                                              AuditKeyLookup key_lookup,
                                                              AuditExporterOptions options) {
  if (!options.syslog && !options.json_lines) {
    return InvalidArgumentError(
        "audit export: no sink configured (audit.syslog_url or audit.json_lines_file)");
  }
  KURA_RETURN_IF_ERROR(ValidateTiming(options));
  if (key_lookup == nullptr) return InvalidArgumentError("audit export: no key lookup");
  std::vector<Sink> sinks;
  if (options.syslog) {
    KURA_RETURN_IF_ERROR(ValidateSinkName(options.syslog->name, "audit export syslog sink"));
    Sink sink;
    sink.name = options.syslog->name;
    sink.kind = "syslog";
    KURA_ASSIGN_OR_RETURN(sink.transport, MakeSyslogTransport(*options.syslog));
    sinks.push_back(std::move(sink));
  }
  if (options.json_lines) {
    KURA_RETURN_IF_ERROR(
        ValidateSinkName(options.json_lines->name, "audit export JSON-lines sink"));
    if (options.syslog && options.syslog->name == options.json_lines->name) {
      return InvalidArgumentError("audit export: the two sinks need different names");
    }
    Sink sink;
    sink.name = options.json_lines->name;
    sink.kind = "json-lines";
    KURA_ASSIGN_OR_RETURN(sink.transport, MakeJsonLinesTransport(*options.json_lines));
    sinks.push_back(std::move(sink));
  }
  for (Sink& sink : sinks) {
    sink.checkpoint_name = sink.name + std::string(kCheckpointCursorSuffix);
    KURA_ASSIGN_OR_RETURN(sink.cursor, store.ReadAuditCursor(sink.name));
    KURA_ASSIGN_OR_RETURN(sink.checkpoint_cursor, store.ReadAuditCursor(sink.checkpoint_name));
    sink.sent = sink.cursor;
    sink.sent_checkpoint = sink.checkpoint_cursor;
    sink.stats.name = sink.name;
    sink.stats.cursor = sink.cursor;
    sink.stats.checkpoint_cursor = sink.checkpoint_cursor;
    sink.stats.connected = sink.transport->connected();
    log::Info("audit_export_started", {{"sink", sink.name},
                                       {"kind", sink.kind},
                                       {"cursor", sink.cursor},
                                       {"checkpoint_cursor", sink.checkpoint_cursor}});
  }
  auto impl =
      std::make_unique<Impl>(store, std::move(key_lookup), std::move(options), std::move(sinks));
  KURA_RETURN_IF_ERROR(impl->StartThread());
  return std::unique_ptr<AuditExporter>(new AuditExporter(std::move(impl)));
}

namespace {

// "N record(s)", for the start-up checks' messages.
std::string RecordCount(uint64_t size) {
  return std::to_string(size) + (size == 1 ? " record" : " records");
}

// Whether the stored record at `sequence` has another chain hash than `expected`. False when no
// record is stored there (pruned): it cannot be compared.
StatusOr<bool> StoredChainDiffers(store::AuditLogStore& store, uint64_t sequence,
                                  std::string_view expected) {
  KURA_ASSIGN_OR_RETURN(std::vector<store::AuditRow> rows, store.ReadAuditRows(sequence, 1));
  if (rows.empty() || rows.front().sequence != sequence) return false;
  return rows.front().chain_hash != expected;
}

Status SinkFileAhead(const std::filesystem::path& file, const std::string& what) {
  return FailedPreconditionError(
      "the audit sink file " + file.string() + " " + what +
      ": the database was restored from an older copy, rolled back or replaced, and its audit log "
      "would reuse sequence numbers the file already holds. Compare them with `kura audit verify "
      "--data-dir DIR --checkpoints " +
      file.string() +
      "`; to go on with this database, move the file aside (keep it: it is the evidence) so that "
      "a new one starts");
}

}  // namespace

// Scans backwards until both are found or `max_bytes` were read.
StatusOr<std::optional<JsonLinesFileTail>> ReadJsonLinesFileTail(const std::filesystem::path& file,
                                                                 uint64_t max_bytes) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return std::optional<JsonLinesFileTail>();
  std::ifstream in(file, std::ios::binary);
  if (!in) return FailedPreconditionError("cannot read the audit sink file " + file.string());
  in.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(in.tellg());
  const uint64_t floor = size > max_bytes ? size - max_bytes : 0;
  constexpr uint64_t kChunk = 1 << 20;
  JsonLinesFileTail tail;
  std::string pending;  // Bytes after the earliest newline seen so far, not yet a whole line.
  bool first_line = true;
  uint64_t end = size;
  while (end > floor && !(tail.last_record && tail.last_checkpoint)) {
    const uint64_t begin = std::max(floor, end >= kChunk ? end - kChunk : 0);
    std::string chunk(end - begin, '\0');
    in.seekg(static_cast<std::streamoff>(begin));
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    if (!in) return FailedPreconditionError("cannot read the audit sink file " + file.string());
    pending.insert(0, chunk);
    end = begin;
    // Lines are whole between two newlines, or from the file's start when it was reached.
    size_t line_end = pending.size();
    while (true) {
      const size_t newline = line_end == 0 ? std::string::npos : pending.rfind('\n', line_end - 1);
      if (newline == std::string::npos && end > 0) break;
      const size_t line_begin = newline == std::string::npos ? 0 : newline + 1;
      const std::string_view line(pending.data() + line_begin, line_end - line_begin);
      if (first_line) {
        first_line = false;  // Bytes after the last newline: a line not finished.
      } else if (!line.empty()) {
        nlohmann::json parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        const std::string type =
            parsed.is_object() && parsed.contains("type") && parsed["type"].is_string()
                ? parsed["type"].get<std::string>()
                : "";
        if (type == "record" && !tail.last_record && parsed.contains("sequence") &&
            parsed["sequence"].is_number_unsigned()) {
          tail.last_record = parsed["sequence"].get<uint64_t>();
        } else if (type == "checkpoint" && !tail.last_checkpoint) {
          StatusOr<std::string> note = ExtractCheckpointNote(line);
          if (note.ok()) tail.last_checkpoint = std::move(*note);
        }
      }
      if (newline == std::string::npos) {
        line_end = 0;
        break;
      }
      line_end = newline;
    }
    pending.resize(line_end);
  }
  return std::optional<JsonLinesFileTail>(std::move(tail));
}

Status CheckSinkFileMatchesLog(const std::filesystem::path& file, store::AuditLogStore& store,
                               const AuditLog& log) {
  KURA_ASSIGN_OR_RETURN(std::optional<JsonLinesFileTail> tail, ReadJsonLinesFileTail(file));
  if (!tail) return Status();
  const uint64_t size = log.committed_size();
  const std::string records = RecordCount(size);
  if (tail->last_record && *tail->last_record >= size) {
    return SinkFileAhead(file, "holds record " + std::to_string(*tail->last_record) +
                                   ", but the database's audit log has " + records);
  }
  if (!tail->last_checkpoint) return Status();
  const NoteVerifierKey& key = log.verifier_key();
  StatusOr<Checkpoint> checkpoint =
      VerifyCheckpoint(*tail->last_checkpoint, log.origin(), std::span(&key, 1));
  if (!checkpoint.ok()) {
    return SinkFileAhead(file, "ends with a checkpoint this log's signing key did not sign");
  }
  if (checkpoint->tree_size > size) {
    return SinkFileAhead(file, "holds a checkpoint of " + std::to_string(checkpoint->tree_size) +
                                   " records, but the database's audit log has " + records);
  }
  if (checkpoint->tree_size == 0) return Status();
  // A pruned record cannot be compared; the records after it were checked above.
  KURA_ASSIGN_OR_RETURN(
      bool differs,
      StoredChainDiffers(store, checkpoint->tree_size - 1,
                         {reinterpret_cast<const char*>(checkpoint->chain_head.data()),
                          checkpoint->chain_head.size()}));
  if (differs) {
    return SinkFileAhead(file, "holds a checkpoint of " + std::to_string(checkpoint->tree_size) +
                                   " records whose chain head differs from the database's");
  }
  return Status();
}

namespace {

constexpr std::string_view kDeliveryMarkMagic = "kura-audit-delivered/v1";

Status MarkUnusable(const std::filesystem::path& file, std::string_view why) {
  return FailedPreconditionError(
      "the audit delivery mark " + file.string() + " " + std::string(why) +
      ". Check the database with `kura audit verify --data-dir DIR --checkpoints <a SIEM's "
      "copy>`; to go on with this database, move the mark aside (keep it: it is evidence)");
}

}  // namespace

Status WriteDeliveryMark(const std::filesystem::path& file, const DeliveryMark& mark) {
  const std::string text = std::string(kDeliveryMarkMagic) + " " + std::to_string(mark.sequence) +
                           " " +
                           Base64Encode({reinterpret_cast<const uint8_t*>(mark.chain_hash.data()),
                                         mark.chain_hash.size()}) +
                           "\n";
  std::filesystem::path temp = file;
  temp += ".tmp";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return UnavailableError("cannot write the audit delivery mark",
                            temp.string() + ": " + std::strerror(errno));
  }
  std::string failure;  // The first step that failed, with errno's text.
  auto check = [&failure](bool ok, const char* step) {
    if (!ok && failure.empty()) failure = std::string(step) + ": " + std::strerror(errno);
  };
  // A .tmp left behind by a crash keeps its mode through O_TRUNC.
  check(::fchmod(fd, 0600) == 0, "chmod");
  for (size_t done = 0; failure.empty() && done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    check(n > 0, "write");
    if (n > 0) done += static_cast<size_t>(n);
  }
  if (failure.empty()) check(::fsync(fd) == 0, "fsync");
  check(::close(fd) == 0, "close");
  if (failure.empty()) check(::rename(temp.c_str(), file.c_str()) == 0, "rename");
  if (failure.empty()) return Status::Ok();
  ::unlink(temp.c_str());
  return UnavailableError("cannot write the audit delivery mark", file.string() + ": " + failure);
}

StatusOr<std::optional<DeliveryMark>> ReadDeliveryMark(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec) && !ec) return std::optional<DeliveryMark>();
  std::ifstream in(file, std::ios::binary);
  std::string line;
  if (!in || !std::getline(in, line)) return MarkUnusable(file, "cannot be read");
  const size_t space = line.find(' ');
  const size_t second = space == std::string::npos ? space : line.find(' ', space + 1);
  DeliveryMark mark;
  if (second == std::string::npos ||
      std::string_view(line).substr(0, space) != kDeliveryMarkMagic) {
    return MarkUnusable(file, "is not a delivery mark");
  }
  const std::string_view number = std::string_view(line).substr(space + 1, second - space - 1);
  auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), mark.sequence);
  if (error != std::errc() || end != number.data() + number.size() || number.empty() ||
      !Base64DecodeCanonical(std::string_view(line).substr(second + 1), mark.chain_hash) ||
      mark.chain_hash.size() != kHashBytes) {
    return MarkUnusable(file, "is not a delivery mark");
  }
  return std::optional<DeliveryMark>(std::move(mark));
}

StatusOr<DeliveryMarkMatch> CompareDeliveryMark(const DeliveryMark& mark,
                                                store::AuditLogStore& store, uint64_t log_size) {
  if (mark.sequence >= log_size) return DeliveryMarkMatch::kBeyondLog;
  KURA_ASSIGN_OR_RETURN(std::vector<store::AuditRow> rows, store.ReadAuditRows(mark.sequence, 1));
  if (rows.empty() || rows.front().sequence != mark.sequence) return DeliveryMarkMatch::kPruned;
  return rows.front().chain_hash == mark.chain_hash ? DeliveryMarkMatch::kAgrees
                                                    : DeliveryMarkMatch::kOtherChain;
}

Status CheckDeliveryMarkMatchesLog(const std::filesystem::path& file, store::AuditLogStore& store,
                                   const AuditLog& log) {
  KURA_ASSIGN_OR_RETURN(std::optional<DeliveryMark> mark, ReadDeliveryMark(file));
  if (!mark) return Status();
  const uint64_t size = log.committed_size();
  KURA_ASSIGN_OR_RETURN(DeliveryMarkMatch match, CompareDeliveryMark(*mark, store, size));
  switch (match) {
    case DeliveryMarkMatch::kAgrees:
    case DeliveryMarkMatch::kPruned:
      return Status();
    case DeliveryMarkMatch::kBeyondLog:
      return MarkUnusable(file, "says a sink received record " + std::to_string(mark->sequence) +
                                    ", but the database's audit log has " + RecordCount(size) +
                                    ": the database was restored from an older copy, rolled back "
                                    "or replaced, and its log would send receivers new records "
                                    "under sequence numbers they already hold");
    case DeliveryMarkMatch::kOtherChain:
      return MarkUnusable(file, "names record " + std::to_string(mark->sequence) +
                                    " with another chain hash than the database's: the database "
                                    "holds another audit log than the one its sinks received");
  }
  return InternalError("unknown delivery mark comparison");
}

AuditExporter::AuditExporter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AuditExporter::~AuditExporter() { Stop(); }

void AuditExporter::Notify() { impl_->Notify(); }

void AuditExporter::Stop(std::chrono::milliseconds drain_timeout) { impl_->Stop(drain_timeout); }

std::vector<AuditSinkStats> AuditExporter::Stats() const { return impl_->Stats(); }

}  // namespace kura::audit
