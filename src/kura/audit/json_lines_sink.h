// JsonLinesFile: the audit export that appends JSON lines (export_format.h) to a local file, for
// collectors that tail files (Filebeat, Fluent Bit, Vector) and for offline copies of
// checkpoints.
//
// The file holds account and patient identifiers, so it is created (and kept) 0600. Append
// returns OK only once the bytes are on disk (fdatasync), so the exporter may advance its
// durable cursor after it; a failed batch is cut off again so the file never keeps a partial
// line. After a crash between the write and the cursor update the batch is written again:
// readers deduplicate by `sequence` (records) or `tree_size` (checkpoints). When the file is
// renamed or removed (log rotation), the next Append starts a new file at the configured path.
//
// Thread-compatible: one exporter thread owns it. Assumes it is the only writer of the file.
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include "kura/base/status.h"

namespace kura::audit {

class JsonLinesFile {
 public:
  // Opens `path` for appending, creating it 0600 (and tightening an existing file to 0600).
  // FailedPrecondition when the path exists and is not a regular file; Unavailable when the file
  // cannot be opened or created (e.g. missing directory, permissions).
  [[nodiscard]] static StatusOr<std::unique_ptr<JsonLinesFile>> Open(std::filesystem::path path);

  ~JsonLinesFile();
  JsonLinesFile(const JsonLinesFile&) = delete;
  JsonLinesFile& operator=(const JsonLinesFile&) = delete;

  // Appends each line (each must end in '\n' and hold no other '\n') and syncs the data to disk.
  // InvalidArgument (nothing written) for a malformed line; Unavailable when writing or syncing
  // fails, after cutting the file back to its length before the call.
  [[nodiscard]] Status Append(std::span<const std::string> lines);

  const std::filesystem::path& path() const { return path_; }

 private:
  JsonLinesFile(std::filesystem::path path, int fd) : path_(std::move(path)), fd_(fd) {}
  // Reopens when the path no longer names the open file (rotated away or deleted).
  [[nodiscard]] Status FollowRotation();

  std::filesystem::path path_;
  int fd_ = -1;
};

}  // namespace kura::audit
