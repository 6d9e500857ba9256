// Data directory initialization and permission checks.
#include "kura/ops/data_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "kura/auth/api_token_authenticator.h"
#include "kura/auth/principal.h"
#include "kura/base/random.h"
#include "kura/crypto/certificate.h"
#include "kura/crypto/local_key_file.h"
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
    KURA_ASSIGN_OR_RETURN(auto db, store::SqliteStore::Open(
                                       {.path = staging / config.storage.sqlite_path,
                                        .read_connections = 1,
                                        .group_commit_max_batch = 1}));
    KURA_ASSIGN_OR_RETURN(result.admin_token,
                          auth::ApiTokenAuthenticator::Issue(*db, "bootstrap-admin",
                                                             std::string(auth::kSystemAdminRole)));
  }
  // A clean close checkpoints the WAL; nothing else is left beside the database.
  result.data_dir = final_dir;
  result.base_url = config.server.public_base_url;
  return Status::Ok();
}

}  // namespace

StatusOr<InitResult> InitDataDirectory(const fs::path& dir_in) {
  std::error_code ec;
  fs::path dir = fs::absolute(dir_in, ec);
  if (ec) return InvalidArgumentError("invalid data directory path: " + dir_in.string());
  dir = dir.lexically_normal();
  if (dir.has_filename() == false) dir = dir.parent_path();
  if (fs::exists(dir / "kura.toml", ec)) {
    return AlreadyExistsError(dir.string() + " already holds a Kura data directory; refusing to touch it");
  }
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) return FailedPreconditionError(dir.string() + " exists and is not a directory");
    if (!fs::is_empty(dir, ec)) {
      return FailedPreconditionError(dir.string() + " exists and is not empty; choose a new or empty directory");
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

StatusOr<std::string> IssueAdminToken(const fs::path& data_dir, std::string name) {
  KURA_ASSIGN_OR_RETURN(Config config, LoadConfig(data_dir, ProcessEnvironment()));
  KURA_RETURN_IF_ERROR(CheckDataDirectoryPermissions(config));
  KURA_ASSIGN_OR_RETURN(auto db, store::SqliteStore::Open(
                                     {.path = ResolvePath(config, config.storage.sqlite_path),
                                      .read_connections = 1,
                                      .group_commit_max_batch = 1}));
  return auth::ApiTokenAuthenticator::Issue(*db, std::move(name),
                                            std::string(auth::kSystemAdminRole));
}

}  // namespace kura::ops
