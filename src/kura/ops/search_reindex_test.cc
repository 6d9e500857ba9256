// The data-directory lock, the search-index fingerprint check `kura serve` runs, and
// `kura fhir reindex` refusing to run beside a server.
#include "kura/ops/search_reindex.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "kura/ops/data_dir.h"
#include "kura/ops/data_dir_fixture.h"

namespace kura::ops {
namespace {

class SearchReindexTest : public testing::DataDirTest {
 protected:
  SearchReindexTest() : DataDirTest("kura-ops-reindex") {}
};

TEST_F(SearchReindexTest, TheLockIsExclusiveAndGoesWithItsHolder) {
  StatusOr<DataDirectoryLock> first = DataDirectoryLock::Acquire(dir_);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_TRUE(first->held());
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "kura.lock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  StatusOr<DataDirectoryLock> second = DataDirectoryLock::Acquire(dir_);
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("in use by another kura server"), std::string::npos);
  // A server or an exclusive command is refused; a plain command (token create, verify) is not.
  EXPECT_EQ(OpenDataDirectory(dir_, {}, DataDirectoryUse::kServer).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReindexDataDirectory(dir_, {}).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(OpenDataDirectory(dir_, {}, DataDirectoryUse::kCommand).ok());

  DataDirectoryLock moved = std::move(*first);
  EXPECT_TRUE(moved.held());
  EXPECT_FALSE(first->held());
  EXPECT_FALSE(DataDirectoryLock::Acquire(dir_).ok());
  moved = DataDirectoryLock();
  EXPECT_TRUE(DataDirectoryLock::Acquire(dir_).ok());
}

TEST_F(SearchReindexTest, TheServerRecordsAFirstFingerprintAndRefusesAnotherRegister) {
  StatusOr<OpenedDataDirectory> dir = OpenDataDirectory(dir_, {}, DataDirectoryUse::kServer);
  ASSERT_TRUE(dir.ok()) << dir.status().message();
  const fhir::DataRegister& shipped = fhir::DataRegister::Default();
  ASSERT_TRUE(CheckSearchIndexFingerprint(*dir->db, shipped).ok());
  StatusOr<std::optional<std::string>> stored = dir->db->ReadIndexFingerprint();
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, SearchIndexFingerprint(shipped));
  EXPECT_EQ(stored->value_or("").size(), 64u);
  EXPECT_TRUE(CheckSearchIndexFingerprint(*dir->db, shipped).ok());

  StatusOr<fhir::DataRegister> clear_names =
      fhir::DataRegister::Parse("[search]\n\"*.name\" = \"clear\"\n");
  ASSERT_TRUE(clear_names.ok());
  EXPECT_NE(SearchIndexFingerprint(*clear_names), SearchIndexFingerprint(shipped));
  Status refused = CheckSearchIndexFingerprint(*dir->db, *clear_names);
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("kura fhir reindex"), std::string::npos);
  // Refusing changes nothing.
  stored = dir->db->ReadIndexFingerprint();
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, SearchIndexFingerprint(shipped));
}

}  // namespace
}  // namespace kura::ops
