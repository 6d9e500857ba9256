// Tests of the in-memory search index beyond the store conformance suite: the durable encoding,
// the bookkeeping of posting lists and interned strings under churn (checked against a plain
// model), and the choice of candidates.
#include "kura/store/memory_search_index.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "kura/store/search_index_rows.h"
#include "kura/store/varint.h"

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

// The rows of the benchmark Observation, as the server extracts them.
std::vector<IndexEntry> ObservationRows() {
  const std::string patient = "Patient/01a2513c-68c5-7c88-b673-4eaacaf1c422";
  const std::string per_minute = "http://unitsofmeasure.org|/min";
  auto quantity = [](std::string param, std::string key, std::string key2) {
    IndexEntry e = KeyRow(std::move(param), std::move(key), std::move(key2));
    e.low = 72;
    e.high = 72;
    return e;
  };
  return {RangeRow("_lastUpdated", 1796659243389000.0, 1796659243389999.0),
          KeyRow("category", "vital-signs",
                 "http://terminology.hl7.org/CodeSystem/observation-category"),
          KeyRow("code", "8867-4", "http://loinc.org"),
          quantity("code-value-quantity", "http://loinc.org|8867-4", per_minute),
          quantity("code-value-quantity", "*|8867-4", per_minute),
          KeyRow("combo-code", "8867-4", "http://loinc.org"),
          quantity("combo-code-value-quantity", "http://loinc.org|8867-4", per_minute),
          quantity("combo-code-value-quantity", "*|8867-4", per_minute),
          quantity("combo-value-quantity", "/min", "http://unitsofmeasure.org"),
          RangeRow("date", 1704067200000000.0, 1704067200000999.0),
          KeyRow("identifier", std::string(16, '\x9c'), std::string(16, '\x3d'), true),
          KeyRow("patient", patient, "Patient"),
          KeyRow("status", "final"),
          KeyRow("subject", patient, "Patient"),
          quantity("value-quantity", "/min", "http://unitsofmeasure.org")};
}

// The version 1 encoding, which databases written before version 2 still hold.
std::string EncodeVersion1(const std::vector<IndexEntry>& rows) {
  auto put_bytes = [](std::string& out, std::string_view s) {
    PutVarint(out, s.size());
    out.append(s);
  };
  auto put_double = [](std::string& out, double v) {
    const auto bits = std::bit_cast<uint64_t>(v);
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
  };
  std::string out(1, '\x01');
  PutVarint(out, rows.size());
  for (const IndexEntry& e : rows) {
    put_bytes(out, e.param);
    out.push_back(static_cast<char>((e.blind ? 1 : 0) | (e.low ? 2 : 0)));
    put_bytes(out, e.key);
    put_bytes(out, e.key2);
    if (e.low) {
      put_double(out, *e.low);
      put_double(out, *e.high);
    }
  }
  return out;
}

TEST(IndexRowsEncodingTest, RoundTripsEveryKindOfRow) {
  std::vector<IndexEntry> rows = {KeyRow("code", "8867-4", "http://loinc.org"),
                                  KeyRow("name", std::string("\0\xff\x01", 3), "", true),
                                  RangeRow("date", -62135596800.0, 253402300799.999),
                                  RangeRow("value-quantity", 0.1, 1e300),
                                  KeyRow("empty", ""),
                                  RangeRow("zero", 0.0, -0.0),
                                  RangeRow("point", 72, 72),
                                  KeyRow("code", "x", "8867-4"),
                                  KeyRow("8867-4", "code", "x")};
  StatusOr<std::vector<IndexEntry>> decoded = DecodeIndexRows(EncodeIndexRows(rows));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, rows);
  // -0.0 and 0.0 compare equal; the bounds must still come back bit for bit.
  EXPECT_TRUE(std::signbit(*(*decoded)[5].high));
  EXPECT_FALSE(std::signbit(*(*decoded)[5].low));
  decoded = DecodeIndexRows(EncodeIndexRows({}));
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(decoded->empty());
}

TEST(IndexRowsEncodingTest, ManyDistinctStringsRoundTrip) {
  // Past the table's scan limit, where strings are numbered through a hash map.
  std::vector<IndexEntry> rows;
  for (int i = 0; i < 300; ++i) {
    rows.push_back(KeyRow("p" + std::to_string(i % 7), "v" + std::to_string(i),
                          i % 3 == 0 ? "s" + std::to_string(i % 50) : ""));
  }
  StatusOr<std::vector<IndexEntry>> decoded = DecodeIndexRows(EncodeIndexRows(rows));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, rows);
}

TEST(IndexRowsEncodingTest, EachStringIsWrittenOnce) {
  const std::vector<IndexEntry> rows = ObservationRows();
  const std::string encoded = EncodeIndexRows(rows);
  // Strings that occur in several rows and inside no other string.
  for (std::string_view repeated : {"http://unitsofmeasure.org|/min", "combo-code-value-quantity",
                                    "Patient/01a2513c-68c5-7c88-b673-4eaacaf1c422"}) {
    const size_t first = encoded.find(repeated);
    ASSERT_NE(first, std::string::npos) << repeated;
    EXPECT_EQ(encoded.find(repeated, first + 1), std::string::npos) << repeated;
  }
  // 872 bytes in version 1, 585 here.
  EXPECT_EQ(EncodeVersion1(rows).size(), 872u);
  EXPECT_EQ(encoded.size(), 585u);
}

TEST(IndexRowsEncodingTest, Version1ValuesStillDecode) {
  const std::vector<IndexEntry> rows = ObservationRows();
  StatusOr<std::vector<IndexEntry>> decoded = DecodeIndexRows(EncodeVersion1(rows));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(*decoded, rows);
  // The point flag is version 2's: a version 1 range written as a point (one double) is refused.
  std::string bad_flags = EncodeVersion1({RangeRow("date", 1, 1)});
  bad_flags[1 + 1 + 1 + 4] = '\x06';  // version, count, param length, "date", flags.
  bad_flags.resize(bad_flags.size() - 8);
  EXPECT_EQ(DecodeIndexRows(bad_flags).status().code(), StatusCode::kDataLoss);
}

TEST(IndexRowsEncodingTest, MalformedBytesAreDataLoss) {
  const std::string good =
      EncodeIndexRows({KeyRow("code", "x", "sys"), RangeRow("date", 1, 2), RangeRow("q", 3, 3)});
  ASSERT_TRUE(DecodeIndexRows(good).ok());
  EXPECT_EQ(DecodeIndexRows("").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(DecodeIndexRows(std::string("\x03\x00\x00", 3)).status().code(), StatusCode::kDataLoss);
  for (size_t cut = 0; cut < good.size(); ++cut) {
    EXPECT_EQ(DecodeIndexRows(good.substr(0, cut)).status().code(), StatusCode::kDataLoss) << cut;
  }
  EXPECT_EQ(DecodeIndexRows(good + "x").status().code(), StatusCode::kDataLoss);
  // version, string count, "code", "x", "sys", "date", "q", row count, then the first row.
  const size_t first_row = 1 + 1 + 5 + 2 + 4 + 5 + 2 + 1;
  ASSERT_EQ(good[first_row], '\x01');  // The first row's param: string 1, "code".
  std::string bad = good;
  bad[first_row] = '\x06';  // Past the five strings.
  EXPECT_EQ(DecodeIndexRows(bad).status().code(), StatusCode::kDataLoss);
  bad = good;
  bad[first_row + 1] = '\x08';  // An unknown flag.
  EXPECT_EQ(DecodeIndexRows(bad).status().code(), StatusCode::kDataLoss);
  bad = good;
  bad[first_row + 1] = '\x04';  // A point without a range.
  EXPECT_EQ(DecodeIndexRows(bad).status().code(), StatusCode::kDataLoss);
  // An empty string in the table (the empty string is number 0, never listed), used by a row.
  EXPECT_EQ(DecodeIndexRows(std::string("\x02\x01\x00\x01\x01\x00\x00\x00", 8)).status().code(),
            StatusCode::kDataLoss);
  // Huge counts must not allocate before the bytes run out.
  EXPECT_EQ(DecodeIndexRows(std::string("\x01\xff\xff\xff\xff\x0f", 6)).status().code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(DecodeIndexRows(std::string("\x02\xff\xff\xff\xff\x0f", 6)).status().code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(DecodeIndexRows(std::string("\x02\x00\xff\xff\xff\xff\x0f", 7)).status().code(),
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
