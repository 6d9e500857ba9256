#include "kura/audit/json_lines_sink.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace kura::audit {
namespace {

namespace fs = std::filesystem;

class JsonLinesFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "kura-jsonl-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string Read(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  static unsigned Mode(const fs::path& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0);
    return st.st_mode & 07777;
  }

  fs::path dir_;
};

TEST_F(JsonLinesFileTest, CreatesOwnerOnlyFileAndAppends) {
  fs::path path = dir_ / "audit.jsonl";
  auto file = JsonLinesFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(Mode(path), 0600u);
  std::vector<std::string> batch = {"{\"a\":1}\n", "{\"b\":\"\xc3\xa9\"}\n"};
  ASSERT_TRUE((*file)->Append(batch).ok());
  ASSERT_TRUE((*file)->Append(std::vector<std::string>{"{\"c\":3}\n"}).ok());
  ASSERT_TRUE((*file)->Append({}).ok());
  EXPECT_EQ(Read(path), "{\"a\":1}\n{\"b\":\"\xc3\xa9\"}\n{\"c\":3}\n");

  // A second open appends after what is there.
  file->reset();
  auto again = JsonLinesFile::Open(path);
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE((*again)->Append(std::vector<std::string>{"{\"d\":4}\n"}).ok());
  EXPECT_EQ(Read(path), "{\"a\":1}\n{\"b\":\"\xc3\xa9\"}\n{\"c\":3}\n{\"d\":4}\n");
}

TEST_F(JsonLinesFileTest, TightensAnExistingFile) {
  fs::path path = dir_ / "audit.jsonl";
  std::ofstream(path) << "old\n";
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto file = JsonLinesFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(Mode(path), 0600u);
  ASSERT_TRUE((*file)->Append(std::vector<std::string>{"new\n"}).ok());
  EXPECT_EQ(Read(path), "old\nnew\n");
}

TEST_F(JsonLinesFileTest, RejectsMalformedLinesWithoutWriting) {
  fs::path path = dir_ / "audit.jsonl";
  auto file = JsonLinesFile::Open(path);
  ASSERT_TRUE(file.ok());
  for (const std::vector<std::string>& batch :
       {std::vector<std::string>{"ok\n", "no newline"}, std::vector<std::string>{"two\nlines\n"},
        std::vector<std::string>{""}}) {
    EXPECT_EQ((*file)->Append(batch).code(), StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(Read(path), "");
}

TEST_F(JsonLinesFileTest, FollowsRotation) {
  fs::path path = dir_ / "audit.jsonl";
  auto file = JsonLinesFile::Open(path);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE((*file)->Append(std::vector<std::string>{"one\n"}).ok());
  fs::rename(path, dir_ / "audit.jsonl.1");
  ASSERT_TRUE((*file)->Append(std::vector<std::string>{"two\n"}).ok());
  EXPECT_EQ(Read(dir_ / "audit.jsonl.1"), "one\n");
  EXPECT_EQ(Read(path), "two\n");
  EXPECT_EQ(Mode(path), 0600u);
  fs::remove(path);
  ASSERT_TRUE((*file)->Append(std::vector<std::string>{"three\n"}).ok());
  EXPECT_EQ(Read(path), "three\n");
}

TEST_F(JsonLinesFileTest, OpenErrors) {
  auto dir = JsonLinesFile::Open(dir_);
  EXPECT_EQ(dir.status().code(), StatusCode::kFailedPrecondition);
  fs::path fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(JsonLinesFile::Open(fifo).status().code(), StatusCode::kFailedPrecondition);
  auto missing = JsonLinesFile::Open(dir_ / "no-such-dir" / "audit.jsonl");
  EXPECT_EQ(missing.status().code(), StatusCode::kUnavailable);
}

// A write that fails half-way (here: the file size limit) must not leave a partial line behind,
// or the next batch would be glued onto it.
TEST_F(JsonLinesFileTest, FailedWriteLeavesNoPartialLine) {
  fs::path path = dir_ / "audit.jsonl";
  auto file = JsonLinesFile::Open(path);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE((*file)->Append(std::vector<std::string>{"first\n"}).ok());

  struct rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit limited = saved;
  limited.rlim_cur = 100;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limited), 0);
  std::vector<std::string> batch = {"short\n", std::string(200, 'x') + "\n"};
  Status status = (*file)->Append(batch);
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);

  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(status.message().find("xxx"), std::string::npos);  // No content in errors.
  EXPECT_EQ(Read(path), "first\n");
  ASSERT_TRUE((*file)->Append(std::vector<std::string>{"after\n"}).ok());
  EXPECT_EQ(Read(path), "first\nafter\n");
}

}  // namespace
}  // namespace kura::audit
