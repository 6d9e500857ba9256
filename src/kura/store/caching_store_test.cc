// CachingStore over the real SQLite backend: what it serves from memory, when it fills, that it
// never outlives a failed commit and that it keeps to its budget. (Equivalence with the backend
// alone is the conformance suite's job: store_conformance_test.cc runs it over CachingStore.)
#include "kura/store/caching_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <future>

#include "kura/store/sqlite/sqlite_store.h"

namespace kura::store {
namespace {

ResourceVersion Res(std::string id, int64_t version, std::string payload) {
  ResourceVersion r;
  r.type = "Observation";
  r.id = std::move(id);
  r.version = version;
  r.last_updated = FromMicros(1'700'000'000'000'000 + version);
  r.payload = std::move(payload);
  return r;
}

WriteBatch Batch(ResourceVersion v) {
  WriteBatch batch;
  batch.resources.push_back(std::move(v));
  return batch;
}

class CachingStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "kura-cache-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    auto opened = SqliteStore::Open({.path = dir_ / "kura.db"});
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    backend_ = std::move(*opened);
  }
  void TearDown() override {
    backend_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::filesystem::path dir_;
  std::unique_ptr<SqliteStore> backend_;
};

TEST_F(CachingStoreTest, CommittedVersionsAreServedFromMemory) {
  CachingStore cache(*backend_, 1 << 20);
  EXPECT_FALSE(cache.ReadCurrentIfCached("Observation", "o").has_value());
  ASSERT_TRUE(cache.Commit(Batch(Res("o", 1, "one"))).ok());
  auto hit = cache.ReadCurrentIfCached("Observation", "o");
  ASSERT_TRUE(hit.has_value());
  ASSERT_TRUE(hit->ok());
  EXPECT_EQ((*hit)->payload, "one");
  EXPECT_GT((*hit)->sequence, 0);
  EXPECT_TRUE(cache.ReadVersionIfCached("Observation", "o", 1).has_value());
  EXPECT_FALSE(cache.ReadVersionIfCached("Observation", "o", 2).has_value());
  EXPECT_GE(cache.Stats().hits, 2);
  EXPECT_EQ(cache.Stats().entries, 1);
}

TEST_F(CachingStoreTest, AReadFillsTheCache) {
  ASSERT_TRUE(backend_->Commit(Batch(Res("o", 1, "written-behind-the-cache"))).ok());
  CachingStore cache(*backend_, 1 << 20);
  EXPECT_FALSE(cache.ReadCurrentIfCached("Observation", "o").has_value());
  ASSERT_TRUE(cache.ReadCurrent("Observation", "o").ok());
  auto hit = cache.ReadCurrentIfCached("Observation", "o");
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ((*hit)->payload, "written-behind-the-cache");
}

TEST_F(CachingStoreTest, AFailedCommitLeavesTheCachedVersion) {
  CachingStore cache(*backend_, 1 << 20);
  ASSERT_TRUE(cache.Commit(Batch(Res("o", 1, "one"))).ok());
  EXPECT_EQ(cache.Commit(Batch(Res("o", 1, "conflict"))).status().code(), StatusCode::kAborted);
  std::promise<StatusOr<CommitResult>> result;
  cache.CommitAsync(Batch(Res("o", 3, "gap")),
                    [&](StatusOr<CommitResult> r) { result.set_value(std::move(r)); });
  EXPECT_EQ(result.get_future().get().status().code(), StatusCode::kAborted);
  auto hit = cache.ReadCurrentIfCached("Observation", "o");
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ((*hit)->version, 1);
  EXPECT_EQ((*hit)->payload, "one");
}

TEST_F(CachingStoreTest, KeepsWithinItsBudgetAndDropsTheLeastRecentlyUsed) {
  constexpr size_t kBudget = 64 << 10;
  CachingStore cache(*backend_, kBudget);
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(cache.Commit(Batch(Res("o" + std::to_string(i), 1, std::string(1000, 'x')))).ok());
    EXPECT_LE(cache.Stats().bytes, static_cast<int64_t>(kBudget));
  }
  EXPECT_GT(cache.Stats().entries, 10);
  EXPECT_LT(cache.Stats().entries, 500);
  EXPECT_FALSE(cache.ReadCurrentIfCached("Observation", "o0").has_value());
  EXPECT_TRUE(cache.ReadCurrentIfCached("Observation", "o499").has_value());
  // Evicted entries still read, from the database.
  EXPECT_EQ(cache.ReadCurrent("Observation", "o0")->payload, std::string(1000, 'x'));
}

TEST_F(CachingStoreTest, ZeroBudgetTurnsItOff) {
  CachingStore cache(*backend_, 0);
  ASSERT_TRUE(cache.Commit(Batch(Res("o", 1, "one"))).ok());
  EXPECT_FALSE(cache.ReadCurrentIfCached("Observation", "o").has_value());
  EXPECT_EQ(cache.ReadCurrent("Observation", "o")->payload, "one");
  EXPECT_FALSE(cache.ReadCurrentIfCached("Observation", "o").has_value());
  EXPECT_EQ(cache.Stats().entries, 0);
}

}  // namespace
}  // namespace kura::store
