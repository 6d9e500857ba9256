// Test-only: an AuditLog over a real SqliteStore in a temporary directory, with the helpers the
// audit log tests share (appending sample events, reading the stored rows, verifying the log).
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kura/audit/audit_log.h"
#include "kura/audit/temp_dir_util.h"
#include "kura/audit/test_util.h"
#include "kura/base/clock.h"
#include "kura/crypto/aead.h"
#include "kura/store/sqlite/audit_postings.h"
#include "kura/store/sqlite/sqlite_store.h"

namespace kura::audit::testing {

// The origin line of the test logs' checkpoints.
inline constexpr std::string_view kOrigin = "kura/test/audit";

// A random AES key, id 7, to seal records with.
inline StatusOr<std::shared_ptr<const crypto::AeadKey>> NewRecordKey() {
  auto raw = SecretBytes::Random(crypto::kAesKeyBytes);
  if (!raw.ok()) return raw.status();
  auto key = crypto::AeadKey::Create(7, std::move(*raw));
  if (!key.ok()) return key.status();
  return std::make_shared<const crypto::AeadKey>(std::move(*key));
}

// Finds `key` by its id and nothing else.
inline AuditKeyLookup KeyLookup(std::shared_ptr<const crypto::AeadKey> key) {
  return [key = std::move(key)](uint64_t id) -> StatusOr<std::shared_ptr<const crypto::AeadKey>> {
    if (id != key->key_id()) return DataLossError("decryption failed");
    return key;
  };
}

// Opens the log in SetUp (a checkpoint every 10 records) and closes it and removes the directory
// in TearDown. A test fixture derives from it and names its directory, its signer's seed and
// where its clock starts.
class AuditLogFixture : public ::testing::Test {
 protected:
  // `temp_prefix` names the temporary directory; the signer's seed is 32 times `seed_byte`.
  AuditLogFixture(std::string temp_prefix, char seed_byte, TimePoint clock_start)
      : seed_hex_(Hex(std::string(32, seed_byte))),
        clock_(clock_start),
        temp_prefix_(std::move(temp_prefix)) {}

  void SetUp() override {
    dir_ = MakeUniqueTempDir(temp_prefix_);
    ASSERT_FALSE(dir_.empty());
    auto key = NewRecordKey();
    ASSERT_TRUE(key.ok());
    key_ = std::move(*key);
    Open();
  }

  void TearDown() override {
    Close();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void Open(CheckpointPolicy policy = {.every_records = 10, .every = std::chrono::hours(1)}) {
    store::SqliteOptions store_options = store_options_;
    store_options.path = db_path();
    auto opened = store::SqliteStore::Open(store_options);
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    store_ = std::move(*opened);
    auto log =
        AuditLog::Open(*store_, key_, lookup(), SignerFromSeedHex(seed_hex_),
                       {.origin = std::string(kOrigin), .checkpoint_policy = policy}, clock_);
    ASSERT_TRUE(log.ok()) << log.status().message();
    log_ = std::move(*log);
  }

  void Close() {
    if (store_) store_->Close();
    log_.reset();
    store_.reset();
  }

  std::filesystem::path db_path() const { return dir_ / "kura.db"; }

  AuditKeyLookup lookup() { return KeyLookup(key_); }

  // SampleRecord(i) as a draft: the log assigns the sequence.
  static AuditRecord Event(uint64_t i) {
    AuditRecord r = SampleRecord(i);
    r.sequence = 0;
    return r;
  }

  // Events from..from+count-1, one commit each (or one commit for all with `one_batch`).
  void AppendEvents(uint64_t from, uint64_t count, bool one_batch = false) {
    if (one_batch) {
      std::vector<AuditRecord> records;
      for (uint64_t i = from; i < from + count; ++i) records.push_back(Event(i));
      store::WriteBatch batch;
      batch.audit = AuditLog::Draft(std::move(records));
      ASSERT_TRUE(store_->Commit(std::move(batch)).ok());
      return;
    }
    for (uint64_t i = from; i < from + count; ++i) {
      store::WriteBatch batch;
      batch.audit = AuditLog::Draft(Event(i));
      ASSERT_TRUE(store_->Commit(std::move(batch)).ok());
    }
  }

  // VerifyStoredLog over the whole store, with `extra` checkpoint notes (shipped copies).
  VerificationReport Verify(std::vector<std::string> extra = {}) {
    auto report = VerifyStoredLog(*store_, lookup(), options(), extra);
    EXPECT_TRUE(report.ok()) << report.status().message();
    return report.ok() ? *report : VerificationReport{};
  }

  VerifyOptions options() {
    return {.origin = std::string(kOrigin), .trusted_keys = {log_->verifier_key()}};
  }

  // The tree sizes of the stored checkpoints and prune anchors, by kind then size.
  std::vector<uint64_t> StatementSizes() {
    auto statements = store_->ReadAuditStatements();
    EXPECT_TRUE(statements.ok());
    std::vector<uint64_t> sizes;
    if (statements.ok()) {
      for (const auto& s : *statements) sizes.push_back(s.tree_size);
    }
    return sizes;
  }

  std::vector<store::AuditRow> AllRows() {
    auto rows = store_->ReadAuditRows(0, 1 << 20);
    EXPECT_TRUE(rows.ok());
    return rows.ok() ? *rows : std::vector<store::AuditRow>();
  }

  static bool HasIssue(const VerificationReport& report, IssueKind kind) {
    for (const VerificationIssue& issue : report.issues) {
      if (issue.kind == kind) return true;
    }
    return false;
  }

  // Reopens the store folding the audit search indexes every `records` records.
  void ReopenFoldingEvery(int records) {
    Close();
    store_options_.audit_index_fold_records = records;
    Open();
  }

  // The sequences SearchAudit finds for `query`, newest first, read `page_size` at a time.
  std::vector<uint64_t> SearchSequences(store::AuditQuery query, int64_t page_size = 1000) {
    query.limit = page_size;
    std::vector<uint64_t> out;
    while (true) {
      auto page = store_->SearchAudit(query);
      EXPECT_TRUE(page.ok()) << page.status().message();
      if (!page.ok()) return out;
      for (const store::AuditRow& row : page->rows) out.push_back(row.sequence);
      if (page->next_before_sequence == 0) return out;
      query.before_sequence = page->next_before_sequence;
    }
  }

  // The sequences SearchAudit finds for `patient`, newest first.
  std::vector<uint64_t> SearchPatient(const std::string& patient) {
    store::AuditQuery query;
    query.patient_id = patient;
    return SearchSequences(std::move(query));
  }

  // The events in [from, to) that touch `patient`, newest first.
  static std::vector<uint64_t> EventsTouching(const std::string& patient, uint64_t from,
                                              uint64_t to) {
    std::vector<uint64_t> out;
    for (uint64_t i = to; i-- > from;) {
      const std::vector<std::string> touched = Event(i).patient_compartments;
      if (std::find(touched.begin(), touched.end(), patient) != touched.end()) out.push_back(i);
    }
    return out;
  }

  // The last record filed into the folded audit search indexes.
  int64_t FoldedThrough() const { return QueryInt("SELECT through_seq FROM audit_index_fold"); }

  // One stored posting list of the folded audit indexes, decoded (empty when it does not decode).
  struct PostingList {
    int64_t first_seq = 0;
    store::AuditPostingKind kind = store::AuditPostingKind::kPatient;
    std::string key;
    std::vector<uint64_t> sequences;
  };
  std::vector<PostingList> PostingLists() const {
    std::vector<PostingList> out;
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(db_path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v2(db,
                             "SELECT first_seq, kind, key, seqs FROM audit_postings "
                             "ORDER BY first_seq, kind, key",
                             -1, &stmt, nullptr) == SQLITE_OK) {
        while (sqlite3_step(stmt) == SQLITE_ROW) {
          PostingList list;
          list.first_seq = sqlite3_column_int64(stmt, 0);
          list.kind = static_cast<store::AuditPostingKind>(sqlite3_column_int64(stmt, 1));
          list.key = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 2));
          const auto* blob = static_cast<const char*>(sqlite3_column_blob(stmt, 3));
          const std::string value(blob == nullptr ? "" : blob,
                                  static_cast<size_t>(sqlite3_column_bytes(stmt, 3)));
          list.sequences =
              store::DecodeAuditPostingSequences(static_cast<uint64_t>(list.first_seq), value)
                  .value_or(std::vector<uint64_t>());
          out.push_back(std::move(list));
        }
      }
      sqlite3_finalize(stmt);
    }
    sqlite3_close(db);
    return out;
  }
  // Every (key, sequence) entry of one kind, across blocks.
  std::vector<std::pair<std::string, uint64_t>> PostingEntries(store::AuditPostingKind kind) const {
    std::vector<std::pair<std::string, uint64_t>> out;
    for (const PostingList& list : PostingLists()) {
      if (list.kind != kind) continue;
      for (uint64_t sequence : list.sequences) out.emplace_back(list.key, sequence);
    }
    return out;
  }
  // SQL that stores `list` in place of the one under the same block and key (deletes it when it
  // has no sequences), as someone editing the database would.
  static std::string WritePostingListSql(const PostingList& list) {
    std::string key;
    for (char c : list.key) key += c == '\'' ? std::string("''") : std::string(1, c);
    const std::string where = " WHERE first_seq = " + std::to_string(list.first_seq) +
                              " AND kind = " + std::to_string(static_cast<int64_t>(list.kind)) +
                              " AND key = '" + key + "';";
    if (list.sequences.empty()) return "DELETE FROM audit_postings" + where;
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    for (unsigned char c : store::EncodeAuditPostingSequences(static_cast<uint64_t>(list.first_seq),
                                                              list.sequences)) {
      hex += kHex[c >> 4];
      hex += kHex[c & 15];
    }
    return "INSERT OR REPLACE INTO audit_postings(first_seq, kind, key, seqs) VALUES(" +
           std::to_string(list.first_seq) + ", " + std::to_string(static_cast<int64_t>(list.kind)) +
           ", '" + key + "', x'" + hex + "');";
  }

  // The first integer column of the first row `sql` returns on the database file, or -1.
  int64_t QueryInt(const std::string& sql) const {
    sqlite3* db = nullptr;
    int64_t out = -1;
    if (sqlite3_open_v2(db_path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
          sqlite3_step(stmt) == SQLITE_ROW) {
        out = sqlite3_column_int64(stmt, 0);
      }
      sqlite3_finalize(stmt);
    }
    sqlite3_close(db);
    return out;
  }

  std::filesystem::path dir_;
  store::SqliteOptions store_options_;  // Open() sets the path.
  std::string seed_hex_;
  std::shared_ptr<const crypto::AeadKey> key_;
  FakeClock clock_;
  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<AuditLog> log_;

 private:
  const std::string temp_prefix_;
};

}  // namespace kura::audit::testing
