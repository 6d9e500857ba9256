// JsonLinesFile: O_APPEND writes, fdatasync before success, truncation back on failure.
#include "kura/audit/json_lines_sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

namespace kura::audit {
namespace {

constexpr std::string_view kUnavailable = "audit export file unavailable";

std::string Errno(std::string_view what, const std::filesystem::path& path, int err) {
  return std::string(what) + " " + path.string() + ": " + std::strerror(err);
}

Status NotARegularFile(const std::filesystem::path& path) {
  return FailedPreconditionError("audit export path " + path.string() +
                                 " exists and is not a regular file");
}

// Opens (creating 0600) and checks the file; the descriptor or a Status.
StatusOr<int> OpenFile(const std::filesystem::path& path) {
  // O_NONBLOCK so that a FIFO at the path fails instead of blocking until a reader comes.
  int fd =
      ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600);
  if (fd < 0 && (errno == EISDIR || errno == ENXIO)) return NotARegularFile(path);
  if (fd < 0) return UnavailableError(std::string(kUnavailable), Errno("open", path, errno));
  // Closes the descriptor and reports errno (read first) for step `what`.
  auto fail = [&](std::string_view what) -> Status {
    const int err = errno;
    ::close(fd);
    return UnavailableError(std::string(kUnavailable), Errno(what, path, err));
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail("stat");
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return NotARegularFile(path);
  }
  // Clears O_NONBLOCK (wanted only for the open) and keeps O_APPEND.
  if (::fcntl(fd, F_SETFL, O_APPEND) != 0) return fail("fcntl");
  // An existing file may have been created with a laxer umask; the lines name people.
  if ((st.st_mode & 07777) != 0600 && ::fchmod(fd, 0600) != 0) return fail("chmod");
  // Make a newly created directory entry durable too, or a crash could lose the whole file
  // after Append reported success.
  std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0 || ::fsync(dir_fd) != 0) {
    Status failed = fail("sync directory of");
    if (dir_fd >= 0) ::close(dir_fd);
    return failed;
  }
  ::close(dir_fd);
  return fd;
}

}  // namespace

StatusOr<std::unique_ptr<JsonLinesFile>> JsonLinesFile::Open(std::filesystem::path path) {
  KURA_ASSIGN_OR_RETURN(int fd, OpenFile(path));
  return std::unique_ptr<JsonLinesFile>(new JsonLinesFile(std::move(path), fd));
}

JsonLinesFile::~JsonLinesFile() {
  if (fd_ >= 0) ::close(fd_);
}

Status JsonLinesFile::FollowRotation() {
  struct stat by_path {
  }, open_file{};
  if (::fstat(fd_, &open_file) != 0) {
    return UnavailableError(std::string(kUnavailable), Errno("stat", path_, errno));
  }
  if (::stat(path_.c_str(), &by_path) == 0 && by_path.st_dev == open_file.st_dev &&
      by_path.st_ino == open_file.st_ino) {
    return Status::Ok();
  }
  KURA_ASSIGN_OR_RETURN(int fd, OpenFile(path_));
  ::close(fd_);
  fd_ = fd;
  return Status::Ok();
}

Status JsonLinesFile::Append(std::span<const std::string> lines) {
  for (const auto& line : lines) {
    if (line.empty() || line.back() != '\n' || line.find('\n') != line.size() - 1) {
      return InvalidArgumentError("an export line must end in one newline and hold no other");
    }
  }
  if (lines.empty()) return Status::Ok();
  KURA_RETURN_IF_ERROR(FollowRotation());
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    return UnavailableError(std::string(kUnavailable), Errno("stat", path_, errno));
  }
  const off_t start = st.st_size;

  std::vector<iovec> iov;
  iov.reserve(lines.size());
  for (const auto& line : lines) {
    iov.push_back({const_cast<char*>(line.data()), line.size()});
  }
  size_t next = 0;
  int err = 0;
  while (next < iov.size()) {
    int count = static_cast<int>(std::min<size_t>(iov.size() - next, IOV_MAX));
    ssize_t n = ::writev(fd_, &iov[next], count);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    // Skip what was written; a short write leaves the rest of one iovec for the next round.
    size_t written = static_cast<size_t>(n);
    while (next < iov.size() && written >= iov[next].iov_len) {
      written -= iov[next].iov_len;
      ++next;
    }
    if (written > 0) {
      iov[next].iov_base = static_cast<char*>(iov[next].iov_base) + written;
      iov[next].iov_len -= written;
    }
  }
  if (err == 0 && ::fdatasync(fd_) != 0) err = errno;
  if (err != 0) {
    // Leave no partial line behind for readers; the caller resends the whole batch.
    if (::ftruncate(fd_, start) != 0) {
      return UnavailableError(
          std::string(kUnavailable),
          Errno("write", path_, err) + "; truncating back also failed: " + std::strerror(errno));
    }
    return UnavailableError(std::string(kUnavailable), Errno("write", path_, err));
  }
  return Status::Ok();
}

}  // namespace kura::audit
