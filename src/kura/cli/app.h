// The `kura` command line: subcommands, flags, help and exit codes (0 ok, 1 failure, 2 usage;
// `audit verify`: 1 means the log does not verify and kExitCannotRun that it could not be
// checked, so scripts can tell tampering from a broken invocation environment).
// `serve` is wired by the server target (the only place that sees every layer) and passed in.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

namespace kura::cli {

struct ServeArgs {
  std::filesystem::path data_dir;
  std::string listen;  // Empty: from configuration.
};

using ServeCommand = std::function<int(const ServeArgs&)>;

int Main(int argc, char** argv, const ServeCommand& serve);

inline constexpr const char* kVersion = "0.1.0";

// `kura audit verify` could not run or could not record its result (missing directory or
// database, permissions, key file, unreadable checkpoint file, audit log not writable).
inline constexpr int kExitCannotRun = 3;

}  // namespace kura::cli
