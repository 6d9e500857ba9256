// EncryptingStore + DataKeyring over the real SQLite backend: what reaches the backend is
// ciphertext, keys are per compartment, and any tampering or row swap fails closed.
#include "kura/store/encrypting_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <thread>

#include "kura/crypto/local_key_file.h"
#include "kura/store/caching_store.h"
#include "kura/store/sqlite/sqlite_store.h"

namespace kura::store {
namespace {

class EncryptingStoreTest : public ::testing::Test {
 protected:
  // Closes the store (which checkpoints and removes the WAL) and checks that neither the database
  // nor a WAL left behind holds any of `needles`.
  void CloseAndExpectInNoFile(const std::vector<std::string>& needles) {
    backend_->Close();
    encrypted_.reset();
    backend_.reset();
    for (const char* file : {"kura.db", "kura.db-wal"}) {
      if (!std::filesystem::exists(dir_ / file)) continue;
      const std::string bytes = FileBytes(dir_ / file);
      for (const std::string& needle : needles) {
        EXPECT_EQ(bytes.find(needle), std::string::npos) << file << ": " << needle;
      }
    }
  }

  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kura-enc-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ASSERT_TRUE(crypto::LocalKeyFileProvider::CreateKeyFile(dir_ / "master.key").ok());
    keys_ = std::move(*crypto::LocalKeyFileProvider::Load(dir_ / "master.key"));
    Reopen();
  }
  void TearDown() override {
    encrypted_.reset();
    backend_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    encrypted_.reset();
    backend_.reset();
    auto opened = SqliteStore::Open({.path = dir_ / "kura.db"});
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    backend_ = std::move(*opened);
    encrypted_ = std::make_unique<EncryptingStore>(*backend_, *keys_, "t1", 1024);
  }
  static ResourceVersion Version(std::string type, std::string id, int64_t v,
                                 std::string compartment, std::string payload) {
    ResourceVersion r;
    r.type = std::move(type);
    r.id = std::move(id);
    r.version = v;
    r.last_updated = FromMicros(1'700'000'000'000'000 + v);
    r.compartment = std::move(compartment);
    r.payload = std::move(payload);
    return r;
  }
  void Write(ResourceVersion v) {
    WriteBatch b;
    b.resources.push_back(std::move(v));
    auto r = encrypted_->Commit(std::move(b));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  std::string FileBytes(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  std::filesystem::path dir_;
  std::unique_ptr<crypto::LocalKeyFileProvider> keys_;
  std::unique_ptr<SqliteStore> backend_;
  std::unique_ptr<EncryptingStore> encrypted_;
};

TEST_F(EncryptingStoreTest, BackendSeesOnlyCiphertextAndReadsRoundTrip) {
  const std::string marker = "MARKER-7f3a9c-Doe";
  Write(Version("Patient", "p1", 1, "p1", "{\"family\":\"" + marker + "\"}"));
  auto raw = backend_->ReadCurrent("Patient", "p1");
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->payload.find(marker), std::string::npos);
  EXPECT_EQ(static_cast<uint8_t>(raw->payload[0]), crypto::kRecordFormatV1);
  auto plain = encrypted_->ReadCurrent("Patient", "p1");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->payload, "{\"family\":\"" + marker + "\"}");
  Reopen();  // Keys come back from their wrapped form.
  EXPECT_EQ(encrypted_->ReadCurrent("Patient", "p1")->payload, plain->payload);
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    EXPECT_EQ(FileBytes(entry.path()).find(marker), std::string::npos) << entry.path();
  }
}

TEST_F(EncryptingStoreTest, OneDataKeyPerCompartmentAndOneForTheTenant) {
  Write(Version("Patient", "a", 1, "a", "{}"));
  Write(Version("Observation", "o1", 1, "a", "{}"));
  Write(Version("Patient", "b", 1, "b", "{}"));
  Write(Version("Organization", "org", 1, "", "{}"));
  auto key_of = [&](std::string type, std::string id) {
    return *crypto::PeekRecordKeyId(backend_->ReadCurrent(type, id)->payload);
  };
  EXPECT_EQ(key_of("Patient", "a"), key_of("Observation", "o1"));
  EXPECT_NE(key_of("Patient", "a"), key_of("Patient", "b"));
  EXPECT_NE(key_of("Patient", "a"), key_of("Organization", "org"));
  auto a = backend_->FindDataKeyByScope("patient/a");
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ((*a)->key_id, key_of("Patient", "a"));
  EXPECT_TRUE(backend_->FindDataKeyByScope("tenant")->has_value());
}

TEST_F(EncryptingStoreTest, TamperedOrSwappedRecordsFailClosed) {
  Write(Version("Observation", "o1", 1, "p", "{\"v\":1}"));
  Write(Version("Observation", "o2", 1, "p", "{\"v\":2}"));
  // Flip one byte of o1's stored ciphertext by rewriting the row through the backend.
  ResourceVersion o1 = *backend_->ReadCurrent("Observation", "o1");
  ResourceVersion o2 = *backend_->ReadCurrent("Observation", "o2");
  ResourceVersion tampered = o1;
  tampered.version = 2;
  tampered.payload[tampered.payload.size() / 2] ^= 0x20;
  WriteBatch b1;
  b1.resources.push_back(tampered);
  ASSERT_TRUE(backend_->Commit(std::move(b1)).ok());
  auto read = encrypted_->ReadCurrent("Observation", "o1");
  EXPECT_EQ(read.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(read.status().message(), "decryption failed");
  // An intact record copied to another row (o2's ciphertext as o1 version 3) also fails.
  ResourceVersion swapped = o2;
  swapped.id = "o1";
  swapped.version = 3;
  WriteBatch b2;
  b2.resources.push_back(swapped);
  ASSERT_TRUE(backend_->Commit(std::move(b2)).ok());
  EXPECT_EQ(encrypted_->ReadCurrent("Observation", "o1").status().message(), "decryption failed");
  // History stops at the bad version rather than returning altered data.
  HistoryQuery history;
  history.type = "Observation";
  history.id = "o1";
  EXPECT_FALSE(encrypted_->History(history).ok());
  // The untouched resource still reads.
  EXPECT_EQ(encrypted_->ReadCurrent("Observation", "o2")->payload, "{\"v\":2}");
}

TEST_F(EncryptingStoreTest, DeleteMarkersCarryNoPayload) {
  Write(Version("Patient", "p", 1, "p", "{\"secret\":true}"));
  ResourceVersion marker = Version("Patient", "p", 2, "p", "ignored");
  marker.deleted = true;
  Write(marker);
  auto cur = encrypted_->ReadCurrent("Patient", "p");
  ASSERT_TRUE(cur.ok());
  EXPECT_TRUE(cur->deleted);
  EXPECT_TRUE(backend_->ReadCurrent("Patient", "p")->payload.empty());
}

TEST_F(EncryptingStoreTest, ConcurrentFirstUseOfACompartmentAgreesOnOneKey) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      WriteBatch b;
      b.resources.push_back(Version("Observation", "c" + std::to_string(t), 1, "shared", "{}"));
      EXPECT_TRUE(encrypted_->Commit(std::move(b)).ok());
    });
  }
  for (auto& t : threads) t.join();
  std::set<uint64_t> ids;
  for (int t = 0; t < 8; ++t) {
    ids.insert(*crypto::PeekRecordKeyId(
        backend_->ReadCurrent("Observation", "c" + std::to_string(t))->payload));
  }
  EXPECT_EQ(ids.size(), 1u);
  for (int t = 0; t < 8; ++t) {
    EXPECT_TRUE(encrypted_->ReadCurrent("Observation", "c" + std::to_string(t)).ok());
  }
}

TEST_F(EncryptingStoreTest, CommitAsyncUsesTheBlockingExecutorOnlyToLoadAKey) {
  int blocking_tasks = 0;
  EncryptingStore store(*backend_, *keys_, "t1", 1024, [&](std::function<void()> task) {
    ++blocking_tasks;
    task();
  });
  auto commit = [&](ResourceVersion v) {
    std::promise<StatusOr<CommitResult>> done;
    WriteBatch b;
    b.resources.push_back(std::move(v));
    store.CommitAsync(std::move(b),
                      [&](StatusOr<CommitResult> r) { done.set_value(std::move(r)); });
    return done.get_future().get();
  };
  ASSERT_TRUE(commit(Version("Observation", "o1", 1, "p", "{\"v\":1}")).ok());
  EXPECT_EQ(blocking_tasks, 1);  // The compartment's key had to be created.
  ASSERT_TRUE(commit(Version("Observation", "o2", 1, "p", "{\"v\":2}")).ok());
  ResourceVersion marker = Version("Observation", "o1", 2, "p", "");
  marker.deleted = true;
  ASSERT_TRUE(commit(marker).ok());
  EXPECT_EQ(blocking_tasks, 1);  // Cached key (and a delete needs none): sealed on the caller.
  auto raw = backend_->ReadCurrent("Observation", "o2");
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->payload.find("\"v\""), std::string::npos);
  EXPECT_EQ(store.ReadCurrent("Observation", "o2")->payload, "{\"v\":2}");
}

TEST_F(EncryptingStoreTest, CachedReadsOpenRecordsOnlyWithACachedKey) {
  CachingStore cache(*backend_, 1 << 20);
  auto writer = std::make_unique<EncryptingStore>(cache, *keys_, "t1", 1024);
  WriteBatch b;
  b.resources.push_back(Version("Observation", "o", 1, "p", "{\"v\":1}"));
  ASSERT_TRUE(writer->Commit(std::move(b)).ok());
  auto hit = writer->ReadCurrentIfCached("Observation", "o");
  ASSERT_TRUE(hit.has_value());
  ASSERT_TRUE(hit->ok());
  EXPECT_EQ((*hit)->payload, "{\"v\":1}");
  // A fresh keyring has no key yet: the record is in memory but cannot be opened without
  // blocking, so that is a miss, until a blocking read has loaded the key.
  EncryptingStore fresh(cache, *keys_, "t1", 1024);
  EXPECT_FALSE(fresh.ReadCurrentIfCached("Observation", "o").has_value());
  EXPECT_TRUE(fresh.ReadCurrent("Observation", "o").ok());
  auto later = fresh.ReadVersionIfCached("Observation", "o", 1);
  ASSERT_TRUE(later.has_value());
  EXPECT_EQ((*later)->payload, "{\"v\":1}");
}

// A cached read builds its answer from the cache's sealed entry: every field as the database
// holds it, the payload opened; and the sealed entry itself never passes up through this layer.
TEST_F(EncryptingStoreTest, CachedReadsAnswerAsTheDatabaseDoesAndKeepSealedEntriesBelow) {
  CachingStore cache(*backend_, 1 << 20);
  EncryptingStore writer(cache, *keys_, "t1", 1024);
  const std::string plain = "{\"resourceType\":\"Observation\",\"v\":\"markercachedzq\"}";
  WriteBatch b;
  b.resources.push_back(Version("Observation", "o", 1, "p", plain));
  b.resources.push_back(Version("Observation", "gone", 1, "p", "{}"));
  ASSERT_TRUE(writer.Commit(std::move(b)).ok());
  ResourceVersion marker = Version("Observation", "gone", 2, "p", "");
  marker.deleted = true;
  WriteBatch d;
  d.resources.push_back(std::move(marker));
  ASSERT_TRUE(writer.Commit(std::move(d)).ok());

  for (const char* id : {"o", "gone"}) {
    auto cached = writer.ReadCurrentIfCached("Observation", id);
    ASSERT_TRUE(cached.has_value()) << id;
    ASSERT_TRUE(cached->ok()) << id;
    auto stored = encrypted_->ReadCurrent("Observation", id);  // From the database.
    ASSERT_TRUE(stored.ok()) << id;
    const ResourceVersion& c = **cached;
    EXPECT_EQ(c.type, stored->type);
    EXPECT_EQ(c.id, stored->id);
    EXPECT_EQ(c.version, stored->version);
    EXPECT_EQ(c.last_updated, stored->last_updated);
    EXPECT_EQ(c.deleted, stored->deleted);
    EXPECT_EQ(c.compartment, stored->compartment);
    EXPECT_EQ(c.payload, stored->payload);
    EXPECT_EQ(c.sequence, stored->sequence);
    EXPECT_GT(c.sequence, 0);
    EXPECT_TRUE(c.index.empty());
  }
  EXPECT_EQ(writer.ReadCurrentIfCached("Observation", "o")->value().payload, plain);
  EXPECT_TRUE(writer.ReadCurrentIfCached("Observation", "gone")->value().deleted);
  EXPECT_FALSE(writer.ReadVersionIfCached("Observation", "gone", 1).has_value());

  std::shared_ptr<const ResourceVersion> sealed = cache.SharedCurrentIfCached("Observation", "o");
  ASSERT_NE(sealed, nullptr);
  EXPECT_EQ(sealed->payload.find("markercachedzq"), std::string::npos);
  EXPECT_EQ(writer.SharedCurrentIfCached("Observation", "o"), nullptr);
}

// A search answered in memory hashes a blind clause only with the blind-index key already cached;
// without it, the caller is told to search where it may block.
TEST_F(EncryptingStoreTest, InMemorySearchOfABlindClauseNeedsACachedKey) {
  const std::string marker = "markerblindzq";
  ResourceVersion v = Version("Patient", "p1", 1, "p1", "{}");
  v.index = {IndexEntry{"name", marker, "", std::nullopt, std::nullopt, true},
             IndexEntry{"gender", "female", "", std::nullopt, std::nullopt, false}};
  Write(std::move(v));
  auto query = [](std::string param, std::string key, bool blind) {
    IndexQuery q;
    q.type = "Patient";
    IndexClause& c = q.all_of.emplace_back();
    c.param = std::move(param);
    c.blind = blind;
    c.any_of.emplace_back().key = std::move(key);
    return q;
  };
  // The writer's keyring holds the key it hashed the rows with.
  std::optional<StatusOr<IndexPage>> page =
      encrypted_->SearchIfInMemory(query("name", marker, true));
  ASSERT_TRUE(page.has_value());
  ASSERT_TRUE(page->ok());
  ASSERT_EQ((*page)->hits.size(), 1u);
  EXPECT_EQ((*page)->hits[0].id, "p1");
  // A fresh keyring: clear clauses still answer, a blind one waits for a blocking search.
  EncryptingStore fresh(*backend_, *keys_, "t1", 1024);
  page = fresh.SearchIfInMemory(query("gender", "female", false));
  ASSERT_TRUE(page.has_value());
  ASSERT_TRUE(page->ok());
  EXPECT_EQ((*page)->hits.size(), 1u);
  EXPECT_FALSE(fresh.SearchIfInMemory(query("name", marker, true)).has_value());
  ASSERT_TRUE(fresh.Search(query("name", marker, true)).ok());
  page = fresh.SearchIfInMemory(query("name", marker, true));
  ASSERT_TRUE(page.has_value());
  ASSERT_TRUE(page->ok());
  EXPECT_EQ((*page)->hits.size(), 1u);
}

TEST_F(EncryptingStoreTest, WrongMasterKeyCannotOpenData) {
  Write(Version("Patient", "p", 1, "p", "{}"));
  std::filesystem::remove(dir_ / "master.key");
  ASSERT_TRUE(crypto::LocalKeyFileProvider::CreateKeyFile(dir_ / "master.key").ok());
  keys_ = std::move(*crypto::LocalKeyFileProvider::Load(dir_ / "master.key"));
  Reopen();
  EXPECT_EQ(encrypted_->ReadCurrent("Patient", "p").status().message(), "decryption failed");
}

// The Patients whose `param` row equals key (and key2, when given) in `store`.
std::vector<std::string> PatientIdsWhere(Store& store, std::string param, std::string key,
                                         std::optional<std::string> key2, bool blind) {
  IndexQuery q;
  q.type = "Patient";
  IndexClause c;
  c.param = std::move(param);
  c.blind = blind;
  IndexMatch m;
  m.key = std::move(key);
  m.key2 = std::move(key2);
  c.any_of.push_back(m);
  q.all_of.push_back(c);
  std::vector<std::string> ids;
  StatusOr<IndexPage> page = store.Search(q);
  EXPECT_TRUE(page.ok()) << page.status().ToString();
  if (page.ok()) {
    for (const IndexHit& hit : page->hits) ids.push_back(hit.id);
  }
  return ids;
}

TEST_F(EncryptingStoreTest, BlindIndexRowsReachTheBackendOnlyAsKeyedHashes) {
  const std::string marker = "markerblindzq";
  ResourceVersion v = Version("Patient", "p1", 1, "p1", "{}");
  v.index = {IndexEntry{"name", marker, "", std::nullopt, std::nullopt, true},
             IndexEntry{"identifier", "12345", "urn:oid:1.2", std::nullopt, std::nullopt, true},
             IndexEntry{"gender", "female", "", std::nullopt, std::nullopt, false}};
  Write(std::move(v));
  Write(Version("Patient", "p2", 1, "p2", "{}"));

  auto search = PatientIdsWhere;
  EXPECT_EQ(search(*encrypted_, "name", marker, std::nullopt, true),
            std::vector<std::string>{"p1"});
  EXPECT_EQ(search(*encrypted_, "identifier", "12345", "urn:oid:1.2", true),
            std::vector<std::string>{"p1"});
  EXPECT_TRUE(search(*encrypted_, "identifier", "12345", "urn:oid:9", true).empty());
  EXPECT_EQ(search(*encrypted_, "gender", "female", std::nullopt, false),
            std::vector<std::string>{"p1"});
  // The backend holds the hash, not the value: the clear value finds nothing there.
  EXPECT_TRUE(search(*backend_, "name", marker, std::nullopt, false).empty());
  // A blind clause matches by equality only.
  IndexQuery prefix;
  prefix.type = "Patient";
  IndexClause c;
  c.param = "name";
  c.blind = true;
  IndexMatch m;
  m.key_prefix = "mark";
  c.any_of.push_back(m);
  prefix.all_of.push_back(c);
  EXPECT_EQ(encrypted_->Search(prefix).status().code(), StatusCode::kInvalidArgument);

  CloseAndExpectInNoFile({marker, "urn:oid:1.2"});
}

// A reindex that makes a parameter blind: the rewritten rows are hashed like a new version's, and
// the clear values they replace are in neither file afterwards (secure delete).
TEST_F(EncryptingStoreTest, IndexRewritesAreBlindedAndLeaveNoOldValueBehind) {
  const std::string marker = "markerrewritezq";
  ResourceVersion v = Version("Patient", "p1", 1, "p1", "{}");
  v.index = {IndexEntry{"name", marker, "", std::nullopt, std::nullopt, false}};
  // Enough rows to need overflow pages, which the shorter rewrite frees: without secure delete,
  // freed pages keep their bytes.
  for (int i = 0; i < 400; ++i) {
    v.index.push_back(
        IndexEntry{"name", marker + std::to_string(i), "", std::nullopt, std::nullopt, false});
  }
  Write(std::move(v));
  auto ids = [&marker](Store& store, bool blind) {
    return PatientIdsWhere(store, "name", marker, std::nullopt, blind);
  };
  ASSERT_EQ(ids(*backend_, false), std::vector<std::string>{"p1"});

  WriteBatch batch;
  batch.index_rewrites.push_back(
      IndexRewrite{"Patient",
                   "p1",
                   1,
                   "p1",
                   {IndexEntry{"name", marker, "", std::nullopt, std::nullopt, true}}});
  ASSERT_TRUE(encrypted_->Commit(std::move(batch)).ok());
  EXPECT_EQ(ids(*encrypted_, true), std::vector<std::string>{"p1"});
  EXPECT_TRUE(ids(*backend_, false).empty());

  CloseAndExpectInNoFile({marker});
}

}  // namespace
}  // namespace kura::store
