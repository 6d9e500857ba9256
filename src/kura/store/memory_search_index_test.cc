// Tests of the in-memory search index beyond the store conformance suite: the durable encoding,
// the bookkeeping of posting lists and interned strings under churn (checked against a plain
// model), and the choice of candidates.
#include "kura/store/memory_search_index.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "kura/store/search_index_rows.h"

namespace kura::store {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAreArray;

void Put(MemorySearchIndex& index, std::string_view type, std::string_view id,
         const std::vector<IndexEntry>& rows, std::string_view compartment = "") {
  index.Apply({IndexChange{type, id, compartment, false, &rows}});
}

void Delete(MemorySearchIndex& index, std::string_view type, std::string_view id) {
  index.Apply({IndexChange{type, id, "", true, nullptr}});
}

std::vector<std::string> Ids(const MemorySearchIndex& index, IndexQuery query) {
  query.limit = 1 << 20;
  StatusOr<IndexPage> page = index.Search(query);
  EXPECT_TRUE(page.ok()) << page.status().message();
  std::vector<std::string> ids;
  if (page.ok()) {
    for (const IndexHit& hit : page->hits) ids.push_back(hit.id);
  }
  return ids;
}

IndexQuery KeyQuery(std::string type, std::string param, std::string key, bool blind = false) {
  IndexQuery q;
  q.type = std::move(type);
  IndexClause c;
  c.param = std::move(param);
  c.blind = blind;
  IndexMatch m;
  m.key = std::move(key);
  c.any_of.push_back(std::move(m));
  q.all_of.push_back(std::move(c));
  return q;
}

TEST(IndexRowsEncodingTest, RoundTripsEveryKindOfRow) {
  std::vector<IndexEntry> rows = {KeyRow("code", "8867-4", "http://loinc.org"),
                                  KeyRow("name", std::string("\0\xff\x01", 3), "", true),
                                  RangeRow("date", -62135596800.0, 253402300799.999),
                                  RangeRow("value-quantity", 0.1, 1e300), KeyRow("empty", "")};
  StatusOr<std::vector<IndexEntry>> decoded = DecodeIndexRows(EncodeIndexRows(rows));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, rows);
  decoded = DecodeIndexRows(EncodeIndexRows({}));
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(decoded->empty());
}

TEST(IndexRowsEncodingTest, MalformedBytesAreDataLoss) {
  const std::string good = EncodeIndexRows({KeyRow("code", "x", "sys"), RangeRow("date", 1, 2)});
  EXPECT_EQ(DecodeIndexRows("").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(DecodeIndexRows(std::string("\x02\x00", 2)).status().code(), StatusCode::kDataLoss);
  for (size_t cut = 0; cut < good.size(); ++cut) {
    EXPECT_EQ(DecodeIndexRows(good.substr(0, cut)).status().code(), StatusCode::kDataLoss) << cut;
  }
  EXPECT_EQ(DecodeIndexRows(good + "x").status().code(), StatusCode::kDataLoss);
  std::string bad_flags = good;
  bad_flags[1 + 1 + 1 + 4] = '\x08';  // version, count, param length, "code", flags.
  EXPECT_EQ(DecodeIndexRows(bad_flags).status().code(), StatusCode::kDataLoss);
  // A huge count must not allocate before the bytes run out.
  EXPECT_EQ(DecodeIndexRows(std::string("\x01\xff\xff\xff\xff\x0f", 6)).status().code(),
            StatusCode::kDataLoss);
}

TEST(IndexRowsEncodingTest, CheckRejectsMalformedRows) {
  EXPECT_TRUE(CheckIndexRows({KeyRow("code", "x"), RangeRow("date", 1, 2)}).ok());
  EXPECT_EQ(CheckIndexRows({KeyRow("", "x")}).code(), StatusCode::kInvalidArgument);
  IndexEntry half = KeyRow("date", "");
  half.low = 1;
  EXPECT_EQ(CheckIndexRows({half}).code(), StatusCode::kInvalidArgument);
}

TEST(MemorySearchIndexTest, BlindAndClearValuesWithTheSameBytesStayApart) {
  MemorySearchIndex index;
  Put(index, "Patient", "clear", {KeyRow("name", "abc")});
  Put(index, "Patient", "blind", {KeyRow("name", "abc", "", true)});
  EXPECT_THAT(Ids(index, KeyQuery("Patient", "name", "abc")), ElementsAre("clear"));
  EXPECT_THAT(Ids(index, KeyQuery("Patient", "name", "abc", true)), ElementsAre("blind"));
}

TEST(MemorySearchIndexTest, TypesDoNotShareDocuments) {
  MemorySearchIndex index;
  Put(index, "Observation", "x", {KeyRow("code", "a")});
  Put(index, "Condition", "x", {KeyRow("code", "a")});
  Delete(index, "Observation", "x");
  EXPECT_THAT(Ids(index, KeyQuery("Condition", "code", "a")), ElementsAre("x"));
  EXPECT_TRUE(Ids(index, KeyQuery("Observation", "code", "a")).empty());
}

TEST(MemorySearchIndexTest, DeletingEverythingFreesEveryString) {
  MemorySearchIndex index;
  for (int i = 0; i < 50; ++i) {
    const std::string id = "id" + std::to_string(i);
    Put(index, "Observation", id,
        {KeyRow("code", "c" + std::to_string(i % 7), "sys"),
         KeyRow("code", "c" + std::to_string(i % 7), "sys"), RangeRow("date", i, i + 1)},
        "p" + std::to_string(i % 3));
    // Updated once, moving compartments.
    Put(index, "Observation", id, {KeyRow("code", "d" + std::to_string(i % 5))},
        "q" + std::to_string(i % 4));
  }
  MemorySearchIndexStats stats = index.Stats();
  EXPECT_EQ(stats.documents, 50);
  EXPECT_EQ(stats.rows, 50);
  for (int i = 0; i < 50; ++i) Delete(index, "Observation", "id" + std::to_string(i));
  stats = index.Stats();
  EXPECT_EQ(stats.documents, 0);
  EXPECT_EQ(stats.rows, 0);
  // Only the type name stays, held by the (deleted) documents for their ids.
  EXPECT_EQ(stats.strings, 1);
}

// Random creates, updates, moves and deletes, then every equality, compartment and range query
// is compared with a plain model of the current rows.
TEST(MemorySearchIndexTest, PostingListsFollowChurnExactly) {
  MemorySearchIndex index;
  struct ModelDoc {
    std::string compartment;
    std::vector<IndexEntry> rows;
  };
  std::map<std::string, ModelDoc> model;
  std::mt19937 rng(20261127);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  for (int step = 0; step < 4000; ++step) {
    const std::string id = "r" + std::to_string(pick(300));
    if (pick(6) == 0) {
      Delete(index, "Observation", id);
      model.erase(id);
      continue;
    }
    ModelDoc doc;
    doc.compartment = pick(4) == 0 ? "" : "p" + std::to_string(pick(10));
    const int n = pick(5);
    for (int r = 0; r < n; ++r) {
      doc.rows.push_back(
          KeyRow("code", "c" + std::to_string(pick(12)), "s" + std::to_string(pick(2))));
    }
    if (pick(2) == 0) doc.rows.push_back(RangeRow("date", pick(100), 100 + pick(100)));
    Put(index, "Observation", id, doc.rows, doc.compartment);
    model[id] = std::move(doc);
  }
  for (int c = 0; c < 12; ++c) {
    const std::string code = "c" + std::to_string(c);
    std::vector<std::string> want;
    for (const auto& [id, doc] : model) {
      for (const IndexEntry& e : doc.rows) {
        if (e.param == "code" && e.key == code) {
          want.push_back(id);
          break;
        }
      }
    }
    EXPECT_THAT(Ids(index, KeyQuery("Observation", "code", code)), UnorderedElementsAreArray(want))
        << code;
  }
  for (int p = 0; p < 10; ++p) {
    IndexQuery q;
    q.type = "Observation";
    q.compartment = "p" + std::to_string(p);
    std::vector<std::string> want;
    for (const auto& [id, doc] : model) {
      if (doc.compartment == q.compartment) want.push_back(id);
    }
    EXPECT_THAT(Ids(index, q), UnorderedElementsAreArray(want)) << q.compartment;
  }
  IndexQuery missing_date;
  missing_date.type = "Observation";
  IndexClause missing;
  missing.param = "date";
  missing.mode = IndexClause::Mode::kMissing;
  missing_date.all_of.push_back(missing);
  std::vector<std::string> want;
  for (const auto& [id, doc] : model) {
    bool has = false;
    for (const IndexEntry& e : doc.rows) has |= e.param == "date";
    if (!has) want.push_back(id);
  }
  EXPECT_THAT(Ids(index, missing_date), UnorderedElementsAreArray(want));
  EXPECT_EQ(index.Stats().documents, static_cast<int64_t>(model.size()));
}

TEST(MemorySearchIndexTest, ABudgetBoundsTheCandidatesExamined) {
  MemorySearchIndex index;
  for (int i = 0; i < 100; ++i) {
    Put(index, "Patient", "p" + std::to_string(i), {KeyRow("gender", i < 10 ? "female" : "male")});
  }
  Put(index, "Observation", "o1", {KeyRow("subject", "Patient/p1")});
  // Ten candidates: within a budget of ten, past a budget of nine.
  std::optional<StatusOr<IndexPage>> page =
      index.Search(KeyQuery("Patient", "gender", "female"), 10);
  ASSERT_TRUE(page.has_value());
  ASSERT_TRUE(page->ok());
  EXPECT_EQ((*page)->hits.size(), 10u);
  EXPECT_FALSE(index.Search(KeyQuery("Patient", "gender", "female"), 9).has_value());
  // A scan of the type counts every resource of it, and a chain counts its own candidates.
  IndexQuery all;
  all.type = "Patient";
  EXPECT_FALSE(index.Search(all, 99).has_value());
  EXPECT_TRUE(index.Search(all, 100).has_value());
  IndexQuery chained = KeyQuery("Observation", "subject", "");
  chained.all_of[0].any_of[0].key.reset();
  chained.all_of[0].any_of[0].chain =
      std::make_shared<IndexQuery>(KeyQuery("Patient", "gender", "female"));
  chained.all_of[0].any_of[0].chain_key_prefix = "Patient/";
  page = index.Search(chained, 11);
  ASSERT_TRUE(page.has_value());
  ASSERT_TRUE(page->ok());
  EXPECT_EQ((*page)->hits.size(), 1u);
  EXPECT_FALSE(index.Search(chained, 10).has_value());
  // Malformed queries are refused whatever the budget.
  IndexQuery bad;
  page = index.Search(bad, 0);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->status().code(), StatusCode::kInvalidArgument);
}

TEST(MemorySearchIndexTest, BackwardPagesEndWhereForwardPagesBegan) {
  MemorySearchIndex index;
  for (int i = 0; i < 10; ++i) {
    Put(index, "Observation", "o" + std::to_string(i), {RangeRow("date", 10 - i, 10 - i)});
  }
  IndexQuery q;
  q.type = "Observation";
  q.sort = {IndexSort{"date", false, true}};
  q.limit = 3;
  StatusOr<IndexPage> first = index.Search(q);
  ASSERT_TRUE(first.ok());
  EXPECT_THAT(first->hits.size(), 3u);
  q.after = first->hits.back().cursor;
  StatusOr<IndexPage> second = index.Search(q);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->hits.size(), 3u);
  EXPECT_EQ(second->hits[0].id, "o6");  // The first page was o9, o8, o7 (dates 1, 2, 3).
  q.after.reset();
  q.before = second->hits.front().cursor;
  StatusOr<IndexPage> back = index.Search(q);
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->hits.size(), 3u);
  EXPECT_FALSE(back->more);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(back->hits[i].id, first->hits[i].id);
}

}  // namespace
}  // namespace kura::store
