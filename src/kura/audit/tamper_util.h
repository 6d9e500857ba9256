// Test-only: edits an audit database behind Kura's back, as someone with write access to the
// disk would, for the tests that prove such edits are caught.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <string>

namespace kura::audit::testing {

inline void Tamper(const std::filesystem::path& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << (error != nullptr ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
}

// SQL that changes byte 31 of record `seq`'s sealed bytes (inside the ciphertext). It always
// changes it: writing a fixed value would leave it as it was once in 256 runs.
inline std::string ModifyRecordByteSql(uint64_t seq) {
  return "UPDATE audit_log SET record = substr(record, 1, 30) || "
         "CASE WHEN substr(record, 31, 1) = x'00' THEN x'01' ELSE x'00' END || "
         "substr(record, 32) WHERE seq = " +
         std::to_string(seq);
}

}  // namespace kura::audit::testing
