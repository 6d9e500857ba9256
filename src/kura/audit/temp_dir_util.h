// Test-only: a fresh, uniquely named temporary directory for a test's files.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <string_view>

namespace kura::audit::testing {

// Creates `<temp dir>/<prefix>-XXXXXX`; an empty path if it cannot.
inline std::filesystem::path MakeUniqueTempDir(std::string_view prefix) {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
  char* made = ::mkdtemp(tmpl.data());
  return made == nullptr ? std::filesystem::path() : std::filesystem::path(made);
}

}  // namespace kura::audit::testing
