// The Store conformance suite: the behaviour every storage backend must show.
//
// StoreConformanceTest is value-parameterized over a factory that opens a backend keeping its
// state under a directory (opening the same directory again must reopen the same data), so a new
// backend (PostgreSQL) is one more INSTANTIATE_TEST_SUITE_P. The SqliteStoreTest cases at the
// end cover what only the embedded backend has: files, permissions and schema versions.
//
// Hermetic: a fresh temporary directory per test, timestamps chosen by the test, no sleeps (threads
// meet at std::barrier), no assertions on wall-clock time.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "kura/store/caching_store.h"
#include "kura/store/search_index_rows.h"
#include "kura/store/sqlite/schema_test_util.h"
#include "kura/store/sqlite/sqlite_store.h"
#include "kura/store/sqlite/wal_write_buffer.h"
#include "kura/store/store.h"

namespace kura::store {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using namespace std::string_literals;

// --- Status matchers -------------------------------------------------------------------------

Status GetStatus(const Status& status) { return status; }
template <typename T>
Status GetStatus(const StatusOr<T>& status_or) {
  return status_or.status();
}

MATCHER(IsOk, "is OK") {
  Status status = GetStatus(arg);
  *result_listener << status.ToString();
  return status.ok();
}

MATCHER_P(StatusIs, code, "has status code " + std::string(StatusCodeName(code))) {
  Status status = GetStatus(arg);
  *result_listener << status.ToString();
  return status.code() == code;
}

// --- Fixtures and helpers --------------------------------------------------------------------

using StoreFactory = std::function<std::unique_ptr<Store>(const std::filesystem::path& dir)>;

struct Backend {
  std::string name;
  StoreFactory open;
};

void PrintTo(const Backend& backend, std::ostream* os) { *os << backend.name; }

std::filesystem::path MakeTempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "kura-store-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) return {};
  return pattern;
}

const TimePoint kT0{std::chrono::microseconds(1'700'000'000'123'456)};

TimePoint At(int seconds) { return kT0 + std::chrono::seconds(seconds); }

ResourceVersion Res(std::string type, std::string id, int64_t version, std::string payload = "{}",
                    TimePoint last_updated = kT0, std::string compartment = "") {
  ResourceVersion r;
  r.type = std::move(type);
  r.id = std::move(id);
  r.version = version;
  r.last_updated = last_updated;
  r.payload = std::move(payload);
  r.compartment = std::move(compartment);
  return r;
}

ResourceVersion DeleteMarker(std::string type, std::string id, int64_t version,
                             TimePoint last_updated = kT0) {
  ResourceVersion r = Res(std::move(type), std::move(id), version, "", last_updated);
  r.deleted = true;
  return r;
}

WriteBatch Batch(std::vector<ResourceVersion> resources) {
  WriteBatch batch;
  batch.resources = std::move(resources);
  return batch;
}

// HistoryQuery builders (GCC's -Wmissing-field-initializers rejects partial designated
// initializers).
HistoryQuery Query(std::string type = "", std::string id = "") {
  HistoryQuery query;
  query.type = std::move(type);
  query.id = std::move(id);
  return query;
}
HistoryQuery Since(HistoryQuery query, TimePoint since) {
  query.since = since;
  return query;
}
HistoryQuery Limit(HistoryQuery query, int64_t limit) {
  query.limit = limit;
  return query;
}
HistoryQuery Before(HistoryQuery query, int64_t before_sequence) {
  query.before_sequence = before_sequence;
  return query;
}

ApiToken Token(std::string hash, std::string name, std::string role, TimePoint created,
               bool revoked = false) {
  ApiToken token;
  token.token_hash = std::move(hash);
  token.name = std::move(name);
  token.role = std::move(role);
  token.created = created;
  token.revoked = revoked;
  return token;
}

SqliteOptions Options(std::filesystem::path path, int read_connections = 8,
                      int group_commit_max_batch = 1024) {
  SqliteOptions options;
  options.path = std::move(path);
  options.read_connections = read_connections;
  options.group_commit_max_batch = group_commit_max_batch;
  return options;
}

// (type, id, version) of a history entry, for readable comparisons.
using Key = std::tuple<std::string, std::string, int64_t>;

std::vector<Key> Keys(const std::vector<ResourceVersion>& versions) {
  std::vector<Key> keys;
  for (const auto& v : versions) keys.emplace_back(v.type, v.id, v.version);
  return keys;
}

void ExpectSameVersion(const ResourceVersion& actual, const ResourceVersion& expected) {
  EXPECT_EQ(actual.type, expected.type);
  EXPECT_EQ(actual.id, expected.id);
  EXPECT_EQ(actual.version, expected.version);
  EXPECT_EQ(actual.last_updated, expected.last_updated);
  EXPECT_EQ(actual.deleted, expected.deleted);
  EXPECT_EQ(actual.compartment, expected.compartment);
  EXPECT_EQ(actual.payload, expected.payload);
  if (expected.sequence != 0) {
    EXPECT_EQ(actual.sequence, expected.sequence);
  }
}

StoredDataKey DataKey(uint64_t key_id, std::string scope, std::string wrapped,
                      uint32_t kek_version = 1) {
  StoredDataKey key;
  key.key_id = key_id;
  key.scope = std::move(scope);
  key.kek_version = kek_version;
  key.wrapped = std::move(wrapped);
  key.created = At(1);
  return key;
}

void ExpectSameKey(const StoredDataKey& actual, const StoredDataKey& expected) {
  EXPECT_EQ(actual.key_id, expected.key_id);
  EXPECT_EQ(actual.scope, expected.scope);
  EXPECT_EQ(actual.kek_version, expected.kek_version);
  EXPECT_EQ(actual.wrapped, expected.wrapped);
  EXPECT_EQ(actual.created, expected.created);
}

std::string TokenHash(char fill) {
  std::string hash(32, fill);
  hash[0] = '\0';  // Hashes are raw bytes, NULs included.
  hash[31] = '\xff';
  return hash;
}

class StoreConformanceTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    ASSERT_FALSE(dir_.empty());
    store_ = GetParam().open(dir_);
    ASSERT_NE(store_, nullptr);
  }

  void TearDown() override {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Closes the store and opens the same data again.
  void Reopen() {
    store_.reset();
    store_ = GetParam().open(dir_);
    ASSERT_NE(store_, nullptr);
  }

  Store& store() { return *store_; }

  int64_t MustCommit(std::vector<ResourceVersion> resources) {
    StatusOr<CommitResult> result = store().Commit(Batch(std::move(resources)));
    EXPECT_THAT(result, IsOk());
    if (!result.ok() || result->sequences.empty()) return 0;
    return result->sequences.back();
  }

  // How many versions the history of `type`/`id` holds (up to a first page of 50).
  size_t HistorySize(std::string_view type, std::string_view id) {
    HistoryQuery query;
    query.type = std::string(type);
    query.id = std::string(id);
    StatusOr<HistoryPage> page = store().History(query);
    EXPECT_THAT(page, IsOk());
    return page.ok() ? page->versions.size() : 0;
  }

  // Pages through a history query with `page_size`, checking each page's shape.
  std::vector<ResourceVersion> AllHistory(HistoryQuery query, int64_t page_size) {
    query.limit = page_size;
    query.before_sequence = 0;
    std::vector<ResourceVersion> all;
    for (int pages = 0; pages < 100000; ++pages) {
      StatusOr<HistoryPage> page = store().History(query);
      EXPECT_THAT(page, IsOk());
      if (!page.ok()) break;
      EXPECT_LE(static_cast<int64_t>(page->versions.size()), page_size);
      all.insert(all.end(), page->versions.begin(), page->versions.end());
      if (page->next_before_sequence == 0) break;
      EXPECT_EQ(static_cast<int64_t>(page->versions.size()), page_size);
      EXPECT_EQ(page->next_before_sequence, page->versions.back().sequence);
      query.before_sequence = page->next_before_sequence;
    }
    return all;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
};

// --- Versions ---------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, CreateUpdateDeleteRecreate) {
  ResourceVersion v1 = Res("Patient", "p1", 1, R"({"v":1})", At(1), "p1");
  ResourceVersion v2 = Res("Patient", "p1", 2, R"({"v":2})", At(2), "p1");
  ResourceVersion v3 = DeleteMarker("Patient", "p1", 3, At(3));
  v3.compartment = "p1";
  ResourceVersion v4 = Res("Patient", "p1", 4, R"({"v":4})", At(4), "p1");

  v1.sequence = MustCommit({v1});
  ASSERT_GT(v1.sequence, 0);
  StatusOr<ResourceVersion> current = store().ReadCurrent("Patient", "p1");
  ASSERT_THAT(current, IsOk());
  ExpectSameVersion(*current, v1);

  v2.sequence = MustCommit({v2});
  EXPECT_GT(v2.sequence, v1.sequence);
  current = store().ReadCurrent("Patient", "p1");
  ASSERT_THAT(current, IsOk());
  ExpectSameVersion(*current, v2);

  v3.sequence = MustCommit({v3});
  EXPECT_GT(v3.sequence, v2.sequence);
  current = store().ReadCurrent("Patient", "p1");
  ASSERT_THAT(current, IsOk());
  ExpectSameVersion(*current, v3);
  EXPECT_TRUE(current->deleted);
  EXPECT_TRUE(current->payload.empty());

  v4.sequence = MustCommit({v4});
  EXPECT_GT(v4.sequence, v3.sequence);
  current = store().ReadCurrent("Patient", "p1");
  ASSERT_THAT(current, IsOk());
  ExpectSameVersion(*current, v4);
  EXPECT_FALSE(current->deleted);

  for (const ResourceVersion& expected : {v1, v2, v3, v4}) {
    SCOPED_TRACE(expected.version);
    StatusOr<ResourceVersion> read = store().ReadVersion("Patient", "p1", expected.version);
    ASSERT_THAT(read, IsOk());
    ExpectSameVersion(*read, expected);
  }
}

TEST_P(StoreConformanceTest, AbsentResourcesAndVersionsAreNotFound) {
  EXPECT_THAT(store().ReadCurrent("Patient", "nobody"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(store().ReadVersion("Patient", "nobody", 1), StatusIs(StatusCode::kNotFound));

  MustCommit({Res("Patient", "p1", 1)});
  EXPECT_THAT(store().ReadVersion("Patient", "p1", 2), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(store().ReadVersion("Patient", "p1", 0), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(store().ReadVersion("Patient", "p1", -1), StatusIs(StatusCode::kNotFound));
  // Same id, other type; ids are case-sensitive.
  EXPECT_THAT(store().ReadCurrent("Observation", "p1"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(store().ReadCurrent("Patient", "P1"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(store().ReadCurrent("", ""), StatusIs(StatusCode::kNotFound));
}

TEST_P(StoreConformanceTest, RoundTripsEveryFieldExactly) {
  const std::string binary = "\0\x01\xff\xfe payload \0 with NULs"s;
  std::string large(256 * 1024, '\0');
  for (size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>(i * 131 % 251);
  ResourceVersion a = Res("Observation", "obs-\xc3\xa9", 1, binary, kT0, "patient-\xe2\x9c\x93");
  ResourceVersion b = Res("Binary", "big", 1, large, TimePoint(std::chrono::microseconds(1)));
  ResourceVersion c = Res("Basic", "empty", 1, "", TimePoint(std::chrono::microseconds(-5)));
  MustCommit({a, b, c});
  for (const ResourceVersion& expected : {a, b, c}) {
    StatusOr<ResourceVersion> read = store().ReadCurrent(expected.type, expected.id);
    ASSERT_THAT(read, IsOk());
    ExpectSameVersion(*read, expected);
  }
}

TEST_P(StoreConformanceTest, BatchSequencesFollowBatchOrder) {
  StatusOr<CommitResult> result = store().Commit(
      Batch({Res("Patient", "c", 1), Res("Patient", "a", 1), Res("Observation", "b", 1)}));
  ASSERT_THAT(result, IsOk());
  ASSERT_EQ(result->sequences.size(), 3u);
  EXPECT_LT(result->sequences[0], result->sequences[1]);
  EXPECT_LT(result->sequences[1], result->sequences[2]);
  EXPECT_EQ(store().ReadCurrent("Patient", "c")->sequence, result->sequences[0]);
  EXPECT_EQ(store().ReadCurrent("Patient", "a")->sequence, result->sequences[1]);
  EXPECT_EQ(store().ReadCurrent("Observation", "b")->sequence, result->sequences[2]);
  EXPECT_GT(MustCommit({Res("Patient", "a", 2)}), result->sequences[2]);
}

TEST_P(StoreConformanceTest, SameIdInDifferentTypesIsDistinct) {
  MustCommit({Res("Patient", "x", 1, "patient"), Res("Observation", "x", 1, "observation")});
  MustCommit({Res("Patient", "x", 2, "patient 2")});
  EXPECT_EQ(store().ReadCurrent("Patient", "x")->payload, "patient 2");
  EXPECT_EQ(store().ReadCurrent("Observation", "x")->version, 1);
}

TEST_P(StoreConformanceTest, WrongVersionIsAbortedVersionConflict) {
  MustCommit({Res("Patient", "p1", 1, "first")});
  for (int64_t version : {1, 3, 100}) {
    SCOPED_TRACE(version);
    StatusOr<CommitResult> result = store().Commit(Batch({Res("Patient", "p1", version)}));
    EXPECT_THAT(result, StatusIs(StatusCode::kAborted));
    EXPECT_EQ(result.status().message(), "version conflict");
  }
  // A resource that never existed starts at version 1.
  EXPECT_THAT(store().Commit(Batch({Res("Patient", "new", 2)})), StatusIs(StatusCode::kAborted));
  EXPECT_THAT(store().ReadCurrent("Patient", "new"), StatusIs(StatusCode::kNotFound));
  // A refused version leaves nothing behind, not even in the history.
  EXPECT_THAT(store().ReadVersion("Patient", "new", 2), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(store().ReadVersion("Patient", "p1", 3), StatusIs(StatusCode::kNotFound));
  EXPECT_EQ(HistorySize("Patient", "p1"), 1u);

  StatusOr<ResourceVersion> current = store().ReadCurrent("Patient", "p1");
  ASSERT_THAT(current, IsOk());
  EXPECT_EQ(current->version, 1);
  EXPECT_EQ(current->payload, "first");
  MustCommit({Res("Patient", "p1", 2, "second")});
  EXPECT_EQ(store().ReadCurrent("Patient", "p1")->payload, "second");
}

TEST_P(StoreConformanceTest, FailedBatchWritesNothing) {
  int64_t b1 = MustCommit({Res("Patient", "b", 1, "b1")});
  WriteBatch conflicting =
      Batch({Res("Patient", "a", 1), Res("Patient", "b", 1, "b-again"), Res("Patient", "c", 1)});
  EXPECT_THAT(store().Commit(conflicting), StatusIs(StatusCode::kAborted));

  EXPECT_THAT(store().ReadCurrent("Patient", "a"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(store().ReadCurrent("Patient", "c"), StatusIs(StatusCode::kNotFound));
  StatusOr<ResourceVersion> b = store().ReadCurrent("Patient", "b");
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ(b->version, 1);
  EXPECT_EQ(b->payload, "b1");
  StatusOr<HistoryPage> history = store().History(Query());
  ASSERT_THAT(history, IsOk());
  EXPECT_THAT(Keys(history->versions), ElementsAre(Key("Patient", "b", 1)));

  // The corrected batch goes through whole.
  StatusOr<CommitResult> fixed = store().Commit(
      Batch({Res("Patient", "a", 1), Res("Patient", "b", 2), Res("Patient", "c", 1)}));
  ASSERT_THAT(fixed, IsOk());
  EXPECT_GT(fixed->sequences[0], b1);
  EXPECT_EQ(store().ReadCurrent("Patient", "b")->version, 2);
}

TEST_P(StoreConformanceTest, MalformedBatchesAreInvalidArgumentAndWriteNothing) {
  const ResourceVersion ok = Res("Patient", "ok", 1);
  std::vector<std::pair<std::string, WriteBatch>> cases = {
      {"empty type", Batch({ok, Res("", "x", 1)})},
      {"empty id", Batch({ok, Res("Patient", "", 1)})},
      {"version 0", Batch({ok, Res("Patient", "x", 0)})},
      {"negative version", Batch({ok, Res("Patient", "x", -1)})},
      {"same resource twice", Batch({ok, Res("Patient", "x", 1), Res("Patient", "x", 2)})},
      {"same resource twice, same version", Batch({ok, Res("Patient", "ok", 1)})},
  };
  for (auto& [name, batch] : cases) {
    SCOPED_TRACE(name);
    EXPECT_THAT(store().Commit(std::move(batch)), StatusIs(StatusCode::kInvalidArgument));
  }
  EXPECT_THAT(store().ReadCurrent("Patient", "ok"), StatusIs(StatusCode::kNotFound));
  StatusOr<HistoryPage> history = store().History(Query());
  ASSERT_THAT(history, IsOk());
  EXPECT_TRUE(history->versions.empty());
}

// Beyond store.h's comments, shared by every backend: committing nothing succeeds.
TEST_P(StoreConformanceTest, EmptyBatchIsANoOp) {
  StatusOr<CommitResult> result = store().Commit(WriteBatch{});
  ASSERT_THAT(result, IsOk());
  EXPECT_TRUE(result->sequences.empty());
}

// --- History ----------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, HistoryIsNewestFirstForInstanceTypeAndSystem) {
  MustCommit({Res("Patient", "a", 1, "a1", At(1))});
  MustCommit({Res("Observation", "o", 1, "o1", At(2))});
  MustCommit({Res("Patient", "b", 1, "b1", At(3))});
  MustCommit({Res("Patient", "a", 2, "a2", At(4))});
  MustCommit({Res("Observation", "o", 2, "o2", At(5))});
  MustCommit({DeleteMarker("Patient", "a", 3, At(6))});

  HistoryQuery instance = Query("Patient", "a");
  StatusOr<HistoryPage> page = store().History(instance);
  ASSERT_THAT(page, IsOk());
  EXPECT_THAT(Keys(page->versions),
              ElementsAre(Key("Patient", "a", 3), Key("Patient", "a", 2), Key("Patient", "a", 1)));
  EXPECT_TRUE(page->versions[0].deleted);
  EXPECT_EQ(page->versions[1].payload, "a2");
  EXPECT_EQ(page->versions[1].last_updated, At(4));
  EXPECT_EQ(page->next_before_sequence, 0);

  page = store().History(Query("Patient"));
  ASSERT_THAT(page, IsOk());
  EXPECT_THAT(Keys(page->versions), ElementsAre(Key("Patient", "a", 3), Key("Patient", "a", 2),
                                                Key("Patient", "b", 1), Key("Patient", "a", 1)));
  EXPECT_EQ(page->next_before_sequence, 0);

  page = store().History(Query());
  ASSERT_THAT(page, IsOk());
  EXPECT_THAT(
      Keys(page->versions),
      ElementsAre(Key("Patient", "a", 3), Key("Observation", "o", 2), Key("Patient", "a", 2),
                  Key("Patient", "b", 1), Key("Observation", "o", 1), Key("Patient", "a", 1)));
  for (size_t i = 1; i < page->versions.size(); ++i) {
    EXPECT_GT(page->versions[i - 1].sequence, page->versions[i].sequence);
  }

  page = store().History(Query("Patient", "unknown"));
  ASSERT_THAT(page, IsOk());
  EXPECT_TRUE(page->versions.empty());
  EXPECT_EQ(page->next_before_sequence, 0);
  page = store().History(Query("Encounter"));
  ASSERT_THAT(page, IsOk());
  EXPECT_TRUE(page->versions.empty());
}

TEST_P(StoreConformanceTest, HistorySinceFiltersByLastUpdatedInclusive) {
  MustCommit({Res("Patient", "a", 1, "", At(10))});
  MustCommit({Res("Patient", "b", 1, "", At(20))});
  MustCommit({Res("Patient", "a", 2, "", At(30))});
  // Clocks are not sequences: a later commit may carry an earlier time.
  MustCommit({Res("Observation", "o", 1, "", At(15))});

  StatusOr<HistoryPage> page = store().History(Since(Query(), At(20)));
  ASSERT_THAT(page, IsOk());
  EXPECT_THAT(Keys(page->versions), ElementsAre(Key("Patient", "a", 2), Key("Patient", "b", 1)));

  page = store().History(Since(Query(), At(15)));
  ASSERT_THAT(page, IsOk());
  EXPECT_THAT(Keys(page->versions), ElementsAre(Key("Observation", "o", 1), Key("Patient", "a", 2),
                                                Key("Patient", "b", 1)));

  page = store().History(Since(Query("Patient", "a"), At(11)));
  ASSERT_THAT(page, IsOk());
  EXPECT_THAT(Keys(page->versions), ElementsAre(Key("Patient", "a", 2)));

  page = store().History(Since(Query("Patient"), At(31)));
  ASSERT_THAT(page, IsOk());
  EXPECT_TRUE(page->versions.empty());

  // since and paging combine.
  std::vector<ResourceVersion> all = AllHistory(Since(Query("Patient"), At(20)), /*page_size=*/1);
  EXPECT_THAT(Keys(all), ElementsAre(Key("Patient", "a", 2), Key("Patient", "b", 1)));
}

TEST_P(StoreConformanceTest, HistoryPagesCoverEveryVersionOnceNewestFirst) {
  std::vector<Key> expected_system;
  std::vector<Key> expected_patient;
  for (int i = 0; i < 23; ++i) {
    std::string type = i % 3 == 0 ? "Observation" : "Patient";
    std::string id = "r" + std::to_string(i % 5);
    int64_t version =
        store().ReadCurrent(type, id).ok() ? store().ReadCurrent(type, id)->version : 0;
    MustCommit({Res(type, id, version + 1, "", At(i))});
    expected_system.insert(expected_system.begin(), Key(type, id, version + 1));
    if (type == "Patient")
      expected_patient.insert(expected_patient.begin(), Key(type, id, version + 1));
  }
  for (int64_t page_size : {1, 4, 5, 22, 23, 24, 1000}) {
    SCOPED_TRACE(page_size);
    EXPECT_THAT(Keys(AllHistory(Query(), page_size)), ElementsAreArray(expected_system));
    EXPECT_THAT(Keys(AllHistory(Query("Patient"), page_size)), ElementsAreArray(expected_patient));
  }
  // A page that ends exactly at the last version says there is no next page.
  StatusOr<HistoryPage> exact = store().History(Limit(Query(), 23));
  ASSERT_THAT(exact, IsOk());
  EXPECT_EQ(exact->versions.size(), 23u);
  EXPECT_EQ(exact->next_before_sequence, 0);
}

TEST_P(StoreConformanceTest, HistoryCursorIsStableWhileNewWritesLand) {
  std::vector<Key> expected;
  for (int i = 0; i < 12; ++i) {
    MustCommit({Res("Patient", "p" + std::to_string(i), 1)});
    expected.insert(expected.begin(), Key("Patient", "p" + std::to_string(i), 1));
  }
  std::vector<Key> seen;
  HistoryQuery query = Limit(Query("Patient"), 5);
  int writes = 0;
  while (true) {
    StatusOr<HistoryPage> page = store().History(query);
    ASSERT_THAT(page, IsOk());
    for (const Key& key : Keys(page->versions)) seen.push_back(key);
    if (page->next_before_sequence == 0) break;
    query.before_sequence = page->next_before_sequence;
    // New versions, of new and of already listed resources, land between page fetches.
    MustCommit({Res("Patient", "late" + std::to_string(writes), 1)});
    MustCommit({Res("Patient", "p" + std::to_string(11 - writes), 2)});
    ++writes;
  }
  EXPECT_GE(writes, 2);
  EXPECT_THAT(seen, ElementsAreArray(expected));
  // A fresh traversal sees everything, newest first.
  EXPECT_EQ(AllHistory(Query("Patient"), 5).size(), 12u + 2u * writes);
}

// Beyond store.h's comments, shared by every backend: malformed queries are rejected.
TEST_P(StoreConformanceTest, MalformedHistoryQueriesAreInvalidArgument) {
  EXPECT_THAT(store().History(Limit(Query(), 0)), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(store().History(Limit(Query(), -3)), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(store().History(Before(Query(), -1)), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(store().History(Query("", "p1")), StatusIs(StatusCode::kInvalidArgument));
}

// --- Data keys --------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, DataKeyInsertIfAbsentKeepsTheFirstKeyOfAScope) {
  StoredDataKey first = DataKey(7, "patient/1", "\x01\x00wrapped-1"s);
  StoredDataKey second = DataKey(8, "patient/1", "wrapped-2", 2);

  StatusOr<StoredDataKey> inserted = store().InsertDataKeyIfAbsent(first);
  ASSERT_THAT(inserted, IsOk());
  ExpectSameKey(*inserted, first);
  StatusOr<StoredDataKey> existing = store().InsertDataKeyIfAbsent(second);
  ASSERT_THAT(existing, IsOk());
  ExpectSameKey(*existing, first);

  StatusOr<std::optional<StoredDataKey>> by_scope = store().FindDataKeyByScope("patient/1");
  ASSERT_THAT(by_scope, IsOk());
  ASSERT_TRUE(by_scope->has_value());
  ExpectSameKey(**by_scope, first);
  StatusOr<std::optional<StoredDataKey>> by_id = store().FindDataKeyById(7);
  ASSERT_THAT(by_id, IsOk());
  ASSERT_TRUE(by_id->has_value());
  ExpectSameKey(**by_id, first);

  EXPECT_FALSE(store().FindDataKeyById(8)->has_value());
  EXPECT_FALSE(store().FindDataKeyByScope("patient/2")->has_value());
  EXPECT_FALSE(store().FindDataKeyByScope("")->has_value());
}

TEST_P(StoreConformanceTest, DataKeyIdsUseAllSixtyFourBits) {
  const std::vector<StoredDataKey> keys = {
      DataKey(0x8000000000000000ull, "patient/high", "w-high", 0xffffffffu),
      DataKey(0x8000000000000001ull, "patient/high+1", "w-high+1"),
      DataKey(0xffffffffffffffffull, "tenant", "w-max"),
      DataKey(0x7fffffffffffffffull, "tenant/blind-index", "w-int64-max"),
      DataKey(1, "patient/one", "w-one"),
  };
  for (const StoredDataKey& key : keys) ASSERT_THAT(store().InsertDataKeyIfAbsent(key), IsOk());
  for (const StoredDataKey& key : keys) {
    SCOPED_TRACE(key.scope);
    StatusOr<std::optional<StoredDataKey>> by_id = store().FindDataKeyById(key.key_id);
    ASSERT_THAT(by_id, IsOk());
    ASSERT_TRUE(by_id->has_value());
    ExpectSameKey(**by_id, key);
    StatusOr<std::optional<StoredDataKey>> by_scope = store().FindDataKeyByScope(key.scope);
    ASSERT_THAT(by_scope, IsOk());
    ASSERT_TRUE(by_scope->has_value());
    ExpectSameKey(**by_scope, key);
  }
  EXPECT_FALSE(store().FindDataKeyById(0xfffffffffffffffeull)->has_value());
}

// Beyond store.h's comments, shared by every backend.
TEST_P(StoreConformanceTest, DataKeyNeedsNonZeroUnusedIdAndAScope) {
  EXPECT_THAT(store().InsertDataKeyIfAbsent(DataKey(0, "patient/1", "w")),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(store().InsertDataKeyIfAbsent(DataKey(5, "", "w")),
              StatusIs(StatusCode::kInvalidArgument));
  ASSERT_THAT(store().InsertDataKeyIfAbsent(DataKey(5, "patient/1", "w")), IsOk());
  EXPECT_THAT(store().InsertDataKeyIfAbsent(DataKey(5, "patient/2", "w")),
              StatusIs(StatusCode::kAlreadyExists));
  EXPECT_FALSE(store().FindDataKeyByScope("patient/2")->has_value());
}

TEST_P(StoreConformanceTest, ConcurrentDataKeyCreatorsAgreeOnOneKey) {
  constexpr int kThreads = 8;
  std::barrier start(kThreads);
  std::vector<StatusOr<StoredDataKey>> results(kThreads, InternalError("not run"));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      results[t] = store().InsertDataKeyIfAbsent(
          DataKey(100 + static_cast<uint64_t>(t), "patient/shared", "w" + std::to_string(t)));
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_THAT(results[0], IsOk());
  for (const auto& result : results) {
    ASSERT_THAT(result, IsOk());
    ExpectSameKey(*result, *results[0]);
  }
  StatusOr<std::optional<StoredDataKey>> stored = store().FindDataKeyByScope("patient/shared");
  ASSERT_THAT(stored, IsOk());
  ASSERT_TRUE(stored->has_value());
  ExpectSameKey(**stored, *results[0]);
}

// --- API tokens -------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, ApiTokenPutFindAndAlreadyExists) {
  ApiToken token = Token(TokenHash('a'), "ci", "system-admin", At(5));
  ASSERT_THAT(store().PutApiToken(token), IsOk());
  ApiToken revoked = Token(TokenHash('b'), "old", "reader", At(6), /*revoked=*/true);
  ASSERT_THAT(store().PutApiToken(revoked), IsOk());

  for (const ApiToken& expected : {token, revoked}) {
    StatusOr<std::optional<ApiToken>> found = store().FindApiToken(expected.token_hash);
    ASSERT_THAT(found, IsOk());
    ASSERT_TRUE(found->has_value());
    EXPECT_EQ((*found)->token_hash, expected.token_hash);
    EXPECT_EQ((*found)->name, expected.name);
    EXPECT_EQ((*found)->role, expected.role);
    EXPECT_EQ((*found)->created, expected.created);
    EXPECT_EQ((*found)->revoked, expected.revoked);
  }

  ApiToken duplicate = token;
  duplicate.name = "impostor";
  EXPECT_THAT(store().PutApiToken(duplicate), StatusIs(StatusCode::kAlreadyExists));
  EXPECT_EQ((*store().FindApiToken(token.token_hash))->name, "ci");

  EXPECT_FALSE(store().FindApiToken(TokenHash('z'))->has_value());
  EXPECT_FALSE(store().FindApiToken("")->has_value());
  EXPECT_FALSE(store().FindApiToken(token.token_hash.substr(0, 31))->has_value());
}

// Beyond store.h's comments, shared by every backend: only SHA-256 hashes are accepted.
TEST_P(StoreConformanceTest, ApiTokenHashMustBeThirtyTwoBytes) {
  for (std::string hash : {std::string(), std::string(31, 'x'), std::string(64, 'a')}) {
    ApiToken token = Token(hash, "n", "r", At(0));
    EXPECT_THAT(store().PutApiToken(token), StatusIs(StatusCode::kInvalidArgument));
  }
}

// --- Durability -------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, EverythingSurvivesCloseAndReopen) {
  ResourceVersion p1 = Res("Patient", "p1", 1, "p1 v1", At(1), "p1");
  ResourceVersion p2 = Res("Patient", "p1", 2, "p1 v2", At(2), "p1");
  ResourceVersion gone = DeleteMarker("Observation", "o1", 2, At(3));
  MustCommit({p1, Res("Observation", "o1", 1)});
  p2.sequence = MustCommit({p2});
  gone.sequence = MustCommit({gone});
  StoredDataKey key = DataKey(0xdeadbeefcafef00dull, "patient/p1", "wrapped");
  ASSERT_THAT(store().InsertDataKeyIfAbsent(key), IsOk());
  ApiToken token = Token(TokenHash('t'), "n", "r", At(4));
  ASSERT_THAT(store().PutApiToken(token), IsOk());

  Reopen();

  StatusOr<ResourceVersion> current = store().ReadCurrent("Patient", "p1");
  ASSERT_THAT(current, IsOk());
  ExpectSameVersion(*current, p2);
  StatusOr<ResourceVersion> old = store().ReadVersion("Patient", "p1", 1);
  ASSERT_THAT(old, IsOk());
  ExpectSameVersion(*old, p1);
  current = store().ReadCurrent("Observation", "o1");
  ASSERT_THAT(current, IsOk());
  ExpectSameVersion(*current, gone);
  ASSERT_TRUE(store().FindDataKeyById(key.key_id)->has_value());
  ExpectSameKey(**store().FindDataKeyByScope("patient/p1"), key);
  EXPECT_TRUE(store().FindApiToken(token.token_hash)->has_value());
  EXPECT_EQ(AllHistory(Query(), 2).size(), 4u);

  // Writing continues where it left off: versions and sequences keep increasing.
  EXPECT_THAT(store().Commit(Batch({Res("Patient", "p1", 2)})), StatusIs(StatusCode::kAborted));
  EXPECT_GT(MustCommit({Res("Patient", "p1", 3)}), gone.sequence);

  Reopen();  // Opening an up-to-date store again is fine too.
  EXPECT_EQ(store().ReadCurrent("Patient", "p1")->version, 3);
}

// --- Concurrency ------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, ConcurrentCommitsOfDistinctResourcesAllSucceed) {
  constexpr int kThreads = 16;
  constexpr int kCommitsPerThread = 200;
  std::barrier start(kThreads);
  std::vector<std::vector<int64_t>> sequences(kThreads);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kCommitsPerThread; ++i) {
        std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        StatusOr<CommitResult> result =
            store().Commit(Batch({Res("Observation", id, 1, "payload " + id, At(i), "p")}));
        if (!result.ok() || result->sequences.size() != 1) {
          ++failures;
          ADD_FAILURE() << result.status().ToString();
          continue;
        }
        sequences[t].push_back(result->sequences[0]);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_EQ(failures.load(), 0);

  std::set<int64_t> unique;
  for (int t = 0; t < kThreads; ++t) {
    // Each thread's own commits are ordered.
    EXPECT_TRUE(std::is_sorted(sequences[t].begin(), sequences[t].end()));
    unique.insert(sequences[t].begin(), sequences[t].end());
    for (int i = 0; i < kCommitsPerThread; ++i) {
      std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
      StatusOr<ResourceVersion> read = store().ReadCurrent("Observation", id);
      ASSERT_THAT(read, IsOk()) << id;
      EXPECT_EQ(read->payload, "payload " + id);
      EXPECT_EQ(read->sequence, sequences[t][i]);
    }
  }
  EXPECT_EQ(unique.size(), static_cast<size_t>(kThreads * kCommitsPerThread));
  EXPECT_EQ(AllHistory(Query("Observation"), 1000).size(), unique.size());
}

TEST_P(StoreConformanceTest, RacingUpdatesOfOneResourceHaveExactlyOneWinnerPerRound) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 25;
  MustCommit({Res("Patient", "shared", 1, "initial")});
  std::barrier sync(kThreads);
  // outcome[round][thread]
  std::vector<std::vector<StatusCode>> outcome(kRounds, std::vector<StatusCode>(kThreads));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        sync.arrive_and_wait();  // Everyone starts the round from the same current version.
        StatusOr<CommitResult> result =
            store().Commit(Batch({Res("Patient", "shared", round + 2,
                                      "r" + std::to_string(round) + "t" + std::to_string(t))}));
        outcome[round][t] = result.status().code();
        sync.arrive_and_wait();  // The round is over for everyone before the next starts.
      }
    });
  }
  for (auto& thread : threads) thread.join();

  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(round);
    int winners = 0;
    int winner = -1;
    for (int t = 0; t < kThreads; ++t) {
      if (outcome[round][t] == StatusCode::kOk) {
        ++winners;
        winner = t;
      } else {
        EXPECT_EQ(outcome[round][t], StatusCode::kAborted);
      }
    }
    ASSERT_EQ(winners, 1);
    StatusOr<ResourceVersion> version = store().ReadVersion("Patient", "shared", round + 2);
    ASSERT_THAT(version, IsOk());
    EXPECT_EQ(version->payload, "r" + std::to_string(round) + "t" + std::to_string(winner));
  }
  EXPECT_EQ(store().ReadCurrent("Patient", "shared")->version, kRounds + 1);
}

TEST_P(StoreConformanceTest, ConflictsInAConcurrentBurstDoNotAffectOtherCommits) {
  constexpr int kThreads = 16;
  MustCommit({Res("Patient", "existing", 1)});
  std::barrier start(kThreads);
  std::vector<StatusCode> codes(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      std::string id = "burst" + std::to_string(t);
      // Odd threads send a batch whose second entry conflicts.
      WriteBatch batch = t % 2 == 0 ? Batch({Res("Patient", id, 1)})
                                    : Batch({Res("Patient", id, 1), Res("Patient", "existing", 1)});
      codes[t] = store().Commit(std::move(batch)).status().code();
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    SCOPED_TRACE(t);
    std::string id = "burst" + std::to_string(t);
    if (t % 2 == 0) {
      EXPECT_EQ(codes[t], StatusCode::kOk);
      EXPECT_THAT(store().ReadCurrent("Patient", id), IsOk());
    } else {
      EXPECT_EQ(codes[t], StatusCode::kAborted);
      EXPECT_THAT(store().ReadCurrent("Patient", id), StatusIs(StatusCode::kNotFound));
    }
  }
}

TEST_P(StoreConformanceTest, ReadersRunConcurrentlyWithWriters) {
  constexpr int kWriters = 4;
  constexpr int kReaders = 6;
  constexpr int kVersions = 60;
  std::barrier start(kWriters + kReaders);
  std::atomic<int> writers_running{kWriters};
  std::atomic<int> errors{0};
  std::atomic<int64_t> reads{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      start.arrive_and_wait();
      for (int v = 1; v <= kVersions; ++v) {
        Status status = store()
                            .Commit(Batch({Res("Device", "d" + std::to_string(w), v,
                                               "v" + std::to_string(v), At(v))}))
                            .status();
        if (!status.ok()) {
          ++errors;
          ADD_FAILURE() << status.ToString();
        }
      }
      --writers_running;
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      start.arrive_and_wait();
      std::vector<int64_t> last_seen(kWriters, 0);
      bool last_pass = false;
      while (!last_pass) {
        last_pass = writers_running.load() == 0;  // One more full pass after writers finish.
        for (int w = 0; w < kWriters; ++w) {
          StatusOr<ResourceVersion> current =
              store().ReadCurrent("Device", "d" + std::to_string(w));
          ++reads;
          if (!current.ok()) {
            if (current.status().code() != StatusCode::kNotFound || last_seen[w] != 0) {
              ++errors;
              ADD_FAILURE() << current.status().ToString();
            }
            continue;
          }
          // A reader never sees time go backwards, nor a half-written version.
          if (current->version < last_seen[w] ||
              current->payload != "v" + std::to_string(current->version)) {
            ++errors;
            ADD_FAILURE() << "reader " << r << " saw version " << current->version << " after "
                          << last_seen[w];
          }
          last_seen[w] = current->version;
        }
        StatusOr<HistoryPage> page = store().History(Limit(Query("Device"), 10));
        if (!page.ok()) {
          ++errors;
          ADD_FAILURE() << page.status().ToString();
        }
      }
      for (int w = 0; w < kWriters; ++w) EXPECT_EQ(last_seen[w], kVersions);
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_GE(reads.load(), kReaders * kWriters);
}

// --- Asynchronous commits and cached reads ----------------------------------------------------

// Collects CommitAsync results; the callbacks may run on any thread.
class AsyncResults {
 public:
  CommitCallback Slot(size_t index) {
    std::lock_guard<std::mutex> lock(mu_);
    if (results_.size() <= index) results_.resize(index + 1);
    ++pending_;
    return [this, index](StatusOr<CommitResult> result) {
      std::lock_guard<std::mutex> lock(mu_);
      results_[index] = std::move(result);
      order_.push_back(index);
      if (--pending_ == 0) all_done_.notify_all();
    };
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    all_done_.wait(lock, [this] { return pending_ == 0; });
  }
  const StatusOr<CommitResult>& operator[](size_t index) const { return *results_[index]; }
  std::vector<size_t> order() const { return order_; }

 private:
  std::mutex mu_;
  std::condition_variable all_done_;
  std::vector<std::optional<StatusOr<CommitResult>>> results_;
  std::vector<size_t> order_;
  size_t pending_ = 0;
};

TEST_P(StoreConformanceTest, CommitAsyncReportsWhatCommitWould) {
  AsyncResults results;
  store().CommitAsync(Batch({Res("Patient", "a", 1, "a1")}), results.Slot(0));
  store().CommitAsync(Batch({Res("Patient", "a", 2, "a2")}), results.Slot(1));
  store().CommitAsync(Batch({Res("Patient", "a", 2, "a2-again")}), results.Slot(2));  // Conflict.
  store().CommitAsync(Batch({Res("Patient", "b", 1, "b1"), Res("Patient", "c", 1, "c1")}),
                      results.Slot(3));
  store().CommitAsync(Batch({Res("", "x", 1)}), results.Slot(4));  // Malformed.
  results.Wait();
  ASSERT_THAT(results[0], IsOk());
  ASSERT_THAT(results[1], IsOk());
  EXPECT_THAT(results[2], StatusIs(StatusCode::kAborted));
  ASSERT_THAT(results[3], IsOk());
  EXPECT_THAT(results[4], StatusIs(StatusCode::kInvalidArgument));
  ASSERT_EQ(results[3]->sequences.size(), 2u);
  EXPECT_LT(results[0]->sequences[0], results[1]->sequences[0]);
  EXPECT_LT(results[3]->sequences[0], results[3]->sequences[1]);

  StatusOr<ResourceVersion> a = store().ReadCurrent("Patient", "a");
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->version, 2);
  EXPECT_EQ(a->payload, "a2");
  EXPECT_EQ(a->sequence, results[1]->sequences[0]);
  EXPECT_THAT(store().ReadCurrent("Patient", "c"), IsOk());
}

TEST_P(StoreConformanceTest, CommitAsyncWritesAreReadableWhenReported) {
  // Each callback reads back its own write: a reported commit is visible to every reader.
  constexpr int kVersions = 40;
  std::atomic<int> stale{0};
  AsyncResults results;
  for (int v = 1; v <= kVersions; ++v) {
    CommitCallback slot = results.Slot(static_cast<size_t>(v));
    store().CommitAsync(Batch({Res("Observation", "o", v, "o" + std::to_string(v))}),
                        [&, v, slot](StatusOr<CommitResult> result) {
                          if (result.ok()) {
                            StatusOr<ResourceVersion> seen =
                                store().ReadCurrent("Observation", "o");
                            if (!seen.ok() || seen->version < v) ++stale;
                            std::optional<StatusOr<ResourceVersion>> cached =
                                store().ReadCurrentIfCached("Observation", "o");
                            if (cached && (!cached->ok() || (*cached)->version < v)) ++stale;
                          }
                          slot(std::move(result));
                        });
  }
  results.Wait();
  for (int v = 1; v <= kVersions; ++v) EXPECT_THAT(results[static_cast<size_t>(v)], IsOk());
  // Results are reported in commit order.
  std::vector<size_t> order = results.order();
  EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));
  EXPECT_EQ(stale.load(), 0);
}

TEST_P(StoreConformanceTest, CachedReadsNeverDisagreeWithTheDatabase) {
  MustCommit({Res("Patient", "p", 1, "p1", At(1)), Res("Condition", "c", 1, "c1", At(1), "p")});
  MustCommit({Res("Patient", "p", 2, "p2", At(2))});
  MustCommit({DeleteMarker("Condition", "c", 2, At(3))});
  ASSERT_THAT(store().ReadCurrent("Patient", "p"), IsOk());  // May fill a cache.
  for (const auto& [type, id] : {std::pair{"Patient"s, "p"s}, std::pair{"Condition"s, "c"s},
                                 std::pair{"Patient"s, "absent"s}}) {
    std::optional<StatusOr<ResourceVersion>> cached = store().ReadCurrentIfCached(type, id);
    StatusOr<ResourceVersion> stored = store().ReadCurrent(type, id);
    if (cached) {
      ASSERT_THAT(*cached, IsOk());
      ASSERT_THAT(stored, IsOk());
      ExpectSameVersion(**cached, *stored);
    }
    for (int64_t version = 1; version <= 2; ++version) {
      std::optional<StatusOr<ResourceVersion>> cached_version =
          store().ReadVersionIfCached(type, id, version);
      if (!cached_version) continue;
      ASSERT_THAT(*cached_version, IsOk());
      StatusOr<ResourceVersion> stored_version = store().ReadVersion(type, id, version);
      ASSERT_THAT(stored_version, IsOk());
      ExpectSameVersion(**cached_version, *stored_version);
    }
  }
}

// --- Backends ---------------------------------------------------------------------------------

StoreFactory SqliteFactory(int read_connections, int group_commit_max_batch) {
  return [=](const std::filesystem::path& dir) -> std::unique_ptr<Store> {
    StatusOr<std::unique_ptr<SqliteStore>> store =
        SqliteStore::Open(Options(dir / "kura.db", read_connections, group_commit_max_batch));
    if (!store.ok()) {
      ADD_FAILURE() << "SqliteStore::Open: " << store.status().ToString();
      return nullptr;
    }
    return std::move(store).value();
  };
}

// The record cache in front of SQLite must be indistinguishable from SQLite alone, with room for
// everything and with so little room that entries are evicted and refilled all the time.
StoreFactory CachedSqliteFactory(size_t capacity_bytes) {
  return [=](const std::filesystem::path& dir) -> std::unique_ptr<Store> {
    std::unique_ptr<Store> sqlite = SqliteFactory(8, 1024)(dir);
    if (sqlite == nullptr) return nullptr;
    return std::make_unique<CachingStore>(std::move(sqlite), capacity_bytes);
  };
}

// --- Search index -----------------------------------------------------------------------------

ResourceVersion Indexed(std::string type, std::string id, int64_t version,
                        std::vector<IndexEntry> index) {
  ResourceVersion r = Res(std::move(type), std::move(id), version);
  r.index = std::move(index);
  return r;
}

IndexMatch KeyIs(std::string key, std::optional<std::string> key2 = std::nullopt) {
  IndexMatch m;
  m.key = std::move(key);
  m.key2 = std::move(key2);
  return m;
}

IndexClause Clause(std::string param, std::vector<IndexMatch> any_of,
                   IndexClause::Mode mode = IndexClause::Mode::kMatch) {
  IndexClause c;
  c.param = std::move(param);
  c.mode = mode;
  c.any_of = std::move(any_of);
  return c;
}

IndexQuery IndexSearch(std::string type, std::vector<IndexClause> all_of, int64_t limit = 100) {
  IndexQuery q;
  q.type = std::move(type);
  q.all_of = std::move(all_of);
  q.limit = limit;
  return q;
}

class SearchConformanceTest : public StoreConformanceTest {
 protected:
  std::vector<std::string> Ids(const IndexQuery& query) {
    StatusOr<IndexPage> page = store().Search(query);
    EXPECT_THAT(page, IsOk());
    std::vector<std::string> ids;
    if (!page.ok()) return ids;
    for (const IndexHit& hit : page->hits) ids.push_back(hit.id);
    return ids;
  }

  // Pages forward through `query` `page_size` at a time.
  std::vector<std::string> AllPages(IndexQuery query, int64_t page_size) {
    query.limit = page_size;
    std::vector<std::string> ids;
    for (int pages = 0; pages < 1000; ++pages) {
      StatusOr<IndexPage> page = store().Search(query);
      EXPECT_THAT(page, IsOk());
      if (!page.ok()) break;
      for (const IndexHit& hit : page->hits) ids.push_back(hit.id);
      if (!page->more) break;
      EXPECT_EQ(static_cast<int64_t>(page->hits.size()), page_size);
      query.after = page->hits.back().cursor;
    }
    return ids;
  }

  // Four observations of two patients: code/system tokens, a subject reference, a date range and
  // a quantity.
  void LoadObservations() {
    MustCommit({
        Indexed("Observation", "o1", 1,
                {KeyRow("code", "8867-4", "http://loinc.org"), KeyRow("subject", "Patient/p1"),
                 RangeRow("date", 100, 199), KeyRow("status", "final")}),
        Indexed("Observation", "o2", 1,
                {KeyRow("code", "8480-6", "http://loinc.org"), KeyRow("subject", "Patient/p1"),
                 RangeRow("date", 200, 299)}),
        Indexed("Observation", "o3", 1,
                {KeyRow("code", "8867-4", "http://loinc.org"), KeyRow("code", "HR", "urn:local"),
                 KeyRow("subject", "Patient/p2"), RangeRow("date", 300, 399),
                 KeyRow("status", "final")}),
        Indexed("Observation", "o4", 1,
                {KeyRow("code", "8867-4"), KeyRow("subject", "Patient/p2"),
                 RangeRow("date", 150, 450)}),
        Indexed("Patient", "p1", 1, {KeyRow("name", "alice")}),
        Indexed("Patient", "p2", 1, {KeyRow("name", "bob")}),
    });
  }
};

TEST_P(SearchConformanceTest, TokenEqualityWithAndWithoutSystem) {
  LoadObservations();
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("code", {KeyIs("8867-4")})})),
              ElementsAre("o1", "o3", "o4"));
  EXPECT_THAT(
      Ids(IndexSearch("Observation", {Clause("code", {KeyIs("8867-4", "http://loinc.org")})})),
      ElementsAre("o1", "o3"));
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("code", {KeyIs("8867-4", "")})})),
              ElementsAre("o4"));
  IndexMatch any_in_system;
  any_in_system.key2 = "urn:local";
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("code", {any_in_system})})),
              ElementsAre("o3"));
  // Another type's rows never match.
  EXPECT_THAT(Ids(IndexSearch("Condition", {Clause("code", {KeyIs("8867-4")})})), ElementsAre());
}

TEST_P(SearchConformanceTest, ClausesAreAndValuesAreOr) {
  LoadObservations();
  EXPECT_THAT(
      Ids(IndexSearch("Observation", {Clause("subject", {KeyIs("Patient/p1")}),
                                      Clause("code", {KeyIs("8867-4", "http://loinc.org")})})),
      ElementsAre("o1"));
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("code", {KeyIs("8480-6"), KeyIs("HR")})})),
              ElementsAre("o2", "o3"));
}

TEST_P(SearchConformanceTest, NotMissingAndPresent) {
  LoadObservations();
  EXPECT_THAT(Ids(IndexSearch("Observation",
                              {Clause("status", {KeyIs("final")}, IndexClause::Mode::kNoMatch)})),
              ElementsAre("o2", "o4"));
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("status", {}, IndexClause::Mode::kMissing)})),
              ElementsAre("o2", "o4"));
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("status", {}, IndexClause::Mode::kPresent)})),
              ElementsAre("o1", "o3"));
  // With no clause at all: every current resource of the type.
  EXPECT_THAT(Ids(IndexSearch("Patient", {})), ElementsAre("p1", "p2"));
}

TEST_P(SearchConformanceTest, RangeConditions) {
  LoadObservations();
  IndexMatch starts_before_160;
  starts_before_160.range_any = {{{RangeCondition::Column::kLow, RangeCondition::Op::kLess, 160}}};
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("date", {starts_before_160})})),
              ElementsAre("o1", "o4"));
  IndexMatch within_100_299;
  within_100_299.range_any = {
      {{RangeCondition::Column::kLow, RangeCondition::Op::kGreaterOrEqual, 100},
       {RangeCondition::Column::kHigh, RangeCondition::Op::kLessOrEqual, 299}}};
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("date", {within_100_299})})),
              ElementsAre("o1", "o2"));
  IndexMatch either;
  either.range_any = {{{RangeCondition::Column::kHigh, RangeCondition::Op::kGreater, 400}},
                      {{RangeCondition::Column::kLow, RangeCondition::Op::kLess, 150}}};
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("date", {either})})), ElementsAre("o1", "o4"));
}

TEST_P(SearchConformanceTest, PrefixContainsAndChain) {
  MustCommit({Indexed("Patient", "p1", 1, {KeyRow("name", "alice"), KeyRow("name", "smith")}),
              Indexed("Patient", "p2", 1, {KeyRow("name", "alfred")}),
              Indexed("Patient", "p3", 1, {KeyRow("name", "bob")}),
              Indexed("Observation", "o1", 1, {KeyRow("subject", "Patient/p1")}),
              Indexed("Observation", "o2", 1, {KeyRow("subject", "Patient/p3")})});
  IndexMatch al;
  al.key_prefix = "al";
  EXPECT_THAT(Ids(IndexSearch("Patient", {Clause("name", {al})})), ElementsAre("p1", "p2"));
  IndexMatch mit;
  mit.key_contains = "mit";
  EXPECT_THAT(Ids(IndexSearch("Patient", {Clause("name", {mit})})), ElementsAre("p1"));
  IndexMatch chained;
  chained.chain = std::make_shared<IndexQuery>(IndexSearch("Patient", {Clause("name", {al})}));
  chained.chain_key_prefix = "Patient/";
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("subject", {chained})})), ElementsAre("o1"));
}

TEST_P(SearchConformanceTest, IdsRestrictTheResult) {
  LoadObservations();
  IndexQuery q = IndexSearch("Observation", {Clause("code", {KeyIs("8867-4")})});
  q.ids = {"o3", "o2", "nope"};
  EXPECT_THAT(Ids(q), ElementsAre("o3"));
}

TEST_P(SearchConformanceTest, UpdatesReplaceRowsAndDeletesRemoveThem) {
  LoadObservations();
  MustCommit({Indexed("Observation", "o1", 2, {KeyRow("code", "8480-6", "http://loinc.org")})});
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("code", {KeyIs("8867-4")})})),
              ElementsAre("o3", "o4"));
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("code", {KeyIs("8480-6")})})),
              ElementsAre("o1", "o2"));
  MustCommit({DeleteMarker("Observation", "o2", 2)});
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("code", {KeyIs("8480-6")})})),
              ElementsAre("o1"));
  EXPECT_THAT(Ids(IndexSearch("Observation", {})), ElementsAre("o1", "o3", "o4"));
  // A failed batch leaves the index as it was.
  StatusOr<CommitResult> failed =
      store().Commit(Batch({Indexed("Observation", "o3", 2, {KeyRow("code", "X")}),
                            Indexed("Observation", "o4", 5, {KeyRow("code", "X")})}));
  EXPECT_THAT(failed, StatusIs(StatusCode::kAborted));
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("code", {KeyIs("X")})})), ElementsAre());
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("code", {KeyIs("8867-4")})})),
              ElementsAre("o3", "o4"));
}

TEST_P(SearchConformanceTest, SortsByRangeAndKeyWithMissingValuesLast) {
  LoadObservations();
  IndexQuery q = IndexSearch("Observation", {});
  q.sort = {IndexSort{"date", false, true}};
  EXPECT_THAT(Ids(q), ElementsAre("o1", "o4", "o2", "o3"));
  q.sort = {IndexSort{"date", true, true}};  // By the highest value, descending.
  EXPECT_THAT(Ids(q), ElementsAre("o4", "o3", "o2", "o1"));
  q.sort = {IndexSort{"status", false, false}, IndexSort{"date", true, true}};
  EXPECT_THAT(Ids(q), ElementsAre("o3", "o1", "o4", "o2"));
}

TEST_P(SearchConformanceTest, PagesCoverEveryMatchOnceInOrder) {
  std::vector<ResourceVersion> batch;
  std::vector<std::string> expected;
  for (int i = 0; i < 57; ++i) {
    char id[8];
    std::snprintf(id, sizeof id, "r%03d", i);
    batch.push_back(Indexed(
        "Observation", id, 1,
        {KeyRow("code", i % 3 == 0 ? "a" : "b"), RangeRow("date", 1000 - i % 10, 1000 - i % 10)}));
    if (i % 3 != 0) expected.push_back(id);
  }
  MustCommit(std::move(batch));
  IndexQuery q = IndexSearch("Observation", {Clause("code", {KeyIs("b")})});
  EXPECT_THAT(AllPages(q, 7), ElementsAreArray(expected));
  // Sorted with ties: the sort value, then id.
  q.sort = {IndexSort{"date", false, true}};
  std::vector<std::string> sorted = Ids(IndexSearch("Observation", {Clause("code", {KeyIs("b")})}));
  std::vector<std::string> by_date = AllPages(q, 5);
  EXPECT_EQ(by_date.size(), expected.size());
  q.limit = 1000;
  EXPECT_THAT(by_date, ElementsAreArray(Ids(q)));
  // Backward from the end of the first page gives nothing; from the second page's first hit
  // gives the first page.
  q.limit = 5;
  StatusOr<IndexPage> first = store().Search(q);
  ASSERT_THAT(first, IsOk());
  q.after = first->hits.back().cursor;
  StatusOr<IndexPage> second = store().Search(q);
  ASSERT_THAT(second, IsOk());
  q.after.reset();
  q.before = second->hits.front().cursor;
  StatusOr<IndexPage> back = store().Search(q);
  ASSERT_THAT(back, IsOk());
  ASSERT_EQ(back->hits.size(), first->hits.size());
  for (size_t i = 0; i < back->hits.size(); ++i) EXPECT_EQ(back->hits[i].id, first->hits[i].id);
  EXPECT_FALSE(back->more);
}

TEST_P(SearchConformanceTest, CursorStaysCorrectWhileDataChanges) {
  std::vector<ResourceVersion> batch;
  for (int i = 0; i < 10; ++i) {
    batch.push_back(Indexed("Observation", "r" + std::to_string(i), 1, {KeyRow("code", "x")}));
  }
  MustCommit(std::move(batch));
  IndexQuery q = IndexSearch("Observation", {Clause("code", {KeyIs("x")})}, 4);
  StatusOr<IndexPage> first = store().Search(q);
  ASSERT_THAT(first, IsOk());
  EXPECT_THAT(first->hits.size(), 4u);  // r0 r1 r2 r3
  // r1 leaves, r10 (sorts between r1 and r2) and r9 change: neither repeats nor skips the rest.
  MustCommit({DeleteMarker("Observation", "r1", 2),
              Indexed("Observation", "r10", 1, {KeyRow("code", "x")}),
              Indexed("Observation", "r9", 2, {KeyRow("code", "x")})});
  q.after = first->hits.back().cursor;
  q.limit = 100;
  EXPECT_THAT(Ids(q), ElementsAre("r4", "r5", "r6", "r7", "r8", "r9"));
}

TEST_P(SearchConformanceTest, CountsTotalIgnoringPaging) {
  LoadObservations();
  IndexQuery q = IndexSearch("Observation", {Clause("code", {KeyIs("8867-4")})}, 1);
  q.count_total = true;
  StatusOr<IndexPage> page = store().Search(q);
  ASSERT_THAT(page, IsOk());
  EXPECT_EQ(page->hits.size(), 1u);
  EXPECT_TRUE(page->more);
  EXPECT_EQ(page->total, 3);
}

TEST_P(SearchConformanceTest, MalformedQueriesAreInvalidArgument) {
  LoadObservations();
  EXPECT_THAT(store().Search(IndexSearch("", {})), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(store().Search(IndexSearch("Observation", {}, 0)),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(store().Search(IndexSearch("Observation", {Clause("code", {})})),
              StatusIs(StatusCode::kInvalidArgument));
  IndexClause blind = Clause("name", {IndexMatch{}});
  blind.blind = true;
  blind.any_of[0].key_prefix = "al";
  EXPECT_THAT(store().Search(IndexSearch("Patient", {blind})),
              StatusIs(StatusCode::kInvalidArgument));
  IndexQuery bad_cursor = IndexSearch("Observation", {});
  bad_cursor.sort = {IndexSort{"date", false, true}};
  bad_cursor.after = IndexCursor{{std::string("not a number")}, "o1"};
  EXPECT_THAT(store().Search(bad_cursor), StatusIs(StatusCode::kInvalidArgument));
  bad_cursor.after = IndexCursor{{}, "o1"};
  EXPECT_THAT(store().Search(bad_cursor), StatusIs(StatusCode::kInvalidArgument));
}

TEST_P(SearchConformanceTest, CompartmentRestrictsToOnePatientsResources) {
  ResourceVersion a = Indexed("Observation", "a", 1, {KeyRow("code", "x"), RangeRow("date", 1, 2)});
  a.compartment = "p1";
  ResourceVersion b = Indexed("Observation", "b", 1, {KeyRow("code", "x"), RangeRow("date", 1, 2)});
  b.compartment = "p2";
  ResourceVersion c = Indexed("Observation", "c", 1, {KeyRow("code", "y")});
  c.compartment = "p1";
  MustCommit({a, b, c});
  IndexQuery q = IndexSearch("Observation", {Clause("code", {KeyIs("x")})});
  q.compartment = "p1";
  EXPECT_THAT(Ids(q), ElementsAre("a"));
  q.compartment = "p2";
  EXPECT_THAT(Ids(q), ElementsAre("b"));
  // Every driver shape honours it: two candidates, a range only, ids.
  IndexQuery two =
      IndexSearch("Observation", {Clause("code", {KeyIs("x")}), Clause("code", {KeyIs("x")})});
  two.compartment = "p1";
  EXPECT_THAT(Ids(two), ElementsAre("a"));
  IndexMatch any_date;
  any_date.range_any = {{{RangeCondition::Column::kLow, RangeCondition::Op::kGreaterOrEqual, 0}}};
  IndexQuery range = IndexSearch("Observation", {Clause("date", {any_date})});
  range.compartment = "p2";
  EXPECT_THAT(Ids(range), ElementsAre("b"));
  IndexQuery by_id = IndexSearch("Observation", {});
  by_id.ids = {"a", "b", "c"};
  by_id.compartment = "p1";
  EXPECT_THAT(Ids(by_id), ElementsAre("a", "c"));
  // A move to another compartment moves the rows.
  ResourceVersion a2 = Indexed("Observation", "a", 2, {KeyRow("code", "x")});
  a2.compartment = "p2";
  MustCommit({a2});
  q.compartment = "p2";
  EXPECT_THAT(Ids(q), ElementsAre("a", "b"));
}

TEST_P(SearchConformanceTest, IndexSurvivesReopen) {
  LoadObservations();
  Reopen();
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("subject", {KeyIs("Patient/p2")})})),
              ElementsAre("o3", "o4"));
}

TEST_P(SearchConformanceTest, IndexRewritesReplaceRowsWithoutANewVersion) {
  LoadObservations();
  WriteBatch batch;
  batch.index_rewrites.push_back(
      IndexRewrite{"Observation", "o1", 1, "", {KeyRow("code", "REWRITTEN")}});
  batch.index_rewrites.push_back(IndexRewrite{"Patient", "p2", 1, "", {}});
  ASSERT_THAT(store().Commit(std::move(batch)), IsOk());
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("code", {KeyIs("REWRITTEN")})})),
              ElementsAre("o1"));
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("code", {KeyIs("8867-4")})})),
              ElementsAre("o3", "o4"));
  EXPECT_THAT(Ids(IndexSearch("Patient", {Clause("name", {KeyIs("bob")})})), ElementsAre());
  // No version was written: o1 is still at version 1, and history has its one entry.
  StatusOr<ResourceVersion> o1 = store().ReadCurrent("Observation", "o1");
  ASSERT_THAT(o1, IsOk());
  EXPECT_EQ(o1->version, 1);
  EXPECT_EQ(HistorySize("Observation", "o1"), 1u);
  Reopen();
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("code", {KeyIs("REWRITTEN")})})),
              ElementsAre("o1"));
}

TEST_P(SearchConformanceTest, IndexRewritesOfStaleOrDeletedVersionsAreAbortedAndWriteNothing) {
  LoadObservations();
  MustCommit({DeleteMarker("Observation", "o2", 2)});
  for (IndexRewrite stale : {IndexRewrite{"Observation", "o1", 2, "", {KeyRow("code", "X")}},
                             IndexRewrite{"Observation", "o2", 2, "", {KeyRow("code", "X")}},
                             IndexRewrite{"Observation", "none", 1, "", {KeyRow("code", "X")}}}) {
    WriteBatch batch;
    batch.index_rewrites.push_back(
        IndexRewrite{"Observation", "o3", 1, "", {KeyRow("code", "X")}});  // Fine alone.
    batch.index_rewrites.push_back(std::move(stale));
    EXPECT_THAT(store().Commit(std::move(batch)), StatusIs(StatusCode::kAborted));
  }
  EXPECT_THAT(Ids(IndexSearch("Observation", {Clause("code", {KeyIs("X")})})), ElementsAre());
  // One resource twice in a batch, as a version and a rewrite, is malformed.
  WriteBatch twice = Batch({Indexed("Observation", "o3", 2, {KeyRow("code", "Y")})});
  twice.index_rewrites.push_back(IndexRewrite{"Observation", "o3", 2, "", {}});
  EXPECT_THAT(store().Commit(std::move(twice)), StatusIs(StatusCode::kInvalidArgument));
}

TEST_P(SearchConformanceTest, ListCurrentPagesThroughLiveResourcesInOrder) {
  LoadObservations();
  MustCommit({DeleteMarker("Observation", "o2", 2)});
  MustCommit({Indexed("Observation", "o1", 2, {KeyRow("code", "8480-6")})});
  std::vector<std::string> seen;
  CurrentListQuery query;
  query.limit = 2;
  for (int pages = 0; pages < 10; ++pages) {
    StatusOr<std::vector<CurrentResource>> page = store().ListCurrent(query);
    ASSERT_THAT(page, IsOk());
    if (page->empty()) break;
    EXPECT_LE(page->size(), 2u);
    for (const CurrentResource& r : *page) {
      seen.push_back(r.type + "/" + r.id + "@" + std::to_string(r.version));
    }
    query.after_type = page->back().type;
    query.after_id = page->back().id;
  }
  EXPECT_THAT(seen, ElementsAre("Observation/o1@2", "Observation/o3@1", "Observation/o4@1",
                                "Patient/p1@1", "Patient/p2@1"));
  query = CurrentListQuery();
  query.limit = 0;
  EXPECT_THAT(store().ListCurrent(query), StatusIs(StatusCode::kInvalidArgument));
}

TEST_P(StoreConformanceTest, ListVersionsPagesThroughEveryVersionInOrder) {
  MustCommit({Res("Observation", "o1", 1, "{}", kT0, "p1"),
              Res("Patient", "p1", 1, "{}", kT0, "p1"), Res("Observation", "o0", 1)});
  MustCommit({Res("Observation", "o1", 2, "{}", At(1), "p2")});
  MustCommit({DeleteMarker("Observation", "o0", 2)});
  std::vector<std::string> seen;
  VersionListQuery query;
  query.limit = 2;
  for (int pages = 0; pages < 10; ++pages) {
    StatusOr<std::vector<VersionMeta>> page = store().ListVersions(query);
    ASSERT_THAT(page, IsOk());
    if (page->empty()) break;
    EXPECT_LE(page->size(), 2u);
    for (const VersionMeta& v : *page) {
      seen.push_back(v.type + "/" + v.id + "@" + std::to_string(v.version) +
                     (v.deleted ? " deleted" : "") + " [" + v.compartment + "]" +
                     (v.last_updated == kT0 ? "" : " later"));
    }
    query.after_type = page->back().type;
    query.after_id = page->back().id;
    query.after_version = page->back().version;
  }
  EXPECT_THAT(seen, ElementsAre("Observation/o0@1 []", "Observation/o0@2 deleted []",
                                "Observation/o1@1 [p1]", "Observation/o1@2 [p2] later",
                                "Patient/p1@1 [p1]"));
  query = VersionListQuery();
  query.limit = 0;
  EXPECT_THAT(store().ListVersions(query), StatusIs(StatusCode::kInvalidArgument));
}

TEST_P(StoreConformanceTest, IndexFingerprintIsAbsentUntilWrittenAndDurable) {
  StatusOr<std::optional<std::string>> none = store().ReadIndexFingerprint();
  ASSERT_THAT(none, IsOk());
  EXPECT_EQ(*none, std::nullopt);
  ASSERT_THAT(store().WriteIndexFingerprint("first"), IsOk());
  ASSERT_THAT(store().WriteIndexFingerprint("second"), IsOk());
  Reopen();
  StatusOr<std::optional<std::string>> stored = store().ReadIndexFingerprint();
  ASSERT_THAT(stored, IsOk());
  EXPECT_EQ(*stored, std::optional<std::string>("second"));
  EXPECT_THAT(store().WriteIndexFingerprint(""), StatusIs(StatusCode::kInvalidArgument));
}

INSTANTIATE_TEST_SUITE_P(
    Backends, StoreConformanceTest,
    ::testing::Values(Backend{"Sqlite", SqliteFactory(8, 1024)},
                      // The degenerate configuration: one reader to share, no batching.
                      Backend{"SqliteOneReaderNoBatching", SqliteFactory(1, 1)},
                      Backend{"CachedSqlite", CachedSqliteFactory(64 << 20)},
                      Backend{"CachedSqliteTinyCache", CachedSqliteFactory(16 * 600)}),
    [](const ::testing::TestParamInfo<Backend>& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(
    Backends, SearchConformanceTest,
    ::testing::Values(Backend{"Sqlite", SqliteFactory(8, 1024)},
                      // The degenerate configuration: one reader to share, no batching.
                      Backend{"SqliteOneReaderNoBatching", SqliteFactory(1, 1)},
                      Backend{"CachedSqlite", CachedSqliteFactory(64 << 20)},
                      Backend{"CachedSqliteTinyCache", CachedSqliteFactory(16 * 600)}),
    [](const ::testing::TestParamInfo<Backend>& info) { return info.param.name; });

// --- SQLite only ------------------------------------------------------------------------------

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    ASSERT_FALSE(dir_.empty());
    path_ = dir_ / "kura.db";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  static mode_t ModeOf(const std::filesystem::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return 0;
    return st.st_mode & 07777;
  }

  // Commits `commits` batches from each of `threads` threads started at once; `batch` makes the
  // batch for an id unique to the thread and commit.
  template <typename MakeBatch>
  static void CommitConcurrently(SqliteStore& store, int threads, int commits, MakeBatch batch) {
    std::barrier start(threads);
    std::vector<std::thread> running;
    for (int t = 0; t < threads; ++t) {
      running.emplace_back([&, t] {
        start.arrive_and_wait();
        for (int i = 0; i < commits; ++i) {
          EXPECT_THAT(store.Commit(batch(std::to_string(t) + "-" + std::to_string(i))), IsOk());
        }
      });
    }
    for (auto& thread : running) thread.join();
  }

  std::filesystem::path dir_;
  std::filesystem::path path_;
};

TEST_F(SqliteStoreTest, DatabaseAndWalFilesAreOwnerOnlyWhateverTheUmask) {
  const mode_t old_umask = ::umask(0);  // The most permissive umask.
  StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(Options(path_));
  ::umask(old_umask);
  ASSERT_THAT(store, IsOk());
  ASSERT_THAT((*store)->Commit(Batch({Res("Patient", "p", 1)})), IsOk());
  EXPECT_EQ(ModeOf(path_), 0600u);
  std::filesystem::path wal = path_;
  wal += "-wal";
  std::filesystem::path shm = path_;
  shm += "-shm";
  ASSERT_TRUE(std::filesystem::exists(wal));
  EXPECT_EQ(ModeOf(wal), 0600u);
  ASSERT_TRUE(std::filesystem::exists(shm));
  EXPECT_EQ(ModeOf(shm), 0600u);
}

TEST_F(SqliteStoreTest, TightensAnExistingDatabaseFile) {
  { ASSERT_THAT(SqliteStore::Open(Options(path_)), IsOk()); }
  ASSERT_EQ(::chmod(path_.c_str(), 0644), 0);
  StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(Options(path_));
  ASSERT_THAT(store, IsOk());
  EXPECT_EQ(ModeOf(path_), 0600u);
}

TEST_F(SqliteStoreTest, RefusesADatabaseWithANewerSchema) {
  {
    StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(Options(path_));
    ASSERT_THAT(store, IsOk());
    ASSERT_THAT((*store)->Commit(Batch({Res("Patient", "p", 1)})), IsOk());
    ASSERT_THAT((*store)->RecordSchemaVersionForTest(SqliteStore::SchemaVersion() + 1), IsOk());
  }
  StatusOr<std::unique_ptr<SqliteStore>> refused = SqliteStore::Open(Options(path_));
  EXPECT_THAT(refused, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_EQ(refused.status().message().find(path_.string()), std::string::npos);
}

namespace {

std::string Bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::filesystem::path WithSuffix(const std::filesystem::path& path, const char* suffix) {
  return path.string() + suffix;
}

}  // namespace

// Commands open the store without the in-memory search index: searches are refused, writes still
// keep search_rows, which the next open with the index reads.
TEST_F(SqliteStoreTest, WithoutTheSearchIndexSearchesAreRefusedAndRowsStillWritten) {
  {
    SqliteOptions options = Options(path_, 1);
    options.search_index = false;
    StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(options);
    ASSERT_THAT(store, IsOk());
    ASSERT_THAT((*store)->Commit(Batch({Indexed("Observation", "o1", 1, {KeyRow("code", "a")})})),
                IsOk());
    const IndexQuery query = IndexSearch("Observation", {Clause("code", {KeyIs("a")})});
    EXPECT_THAT((*store)->Search(query), StatusIs(StatusCode::kFailedPrecondition));
    std::optional<StatusOr<IndexPage>> in_memory = (*store)->SearchIfInMemory(query);
    ASSERT_TRUE(in_memory.has_value());
    EXPECT_THAT(*in_memory, StatusIs(StatusCode::kFailedPrecondition));
  }
  StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(Options(path_));
  ASSERT_THAT(store, IsOk());
  StatusOr<IndexPage> found =
      (*store)->Search(IndexSearch("Observation", {Clause("code", {KeyIs("a")})}));
  ASSERT_THAT(found, IsOk());
  EXPECT_EQ(found->hits.size(), 1u);
}

// A forensic copy taken while the server ran (its WAL still holding commits) is read without
// changing a byte: no migration, no checkpoint, no WAL removed on close.
TEST_F(SqliteStoreTest, ReadOnlyOpenChangesNoByteOfTheDatabaseOrItsWal) {
  const std::filesystem::path copy = dir_ / "copy";
  std::filesystem::create_directories(copy);
  {
    StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(Options(path_));
    ASSERT_THAT(store, IsOk());
    ASSERT_THAT((*store)->Commit(Batch({Indexed("Observation", "o1", 1, {KeyRow("code", "a")}),
                                        Res("Patient", "p1", 1)})),
                IsOk());
    ASSERT_THAT((*store)->Commit(Batch({Res("Patient", "p1", 2, R"({"v":2})")})), IsOk());
    ASSERT_TRUE(std::filesystem::exists(WithSuffix(path_, "-wal")));
    for (const char* suffix : {"", "-wal"}) {
      std::filesystem::copy_file(WithSuffix(path_, suffix), WithSuffix(copy / "kura.db", suffix));
    }
  }
  const std::filesystem::path db = copy / "kura.db";
  const std::string db_bytes = Bytes(db);
  const std::string wal_bytes = Bytes(WithSuffix(db, "-wal"));
  ASSERT_FALSE(wal_bytes.empty());
  {
    SqliteOptions options = Options(db, 2);
    options.read_only = true;
    StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(options);
    ASSERT_THAT(store, IsOk());
    StatusOr<ResourceVersion> p1 = (*store)->ReadCurrent("Patient", "p1");
    ASSERT_THAT(p1, IsOk());
    EXPECT_EQ(p1->version, 2);  // The commit only the WAL holds.
    StatusOr<IndexPage> found =
        (*store)->Search(IndexSearch("Observation", {Clause("code", {KeyIs("a")})}));
    ASSERT_THAT(found, IsOk());
    EXPECT_EQ(found->hits.size(), 1u);
    EXPECT_THAT((*store)->Commit(Batch({Res("Patient", "p2", 1)})),
                StatusIs(StatusCode::kFailedPrecondition));
    EXPECT_THAT((*store)->WriteIndexFingerprint("x"), StatusIs(StatusCode::kFailedPrecondition));
  }
  EXPECT_EQ(Bytes(db), db_bytes);
  EXPECT_EQ(Bytes(WithSuffix(db, "-wal")), wal_bytes);

  // Nothing to open is refused without creating a file; another schema version is refused.
  SqliteOptions missing = Options(dir_ / "absent.db", 1);
  missing.read_only = true;
  EXPECT_THAT(SqliteStore::Open(missing), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "absent.db"));
  {
    StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(Options(path_));
    ASSERT_THAT(store, IsOk());
    ASSERT_THAT((*store)->RecordSchemaVersionForTest(SqliteStore::SchemaVersion() + 1), IsOk());
  }
  const std::string future_bytes = Bytes(path_);
  SqliteOptions future = Options(path_, 1);
  future.read_only = true;
  EXPECT_THAT(SqliteStore::Open(future), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_EQ(Bytes(path_), future_bytes);
}

// A database of schema version 5 kept one search_index row per value; opening it moves them into
// one search_rows value per resource, and searches find the same resources.
TEST_F(SqliteStoreTest, MovesVersionFiveSearchRowsIntoOneValuePerResource) {
  {
    StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(Options(path_));
    ASSERT_THAT(store, IsOk());
    ASSERT_THAT((*store)->Commit(Batch({Res("Observation", "o1", 1), Res("Observation", "o2", 1),
                                        Res("Patient", "gone", 1)})),
                IsOk());
    ResourceVersion deleted = Res("Patient", "gone", 2);
    deleted.deleted = true;
    deleted.payload.clear();
    ASSERT_THAT((*store)->Commit(Batch({deleted})), IsOk());
  }
  {
    // Back to version 5 by hand: the table and index as that version created them.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    const std::string downgrade = R"sql(
CREATE TABLE search_index(
  type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, key BLOB NOT NULL,
  key2 BLOB NOT NULL, low REAL NOT NULL, high REAL NOT NULL,
  compartment TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(type, id, param, key, key2, low, high)) WITHOUT ROWID;
CREATE INDEX search_index_lookup ON search_index(type, param, key, key2, compartment);
INSERT INTO search_index VALUES('Observation', 'o1', 'code', '8867-4', 'http://loinc.org', 0, 0, '');
INSERT INTO search_index VALUES('Observation', 'o1', 'date', '', '', 100, 199, '');
INSERT INTO search_index VALUES('Observation', 'o2', 'code', '8480-6', 'http://loinc.org', 0, 0, 'p9');
INSERT INTO search_index VALUES('Observation', 'o2', 'name', X'00ff', X'', 0, 0, 'p9');
DROP TABLE search_rows;
DELETE FROM schema_migrations WHERE version >= 6;
)sql" + std::string(testing::kUndoSchemaElevenSql) +
                                  testing::kUndoSchemaTenSql +
                                  std::string(testing::kUndoSchemaNineSql) +
                                  std::string(testing::kUndoSchemaEightSql);
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db, downgrade.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << (error != nullptr ? error : "");
    sqlite3_free(error);
    sqlite3_close(db);
  }
  StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(Options(path_));
  ASSERT_THAT(store, IsOk());
  auto ids = [&](IndexQuery q) {
    std::vector<std::string> out;
    StatusOr<IndexPage> page = (*store)->Search(q);
    EXPECT_THAT(page, IsOk());
    if (page.ok()) {
      for (const IndexHit& hit : page->hits) out.push_back(hit.id);
    }
    return out;
  };
  EXPECT_THAT(
      ids(IndexSearch("Observation", {Clause("code", {KeyIs("8867-4", "http://loinc.org")})})),
      ElementsAre("o1"));
  IndexMatch in_range;
  in_range.range_any = {{{RangeCondition::Column::kLow, RangeCondition::Op::kGreaterOrEqual, 100},
                         {RangeCondition::Column::kHigh, RangeCondition::Op::kLessOrEqual, 199}}};
  EXPECT_THAT(ids(IndexSearch("Observation", {Clause("date", {in_range})})), ElementsAre("o1"));
  IndexClause blind = Clause("name", {KeyIs(std::string("\0\xff", 2))});
  blind.blind = true;
  EXPECT_THAT(ids(IndexSearch("Observation", {blind})), ElementsAre("o2"));
  // The same bytes as a clear value are another value.
  EXPECT_THAT(ids(IndexSearch("Observation", {Clause("name", {KeyIs(std::string("\0\xff", 2))})})),
              ElementsAre());
  // The compartment came along.
  IndexQuery in_p9 = IndexSearch("Observation", {});
  in_p9.compartment = "p9";
  EXPECT_THAT(ids(in_p9), ElementsAre("o2"));
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(
      sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'search_index%'",
                         -1, &stmt, nullptr),
      SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int64(stmt, 0), 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST_F(SqliteStoreTest, ANonDatabaseFileIsDataLossWithAClientSafeMessage) {
  {
    std::ofstream out(path_, std::ios::binary);
    out << std::string(8192, 'x');
  }
  StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(Options(path_));
  EXPECT_THAT(store, StatusIs(StatusCode::kDataLoss));
  EXPECT_EQ(store.status().message(), "storage error");
  EXPECT_FALSE(store.status().internal_detail().empty());
}

TEST_F(SqliteStoreTest, MissingDirectoryIsUnavailable) {
  StatusOr<std::unique_ptr<SqliteStore>> store =
      SqliteStore::Open(Options(dir_ / "missing" / "kura.db"));
  EXPECT_THAT(store, StatusIs(StatusCode::kUnavailable));
  EXPECT_EQ(store.status().message(), "storage error");
}

TEST_F(SqliteStoreTest, AFullDatabaseFailsOnlyTheCommitThatDoesNotFit) {
  StatusOr<std::unique_ptr<SqliteStore>> opened = SqliteStore::Open(Options(path_));
  ASSERT_THAT(opened, IsOk());
  SqliteStore& store = **opened;
  ASSERT_THAT(store.Commit(Batch({Res("Patient", "before", 1)})), IsOk());
  ASSERT_THAT(store.LimitDatabaseGrowthForTest(4), IsOk());

  StatusOr<CommitResult> too_big =
      store.Commit(Batch({Res("Binary", "big", 1, std::string(1 << 20, 'x'))}));
  EXPECT_THAT(too_big, StatusIs(StatusCode::kUnavailable));
  EXPECT_EQ(too_big.status().message(), "storage error");
  EXPECT_THAT(store.ReadCurrent("Binary", "big"), StatusIs(StatusCode::kNotFound));

  // The store stays usable: what fits still commits, what was there is intact.
  EXPECT_THAT(store.Commit(Batch({Res("Patient", "after", 1)})), IsOk());
  EXPECT_THAT(store.ReadCurrent("Patient", "before"), IsOk());
  EXPECT_THAT(store.ReadCurrent("Patient", "after"), IsOk());
}

TEST_F(SqliteStoreTest, WriterStatsCountEveryQueuedWrite) {
  const auto opening = std::chrono::steady_clock::now();
  StatusOr<std::unique_ptr<SqliteStore>> opened = SqliteStore::Open(Options(path_));
  ASSERT_THAT(opened, IsOk());
  SqliteStore& store = **opened;
  constexpr int kThreads = 8;
  constexpr int kCommits = 20;
  CommitConcurrently(store, kThreads, kCommits,
                     [](const std::string& id) { return Batch({Res("Patient", id, 1)}); });
  ASSERT_THAT(store.PutApiToken(Token(TokenHash('s'), "n", "r", At(0))), IsOk());
  const SqliteWriterStats stats = store.WriterStats();
  EXPECT_EQ(stats.writes, kThreads * kCommits + 1);
  EXPECT_GE(stats.transactions, 1);
  EXPECT_LE(stats.transactions, stats.writes);
  // Every group ran a durable COMMIT (an fsync takes well over a microsecond), and the writer's
  // time adds up to no more than the time it has existed.
  EXPECT_GT(stats.commit_us, 0);
  EXPECT_GT(stats.idle_us, 0);
  const int64_t lived_us = std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::steady_clock::now() - opening)
                               .count();
  EXPECT_LE(stats.idle_us + stats.run_us + stats.commit_us + stats.report_us, lived_us);
}

TEST_F(SqliteStoreTest, GroupsOfWritesKeepTheirSavepointJournalsInMemory) {
  StatusOr<std::unique_ptr<SqliteStore>> opened = SqliteStore::Open(Options(path_));
  ASSERT_THAT(opened, IsOk());
  SqliteStore& store = **opened;
  const BufferedWalStats before = GetBufferedWalStats();
  // Concurrent writers make groups of many savepoints, each journaling the pages the writes
  // before it in the group left at the right edge of every B-tree: far more than the 64 KiB a
  // sub-journal keeps in memory unless temporary storage is memory.
  constexpr int kThreads = 16;
  constexpr int kCommits = 20;
  const std::string payload(1500, 'j');
  // Three types: each write changes pages in several places of each B-tree.
  CommitConcurrently(store, kThreads, kCommits, [&](const std::string& id) {
    return Batch({Res("Binary", id, 1, payload), Res("Patient", id, 1, payload),
                  Res("Observation", id, 1, payload)});
  });
  const BufferedWalStats after = GetBufferedWalStats();
  EXPECT_LT(store.WriterStats().transactions, kThreads * kCommits);  // Groups did form.
  EXPECT_EQ(after.temporary_files, before.temporary_files);
  // And the WAL frames went out in far fewer writes than two per frame.
  EXPECT_LT(after.file_writes - before.file_writes,
            (after.frames_written - before.frames_written) / 2);
}

TEST_F(SqliteStoreTest, TheWalIsCheckpointedAndStaysBoundedUnderSustainedWrites) {
  SqliteOptions options = Options(path_);
  options.checkpoint_wal_pages = 16;
  StatusOr<std::unique_ptr<SqliteStore>> opened = SqliteStore::Open(options);
  ASSERT_THAT(opened, IsOk());
  SqliteStore& store = **opened;
  constexpr int kThreads = 4;
  constexpr int kCommits = 400;
  const std::string payload(2000, 'p');  // About half a page per version.
  std::uintmax_t largest_wal = 0;
  std::atomic<bool> writing{true};
  std::thread watcher([&] {
    std::error_code ec;
    while (writing.load()) {
      largest_wal = std::max(largest_wal, std::filesystem::file_size(dir_ / "kura.db-wal", ec));
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCommits; ++i) {
        EXPECT_THAT(store.Commit(Batch({Res("Device", "d" + std::to_string(t), i + 1, payload)})),
                    IsOk());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  writing = false;
  watcher.join();
  EXPECT_GT(store.WriterStats().checkpoints, 0);
  // 1.6k versions of ~2 KB went through; the WAL never held more than a few checkpoint
  // thresholds' worth (4 KiB pages plus frame headers), plus one group in flight.
  EXPECT_LT(largest_wal, 2u << 20) << "the WAL kept growing";
  for (int t = 0; t < kThreads; ++t) {
    StatusOr<ResourceVersion> v = store.ReadCurrent("Device", "d" + std::to_string(t));
    ASSERT_THAT(v, IsOk());
    EXPECT_EQ(v->version, kCommits);
  }
}

TEST_F(SqliteStoreTest, RejectsInvalidOptions) {
  EXPECT_THAT(SqliteStore::Open(Options("")), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(SqliteStore::Open(Options(path_, 0)), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(SqliteStore::Open(Options(path_, 8, 0)), StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace kura::store
