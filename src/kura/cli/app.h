// The `kura` command line: subcommands, flags, help and exit codes (0 ok, 1 failure, 2 usage).
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

}  // namespace kura::cli
