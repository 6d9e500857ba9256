// The data directory: what `kura init` creates and what `kura serve` insists on.
//
// Layout (mode 0700): kura.toml (0600), keys/master.key (0600), tls/cert.pem (0644) + tls/key.pem
// (0600), kura.db (+ -wal, -shm; 0600). Initialization builds everything in a sibling temporary
// directory and renames it into place, so a failed init leaves nothing half-made behind.
#pragma once

#include <filesystem>
#include <string>

#include "kura/base/config.h"
#include "kura/base/status.h"

namespace kura::ops {

struct InitResult {
  std::filesystem::path data_dir;
  std::string admin_token;  // Shown once; only its hash is stored.
  std::string base_url;
};

// AlreadyExists when `dir` holds a Kura data directory, FailedPrecondition when it exists and is
// not an empty directory; Internal on I/O failures.
StatusOr<InitResult> InitDataDirectory(const std::filesystem::path& dir);

// FailedPrecondition (naming the path and the fix) when the directory, the key file or the TLS
// key is accessible by group or others.
Status CheckDataDirectoryPermissions(const Config& config);

// Issues another system-administrator API token in an existing data directory (the server may
// be running). Returns the token, shown once.
StatusOr<std::string> IssueAdminToken(const std::filesystem::path& data_dir, std::string name);

}  // namespace kura::ops
