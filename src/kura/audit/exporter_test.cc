// AuditExporter against a real SqliteStore + AuditLog and a real rsyslogd: records and
// checkpoints arrive in order and exactly as formatted, over TCP and TLS, in RFC 5424 and CEF;
// nothing is lost while the receiver is down or after a broken connection; a restart resumes
// from the durable cursor; the JSON-lines file gets the same stream; a row that does not open
// stalls its sink instead of being skipped.
//
// Waits poll with generous deadlines (the suite runs on loaded CI machines); "nothing happened"
// is checked after the exporter has demonstrably run more rounds, never after a fixed sleep.
#include "kura/audit/exporter.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <ostream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "kura/audit/audit_log.h"
#include "kura/audit/audit_log_fixture.h"
#include "kura/audit/checkpoint.h"
#include "kura/audit/export_format.h"
#include "kura/audit/rsyslog_fixture.h"
#include "kura/audit/tamper_util.h"
#include "kura/audit/test_util.h"
#include "kura/base/random.h"
#include "kura/store/sqlite/sqlite_store.h"

namespace kura::audit {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using store::SqliteStore;
using store::WriteBatch;
using testing::kOrigin;
using testing::Listener;
using testing::ModifyRecordByteSql;
using testing::RsyslogReceiver;
using testing::Tamper;
using testing::TestPki;

constexpr auto kDeadline = 60s;
constexpr auto kDrain = 30s;

// One message as a receiver stored it: a record (its sequence) or a checkpoint (its tree size).
struct Item {
  bool checkpoint = false;
  uint64_t n = 0;
  friend bool operator==(const Item&, const Item&) = default;
};

std::ostream& operator<<(std::ostream& out, const Item& item) {
  return out << (item.checkpoint ? "checkpoint " : "record ") << item.n;
}

Item Record(uint64_t sequence) { return {false, sequence}; }
Item Checkpoint(uint64_t tree_size) { return {true, tree_size}; }

bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout = kDeadline) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// Received items in order, every expected one present, none reordered: a duplicate may only
// repeat a suffix of what came before it (a resend from the durable cursor).
void ExpectInOrderNoneMissing(const std::vector<Item>& received,
                              const std::vector<Item>& expected) {
  std::map<std::pair<bool, uint64_t>, size_t> position;
  for (size_t i = 0; i < expected.size(); ++i) {
    position[{expected[i].checkpoint, expected[i].n}] = i;
  }
  size_t next = 0;  // Position of the next new item.
  for (const Item& item : received) {
    auto it = position.find({item.checkpoint, item.n});
    ASSERT_NE(it, position.end()) << "unexpected " << item;
    ASSERT_LE(it->second, next) << item << " arrived before " << expected[next];
    if (it->second == next) ++next;
  }
  EXPECT_EQ(next, expected.size()) << "missing from " << expected[next];
}

class ExporterTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    if (pki_ != nullptr && !pki_->dir.empty()) fs::remove_all(pki_->dir);
    delete pki_;
    pki_ = nullptr;
  }

  // The throwaway PKI, made once per process when a test first needs TLS.
  static const TestPki* Pki() {
    if (pki_ == nullptr) {
      pki_ = new TestPki;
      pki_->dir = testing::MakeTempDir("kura-exporter-pki");
      if (pki_->dir.empty() || !testing::MakeTestPki(*pki_)) {
        ADD_FAILURE() << "cannot create test certificates with the openssl tool: "
                      << testing::ReadFile(pki_->dir / "openssl.log");
      }
    }
    return pki_;
  }

  void SetUp() override {
    dir_ = testing::MakeTempDir("kura-exporter");
    ASSERT_FALSE(dir_.empty());
    fs::create_directories(dir_ / "rsyslog");
    receiver_ = std::make_unique<RsyslogReceiver>(dir_ / "rsyslog");
    auto key = testing::NewRecordKey();
    ASSERT_TRUE(key.ok());
    key_ = std::move(*key);
  }

  void TearDown() override {
    ResetExporter();
    receiver_->Stop();
    if (HasFailure()) std::cerr << receiver_->Diagnostics();
    if (store_) store_->Close();
    log_.reset();
    store_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void OpenLog(uint64_t checkpoint_every_records = 10) {
    auto opened = SqliteStore::Open({.path = db_path()});
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(*opened);
    auto log =
        AuditLog::Open(*store_, key_, lookup(), testing::SignerFromSeedHex(std::string(64, '2')),
                       {.origin = std::string(kOrigin),
                        .checkpoint_policy = {.every_records = checkpoint_every_records,
                                              .every = std::chrono::hours(1)}},
                       clock_);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    log_ = std::move(*log);
    // What the server does: every durable commit wakes the exporter.
    log_->SetCommitListener([this](uint64_t) {
      std::lock_guard lock(exporter_mu_);
      if (exporter_) exporter_->Notify();
    });
  }

  fs::path db_path() const { return dir_ / "kura.db"; }

  AuditKeyLookup lookup() { return testing::KeyLookup(key_); }

  // Appends `count` records, one commit each.
  void Append(uint64_t count) {
    for (uint64_t i = 0; i < count; ++i) {
      AuditRecord r = testing::SampleRecord(next_event_++);
      r.sequence = 0;
      WriteBatch batch;
      batch.audit = AuditLog::Draft(std::move(r));
      ASSERT_TRUE(store_->Commit(std::move(batch)).ok());
    }
  }

  // Signs a checkpoint of the whole log (a heartbeat once the policy's time is up).
  void SignTail() {
    clock_.Advance(std::chrono::hours(2));
    WriteBatch batch;
    batch.audit = AuditLog::Heartbeat();
    ASSERT_TRUE(store_->Commit(std::move(batch)).ok());
  }

  // Fast retries so the tests do not wait; small batches so batch boundaries fall between
  // records and their checkpoints.
  static AuditExporterOptions BaseOptions() {
    AuditExporterOptions options;
    options.batch_size = 8;
    options.poll_interval = 100ms;
    options.backoff_min = 20ms;
    options.backoff_max = 200ms;
    options.stall_retry = 200ms;
    return options;
  }

  AuditSyslogSinkOptions SyslogSink(bool tls, std::string format = "rfc5424") {
    AuditSyslogSinkOptions sink;
    sink.url =
        std::string(tls ? "tls" : "tcp") + "://127.0.0.1:" + std::to_string(receiver_->port());
    sink.format = std::move(format);
    sink.message.hostname = "kura-test.example.org";
    sink.message.procid = "77";
    if (tls) sink.tls.ca_file = Pki()->ca;
    return sink;
  }

  static SyslogFormatOptions FormatOptionsOf(const AuditSyslogSinkOptions& sink) {
    SyslogFormatOptions options = sink.message;
    options.payload = sink.format == "cef" ? SyslogPayload::kCef : SyslogPayload::kStructuredData;
    return options;
  }

  void StartExporter(AuditExporterOptions options) {
    auto started = AuditExporter::Start(*store_, lookup(), std::move(options));
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    std::lock_guard lock(exporter_mu_);
    exporter_ = std::move(*started);
  }

  // Stops with a drain but keeps the exporter, so its stats stay readable.
  void DrainAndStop() { exporter_->Stop(kDrain); }

  void ResetExporter() {
    std::unique_ptr<AuditExporter> exporter;
    {
      std::lock_guard lock(exporter_mu_);
      exporter = std::move(exporter_);
    }
    exporter.reset();
  }

  AuditSinkStats Stats(size_t sink = 0) { return exporter_->Stats().at(sink); }

  // Waits until sink `sink` has durably delivered `records` records and the checkpoint of
  // `tree_size`.
  ::testing::AssertionResult WaitForCursors(size_t sink, uint64_t records, uint64_t tree_size) {
    if (WaitFor([&] {
          AuditSinkStats s = Stats(sink);
          return s.cursor == records && s.checkpoint_cursor == tree_size;
        })) {
      return ::testing::AssertionSuccess();
    }
    AuditSinkStats s = Stats(sink);
    return ::testing::AssertionFailure()
           << "sink " << s.name << " at cursor " << s.cursor << "/" << s.checkpoint_cursor
           << ", wanted " << records << "/" << tree_size << "; last error: " << s.last_error;
  }

  uint64_t StoredCursor(const std::string& name) {
    auto cursor = store_->ReadAuditCursor(name);
    EXPECT_TRUE(cursor.ok());
    return cursor.ok() ? *cursor : 0;
  }

  // The items a correct exporter sends for the stored log: checkpoint N after record N-1.
  std::vector<Item> Expected() {
    auto rows = store_->ReadAuditRows(0, 1 << 20);
    auto checkpoints = store_->ReadAuditCheckpointsAfter(0, 1 << 20);
    EXPECT_TRUE(rows.ok() && checkpoints.ok());
    std::vector<Item> out;
    size_t c = 0;
    for (uint64_t s = 0; s <= rows->size(); ++s) {
      while (c < checkpoints->size() && (*checkpoints)[c].tree_size == s) {
        out.push_back(Checkpoint((*checkpoints)[c++].tree_size));
      }
      if (s < rows->size()) out.push_back(Record(s));
    }
    return out;
  }

  // Every stored record, decrypted, formatted with `format`.
  std::vector<std::string> Formatted(const std::function<std::string(const AuditRecord&)>& format) {
    std::vector<std::string> out;
    auto rows = store_->ReadAuditRows(0, 1 << 20);
    EXPECT_TRUE(rows.ok());
    for (const auto& row : *rows) {
      auto canonical = OpenAuditRow(row, lookup());
      EXPECT_TRUE(canonical.ok());
      auto record = DecodeAuditRecord(*canonical);
      EXPECT_TRUE(record.ok());
      out.push_back(format(*record));
    }
    return out;
  }

  // A checkpoint line's note, which must verify with the log's key.
  std::optional<Item> VerifiedCheckpoint(const std::string& line) {
    auto note = ExtractCheckpointNote(line);
    if (!note.ok()) return std::nullopt;
    auto checkpoint = VerifyCheckpoint(*note, kOrigin, {&log_->verifier_key(), 1});
    EXPECT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
    if (!checkpoint.ok()) return std::nullopt;
    auto stored = store_->FindAuditCheckpoint(checkpoint->tree_size);
    EXPECT_TRUE(stored.ok() && stored->has_value() && (*stored)->note == *note);
    return Checkpoint(checkpoint->tree_size);
  }

  // What rsyslogd stored, as items; record lines are checked against `formatted` byte for byte.
  std::vector<Item> ParseSyslog(const std::vector<std::string>& lines,
                                const std::vector<std::string>& formatted) {
    static const std::regex kSequence(R"((?:\[kura@32473 seq="|externalId=)(\d+))");
    std::vector<Item> out;
    for (const std::string& line : lines) {
      if (auto checkpoint = VerifiedCheckpoint(line)) {
        out.push_back(*checkpoint);
        continue;
      }
      std::smatch match;
      if (!std::regex_search(line, match, kSequence)) {
        ADD_FAILURE() << "neither a record nor a checkpoint: " << line;
        continue;
      }
      uint64_t sequence = std::stoull(match[1].str());
      EXPECT_LT(sequence, formatted.size());
      if (sequence < formatted.size()) {
        EXPECT_EQ(line, formatted[sequence]);
      }
      out.push_back(Record(sequence));
    }
    return out;
  }

  std::vector<Item> ParseJsonLines(const fs::path& path,
                                   const std::vector<std::string>& formatted) {
    std::vector<Item> out;
    for (const std::string& line : testing::Lines(testing::ReadFile(path))) {
      auto json = nlohmann::json::parse(line, nullptr, false);
      if (json.is_discarded() || !json.is_object()) {
        ADD_FAILURE() << "not a JSON object: " << line;
        continue;
      }
      if (json.value("type", "") == "checkpoint") {
        auto checkpoint = VerifiedCheckpoint(line);
        EXPECT_TRUE(checkpoint.has_value()) << line;
        if (checkpoint) {
          EXPECT_EQ(checkpoint->n, json.value("tree_size", uint64_t{0}));
          out.push_back(*checkpoint);
        }
        continue;
      }
      uint64_t sequence = json.value("sequence", uint64_t{0});
      EXPECT_LT(sequence, formatted.size());
      if (sequence < formatted.size()) {
        EXPECT_EQ(line + "\n", formatted[sequence]);
      }
      out.push_back(Record(sequence));
    }
    return out;
  }

  static inline TestPki* pki_ = nullptr;
  fs::path dir_;
  std::unique_ptr<RsyslogReceiver> receiver_;
  std::shared_ptr<const crypto::AeadKey> key_;
  FakeClock clock_{FromMicros(1700000000000000)};
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<AuditLog> log_;
  uint64_t next_event_ = 1;
  std::mutex exporter_mu_;
  std::unique_ptr<AuditExporter> exporter_;  // Guarded by exporter_mu_ (the commit listener).
};

// --- 1. In order, once, in both formats, over TCP and TLS ------------------------------------

struct Shipping {
  const char* name;
  bool tls;
  const char* format;
};

class ExporterShippingTest : public ExporterTest, public ::testing::WithParamInterface<Shipping> {};

TEST_P(ExporterShippingTest, RecordsAndCheckpointsArriveInOrderOnceAndExactlyAsFormatted) {
  const Shipping& p = GetParam();
  OpenLog();
  ASSERT_TRUE(receiver_->Start(p.tls ? Listener::kTlsAnon : Listener::kTcp, Pki()));
  Append(25);  // Before the exporter starts: the backlog goes out first.
  AuditExporterOptions options = BaseOptions();
  options.syslog = SyslogSink(p.tls, p.format);
  StartExporter(options);
  Append(12);  // While it runs, woken by the commit listener.
  SignTail();  // A checkpoint after the last record: 37.
  ASSERT_TRUE(WaitForCursors(0, 37, 37));
  DrainAndStop();
  AuditSinkStats stats = Stats();
  EXPECT_EQ(stats.records_shipped, 37u);
  EXPECT_EQ(stats.checkpoints_shipped, 4u);
  EXPECT_EQ(stats.failures, 0u) << stats.last_error;
  EXPECT_FALSE(stats.connected);
  EXPECT_EQ(StoredCursor("syslog"), 37u);
  EXPECT_EQ(StoredCursor("syslog/checkpoints"), 37u);

  std::vector<Item> expected = Expected();
  ASSERT_EQ(expected.size(), 41u);  // 37 records, checkpoints at 10, 20, 30, 37.
  receiver_->Stop();                // Flushes its file.
  SyslogFormatOptions format = FormatOptionsOf(*options.syslog);
  std::vector<Item> received =
      ParseSyslog(receiver_->ReceivedLines(),
                  Formatted([&](const AuditRecord& r) { return FormatSyslog5424(r, format); }));
  EXPECT_EQ(received, expected);
}

INSTANTIATE_TEST_SUITE_P(
    Transports, ExporterShippingTest,
    ::testing::Values(Shipping{"TcpRfc5424", false, "rfc5424"}, Shipping{"TcpCef", false, "cef"},
                      Shipping{"TlsRfc5424", true, "rfc5424"}, Shipping{"TlsCef", true, "cef"}),
    [](const ::testing::TestParamInfo<Shipping>& info) { return info.param.name; });

// --- 2. Receiver down, connection broken ------------------------------------------------------

// Captures what the process writes to stderr (the JSON log lines) while it lives, and lets go
// of it even when an assertion ends the test early.
class StderrCapture {
 public:
  StderrCapture() { ::testing::internal::CaptureStderr(); }
  ~StderrCapture() {
    if (!taken_) (void)::testing::internal::GetCapturedStderr();
  }
  std::string Take() {
    taken_ = true;
    return ::testing::internal::GetCapturedStderr();
  }

 private:
  bool taken_ = false;
};

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

TEST_F(ExporterTest, NothingIsLostWhileTheReceiverIsDownOrTheConnectionBreaks) {
  OpenLog();
  // Learn a port rsyslogd can listen on, then take the receiver down.
  ASSERT_TRUE(receiver_->Start(Listener::kTcp, nullptr));
  const uint16_t port = receiver_->port();
  receiver_->Stop();

  StderrCapture capture;
  AuditExporterOptions options = BaseOptions();
  options.syslog = SyslogSink(false);
  StartExporter(options);
  Append(15);
  // The exporter has tried (and failed) several times since the records were committed.
  const uint64_t attempts = Stats().attempts;
  ASSERT_TRUE(WaitFor([&] { return Stats().failures >= 3 && Stats().attempts >= attempts + 3; }));
  AuditSinkStats down = Stats();
  EXPECT_FALSE(down.connected);
  EXPECT_EQ(down.cursor, 0u);
  EXPECT_EQ(down.checkpoint_cursor, 0u);
  EXPECT_EQ(down.last_error, "syslog receiver unavailable");
  EXPECT_EQ(StoredCursor("syslog"), 0u);
  EXPECT_TRUE(receiver_->ReceivedLines().empty());

  // The receiver comes back: the backlog arrives.
  ASSERT_TRUE(receiver_->Start(Listener::kTcp, nullptr, port));
  ASSERT_TRUE(WaitForCursors(0, 15, 10));
  EXPECT_TRUE(Stats().connected);
  EXPECT_EQ(Stats().last_error, "");

  // The connection breaks under the exporter; records keep coming.
  receiver_->Stop();
  Append(10);
  const uint64_t failures = Stats().failures;
  ASSERT_TRUE(WaitFor([&] { return Stats().failures > failures; }));
  EXPECT_LE(Stats().cursor, 25u);
  ASSERT_TRUE(receiver_->Start(Listener::kTcp, nullptr, port));
  Append(3);
  ASSERT_TRUE(WaitForCursors(0, 28, 20));
  DrainAndStop();
  std::string logged = capture.Take();

  receiver_->Stop();
  std::vector<Item> expected = Expected();
  ASSERT_EQ(expected.size(), 30u);  // 28 records, checkpoints at 10 and 20.
  SyslogFormatOptions format = FormatOptionsOf(*options.syslog);
  std::vector<Item> received =
      ParseSyslog(receiver_->ReceivedLines(),
                  Formatted([&](const AuditRecord& r) { return FormatSyslog5424(r, format); }));
  ExpectInOrderNoneMissing(received, expected);

  // One warning per outage however often the exporter retried, and one recovery each.
  EXPECT_EQ(Count(logged, "\"event\":\"audit_export_unavailable\""), 2u) << logged;
  EXPECT_EQ(Count(logged, "\"event\":\"audit_export_recovered\""), 2u) << logged;
  // Logs name sinks and numbers, never what the records say.
  EXPECT_EQ(logged.find("req-"), std::string::npos) << logged;
  EXPECT_EQ(logged.find("acct-"), std::string::npos) << logged;
  EXPECT_EQ(logged.find("Observation"), std::string::npos) << logged;
}

// --- 3. Restart -------------------------------------------------------------------------------

TEST_F(ExporterTest, ARestartResumesFromTheDurableCursor) {
  OpenLog();
  ASSERT_TRUE(receiver_->Start(Listener::kTcp, nullptr));
  AuditExporterOptions options = BaseOptions();
  options.syslog = SyslogSink(false);
  StartExporter(options);
  Append(20);
  ASSERT_TRUE(WaitForCursors(0, 20, 20));
  DrainAndStop();
  ResetExporter();

  Append(10);  // While no exporter runs.
  EXPECT_EQ(StoredCursor("syslog"), 20u);
  StartExporter(options);
  EXPECT_EQ(Stats().cursor, 20u);  // Read from the store at start.
  ASSERT_TRUE(WaitForCursors(0, 30, 30));
  DrainAndStop();
  EXPECT_EQ(Stats().records_shipped, 10u);
  EXPECT_EQ(Stats().checkpoints_shipped, 1u);

  receiver_->Stop();
  SyslogFormatOptions format = FormatOptionsOf(*options.syslog);
  std::vector<Item> received =
      ParseSyslog(receiver_->ReceivedLines(),
                  Formatted([&](const AuditRecord& r) { return FormatSyslog5424(r, format); }));
  EXPECT_EQ(received, Expected());  // Each once: nothing was sent again.
}

// --- 4. JSON lines ----------------------------------------------------------------------------

TEST_F(ExporterTest, JsonLinesFileGetsRecordsAndVerifiableCheckpointsWhileSyslogIsDown) {
  OpenLog(/*checkpoint_every_records=*/3);  // More checkpoints than a batch holds.
  ASSERT_TRUE(receiver_->Start(Listener::kTcp, nullptr));
  receiver_->Stop();
  Append(23);
  SignTail();  // 23.
  AuditExporterOptions options = BaseOptions();
  options.batch_size = 2;
  options.syslog = SyslogSink(false);  // The port of the receiver that is down.
  options.json_lines = AuditJsonLinesSinkOptions{.path = dir_ / "audit.jsonl"};
  StartExporter(options);
  // The file sink does not wait for the syslog sink that cannot connect.
  ASSERT_TRUE(WaitForCursors(1, 23, 23));
  AuditSinkStats json = Stats(1);
  EXPECT_EQ(json.name, "json-lines");
  EXPECT_EQ(json.records_shipped, 23u);
  EXPECT_EQ(json.checkpoints_shipped, 8u);  // 3, 6, ..., 21 and 23.
  EXPECT_EQ(Stats(0).cursor, 0u);
  EXPECT_GE(Stats(0).failures, 1u);
  ResetExporter();

  EXPECT_EQ(StoredCursor("json-lines"), 23u);
  EXPECT_EQ(StoredCursor("json-lines/checkpoints"), 23u);
  EXPECT_EQ(StoredCursor("syslog"), 0u);
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "audit.jsonl").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::vector<Item> received = ParseJsonLines(
      dir_ / "audit.jsonl", Formatted([](const AuditRecord& r) { return FormatJsonLine(r); }));
  EXPECT_EQ(received, Expected());
}

// --- 4b. A database behind its sink file -----------------------------------------------------
// Restoring an older copy of the database leaves the JSON-lines file ahead of it. Going on would
// number new records with sequences the file already holds for other records.

class SinkFileCheckTest : public ExporterTest {
 protected:
  fs::path sink() const { return dir_ / "audit.jsonl"; }

  // Ships the whole log to the file, with its tail signed (`size` records).
  void ShipAll(uint64_t size) {
    SignTail();
    AuditExporterOptions options = BaseOptions();
    options.json_lines = AuditJsonLinesSinkOptions{.path = sink()};
    StartExporter(options);
    ASSERT_TRUE(WaitForCursors(0, size, size));
    ResetExporter();
  }

  void CloseLog() {
    store_->Close();
    log_.reset();
    store_.reset();
  }

  // Copies the database files (with the WAL) from `from` to `to`.
  void CopyDatabase(const fs::path& from, const fs::path& to) {
    fs::create_directories(to);
    for (const char* name : {"kura.db", "kura.db-wal"}) {
      fs::remove(to / name);
      if (fs::exists(from / name)) fs::copy_file(from / name, to / name);
    }
  }

  Status Check() { return CheckSinkFileMatchesLog(sink(), *store_, *log_); }

  // The check refuses the log, saying `says`.
  ::testing::AssertionResult Refused(std::string_view says) {
    const Status status = Check();
    if (status.code() != StatusCode::kFailedPrecondition) {
      return ::testing::AssertionFailure() << "not refused: " << status.ToString();
    }
    if (status.message().find(says) == std::string::npos) {
      return ::testing::AssertionFailure() << "refused without saying it: " << status.message();
    }
    return ::testing::AssertionSuccess();
  }
};

TEST_F(SinkFileCheckTest, ARestoredOlderDatabaseIsRefusedUntilTheFileIsMovedAside) {
  OpenLog(5);
  EXPECT_TRUE(Check().ok());  // No file yet.
  Append(8);
  ShipAll(8);
  CloseLog();
  CopyDatabase(dir_, dir_ / "backup");
  OpenLog(5);
  Append(6);
  ShipAll(14);
  EXPECT_TRUE(Check().ok()) << Check().ToString();
  CloseLog();

  CopyDatabase(dir_ / "backup", dir_);  // The restore.
  OpenLog(5);
  EXPECT_TRUE(Refused("holds record 13, but the database's audit log has 8 records"));
  EXPECT_TRUE(Refused("move the file aside"));

  // Records written after the restore, past the file's end: the chain at the file's last
  // checkpoint (14) is another one.
  Append(10);
  EXPECT_TRUE(Refused("checkpoint of 14 records whose chain head differs"));

  fs::rename(sink(), dir_ / "audit.jsonl.before-restore");
  EXPECT_TRUE(Check().ok());
}

// A syslog receiver cannot be read back, so the exporter keeps a delivery mark beside the
// database: the last record a sink received, with its chain hash. A database restored from an
// older copy is behind it; one that went on after the restore has another chain at its sequence.
TEST_F(SinkFileCheckTest, TheDeliveryMarkCatchesARestoreBehindASyslogReceiver) {
  const fs::path mark = dir_ / "audit-delivered";
  auto check = [&] { return CheckDeliveryMarkMatchesLog(mark, *store_, *log_); };
  OpenLog(5);
  EXPECT_TRUE(check().ok());  // No mark yet.
  ASSERT_TRUE(receiver_->Start(Listener::kTcp, nullptr));
  AuditExporterOptions options = BaseOptions();
  options.syslog = SyslogSink(false);
  options.delivery_mark = mark;
  Append(8);
  CloseLog();
  CopyDatabase(dir_, dir_ / "backup");
  OpenLog(5);
  Append(6);
  StartExporter(options);
  ASSERT_TRUE(WaitForCursors(0, 14, 10));
  DrainAndStop();  // The orderly close confirms the last batch, and the mark follows it.
  ResetExporter();
  auto written = ReadDeliveryMark(mark);
  ASSERT_TRUE(written.ok() && written->has_value()) << written.status().ToString();
  EXPECT_EQ((*written)->sequence, 13u);
  auto row = store_->ReadAuditRows(13, 1);
  ASSERT_TRUE(row.ok() && row->size() == 1u);
  EXPECT_EQ((*written)->chain_hash, row->front().chain_hash);
  EXPECT_EQ(fs::status(mark).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_TRUE(check().ok()) << check().ToString();
  CloseLog();

  CopyDatabase(dir_ / "backup", dir_);  // The restore.
  OpenLog(5);
  auto refused = check();
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("received record 13, but the database's audit log has 8"),
            std::string::npos)
      << refused.message();
  Append(10);  // Going on anyway: record 13 is now another one.
  refused = check();
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("another chain hash"), std::string::npos) << refused.message();

  fs::rename(mark, dir_ / "audit-delivered.before-restore");
  EXPECT_TRUE(check().ok());
}

TEST_F(SinkFileCheckTest, ADeliveryMarkThatCannotBeReadIsRefused) {
  const fs::path mark = dir_ / "audit-delivered";
  OpenLog(5);
  Append(3);
  const std::string hash(kHashBytes, 'h');
  ASSERT_TRUE(WriteDeliveryMark(mark, {.sequence = 2, .chain_hash = hash}).ok());
  auto read = ReadDeliveryMark(mark);
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_EQ((*read)->sequence, 2u);
  EXPECT_EQ((*read)->chain_hash, hash);
  EXPECT_FALSE(fs::exists(dir_ / "audit-delivered.tmp"));
  const std::string b64 = Base64Encode({reinterpret_cast<const uint8_t*>(hash.data()), 32});
  const std::vector<std::string> unreadable = {
      "",
      "garbage\n",
      "kura-audit-delivered/v1 2\n",
      "kura-audit-delivered/v1 x " + b64 + "\n",
      "kura-audit-delivered/v1 -1 " + b64 + "\n",
      "kura-audit-delivered/v2 2 " + b64 + "\n",
      "kura-audit-delivered/v1 2 " + b64.substr(4),
  };
  for (const std::string& text : unreadable) {
    std::ofstream(mark, std::ios::trunc) << text;
    auto status = CheckDeliveryMarkMatchesLog(mark, *store_, *log_);
    EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition) << text;
    EXPECT_NE(status.message().find("move the mark aside"), std::string::npos) << text;
  }
}

TEST_F(SinkFileCheckTest, TheLastRecordAndCheckpointAreFoundMegabytesBeforeTheEnd) {
  OpenLog(5);
  Append(8);
  ShipAll(8);
  CloseLog();
  {
    // Lines of other kinds after them, over several read chunks (lines cut by chunk edges).
    std::ofstream out(sink(), std::ios::binary | std::ios::app);
    for (int i = 0; i < 130000; ++i) out << R"({"type":"other","n":)" << i << "}\n";
  }
  ASSERT_GT(fs::file_size(sink()), size_t{3} << 20);
  fs::remove(db_path());
  fs::remove(dir_ / "kura.db-wal");
  OpenLog(5);  // A new database: no records.
  EXPECT_TRUE(Refused("holds record 7, but the database's audit log has 0 records"));
  Append(10);  // Same signing key, other records.
  EXPECT_TRUE(Refused("checkpoint of 8 records whose chain head differs"));
}

TEST_F(SinkFileCheckTest, AFileOfAnotherLogIsRefusedAndAnUnfinishedLastLineIsNotRead) {
  // The other log: another signing key, five records shipped.
  {
    auto other_store = SqliteStore::Open({.path = dir_ / "other.db"});
    ASSERT_TRUE(other_store.ok());
    auto other = AuditLog::Open(**other_store, key_, lookup(),
                                testing::SignerFromSeedHex(std::string(64, '3')),
                                {.origin = std::string(kOrigin), .checkpoint_policy = {}}, clock_);
    ASSERT_TRUE(other.ok());
    for (uint64_t i = 0; i < 5; ++i) {
      WriteBatch batch;
      batch.audit = AuditLog::Draft(testing::SampleRecord(100 + i));
      ASSERT_TRUE((*other_store)->Commit(std::move(batch)).ok());
    }
    clock_.Advance(std::chrono::hours(2));
    WriteBatch heartbeat;
    heartbeat.audit = AuditLog::Heartbeat();
    ASSERT_TRUE((*other_store)->Commit(std::move(heartbeat)).ok());
    auto checkpoint = (*other_store)->FindAuditCheckpoint(0);
    ASSERT_TRUE(checkpoint.ok() && checkpoint->has_value());
    std::ofstream(sink(), std::ios::binary) << FormatCheckpointJsonLine(
        (*checkpoint)->note, (*checkpoint)->tree_size, (*checkpoint)->time_us);
    (*other_store)->Close();
  }
  OpenLog(5);
  Append(8);
  EXPECT_TRUE(Refused("a checkpoint this log's signing key did not sign"));

  // A crash in the middle of a line leaves it without its newline: not a record.
  std::ofstream(sink(), std::ios::binary) << R"({"type":"record","sequence":3}
{"type":"record","sequence":99)";
  EXPECT_TRUE(Check().ok()) << Check().ToString();
  std::ofstream(sink(), std::ios::binary | std::ios::app) << "}\n";
  EXPECT_TRUE(Refused("holds record 99"));
}

// --- 5. Rows that do not open -----------------------------------------------------------------

TEST_F(ExporterTest, ATamperedRowStallsEverySinkThereUntilItOpensAgain) {
  OpenLog();
  ASSERT_TRUE(receiver_->Start(Listener::kTcp, nullptr));
  Append(30);  // Checkpoints at 10, 20, 30.
  Tamper(db_path(), "CREATE TABLE saved AS SELECT record FROM audit_log WHERE seq = 13;" +
                        ModifyRecordByteSql(13));
  StderrCapture capture;
  AuditExporterOptions options = BaseOptions();
  options.syslog = SyslogSink(false);
  options.json_lines = AuditJsonLinesSinkOptions{.path = dir_ / "audit.jsonl"};
  StartExporter(options);
  ASSERT_TRUE(WaitForCursors(0, 13, 10));
  ASSERT_TRUE(WaitForCursors(1, 13, 10));
  Append(5);
  // Several more rounds for each sink (retries of the stalled row), none gets past it.
  const uint64_t syslog_attempts = Stats(0).attempts, json_attempts = Stats(1).attempts;
  ASSERT_TRUE(WaitFor([&] {
    return Stats(0).attempts >= syslog_attempts + 3 && Stats(1).attempts >= json_attempts + 3;
  }));
  for (size_t sink : {0, 1}) {
    AuditSinkStats s = Stats(sink);
    EXPECT_EQ(s.stalled_at, std::optional<uint64_t>(13)) << s.name;
    EXPECT_EQ(s.cursor, 13u) << s.name;
    EXPECT_EQ(s.checkpoint_cursor, 10u) << s.name;
    EXPECT_NE(s.last_error.find("audit record 13"), std::string::npos) << s.last_error;
    EXPECT_NE(s.last_error.find("kura audit verify"), std::string::npos) << s.last_error;
  }
  EXPECT_EQ(StoredCursor("syslog"), 13u);
  EXPECT_EQ(StoredCursor("json-lines"), 13u);
  std::vector<std::string> json_lines = testing::Lines(testing::ReadFile(dir_ / "audit.jsonl"));
  EXPECT_EQ(json_lines.size(), 14u);  // Records 0..12 and checkpoint 10.

  // Put the row back (the operator restored it): the sinks carry on from there.
  Tamper(db_path(), "UPDATE audit_log SET record = (SELECT record FROM saved) WHERE seq = 13");
  ASSERT_TRUE(WaitForCursors(0, 35, 30));
  ASSERT_TRUE(WaitForCursors(1, 35, 30));
  EXPECT_FALSE(Stats(0).stalled_at.has_value());
  EXPECT_EQ(Stats(0).last_error, "");
  DrainAndStop();
  std::string logged = capture.Take();
  // Once per sink however often it retried, with the sequence and no record content.
  EXPECT_EQ(Count(logged, "\"event\":\"audit_export_stalled\""), 2u) << logged;
  EXPECT_EQ(Count(logged, "\"sequence\":13"), 4u) << logged;  // Stalled and resumed, per sink.
  EXPECT_EQ(Count(logged, "\"event\":\"audit_export_resumed\""), 2u) << logged;
  EXPECT_EQ(logged.find("req-"), std::string::npos) << logged;

  receiver_->Stop();
  SyslogFormatOptions format = FormatOptionsOf(*options.syslog);
  std::vector<Item> received =
      ParseSyslog(receiver_->ReceivedLines(),
                  Formatted([&](const AuditRecord& r) { return FormatSyslog5424(r, format); }));
  EXPECT_EQ(received, Expected());
  EXPECT_EQ(ParseJsonLines(dir_ / "audit.jsonl",
                           Formatted([](const AuditRecord& r) { return FormatJsonLine(r); })),
            Expected());
}

struct Tampering {
  const char* name;
  std::string sql;
  uint64_t stalls_at;
  const char* reason;
};

class ExporterTamperTest : public ExporterTest, public ::testing::WithParamInterface<Tampering> {};

TEST_P(ExporterTamperTest, StallsAtTheFirstBadSequence) {
  const Tampering& p = GetParam();
  OpenLog();
  Append(30);
  Tamper(db_path(), p.sql);
  StderrCapture capture;
  AuditExporterOptions options = BaseOptions();
  options.json_lines = AuditJsonLinesSinkOptions{.path = dir_ / "audit.jsonl"};
  StartExporter(options);
  ASSERT_TRUE(WaitFor([&] { return Stats().stalled_at.has_value(); }));
  const uint64_t attempts = Stats().attempts;
  ASSERT_TRUE(WaitFor([&] { return Stats().attempts >= attempts + 2; }));
  ResetExporter();
  std::string logged = capture.Take();
  EXPECT_EQ(StoredCursor("json-lines"), p.stalls_at);
  std::vector<std::string> lines = testing::Lines(testing::ReadFile(dir_ / "audit.jsonl"));
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(nlohmann::json::parse(lines.back()).value("sequence", uint64_t{0}), p.stalls_at - 1);
  EXPECT_EQ(Count(logged, "\"event\":\"audit_export_stalled\""), 1u) << logged;
  EXPECT_NE(logged.find("\"sequence\":" + std::to_string(p.stalls_at)), std::string::npos)
      << logged;
  EXPECT_NE(logged.find(std::string("\"reason\":\"") + p.reason + "\""), std::string::npos)
      << logged;
}

INSTANTIATE_TEST_SUITE_P(
    Tamperings, ExporterTamperTest,
    ::testing::Values(Tampering{"Modified", ModifyRecordByteSql(12), 12, "unreadable"},
                      // Whole rows swapped: each decrypts and matches its leaf hash, but names
                      // another sequence.
                      Tampering{"Reordered",
                                "UPDATE audit_log SET seq = -1 WHERE seq = 21;"
                                "UPDATE audit_log SET seq = 21 WHERE seq = 22;"
                                "UPDATE audit_log SET seq = 22 WHERE seq = -1;",
                                21, "sequence-mismatch"},
                      Tampering{"Deleted", "DELETE FROM audit_log WHERE seq = 17", 17, "missing"}),
    [](const ::testing::TestParamInfo<Tampering>& info) { return info.param.name; });

// --- Configuration ----------------------------------------------------------------------------

TEST_F(ExporterTest, BadSettingsFailAtStartNamingTheSetting) {
  OpenLog();
  auto start_error = [&](const AuditExporterOptions& options) {
    auto started = AuditExporter::Start(*store_, lookup(), options);
    EXPECT_FALSE(started.ok());
    EXPECT_EQ(started.status().code(), StatusCode::kInvalidArgument);
    return started.status().message();
  };
  AuditExporterOptions none;
  EXPECT_NE(start_error(none).find("no sink"), std::string::npos);

  AuditExporterOptions bad_url;
  bad_url.syslog = AuditSyslogSinkOptions{.url = "udp://siem.example.org:514"};
  EXPECT_NE(start_error(bad_url).find("audit.syslog_url"), std::string::npos);

  AuditExporterOptions bad_format;
  bad_format.syslog = AuditSyslogSinkOptions{.url = "tls://siem.example.org", .format = "leef"};
  EXPECT_NE(start_error(bad_format).find("audit.syslog_format"), std::string::npos);

  AuditExporterOptions tls_on_tcp;
  tls_on_tcp.syslog = AuditSyslogSinkOptions{.url = "tcp://siem.example.org:514"};
  tls_on_tcp.syslog->tls.ca_file = dir_ / "ca.pem";
  EXPECT_NE(start_error(tls_on_tcp).find("tls://"), std::string::npos);

  AuditExporterOptions missing_ca;
  missing_ca.syslog = AuditSyslogSinkOptions{.url = "tls://siem.example.org"};
  missing_ca.syslog->tls.ca_file = dir_ / "missing.pem";
  std::string message = start_error(missing_ca);
  EXPECT_NE(message.find("audit.syslog_ca_file"), std::string::npos);
  EXPECT_EQ(message.find(dir_.string()), std::string::npos);  // No paths in client-safe text.

  AuditExporterOptions half_mtls;
  half_mtls.syslog = AuditSyslogSinkOptions{.url = "tls://siem.example.org"};
  half_mtls.syslog->tls.client_certificate_file = dir_ / "kura.db";
  EXPECT_NE(start_error(half_mtls).find("audit.syslog_client_key"), std::string::npos);

  AuditExporterOptions bad_file;
  bad_file.json_lines = AuditJsonLinesSinkOptions{.path = dir_ / "no-such-dir" / "audit.jsonl"};
  EXPECT_NE(start_error(bad_file).find("audit.json_lines_file"), std::string::npos);

  AuditExporterOptions same_names;
  same_names.syslog = AuditSyslogSinkOptions{.name = "siem", .url = "tls://siem.example.org"};
  same_names.json_lines = AuditJsonLinesSinkOptions{.name = "siem", .path = dir_ / "a.jsonl"};
  EXPECT_NE(start_error(same_names).find("different names"), std::string::npos);

  AuditExporterOptions bad_name;
  bad_name.json_lines = AuditJsonLinesSinkOptions{.name = "a/b", .path = dir_ / "a.jsonl"};
  EXPECT_NE(start_error(bad_name).find("sink name"), std::string::npos);

  AuditExporterOptions bad_backoff;
  bad_backoff.json_lines = AuditJsonLinesSinkOptions{.path = dir_ / "a.jsonl"};
  bad_backoff.backoff_min = 10s;
  bad_backoff.backoff_max = 1s;
  EXPECT_NE(start_error(bad_backoff).find("backoff_max"), std::string::npos);
}

TEST_F(ExporterTest, StopEndsABackoffWaitPromptly) {
  OpenLog();
  ASSERT_TRUE(receiver_->Start(Listener::kTcp, nullptr));
  receiver_->Stop();
  AuditExporterOptions options = BaseOptions();
  options.backoff_min = 1h;  // Far longer than any test deadline.
  options.backoff_max = 1h;
  options.syslog = SyslogSink(false);
  StartExporter(options);
  Append(3);
  ASSERT_TRUE(WaitFor([&] { return Stats().failures >= 1; }));
  auto start = std::chrono::steady_clock::now();
  exporter_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
  EXPECT_EQ(Stats().cursor, 0u);
  EXPECT_FALSE(Stats().connected);
  exporter_->Stop(kDrain);  // Idempotent.
}

TEST_F(ExporterTest, ADrainDoesNotWaitForASinkThatCannotComeBackInTime) {
  OpenLog();
  ASSERT_TRUE(receiver_->Start(Listener::kTcp, nullptr));
  receiver_->Stop();
  AuditExporterOptions options = BaseOptions();
  options.backoff_min = 1h;
  options.backoff_max = 1h;
  options.syslog = SyslogSink(false);
  options.json_lines = AuditJsonLinesSinkOptions{.path = dir_ / "audit.jsonl"};
  StartExporter(options);
  ASSERT_TRUE(WaitFor([&] { return Stats(0).failures >= 1; }));
  Append(4);
  auto start = std::chrono::steady_clock::now();
  exporter_->Stop(10min);  // The syslog sink's next attempt is further away.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 60s);
  EXPECT_EQ(Stats(1).cursor, 4u);  // The file sink was drained.
  EXPECT_EQ(Stats(0).cursor, 0u);
}

}  // namespace
}  // namespace kura::audit
