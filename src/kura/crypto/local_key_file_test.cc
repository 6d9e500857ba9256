#include "kura/crypto/local_key_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

namespace kura::crypto {
namespace {

class LocalKeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kura-kf-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = dir_ / "master.key";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_, path_;
};

TEST_F(LocalKeyFileTest, CreatesOwnerOnlyFileAndWrapsKeys) {
  ASSERT_TRUE(LocalKeyFileProvider::CreateKeyFile(path_).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  EXPECT_EQ(LocalKeyFileProvider::CreateKeyFile(path_).code(), StatusCode::kAlreadyExists);

  auto provider = LocalKeyFileProvider::Load(path_);
  ASSERT_TRUE(provider.ok()) << provider.status().ToString();
  auto dek = SecretBytes::Random(32);
  auto wrapped = (*provider)->WrapKey(*dek, "patient:123");
  ASSERT_TRUE(wrapped.ok());
  auto back = (*provider)->UnwrapKey(*wrapped, "patient:123");
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->ConstantTimeEquals(*dek));
  EXPECT_EQ((*provider)->UnwrapKey(*wrapped, "patient:999").status().message(),
            "decryption failed");
  std::string bad = *wrapped;
  bad[bad.size() / 2] ^= 1;
  EXPECT_EQ((*provider)->UnwrapKey(bad, "patient:123").status().code(), StatusCode::kDataLoss);
}

TEST_F(LocalKeyFileTest, RefusesOpenPermissions) {
  ASSERT_TRUE(LocalKeyFileProvider::CreateKeyFile(path_).ok());
  ::chmod(path_.c_str(), 0640);
  auto provider = LocalKeyFileProvider::Load(path_);
  EXPECT_EQ(provider.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(provider.status().message().find("group or others"), std::string::npos);
}

TEST_F(LocalKeyFileTest, RejectsMalformedFile) {
  {
    std::ofstream out(path_);
    out << "kura-keyfile-v1\nkek 1 not-base64!!\n";
  }
  ::chmod(path_.c_str(), 0600);
  EXPECT_EQ(LocalKeyFileProvider::Load(path_).status().code(), StatusCode::kDataLoss);
}

TEST_F(LocalKeyFileTest, UnwrapsWithOlderKekAfterRotation) {
  ASSERT_TRUE(LocalKeyFileProvider::CreateKeyFile(path_).ok());
  auto v1 = LocalKeyFileProvider::Load(path_);
  auto dek = SecretBytes::Random(32);
  std::string wrapped = *(*v1)->WrapKey(*dek, "scope");
  {
    std::ofstream out(path_, std::ios::app);
    out << "kek 2 " << std::string(43, 'A') << "=\n";
  }
  auto v2 = LocalKeyFileProvider::Load(path_);
  ASSERT_TRUE(v2.ok()) << v2.status().ToString();
  EXPECT_EQ((*v2)->PrimaryKekVersion(), 2u);
  EXPECT_TRUE((*v2)->UnwrapKey(wrapped, "scope")->ConstantTimeEquals(*dek));
}

}  // namespace
}  // namespace kura::crypto
