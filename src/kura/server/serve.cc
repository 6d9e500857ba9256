// Wiring for `kura serve`.
#include "kura/server/serve.h"

#include <unistd.h>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <thread>

#include "kura/api/audit_api.h"
#include "kura/api/fhir_api.h"
#include "kura/api/fhir_base.h"
#include "kura/api/request_gate.h"
#include "kura/api/responses.h"
#include "kura/audit/exporter.h"
#include "kura/auth/api_token_authenticator.h"
#include "kura/base/config.h"
#include "kura/base/log.h"
#include "kura/base/thread_name.h"
#include "kura/crypto/local_key_file.h"
#include "kura/fhir/data_register.h"
#include "kura/fhir/resource.h"
#include "kura/fhir/validator.h"
#include "kura/http/server.h"
#include "kura/http/tls.h"
#include "kura/ops/audit_access.h"
#include "kura/ops/audit_prune.h"
#include "kura/ops/audit_verify.h"
#include "kura/ops/data_dir.h"
#include "kura/ops/search_reindex.h"
#include "kura/store/caching_store.h"
#include "kura/store/encrypting_store.h"
#include "kura/store/sqlite/sqlite_store.h"
#include "kura/store/sqlite/wal_write_buffer.h"

namespace kura::server {
namespace {

int Fail(const Status& s) {
  std::fprintf(stderr, "kura serve: %s\n", s.message().c_str());
  log::Error("startup_failed", {{"reason", s.message()}, {"detail", s.internal_detail()}});
  return 1;
}

StatusOr<std::pair<std::string, uint16_t>> SplitListen(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) return InvalidArgumentError("server.listen: expected HOST:PORT");
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  unsigned port = 0;
  std::string_view p = std::string_view(listen).substr(colon + 1);
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  if (ec != std::errc() || ptr != p.data() + p.size() || port > 65535) {
    return InvalidArgumentError("server.listen: invalid port in " + listen);
  }
  return std::make_pair(host, static_cast<uint16_t>(port));
}

audit::AuditRecord SystemRecord(std::string_view action, const Config& config) {
  audit::AuditRecord r;
  r.category = std::string(audit::category::kSystem);
  r.action = std::string(action);
  r.actor.kind = "system";
  r.actor.id = "kura-server";
  r.actor.tenant = config.tenant;
  r.details.emplace_back("version", cli::kVersion);
  return r;
}

// Runs a task on its own thread at once and then every `period` until destroyed; destruction
// interrupts the wait, and a long task can ask `keep_going()` between steps.
class PeriodicTask {
 public:
  using Task = std::function<void(const std::function<bool()>& keep_going)>;
  PeriodicTask(std::chrono::milliseconds period, Task task,
               std::chrono::milliseconds first_run_after = std::chrono::milliseconds(0))
      : period_(period), first_run_after_(first_run_after), task_(std::move(task)), thread_([this] {
          NameThisThread("kura-periodic");
          Run();
        }) {}
  ~PeriodicTask() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

 private:
  void Run() {
    const std::function<bool()> keep_going = [this] {
      std::lock_guard<std::mutex> lock(mu_);
      return !stopping_;
    };
    std::unique_lock<std::mutex> lock(mu_);
    wake_.wait_for(lock, first_run_after_, [this] { return stopping_; });
    while (!stopping_) {
      lock.unlock();
      task_(keep_going);
      lock.lock();
      wake_.wait_for(lock, period_, [this] { return stopping_; });
    }
  }

  const std::chrono::milliseconds period_;
  const std::chrono::milliseconds first_run_after_;
  const Task task_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // Guarded by mu_.
  std::thread thread_;
};

// Signs the log's tail when records wait for a checkpoint and the policy's time is up, so a
// quiet server still ships a signed tree head every audit.checkpoint_every_seconds.
void SignQuietTail(store::Store& store, const audit::AuditLog& log) {
  if (!log.CheckpointDue(Clock::System().Now())) return;
  store::WriteBatch batch;
  batch.audit = audit::AuditLog::Heartbeat();
  if (Status s = store.Commit(std::move(batch)).status(); !s.ok()) {
    log::Error("audit_checkpoint_failed",
               {{"code", StatusCodeName(s.code())}, {"detail", s.internal_detail()}});
  }
}

// Applies audit.retention_days (at start-up and then daily). A run that fails (a log that no
// longer verifies, a store error) is logged and retried the next day: keeping records longer is
// the safe side, and the server keeps serving.
void ApplyRetention(audit::AuditLog& log, const Config& config,
                    const std::function<bool()>& keep_going) {
  audit::AuditPruneOptions options;
  options.actor = SystemRecord(audit::action::kPrune, config).actor;
  // A first prune of a long log takes many steps; shutdown need not wait for all of them.
  options.keep_going = keep_going;
  StatusOr<audit::AuditPruneResult> result =
      ops::ApplyAuditRetention(log, config, Clock::System(), std::move(options));
  if (!result.ok()) {
    log::Error("audit_prune_failed", {{"code", StatusCodeName(result.status().code())},
                                      {"reason", result.status().message()},
                                      {"detail", result.status().internal_detail()}});
    return;
  }
  if (result->steps > 0) {
    log::Info("audit_pruned", {{"records", result->records_pruned},
                               {"first_sequence", result->first_retained_sequence},
                               {"retention_days", config.audit.retention_days}});
  }
  if (!result->held_back_by.empty()) {
    log::Warn("audit_prune_held_back", {{"reason", result->held_back_by},
                                        {"first_sequence", result->first_retained_sequence}});
  }
}

// Verifies the whole audit log (audit.verify_every_seconds), so tampering with the database is
// found while the server runs, not only when someone runs `kura audit verify`. A clean result is
// recorded as a `system`/`verify` record. A finding is logged as an error at every run until the
// log verifies again, and nothing is appended for it: a record chained onto a tampered head
// would extend the evidence instead of preserving it (as `kura audit verify` does).
void VerifyAuditLogOnSchedule(store::SqliteStore& backend, const ops::AuditLogAccess& audit_log,
                              const Config& config, const std::function<bool()>& keep_going) {
  const auto started = std::chrono::steady_clock::now();
  StatusOr<ops::ServedLogVerification> verified =
      ops::VerifyServedAuditLog(backend, audit_log, config, keep_going);
  if (!verified.ok() && !keep_going()) return;  // Stopped for shutdown.
  const int64_t elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - started)
                                 .count();
  if (!verified.ok()) {
    log::Error("audit_verify_failed", {{"code", StatusCodeName(verified.status().code())},
                                       {"reason", verified.status().message()},
                                       {"detail", verified.status().internal_detail()}});
    return;
  }
  const audit::VerificationReport& report = verified->report;
  if (!report.ok()) {
    // Sequences and finding kinds only: the messages may quote stored values.
    std::optional<uint64_t> first_bad = report.FirstBadSequence();
    log::Error("audit_log_tampered",
               {{"issues", static_cast<int64_t>(report.issue_count)},
                {"first_issue", report.issues.empty()
                                    ? std::string()
                                    : std::string(audit::IssueKindName(report.issues[0].kind))},
                {"first_bad_sequence", first_bad ? static_cast<int64_t>(*first_bad) : -1},
                {"read_failed", report.read_failed},
                {"records_checked", static_cast<int64_t>(report.records_checked)}});
    return;
  }
  audit::AuditRecord record = ops::VerifyRunAuditRecord(
      report, verified->external_checkpoints, ToMicros(Clock::System().Now()),
      SystemRecord(audit::action::kVerify, config));
  if (Status s = ops::AppendAuditRecord(backend, std::move(record), config, Clock::System());
      !s.ok()) {
    log::Error("audit_append_failed",
               {{"record", "system.verify"}, {"detail", s.internal_detail()}});
    return;
  }
  log::Info("audit_verified",
            {{"records", static_cast<int64_t>(report.records_checked)},
             {"tree_size", static_cast<int64_t>(report.tree_size)},
             {"checkpoints_matched", static_cast<int64_t>(report.checkpoints_matched)},
             {"unsigned_tail", static_cast<int64_t>(report.unsigned_tail)},
             {"external_checkpoints", static_cast<int64_t>(verified->external_checkpoints)},
             {"elapsed_ms", elapsed_ms}});
}

// The SIEM sinks kura.toml asks for; nullopt when none.
StatusOr<std::optional<audit::AuditExporterOptions>> ExporterOptions(const Config& config) {
  audit::AuditExporterOptions options;
  auto path = [&config](const std::string& p) {
    return p.empty() ? std::filesystem::path() : ResolvePath(config, p);
  };
  if (!config.audit.syslog_url.empty()) {
    audit::AuditSyslogSinkOptions syslog;
    syslog.url = config.audit.syslog_url;
    syslog.format = config.audit.syslog_format;
    StatusOr<uint8_t> facility = audit::ParseSyslogFacility(config.audit.syslog_facility);
    if (!facility.ok()) {
      return InvalidArgumentError("configuration key audit.syslog_facility: " +
                                  facility.status().message());
    }
    syslog.message.facility = *facility;
    char host[256] = {0};
    if (::gethostname(host, sizeof(host) - 1) == 0) syslog.message.hostname = host;
    syslog.tls.ca_file = path(config.audit.syslog_ca_file);
    syslog.tls.client_certificate_file = path(config.audit.syslog_client_certificate);
    syslog.tls.client_key_file = path(config.audit.syslog_client_key);
    syslog.tls.server_name = config.audit.syslog_server_name;
    options.syslog = std::move(syslog);
  }
  if (!config.audit.json_lines_file.empty()) {
    options.json_lines = audit::AuditJsonLinesSinkOptions{};
    options.json_lines->path = path(config.audit.json_lines_file);
  }
  if (!options.syslog && !options.json_lines) return std::optional<audit::AuditExporterOptions>();
  options.delivery_mark = ops::AuditDeliveryMarkPath(config.data_dir);
  return std::optional<audit::AuditExporterOptions>(std::move(options));
}

}  // namespace

int Serve(const cli::ServeArgs& args) {
  Environment env = ProcessEnvironment();
  if (!args.listen.empty()) env["KURA_SERVER_LISTEN"] = args.listen;
  StatusOr<ops::OpenedDataDirectory> dir =
      ops::OpenDataDirectory(args.data_dir, env, ops::DataDirectoryUse::kServer);
  if (!dir.ok()) return Fail(dir.status());
  const Config* config = &dir->config;
  log::Level level = log::Level::kInfo;
  log::ParseLevel(config->log.level, level);
  log::SetMinLevel(level);
  auto listen = SplitListen(config->server.listen);
  if (!listen.ok()) return Fail(listen.status());
  store::SqliteStore* backend = dir->db.get();
  crypto::LocalKeyFileProvider* keys = dir->keys.get();
  // The data register: the one compiled in, or the operator's copy. Search rows built under
  // another one are not served (ops/search_reindex.h).
  StatusOr<fhir::DataRegister> data_register = ops::LoadDataRegister(*config);
  if (!data_register.ok()) return Fail(data_register.status());
  if (Status s = ops::CheckSearchIndexFingerprint(*backend, *data_register); !s.ok()) {
    return Fail(s);
  }
  // The audit log opens before anything can be served: without it every request would fail.
  auto opened_audit = ops::OpenAuditLog(*backend, *keys, *config, Clock::System());
  if (!opened_audit.ok()) return Fail(opened_audit.status());
  ops::AuditLogAccess* audit_log = &dir->audit.emplace(std::move(*opened_audit));
  auto exporter_options = ExporterOptions(*config);
  if (!exporter_options.ok()) return Fail(exporter_options.status());
  std::unique_ptr<audit::AuditExporter> exporter;
  // Before anything is appended: a log that its sinks have seen further must not go on. The mark
  // is checked also with no sink configured now: the receivers of earlier ones still hold what
  // they were sent.
  if (Status s = audit::CheckDeliveryMarkMatchesLog(ops::AuditDeliveryMarkPath(config->data_dir),
                                                    *backend, *audit_log->log);
      !s.ok()) {
    return Fail(s);
  }
  if (*exporter_options) {
    if ((*exporter_options)->json_lines) {
      if (Status s = audit::CheckSinkFileMatchesLog((*exporter_options)->json_lines->path, *backend,
                                                    *audit_log->log);
          !s.ok()) {
        return Fail(s);
      }
    }
    auto started =
        audit::AuditExporter::Start(*backend, audit_log->key_lookup, std::move(**exporter_options));
    if (!started.ok()) return Fail(started.status());
    exporter = std::move(*started);
    audit_log->log->SetCommitListener([sink = exporter.get()](uint64_t) { sink->Notify(); });
  }
  if (Status s = ops::AppendAuditRecord(*backend, SystemRecord(audit::action::kStart, *config),
                                        *config, Clock::System());
      !s.ok()) {
    return Fail(s);
  }
  auto tls = http::MakeServerTlsContext(ResolvePath(*config, config->tls.certificate),
                                        ResolvePath(*config, config->tls.private_key));
  if (!tls.ok()) return Fail(tls.status());

  boost::asio::thread_pool blocking(static_cast<size_t>(config->server.blocking_threads));
  // This server is the database's only writer, so the record cache stays coherent.
  store::CachingStore cached(*backend, static_cast<size_t>(config->storage.record_cache_mib) << 20);
  store::EncryptingStore store(
      cached, *keys, config->tenant, static_cast<size_t>(config->keys.data_key_cache_size),
      [&blocking](std::function<void()> task) { boost::asio::post(blocking, std::move(task)); });
  auth::ApiTokenAuthenticator authenticator(*backend);
  fhir::R4Validator validator;
  const std::string base = api::TrimmedPublicBase(config->server.public_base_url);
  api::RequestGate gate(store, authenticator, blocking, config->tenant);
  api::AuditApi audit_api({.public_base_url = base,
                           .page_size = config->fhir.history_page_size,
                           .max_page_size = config->fhir.history_max_page_size},
                          *backend, audit_log->key_lookup, audit_log->log->origin(),
                          audit_log->log->verifier_key(), gate, blocking);
  StatusOr<std::unique_ptr<api::FhirSearch>> search =
      api::FhirSearch::Create({.public_base_url = base, .limits = {}, .max_included = 1000}, store,
                              *data_register, blocking);
  if (!search.ok()) return Fail(search.status());
  api::FhirApi fhir_api(
      {.public_base_url = base,
       .software_version = cli::kVersion,
       .max_json_depth = static_cast<size_t>(config->server.max_json_depth),
       .history_page_size = config->fhir.history_page_size,
       .history_max_page_size = config->fhir.history_max_page_size,
       .max_bundle_entries = static_cast<size_t>(config->fhir.max_bundle_entries)},
      store, gate, validator, blocking, **search, *data_register, &audit_api);
  http::Router router;
  audit_api.RegisterRoutes(router);
  fhir_api.RegisterRoutes(router);

  http::ServerOptions options;
  options.listen_host = listen->first;
  options.listen_port = listen->second;
  options.io_threads = static_cast<int>(config->server.io_threads);
  options.max_connections = static_cast<size_t>(config->server.max_connections);
  options.max_header_bytes = static_cast<size_t>(config->server.max_header_bytes);
  options.max_body_bytes = static_cast<size_t>(config->server.max_body_bytes);
  options.header_timeout = std::chrono::seconds(config->server.header_timeout_seconds);
  options.body_timeout = std::chrono::seconds(config->server.body_timeout_seconds);
  options.idle_timeout = std::chrono::seconds(config->server.idle_timeout_seconds);
  options.write_timeout = std::chrono::seconds(config->server.write_timeout_seconds);
  options.shutdown_grace = std::chrono::seconds(config->server.shutdown_grace_seconds);
  options.max_requests_per_connection = config->server.max_requests_per_connection;
  auto server =
      http::Server::Create(options, std::move(*tls), std::move(router), &api::HttpLayerError);
  if (!server.ok()) return Fail(server.status());
  log::Info("starting", {{"version", cli::kVersion},
                         {"storage", config->storage.backend},
                         {"key_provider", keys->Name()}});
  Status run;
  {
    PeriodicTask heartbeat(std::chrono::seconds(1), [&](const std::function<bool()>&) {
      SignQuietTail(*backend, *audit_log->log);
    });
    // A prune deletes the rows a verification may be reading: the two take turns.
    std::mutex audit_maintenance;
    const std::chrono::seconds verify_every(config->audit.verify_every_seconds);
    PeriodicTask verification(
        verify_every,
        [&](const std::function<bool()>& keep_going) {
          std::lock_guard<std::mutex> turn(audit_maintenance);
          VerifyAuditLogOnSchedule(*backend, *audit_log, *config, keep_going);
        },
        std::min<std::chrono::milliseconds>(verify_every, std::chrono::minutes(5)));
    PeriodicTask retention(std::chrono::hours(24), [&](const std::function<bool()>& keep_going) {
      std::lock_guard<std::mutex> turn(audit_maintenance);
      ApplyRetention(*audit_log->log, *config, keep_going);
    });
    run = (*server)->Run();
    blocking.join();
  }
  // Signed at once: otherwise the records since the last checkpoint stay unsigned until the next
  // start, and could be cut off unnoticed while the server is down.
  if (Status s = ops::AppendAuditRecord(*backend, SystemRecord(audit::action::kStop, *config),
                                        *config, Clock::System(), ops::AuditTailSigning::kNow);
      !s.ok()) {
    log::Error("audit_append_failed", {{"record", "system.stop"}, {"detail", s.internal_detail()}});
  }
  // Leave the SIEM current with everything up to the stop record, within a bound.
  if (exporter) exporter->Stop(std::chrono::seconds(5));
  // Store callbacks post to the server's executors: finish them while those still exist.
  backend->Close();
  store::SqliteWriterStats writer = backend->WriterStats();
  store::BufferedWalStats wal = store::GetBufferedWalStats();
  store::RecordCacheStats cache = cached.Stats();
  log::Info("store_closed", {{"transactions", writer.transactions},
                             {"writes", writer.writes},
                             {"writer_idle_us", writer.idle_us},
                             {"writer_run_us", writer.run_us},
                             {"writer_commit_us", writer.commit_us},
                             {"writer_report_us", writer.report_us},
                             {"publisher_busy_us", writer.publish_us},
                             {"wal_frames", wal.frames_written},
                             {"wal_file_writes", wal.file_writes},
                             {"temporary_files", wal.temporary_files},
                             {"cache_hits", cache.hits},
                             {"cache_misses", cache.misses},
                             {"cache_entries", cache.entries}});
  if (!run.ok()) return Fail(run);
  log::Info("stopped");
  return 0;
}

}  // namespace kura::server
