// Test-only: a fixture with a freshly initialised data directory, for the tests of the commands
// that run on one.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include "kura/audit/temp_dir_util.h"
#include "kura/ops/data_dir.h"

namespace kura::ops::testing {

// Runs SQL on the database file, as someone with write access to the disk would; returns the
// first column of the last row (or "").
inline std::string Sql(const std::filesystem::path& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  std::string last;
  char* error = nullptr;
  auto keep = [](void* out, int n, char** values, char**) {
    if (n > 0 && values[0] != nullptr) *static_cast<std::string*>(out) = values[0];
    return 0;
  };
  const int rc = sqlite3_exec(db, sql.c_str(), keep, &last, &error);
  EXPECT_EQ(rc, SQLITE_OK) << (error != nullptr ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
  return last;
}

// Initialises `dir_` (`root_`/data, a new temporary directory) in SetUp and removes `root_` in
// TearDown. A test fixture derives from it and names the temporary directory.
class DataDirTest : public ::testing::Test {
 protected:
  explicit DataDirTest(std::string temp_prefix) : temp_prefix_(std::move(temp_prefix)) {}

  void SetUp() override {
    root_ = audit::testing::MakeUniqueTempDir(temp_prefix_);
    ASSERT_FALSE(root_.empty());
    auto made = InitDataDirectory(root_ / "data");
    ASSERT_TRUE(made.ok()) << made.status().message();
    dir_ = made->data_dir;
  }

  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

  std::filesystem::path root_;
  std::filesystem::path dir_;

 private:
  const std::string temp_prefix_;
};

}  // namespace kura::ops::testing
