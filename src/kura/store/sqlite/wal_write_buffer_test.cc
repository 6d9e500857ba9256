// The buffered-WAL VFS against real SQLite databases: frames coalesce into few writes, and
// connections through the default VFS (another process would use it) always read what was
// committed, with or without a sync, across rollbacks and WAL restarts.
#include "kura/store/sqlite/wal_write_buffer.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

namespace kura::store {
namespace {

class BufferedWalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/kura-walbuf-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    path_ = (dir_ / "t.db").string();
  }
  void TearDown() override {
    for (sqlite3* db : {buffered_, plain_}) sqlite3_close(db);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // A connection through the buffered VFS with `synchronous`, and one through the default VFS.
  void OpenBoth(const char* synchronous) {
    ASSERT_NE(BufferedWalVfsName(), nullptr);
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &buffered_, flags, BufferedWalVfsName()), SQLITE_OK);
    Exec(buffered_, std::string("PRAGMA journal_mode=WAL; PRAGMA synchronous=") + synchronous +
                        "; CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB);");
    ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &plain_, flags, nullptr), SQLITE_OK);
  }

  static void Exec(sqlite3* db, const std::string& sql) {
    char* error = nullptr;
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << (error != nullptr ? error : "");
    sqlite3_free(error);
  }

  static int64_t Int(sqlite3* db, const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK);
    const int rc = sqlite3_step(stmt);
    EXPECT_EQ(rc, SQLITE_ROW) << sqlite3_errmsg(db);
    const int64_t value = rc == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
    sqlite3_finalize(stmt);
    return value;
  }

  static std::string Text(sqlite3* db, const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK);
    std::string value;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return value;
  }

  // One transaction of `rows` rows of 1 KiB with keys from `first`.
  void InsertRows(int first, int rows, bool commit = true) {
    Exec(buffered_, "BEGIN");
    for (int i = first; i < first + rows; ++i) {
      Exec(buffered_, "INSERT INTO t VALUES(" + std::to_string(i) + ", zeroblob(1024))");
    }
    Exec(buffered_, commit ? "COMMIT" : "ROLLBACK");
  }

  std::filesystem::path dir_;
  std::string path_;
  sqlite3* buffered_ = nullptr;
  sqlite3* plain_ = nullptr;
};

TEST_F(BufferedWalTest, ACommitsFramesReachTheFileInAFewWrites) {
  OpenBoth("FULL");
  const BufferedWalStats before = GetBufferedWalStats();
  InsertRows(0, 400);  // About 100 pages of rows plus index pages.
  const BufferedWalStats after = GetBufferedWalStats();
  const int64_t frames = after.frames_written - before.frames_written;
  const int64_t writes = after.file_writes - before.file_writes;
  EXPECT_GE(frames, 100);
  // Two writes per frame without the buffer; with it one per 30 frames or so.
  EXPECT_LE(writes, frames / 20 + 2) << frames << " frames";
  EXPECT_EQ(Int(plain_, "SELECT count(*) FROM t"), 400);
}

TEST_F(BufferedWalTest, OtherConnectionsSeeEachCommitEvenWithoutASync) {
  // No sync at commit: only the commit frame tells the VFS the frames are complete, and SQLite
  // publishes them to readers right after.
  OpenBoth("OFF");
  for (int round = 0; round < 20; ++round) {
    InsertRows(round * 10, 10);
    ASSERT_EQ(Int(plain_, "SELECT count(*) FROM t"), (round + 1) * 10);
    ASSERT_EQ(Int(plain_, "SELECT sum(length(v)) FROM t"), (round + 1) * 10 * 1024);
  }
  EXPECT_EQ(Text(plain_, "PRAGMA integrity_check"), "ok");
}

TEST_F(BufferedWalTest, RolledBackAndRestartedLogsStayConsistent) {
  OpenBoth("FULL");
  InsertRows(0, 50);
  InsertRows(1000, 300, /*commit=*/false);  // More frames than one buffer, then a rollback.
  InsertRows(50, 50);
  EXPECT_EQ(Int(plain_, "SELECT count(*) FROM t"), 100);
  // A full checkpoint lets the next writer start the WAL over at its beginning, where the
  // buffered VFS must write the new header and frames over the old ones.
  Exec(plain_, "PRAGMA wal_checkpoint(TRUNCATE)");
  InsertRows(100, 50);
  Exec(plain_, "PRAGMA wal_checkpoint(PASSIVE)");
  InsertRows(150, 50);
  EXPECT_EQ(Int(plain_, "SELECT count(*) FROM t"), 200);
  EXPECT_EQ(Int(buffered_, "SELECT count(*) FROM t"), 200);
  EXPECT_EQ(Text(plain_, "PRAGMA integrity_check"), "ok");
  // Closed and reopened through the default VFS alone, the database holds every commit.
  sqlite3_close(buffered_);
  buffered_ = nullptr;
  sqlite3_close(plain_);
  ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &plain_, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  EXPECT_EQ(Int(plain_, "SELECT count(*) FROM t"), 200);
  EXPECT_EQ(Text(plain_, "PRAGMA integrity_check"), "ok");
}

TEST_F(BufferedWalTest, ARolledBackTransactionsFramesNeverOverwriteAnotherWritersCommit) {
  OpenBoth("FULL");
  InsertRows(0, 10);
  // An empty WAL, so that rolling back reads nothing from it (which would flush the buffer early).
  Exec(plain_, "PRAGMA wal_checkpoint(TRUNCATE)");
  // A page cache this small spills the transaction's pages into the WAL before it ends: frames
  // without a commit frame, which stay in the buffer when the transaction rolls back.
  Exec(buffered_, "PRAGMA cache_size=10");
  const BufferedWalStats before = GetBufferedWalStats();
  InsertRows(100, 40, /*commit=*/false);
  ASSERT_GT(GetBufferedWalStats().frames_written, before.frames_written);
  // Another writer (the default VFS, as another process would) appends its commit where the
  // rolled-back frames would have gone.
  Exec(plain_, "BEGIN");
  for (int i = 1000; i < 1040; ++i) {
    Exec(plain_, "INSERT INTO t VALUES(" + std::to_string(i) + ", randomblob(1024))");
  }
  Exec(plain_, "COMMIT");
  // The buffered connection reads (and so touches its WAL file) and writes again: the other
  // writer's frames must come through intact.
  EXPECT_EQ(Int(buffered_, "SELECT count(*) FROM t"), 50);
  InsertRows(10, 5);
  EXPECT_EQ(Int(plain_, "SELECT count(*) FROM t"), 55);
  EXPECT_EQ(Int(plain_, "SELECT count(*) FROM t WHERE k >= 1000 AND length(v) = 1024"), 40);
  EXPECT_EQ(Text(plain_, "PRAGMA integrity_check"), "ok");
}

}  // namespace
}  // namespace kura::store
