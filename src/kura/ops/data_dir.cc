// Data directory initialization and permission checks.
#include "kura/ops/data_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "kura/auth/api_token_authenticator.h"
#include "kura/auth/principal.h"
#include "kura/base/random.h"
#include "kura/base/utf8.h"
#include "kura/crypto/certificate.h"
#include "kura/crypto/local_key_file.h"
#include "kura/ops/audit_access.h"
#include "kura/store/sqlite/sqlite_store.h"

namespace kura::ops {
namespace fs = std::filesystem;
namespace {

Status MakeDir(const fs::path& p) {
  if (::mkdir(p.c_str(), 0700) != 0) {
    return InternalError("cannot create directory " + p.string() + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

Status WriteFile0600(const fs::path& p, std::string_view contents) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return InternalError("cannot create " + p.string() + ": " + std::strerror(errno));
  bool ok = ::write(fd, contents.data(), contents.size()) == static_cast<ssize_t>(contents.size());
  ok = ok && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return InternalError("cannot write " + p.string());
  return Status::Ok();
}

void FsyncDir(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

constexpr std::string_view kBootstrapTokenName = "bootstrap-admin";

Status AppendInitRecord(OpenedDataDirectory& dir) {
  audit::AuditRecord record = CliAuditRecord(audit::category::kAdmin, "init");
  record.details.emplace_back("token.name", std::string(kBootstrapTokenName));
  record.details.emplace_back("token.role", std::string(auth::kSystemAdminRole));
  return AppendCliAuditRecord(dir, std::move(record));
}

// Token names end up in audit records and on the admin console: printable text only.
Status ValidateTokenName(std::string_view name) {
  if (name.empty() || name.size() > kMaxTokenNameBytes) {
    return InvalidArgumentError("the token name must be 1 to " +
                                std::to_string(kMaxTokenNameBytes) + " bytes");
  }
  if (!IsValidUtf8(name)) return InvalidArgumentError("the token name is not valid UTF-8");
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      return InvalidArgumentError("the token name must not contain control characters");
    }
  }
  return Status::Ok();
}

Status Populate(const fs::path& staging, const fs::path& final_dir, InitResult& result) {
  Config config;
  config.data_dir = staging;
  KURA_RETURN_IF_ERROR(WriteFile0600(staging / "kura.toml", DefaultConfigToml(config)));
  KURA_RETURN_IF_ERROR(MakeDir(staging / "keys"));
  KURA_RETURN_IF_ERROR(crypto::LocalKeyFileProvider::CreateKeyFile(staging / config.keys.key_file));
  KURA_RETURN_IF_ERROR(MakeDir(staging / "tls"));
  KURA_RETURN_IF_ERROR(crypto::WriteSelfSignedCertificate({}, staging / config.tls.certificate,
                                                          staging / config.tls.private_key));
  {
    // The configuration `kura serve` will see (tenant and checkpoint policy with the
    // environment's overrides), so the first record is sealed and chained as the server goes on.
    OpenedDataDirectory dir;
    KURA_ASSIGN_OR_RETURN(dir.config, LoadConfig(staging, ProcessEnvironment()));
    // The files just made, wherever the environment would point a later run.
    KURA_ASSIGN_OR_RETURN(dir.keys,
                          crypto::LocalKeyFileProvider::Load(staging / config.keys.key_file));
    KURA_ASSIGN_OR_RETURN(dir.db,
                          store::SqliteStore::Open({.path = staging / config.storage.sqlite_path,
                                                    .read_connections = 1,
                                                    .group_commit_max_batch = 1}));
    KURA_ASSIGN_OR_RETURN(result.admin_token, auth::ApiTokenAuthenticator::Issue(
                                                  *dir.db, std::string(kBootstrapTokenName),
                                                  std::string(auth::kSystemAdminRole)));
    // Before the rename: a directory that exists has its creation in its audit log, and a
    // failure here leaves nothing behind (the caller removes the staging directory).
    KURA_RETURN_IF_ERROR(AppendInitRecord(dir));
  }
  // A clean close checkpoints the WAL; nothing else is left beside the database.
  result.data_dir = final_dir;
  result.base_url = config.server.public_base_url;
  return Status::Ok();
}

}  // namespace

fs::path AuditDeliveryMarkPath(const fs::path& data_dir) { return data_dir / "audit-delivered"; }

StatusOr<InitResult> InitDataDirectory(const fs::path& dir_in) {
  std::error_code ec;
  fs::path dir = fs::absolute(dir_in, ec);
  if (ec) return InvalidArgumentError("invalid data directory path: " + dir_in.string());
  dir = dir.lexically_normal();
  if (dir.has_filename() == false) dir = dir.parent_path();
  if (fs::exists(dir / "kura.toml", ec)) {
    return AlreadyExistsError(dir.string() +
                              " already holds a Kura data directory; refusing to touch it");
  }
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec))
      return FailedPreconditionError(dir.string() + " exists and is not a directory");
    if (!fs::is_empty(dir, ec)) {
      return FailedPreconditionError(dir.string() +
                                     " exists and is not empty; choose a new or empty directory");
    }
  }
  fs::path parent = dir.parent_path();
  if (!fs::is_directory(parent, ec)) {
    return FailedPreconditionError("parent directory " + parent.string() + " does not exist");
  }
  uint8_t suffix[6];
  RandomFill(suffix);
  fs::path staging = parent / ("." + dir.filename().string() + ".init-" + HexEncode(suffix));
  KURA_RETURN_IF_ERROR(MakeDir(staging));
  InitResult result;
  Status s = Populate(staging, dir, result);
  if (s.ok() && ::rename(staging.c_str(), dir.c_str()) != 0) {
    s = InternalError("cannot move the new data directory into place at " + dir.string() + ": " +
                      std::strerror(errno));
  }
  if (!s.ok()) {
    fs::remove_all(staging, ec);
    return s;
  }
  FsyncDir(parent);
  ::chmod(dir.c_str(), 0700);
  return result;
}

Status CheckDataDirectoryPermissions(const Config& config) {
  KURA_RETURN_IF_ERROR(crypto::CheckOwnerOnly(config.data_dir));
  KURA_RETURN_IF_ERROR(crypto::CheckOwnerOnly(ResolvePath(config, config.keys.key_file)));
  KURA_RETURN_IF_ERROR(crypto::CheckOwnerOnly(ResolvePath(config, config.tls.private_key)));
  return Status::Ok();
}

StatusOr<DataDirectoryLock> DataDirectoryLock::Acquire(const fs::path& data_dir) {
  const fs::path path = data_dir / "kura.lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return InternalError("cannot open " + path.string() + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return FailedPreconditionError("data directory " + data_dir.string() +
                                     " is in use by another kura server or command (" +
                                     path.string() + " is locked); stop it first");
    }
    return InternalError("cannot lock " + path.string() + ": " + std::strerror(err));
  }
  return DataDirectoryLock(fd);
}

StatusOr<DataDirectoryLock> DataDirectoryLock::AcquireShared(const fs::path& data_dir) {
  const fs::path path = data_dir / "kura.lock";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return DataDirectoryLock();
    return InternalError("cannot open " + path.string() + ": " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return FailedPreconditionError("data directory " + data_dir.string() +
                                     " is in use by a kura server or command");
    }
    return InternalError("cannot lock " + path.string() + ": " + std::strerror(err));
  }
  return DataDirectoryLock(fd);
}

DataDirectoryLock::~DataDirectoryLock() {
  if (fd_ >= 0) ::close(fd_);  // Closing the only descriptor releases the lock.
}

DataDirectoryLock::DataDirectoryLock(DataDirectoryLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)) {}

DataDirectoryLock& DataDirectoryLock::operator=(DataDirectoryLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

audit::AuditRecord CliAuditRecord(std::string_view category, std::string_view action) {
  audit::AuditRecord record;
  record.category = std::string(category);
  record.action = std::string(action);
  record.outcome = audit::Outcome::kSuccess;
  record.actor.kind = "system";
  record.actor.id = std::string(kCliActorId);
  record.details.emplace_back("cli.uid", std::to_string(::getuid()));
  return record;
}

StatusOr<OpenedDataDirectory> OpenDataDirectory(const fs::path& data_dir, const Environment& env,
                                                DataDirectoryUse use) {
  OpenedDataDirectory out;
  KURA_ASSIGN_OR_RETURN(out.config, LoadConfig(data_dir, env));
  KURA_RETURN_IF_ERROR(CheckDataDirectoryPermissions(out.config));
  if (use == DataDirectoryUse::kServer || use == DataDirectoryUse::kExclusive) {
    KURA_ASSIGN_OR_RETURN(out.lock, DataDirectoryLock::Acquire(out.config.data_dir));
  }
  KURA_ASSIGN_OR_RETURN(out.keys, crypto::LocalKeyFileProvider::Load(
                                      ResolvePath(out.config, out.config.keys.key_file)));
  fs::path db_path = ResolvePath(out.config, out.config.storage.sqlite_path);
  std::error_code ec;
  if (!fs::exists(db_path, ec)) {
    return FailedPreconditionError("database " + db_path.string() +
                                   " does not exist; restore it or run `kura init` on a new "
                                   "directory");
  }
  store::SqliteOptions options{.path = db_path};
  if (use == DataDirectoryUse::kServer) {
    options.read_connections = static_cast<int>(out.config.storage.read_connections);
    options.group_commit_max_batch = static_cast<int>(out.config.storage.group_commit_max_batch);
  } else {
    // Two readers: the audit verifier reads rows while the key lookup reads data keys.
    options.read_connections = 2;
    options.group_commit_max_batch = 1;
    options.read_only = use == DataDirectoryUse::kReadOnly;
    // No command searches resources: reading every search row into memory would cost a large
    // database seconds and hundreds of MiB per command.
    options.search_index = false;
  }
  KURA_ASSIGN_OR_RETURN(out.db, store::SqliteStore::Open(options));
  return out;
}

Status AppendCliAuditRecord(OpenedDataDirectory& dir, audit::AuditRecord record) {
  auto failed = [](const Status& s) {
    return Status(s.code(), "the audit record could not be written: " + s.message(),
                  s.internal_detail());
  };
  if (!dir.audit) {
    StatusOr<AuditLogAccess> access = OpenAuditLog(*dir.db, *dir.keys, dir.config, Clock::System());
    if (!access.ok()) return failed(access.status());
    dir.audit.emplace(std::move(*access));
  }
  // A command's record is the last its writer adds: it leaves the log signed.
  Status s = AppendAuditRecord(*dir.db, std::move(record), dir.config, Clock::System(),
                               AuditTailSigning::kNow);
  if (!s.ok()) return failed(s);
  return Status::Ok();
}

StatusOr<std::string> IssueAdminToken(const fs::path& data_dir, std::string name) {
  KURA_RETURN_IF_ERROR(ValidateTokenName(name));
  KURA_ASSIGN_OR_RETURN(OpenedDataDirectory dir, OpenDataDirectory(data_dir, ProcessEnvironment()));
  audit::AuditRecord record = CliAuditRecord(audit::category::kAdmin, "token-create");
  record.resource_type = "kura:ApiToken";
  record.resource_id = name;  // The label; the token itself never reaches the log.
  record.details.emplace_back("token.role", std::string(auth::kSystemAdminRole));
  // The token goes in with PutApiToken, which cannot share a commit with an audit record (a
  // WriteBatch holds resources and audit drafts only). So the record comes first: when it cannot
  // be written no token exists (fail closed); when the token insert fails after it, the log
  // claims one token too many, the safe direction, and a failure record follows if it can.
  KURA_RETURN_IF_ERROR(AppendCliAuditRecord(dir, record));
  StatusOr<std::string> token = auth::ApiTokenAuthenticator::Issue(
      *dir.db, std::move(name), std::string(auth::kSystemAdminRole));
  if (!token.ok()) {
    record.outcome = audit::Outcome::kMajorFailure;
    record.outcome_reason = "store-failed";
    (void)AppendCliAuditRecord(dir, std::move(record));
  }
  return token;
}

}  // namespace kura::ops
