// The data directory: what `kura init` creates and what `kura serve` insists on.
//
// Layout (mode 0700): kura.toml (0600), keys/master.key (0600), tls/cert.pem (0644) + tls/key.pem
// (0600), kura.db (+ -wal, -shm; 0600), kura.lock (0600, empty: the server's and exclusive
// commands' lock, see DataDirectoryLock), audit-delivered (0600, once an audit export sink has
// received a record: AuditDeliveryMarkPath). Initialization builds everything in a sibling
// temporary directory and renames it into place, so a failed init leaves nothing half-made behind.
//
// Administrative commands are audited like any access: `kura init` and `kura token create`
// append an `admin` record (actor kind "system", id kCliActorId) and fail when it cannot be
// written.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "kura/audit/record.h"
#include "kura/base/config.h"
#include "kura/base/status.h"
#include "kura/crypto/local_key_file.h"
#include "kura/ops/audit_access.h"
#include "kura/store/sqlite/sqlite_store.h"

namespace kura::ops {

// The actor id of records written by administrative CLI commands.
inline constexpr std::string_view kCliActorId = "kura-cli";

// A record acted by the CLI (actor kind "system", id kCliActorId; the operating-system user id
// in details, the only hint of who ran it), time and tenant left for AppendAuditRecord.
[[nodiscard]] audit::AuditRecord CliAuditRecord(std::string_view category, std::string_view action);

// An exclusive advisory lock (flock) on DIR/kura.lock. The server holds it while it runs, and so
// do commands that need the directory to themselves (`kura fhir reindex`), so two servers never
// share a database (each keeps an index and a cache of it in memory) and maintenance never runs
// under a live server. The kernel drops it when the process ends, however it ends.
class DataDirectoryLock {
 public:
  DataDirectoryLock() = default;
  // FailedPrecondition naming the directory when another process holds the lock; Internal when
  // the lock file cannot be opened.
  static StatusOr<DataDirectoryLock> Acquire(const std::filesystem::path& data_dir);
  // The lock shared, for a reader that needs the directory's writers stopped while it reads
  // (several such readers may hold it together): a server cannot start meanwhile. Never creates
  // the lock file (a forensic copy stays as it is); without one no server ever ran, and the
  // returned lock is not held(). FailedPrecondition while a server or an exclusive command runs.
  static StatusOr<DataDirectoryLock> AcquireShared(const std::filesystem::path& data_dir);
  ~DataDirectoryLock();
  DataDirectoryLock(DataDirectoryLock&& other) noexcept;
  DataDirectoryLock& operator=(DataDirectoryLock&& other) noexcept;
  DataDirectoryLock(const DataDirectoryLock&) = delete;
  DataDirectoryLock& operator=(const DataDirectoryLock&) = delete;
  bool held() const { return fd_ >= 0; }

 private:
  explicit DataDirectoryLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// A data directory opened for the server or an administrative command. Not copyable; movable (the
// objects the store and the log refer to are heap-allocated and do not move).
struct OpenedDataDirectory {
  DataDirectoryLock lock;  // Held for kServer and kExclusive; released last.
  Config config;
  std::unique_ptr<crypto::LocalKeyFileProvider> keys;
  // Opened by AppendCliAuditRecord (or the server). Declared before `db` so that the store is
  // destroyed first: its destructor finishes queued writes while their appender still exists.
  std::optional<AuditLogAccess> audit;
  std::unique_ptr<store::SqliteStore> db;
};

// Who opens the directory: the server sizes the store from [storage] and locks the directory; a
// command needs little, and locks it only when it must not run beside a server (kExclusive).
// kReadOnly opens the database read-only (SqliteOptions::read_only: not a byte of it or its WAL
// changes; no migration), for inspecting a copy.
enum class DataDirectoryUse { kCommand, kServer, kExclusive, kReadOnly };

// Loads the configuration (with `env` overrides), checks permissions, loads the key file and
// opens the database, which must exist (a missing one after a bad restore must not silently
// become an empty one). FailedPrecondition for a missing directory, configuration or database,
// for permissions that are too open and (kServer, kExclusive) for a directory in use;
// InvalidArgument for a bad configuration; the key provider's and the store's errors otherwise.
[[nodiscard]] StatusOr<OpenedDataDirectory> OpenDataDirectory(
    const std::filesystem::path& data_dir, const Environment& env,
    DataDirectoryUse use = DataDirectoryUse::kCommand);

// Appends `record` to the directory's audit log (opening it on first use) as one durable commit.
// The error, prefixed "the audit record could not be written", when the log cannot be opened
// (e.g. DataLoss for a corrupt saved state or a key that does not unwrap) or the commit fails.
[[nodiscard]] Status AppendCliAuditRecord(OpenedDataDirectory& dir, audit::AuditRecord record);

struct InitResult {
  std::filesystem::path data_dir;
  std::string admin_token;  // Shown once; only its hash is stored.
  std::string base_url;
};

// Creates a data directory with a bootstrap admin token. The `admin`/`init` record is written
// into the new database before the directory is renamed into place, so a directory that exists
// has its creation audited. AlreadyExists when `dir` holds a Kura data directory,
// FailedPrecondition when it exists and is not an empty directory; InvalidArgument when the
// environment overrides the configuration badly; Internal on I/O failures; the store's errors
// (e.g. the audit record could not be written) otherwise.
StatusOr<InitResult> InitDataDirectory(const std::filesystem::path& dir);

// Where the audit exporter keeps its delivery mark (audit::DeliveryMark): beside the database,
// not in it, so that restoring the database file from an older copy leaves it as it was.
std::filesystem::path AuditDeliveryMarkPath(const std::filesystem::path& data_dir);

// FailedPrecondition (naming the path and the fix) when the directory, the key file or the TLS
// key is accessible by group or others.
Status CheckDataDirectoryPermissions(const Config& config);

// Issues another system-administrator API token in an existing data directory (the server may
// be running). Returns the token, shown once. The `admin`/`token-create` record (resource
// "kura:ApiToken"/`name`, never the token) is durable before the token is stored; when it cannot
// be written no token is issued. InvalidArgument for an empty name, one longer than
// kMaxTokenNameBytes or holding control characters or invalid UTF-8; OpenDataDirectory's errors.
inline constexpr size_t kMaxTokenNameBytes = 128;
StatusOr<std::string> IssueAdminToken(const std::filesystem::path& data_dir, std::string name);

}  // namespace kura::ops
