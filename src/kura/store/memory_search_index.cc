// The in-memory search index and its query evaluator; see memory_search_index.h.
#include "kura/store/memory_search_index.h"

#include <algorithm>
#include <bit>
#include <boost/unordered/unordered_flat_map.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <utility>

#include "kura/store/varint.h"

namespace kura::store {
namespace {

constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
constexpr uint8_t kBlindFlag = 1;
constexpr uint8_t kRangeFlag = 2;
constexpr uint8_t kPointFlag = 4;  // Durable encoding only: a range whose low and high are equal.
constexpr uint8_t kStringsPerRowEncoding = 1;
constexpr uint8_t kStringTableEncoding = 2;

// --- The durable encoding ---------------------------------------------------------------------
//
// Version 2 (written): version byte, the resource's distinct non-empty strings once each (a varint
// count, then each as a varint length and the bytes), a varint row count, then per row: the
// param's string number, flags (1 = blind, 2 = range, 4 = a range of one point), the key's and
// key2's string numbers (1-based; 0 is the empty string), and for a range low and high (one value
// for a point) as little-endian IEEE 754 doubles. A resource repeats its strings across rows (the
// parameter names, a code and its system in code, combo-code and their composites, the subject in
// subject and patient): one Observation's rows took 872 bytes in version 1 and take 585 here.
//
// Version 1 (read only): version byte, varint row count, then per row the param, flags, key and
// key2 as strings (varint length and bytes) and, for a range, both doubles.

void PutBytes(std::string& out, std::string_view s) {
  PutVarint(out, s.size());
  out.append(s);
}

bool GetBytes(std::string_view& in, std::string& out) {
  uint64_t size = 0;
  if (!GetVarint(in, size) || size > in.size()) return false;
  out.assign(in.data(), static_cast<size_t>(size));
  in.remove_prefix(static_cast<size_t>(size));
  return true;
}

void PutDouble(std::string& out, double v) {
  uint64_t bits = std::bit_cast<uint64_t>(v);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
}

bool GetDouble(std::string_view& in, double& v) {
  if (in.size() < 8) return false;
  uint64_t bits = 0;
  for (int i = 0; i < 8; ++i)
    bits |= static_cast<uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  in.remove_prefix(8);
  v = std::bit_cast<double>(bits);
  return true;
}

// --- Interned strings -------------------------------------------------------------------------

// Every type, parameter, key and compartment is held once, by number, with a reference count;
// numbers of released strings are reused.
class StringPool {
 public:
  uint32_t Acquire(std::string_view s) {
    if (auto it = numbers_.find(s); it != numbers_.end()) {
      ++entries_[it->second].refs;
      return it->second;
    }
    uint32_t no = 0;
    if (!free_.empty()) {
      no = free_.back();
      free_.pop_back();
      entries_[no].text.assign(s);
    } else {
      no = static_cast<uint32_t>(entries_.size());
      entries_.push_back(Entry{std::string(s), 0});
    }
    entries_[no].refs = 1;
    // The view points into a deque element, which never moves.
    numbers_.emplace(std::string_view(entries_[no].text), no);
    return no;
  }
  void AddRef(uint32_t no) { ++entries_[no].refs; }
  void Release(uint32_t no) {
    Entry& e = entries_[no];
    if (--e.refs > 0) return;
    numbers_.erase(std::string_view(e.text));
    std::string().swap(e.text);
    free_.push_back(no);
  }
  uint32_t Find(std::string_view s) const {
    auto it = numbers_.find(s);
    return it == numbers_.end() ? kNone : it->second;
  }
  const std::string& Text(uint32_t no) const { return entries_[no].text; }
  size_t size() const { return numbers_.size(); }

 private:
  struct Entry {
    std::string text;
    uint32_t refs = 0;
  };
  std::deque<Entry> entries_;
  std::vector<uint32_t> free_;
  boost::unordered_flat_map<std::string_view, uint32_t> numbers_;
};

struct Row {
  uint32_t param = kNone;
  uint32_t key = kNone;
  uint32_t key2 = kNone;
  uint8_t flags = 0;
  double low = 0;  // 0 for rows without a range, as the query language defines.
  double high = 0;

  auto Tie() const { return std::tie(param, key, key2, flags, low, high); }
  friend bool operator<(const Row& a, const Row& b) { return a.Tie() < b.Tie(); }
  friend bool operator==(const Row& a, const Row& b) { return a.Tie() == b.Tie(); }
};

struct Doc {
  std::string id;
  uint32_t type = kNone;
  uint32_t compartment = kNone;
  bool live = false;
  std::vector<Row> rows;  // Sorted, unique.
};

struct PostingKey {
  uint32_t type = 0;
  uint32_t param = 0;
  uint32_t key = 0;
  uint8_t blind = 0;

  auto Tie() const { return std::tie(type, param, key, blind); }
  friend bool operator<(const PostingKey& a, const PostingKey& b) { return a.Tie() < b.Tie(); }
  friend bool operator==(const PostingKey& a, const PostingKey& b) { return a.Tie() == b.Tie(); }
};

struct PostingKeyHash {
  size_t operator()(const PostingKey& k) const {
    uint64_t h = (static_cast<uint64_t>(k.type) << 32) ^ k.param;
    h = h * 0x9E3779B97F4A7C15ULL ^ ((static_cast<uint64_t>(k.key) << 1) | k.blind);
    h *= 0xBF58476D1CE4E5B9ULL;
    return static_cast<size_t>(h ^ (h >> 31));
  }
};

using DocList = std::vector<uint32_t>;  // Document numbers, ascending.

// Keeps the members of `docs` (ascending) that `list` (ascending) also holds: a merge when the two
// are of similar size, otherwise a search of `list` for each member, each starting where the
// previous one ended and widening its step (galloping) before it bisects.
void Intersect(DocList& docs, const DocList& list) {
  size_t kept = 0;
  if (list.size() <= 8 * docs.size()) {
    size_t j = 0;
    for (uint32_t doc : docs) {
      while (j < list.size() && list[j] < doc) ++j;
      if (j == list.size()) break;
      if (list[j] == doc) docs[kept++] = doc;
    }
  } else {
    auto from = list.begin();
    for (uint32_t doc : docs) {
      size_t step = 1;
      auto hi = from;
      while (hi != list.end() && *hi < doc) {
        from = hi;
        const size_t left = static_cast<size_t>(list.end() - hi);
        hi += static_cast<std::ptrdiff_t>(std::min(step, left));
        step *= 2;
      }
      from = std::lower_bound(from, hi, doc);
      if (from == list.end()) break;
      if (*from == doc) docs[kept++] = doc;
    }
  }
  docs.resize(kept);
}

uint64_t PairKey(uint32_t a, uint32_t b) { return (static_cast<uint64_t>(a) << 32) | b; }

void InsertSorted(DocList& list, uint32_t doc) {
  if (list.empty() || list.back() < doc) {
    list.push_back(doc);
    return;
  }
  auto it = std::lower_bound(list.begin(), list.end(), doc);
  if (it == list.end() || *it != doc) list.insert(it, doc);
}

void EraseSorted(DocList& list, uint32_t doc) {
  auto it = std::lower_bound(list.begin(), list.end(), doc);
  if (it != list.end() && *it == doc) list.erase(it);
}

}  // namespace

// --- Encoding ---------------------------------------------------------------------------------

namespace {

// The numbers of a resource's distinct strings, in the order they were first met.
class StringTable {
 public:
  uint64_t NumberOf(std::string_view s) {
    if (s.empty()) return 0;
    // A resource has a few dozen strings: a scan beats hashing until the table grows.
    if (strings_.size() <= kScanLimit) {
      for (size_t i = 0; i < strings_.size(); ++i) {
        if (strings_[i] == s) return i + 1;
      }
    } else {
      if (numbers_.empty()) {
        for (size_t i = 0; i < strings_.size(); ++i) numbers_.emplace(strings_[i], i + 1);
      }
      if (auto it = numbers_.find(s); it != numbers_.end()) return it->second;
      numbers_.emplace(s, strings_.size() + 1);
    }
    strings_.push_back(s);
    return strings_.size();
  }
  const std::vector<std::string_view>& strings() const { return strings_; }

 private:
  static constexpr size_t kScanLimit = 32;
  std::vector<std::string_view> strings_;
  boost::unordered_flat_map<std::string_view, uint64_t> numbers_;  // Only past kScanLimit.
};

bool SameBits(double a, double b) {
  return std::bit_cast<uint64_t>(a) == std::bit_cast<uint64_t>(b);
}

StatusOr<std::vector<IndexEntry>> MalformedRows() {
  return DataLossError("storage error", "malformed search index rows");
}

// The rows both versions share: a varint count, then per row the param, flags, key, key2 and,
// for a range, its bounds (one for a point). `get_string` reads one string the version's way;
// `flags_known` are the flags the version has.
template <typename GetString>
StatusOr<std::vector<IndexEntry>> DecodeRows(std::string_view& in, GetString get_string,
                                             uint8_t flags_known) {
  uint64_t count = 0;
  // Every row takes at least four bytes, which bounds the count before anything is reserved.
  if (!GetVarint(in, count) || count > in.size() / 4 + 1) return MalformedRows();
  std::vector<IndexEntry> rows(static_cast<size_t>(count));
  for (IndexEntry& e : rows) {
    if (!get_string(e.param) || in.empty()) return MalformedRows();
    const auto flags = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    if ((flags & ~flags_known) != 0) return MalformedRows();
    const bool range = (flags & kRangeFlag) != 0;
    const bool point = (flags & kPointFlag) != 0;
    if (point && !range) return MalformedRows();
    e.blind = (flags & kBlindFlag) != 0;
    if (!get_string(e.key) || !get_string(e.key2)) return MalformedRows();
    if (range) {
      double low = 0;
      double high = 0;
      if (!GetDouble(in, low)) return MalformedRows();
      if (point) {
        high = low;
      } else if (!GetDouble(in, high)) {
        return MalformedRows();
      }
      e.low = low;
      e.high = high;
    }
  }
  if (!in.empty()) return MalformedRows();
  return rows;
}

StatusOr<std::vector<IndexEntry>> DecodeStringsPerRow(std::string_view in) {
  auto get_string = [&in](std::string& out) { return GetBytes(in, out); };
  return DecodeRows(in, get_string, kBlindFlag | kRangeFlag);
}

StatusOr<std::vector<IndexEntry>> DecodeStringTable(std::string_view in) {
  uint64_t string_count = 0;
  // Every string takes at least two bytes (it is never empty).
  if (!GetVarint(in, string_count) || string_count > in.size() / 2) return MalformedRows();
  std::vector<std::string_view> strings(static_cast<size_t>(string_count) + 1);
  for (size_t i = 1; i < strings.size(); ++i) {
    uint64_t size = 0;
    if (!GetVarint(in, size) || size == 0 || size > in.size()) return MalformedRows();
    strings[i] = in.substr(0, static_cast<size_t>(size));
    in.remove_prefix(static_cast<size_t>(size));
  }
  auto get_string = [&in, &strings](std::string& out) {
    uint64_t no = 0;
    if (!GetVarint(in, no) || no >= strings.size()) return false;
    out.assign(strings[static_cast<size_t>(no)]);
    return true;
  };
  return DecodeRows(in, get_string, kBlindFlag | kRangeFlag | kPointFlag);
}

}  // namespace

std::string EncodeIndexRows(const std::vector<IndexEntry>& rows) {
  StringTable table;
  std::string body;
  body.reserve(rows.size() * 12);
  PutVarint(body, rows.size());
  for (const IndexEntry& e : rows) {
    PutVarint(body, table.NumberOf(e.param));
    const bool range = e.low.has_value() && e.high.has_value();
    const bool point = range && SameBits(*e.low, *e.high);
    body.push_back(static_cast<char>((e.blind ? kBlindFlag : 0) | (range ? kRangeFlag : 0) |
                                     (point ? kPointFlag : 0)));
    PutVarint(body, table.NumberOf(e.key));
    PutVarint(body, table.NumberOf(e.key2));
    if (range) {
      PutDouble(body, *e.low);
      if (!point) PutDouble(body, *e.high);
    }
  }
  size_t strings_size = 0;
  for (std::string_view s : table.strings()) strings_size += s.size() + 2;
  std::string out;
  out.reserve(2 + strings_size + body.size());
  out.push_back(static_cast<char>(kStringTableEncoding));
  PutVarint(out, table.strings().size());
  for (std::string_view s : table.strings()) PutBytes(out, s);
  out += body;
  return out;
}

StatusOr<std::vector<IndexEntry>> DecodeIndexRows(std::string_view in) {
  if (in.empty()) return MalformedRows();
  const auto version = static_cast<uint8_t>(in.front());
  in.remove_prefix(1);
  if (version == kStringTableEncoding) return DecodeStringTable(in);
  if (version == kStringsPerRowEncoding) return DecodeStringsPerRow(in);
  return MalformedRows();
}

Status CheckIndexRows(const std::vector<IndexEntry>& rows) {
  for (const IndexEntry& e : rows) {
    if (e.param.empty() || e.low.has_value() != e.high.has_value()) {
      return InvalidArgumentError("malformed search index row");
    }
  }
  return Status();
}

// --- The index --------------------------------------------------------------------------------

namespace internal {

struct SearchIndexState {
  // Interned strings in three pools, so the small, hot ones (types and parameter names; the
  // systems and units in key2) stay in small tables and only values share the large one.
  StringPool names;   // Types and parameters.
  StringPool values;  // Keys and compartments.
  StringPool key2s;
  std::deque<Doc> docs;  // By document number; a deque so ids never move (doc_numbers views them).
  // Open-addressing tables: a lookup is one probe of a contiguous group, where node-based maps
  // chase a pointer per entry and divide by a prime per hash. Nothing keeps a reference into
  // them across an insertion, which may move their values.
  boost::unordered_flat_map<uint32_t, boost::unordered_flat_map<std::string_view, uint32_t>>
      doc_numbers;
  boost::unordered_flat_map<PostingKey, DocList, PostingKeyHash> postings;
  boost::unordered_flat_map<uint64_t, DocList> compartment_docs;  // PairKey(type, compartment).
  boost::unordered_flat_map<uint32_t, DocList> type_docs;         // Live documents per type.
  int64_t live = 0;
  int64_t rows = 0;

  uint32_t FindDoc(uint32_t type, std::string_view id) const {
    auto by_type = doc_numbers.find(type);
    if (by_type == doc_numbers.end()) return kNone;
    auto it = by_type->second.find(id);
    return it == by_type->second.end() ? kNone : it->second;
  }

  static void PostingKeysOf(uint32_t type, const std::vector<Row>& rows,
                            std::vector<PostingKey>& out) {
    out.clear();
    for (const Row& r : rows) {
      out.push_back(PostingKey{type, r.param, r.key, static_cast<uint8_t>(r.flags & kBlindFlag)});
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }

  void ReleaseRow(const Row& r) {
    names.Release(r.param);
    values.Release(r.key);
    key2s.Release(r.key2);
  }

  void ReleaseRows(const std::vector<Row>& rows) {
    for (const Row& r : rows) ReleaseRow(r);
  }

  void Unlink(uint32_t no) {
    Doc& d = docs[no];
    if (!d.live) return;
    std::vector<PostingKey> keys;
    PostingKeysOf(d.type, d.rows, keys);
    for (const PostingKey& k : keys) EraseFrom(postings, k, no);
    ReleaseRows(d.rows);
    rows -= static_cast<int64_t>(d.rows.size());
    std::vector<Row>().swap(d.rows);
    if (d.compartment != kNone) {
      EraseFrom(compartment_docs, PairKey(d.type, d.compartment), no);
      values.Release(d.compartment);
      d.compartment = kNone;
    }
    EraseFrom(type_docs, d.type, no);
    d.live = false;
    --live;
  }

  template <typename Map, typename Key>
  static void EraseFrom(Map& map, const Key& key, uint32_t no) {
    auto it = map.find(key);
    if (it == map.end()) return;
    EraseSorted(it->second, no);
    if (it->second.empty()) map.erase(it);
  }

  void Put(const IndexChange& change) {
    const uint32_t found_type = names.Find(change.type);
    uint32_t no = found_type == kNone ? kNone : FindDoc(found_type, change.id);
    if (no == kNone) {
      if (change.deleted) return;
      no = static_cast<uint32_t>(docs.size());
      Doc& d = docs.emplace_back();
      d.id.assign(change.id);
      d.type = names.Acquire(change.type);  // Held for the document's life.
      doc_numbers[d.type].emplace(std::string_view(d.id), no);
    }
    Doc& d = docs[no];
    if (change.deleted || change.rows == nullptr) {
      Unlink(no);
      return;
    }
    // The new rows first (interning before the old ones are released keeps shared strings at
    // their numbers, so the two posting-key sets compare).
    std::vector<Row> fresh;
    fresh.reserve(change.rows->size());
    for (const IndexEntry& e : *change.rows) {
      Row r;
      r.param = names.Acquire(e.param);
      r.key = values.Acquire(e.key);
      r.key2 = key2s.Acquire(e.key2);
      r.flags =
          static_cast<uint8_t>((e.blind ? kBlindFlag : 0) | (e.low.has_value() ? kRangeFlag : 0));
      r.low = e.low.value_or(0);
      r.high = e.high.value_or(0);
      fresh.push_back(r);
    }
    std::sort(fresh.begin(), fresh.end());
    // A value a resource has twice (the same coding in two places) is one row.
    auto last = fresh.begin();
    for (auto it = fresh.begin(); it != fresh.end(); ++it) {
      if (it != fresh.begin() && *it == *(last - 1)) {
        ReleaseRow(*it);
        continue;
      }
      *last++ = *it;
    }
    fresh.erase(last, fresh.end());

    std::vector<PostingKey> old_keys;
    std::vector<PostingKey> new_keys;
    if (d.live) PostingKeysOf(d.type, d.rows, old_keys);
    PostingKeysOf(d.type, fresh, new_keys);
    std::vector<PostingKey> gone;
    std::vector<PostingKey> added;
    std::set_difference(old_keys.begin(), old_keys.end(), new_keys.begin(), new_keys.end(),
                        std::back_inserter(gone));
    std::set_difference(new_keys.begin(), new_keys.end(), old_keys.begin(), old_keys.end(),
                        std::back_inserter(added));
    for (const PostingKey& k : gone) EraseFrom(postings, k, no);
    for (const PostingKey& k : added) InsertSorted(postings[k], no);

    const uint32_t compartment =
        change.compartment.empty() ? kNone : values.Acquire(change.compartment);
    if (d.live && d.compartment != compartment && d.compartment != kNone) {
      EraseFrom(compartment_docs, PairKey(d.type, d.compartment), no);
    }
    if (compartment != kNone && (!d.live || d.compartment != compartment)) {
      InsertSorted(compartment_docs[PairKey(d.type, compartment)], no);
    }
    if (d.compartment != kNone && d.live) values.Release(d.compartment);
    d.compartment = compartment;

    if (d.live) {
      ReleaseRows(d.rows);
      rows -= static_cast<int64_t>(d.rows.size());
    } else {
      InsertSorted(type_docs[d.type], no);
      d.live = true;
      ++live;
    }
    rows += static_cast<int64_t>(fresh.size());
    d.rows = std::move(fresh);
  }
};

}  // namespace internal

namespace {

// A query with its strings resolved to pool numbers; built and used under the shared lock.
struct CompiledMatch {
  bool never = false;  // A value no row has: the alternative cannot match.
  bool has_key = false;
  bool has_key2 = false;
  uint32_t key = kNone;
  uint32_t key2 = kNone;
  const std::string* prefix = nullptr;
  const std::string* contains = nullptr;
  const std::vector<std::vector<RangeCondition>>* ranges = nullptr;
  bool has_chain = false;
  std::vector<uint32_t> chain_keys;  // Sorted key numbers the chained query allows.
};

struct CompiledClause {
  uint32_t param = kNone;  // kNone: no resource has a row for it.
  IndexClause::Mode mode = IndexClause::Mode::kMatch;
  bool blind = false;
  std::vector<CompiledMatch> any_of;
};

Status CheckQueryShape(const IndexQuery& q) {
  if (q.type.empty()) return InvalidArgumentError("a search needs a resource type");
  for (const IndexClause& clause : q.all_of) {
    if (clause.param.empty()) return InvalidArgumentError("a search clause needs a parameter");
    const bool uses_values =
        clause.mode == IndexClause::Mode::kMatch || clause.mode == IndexClause::Mode::kNoMatch;
    if (!uses_values) continue;
    if (clause.any_of.empty()) return InvalidArgumentError("a search clause has no value");
    for (const IndexMatch& m : clause.any_of) {
      if (clause.blind && (m.key_prefix || m.key_contains)) {
        return InvalidArgumentError("a blind parameter matches by equality only");
      }
      if (m.chain) {
        if (clause.blind) return InvalidArgumentError("a blind parameter cannot be chained");
        KURA_RETURN_IF_ERROR(CheckQueryShape(*m.chain));
      }
    }
  }
  return Status();
}

bool Compare(RangeCondition::Op op, double a, double b) {
  switch (op) {
    case RangeCondition::Op::kLess:
      return a < b;
    case RangeCondition::Op::kLessOrEqual:
      return a <= b;
    case RangeCondition::Op::kGreater:
      return a > b;
    case RangeCondition::Op::kGreaterOrEqual:
      return a >= b;
  }
  return false;
}

// A sort value: present or missing (missing sorts last in either direction).
struct SortValue {
  bool present = false;
  double number = 0;
  const std::string* text = nullptr;
};

int Sign(int c) { return c < 0 ? -1 : c > 0 ? 1 : 0; }

int CompareSortValue(const SortValue& a, const SortValue& b, const IndexSort& key) {
  if (!a.present || !b.present) return a.present == b.present ? 0 : a.present ? -1 : 1;
  int c = key.by_range ? (a.number < b.number   ? -1
                          : a.number > b.number ? 1
                                                : 0)
                       : Sign(a.text->compare(*b.text));
  return key.descending ? -c : c;
}

std::string NumberText(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

class Evaluator {
 public:
  // `budget`: the most candidates (summed over the query and its chains) to examine; past it,
  // Match gives up and over_budget() says so.
  Evaluator(const internal::SearchIndexState& s, size_t budget) : s_(s), budget_(budget) {}

  bool over_budget() const { return over_budget_; }

  // Every current document of q.type matching q, by document number (unordered).
  std::vector<uint32_t> Match(const IndexQuery& q) {
    std::vector<uint32_t> out;
    const uint32_t type = s_.names.Find(q.type);
    if (type == kNone) return out;
    std::vector<CompiledClause> clauses;
    clauses.reserve(q.all_of.size());
    for (const IndexClause& clause : q.all_of) clauses.push_back(Compile(clause));
    uint32_t compartment = kNone;
    if (!q.compartment.empty()) {
      compartment = s_.values.Find(q.compartment);
      if (compartment == kNone) return out;
    }

    // Lists every match is in: the compartment's and each single-value equality clause's.
    std::vector<const DocList*> required;
    if (compartment != kNone) {
      auto it = s_.compartment_docs.find(PairKey(type, compartment));
      if (it == s_.compartment_docs.end()) return out;
      required.push_back(&it->second);
    }
    for (const CompiledClause& c : clauses) {
      if (!IsSingleEquality(c)) continue;
      const DocList* list = Posting(type, c, c.any_of[0]);
      if (list == nullptr) return out;  // No resource has the value.
      required.push_back(list);
    }
    std::sort(required.begin(), required.end(),
              [](const DocList* a, const DocList* b) { return a->size() < b->size(); });

    // The candidates: the ids; else the shortest list, a required one or the union of an
    // equality clause's values; else every resource of the type. The other required lists then
    // narrow them (merge or galloping), so only the survivors have their rows checked.
    std::vector<uint32_t> owned;
    const DocList* candidates = nullptr;
    if (!q.ids.empty()) {
      for (const std::string& id : q.ids) {
        const uint32_t no = s_.FindDoc(type, id);
        if (no != kNone) owned.push_back(no);
      }
      std::sort(owned.begin(), owned.end());
      owned.erase(std::unique(owned.begin(), owned.end()), owned.end());
      candidates = &owned;
    } else {
      size_t best = required.empty() ? std::numeric_limits<size_t>::max() : required[0]->size();
      const CompiledClause* union_driver = nullptr;
      for (const CompiledClause& c : clauses) {
        if (c.any_of.size() < 2) continue;
        if (const size_t size = UnionSize(type, c); size < best) {
          best = size;
          union_driver = &c;
        }
      }
      if (union_driver != nullptr) {
        for (const CompiledMatch& m : union_driver->any_of) {
          if (const DocList* list = Posting(type, *union_driver, m)) {
            owned.insert(owned.end(), list->begin(), list->end());
          }
        }
        std::sort(owned.begin(), owned.end());
        owned.erase(std::unique(owned.begin(), owned.end()), owned.end());
        candidates = &owned;
      } else if (!required.empty()) {
        candidates = required.front();
        required.erase(required.begin());
      } else {
        auto it = s_.type_docs.find(type);
        if (it == s_.type_docs.end()) return out;
        candidates = &it->second;
      }
    }
    std::vector<uint32_t> survivors;
    if (!required.empty()) {
      survivors.assign(candidates->begin(), candidates->end());
      for (const DocList* list : required) Intersect(survivors, *list);
      candidates = &survivors;
    }
    if (candidates->size() > budget_) {
      over_budget_ = true;
      return out;
    }
    budget_ -= candidates->size();
    // A clause its posting list decides whole needs no check of rows: every candidate is in it.
    std::vector<const CompiledClause*> to_check;
    for (const CompiledClause& c : clauses) {
      if (!IsDecidedByPosting(c)) to_check.push_back(&c);
    }
    for (uint32_t no : *candidates) {
      const Doc& d = s_.docs[no];
      // Every list is of one type and holds live documents only; the ids may name deleted ones.
      if (!d.live) continue;
      bool all = true;
      for (const CompiledClause* c : to_check) {
        if (!Holds(d, *c)) {
          all = false;
          break;
        }
      }
      if (all) out.push_back(no);
    }
    return out;
  }

 private:
  CompiledClause Compile(const IndexClause& clause) {
    CompiledClause c;
    c.param = s_.names.Find(clause.param);
    c.mode = clause.mode;
    c.blind = clause.blind;
    if (clause.mode != IndexClause::Mode::kMatch && clause.mode != IndexClause::Mode::kNoMatch) {
      return c;
    }
    for (const IndexMatch& m : clause.any_of) {
      CompiledMatch cm;
      if (m.key) {
        cm.has_key = true;
        cm.key = s_.values.Find(*m.key);
        cm.never |= cm.key == kNone;
      }
      if (m.key2) {
        cm.has_key2 = true;
        cm.key2 = s_.key2s.Find(*m.key2);
        cm.never |= cm.key2 == kNone;
      }
      if (m.key_prefix) cm.prefix = &*m.key_prefix;
      if (m.key_contains) cm.contains = &*m.key_contains;
      if (!m.range_any.empty()) cm.ranges = &m.range_any;
      if (m.chain && !cm.never) {
        cm.has_chain = true;
        std::string key = m.chain_key_prefix;
        const size_t prefix_size = key.size();
        for (uint32_t no : Match(*m.chain)) {
          key.resize(prefix_size);
          key += s_.docs[no].id;
          const uint32_t k = s_.values.Find(key);
          if (k != kNone) cm.chain_keys.push_back(k);
        }
        std::sort(cm.chain_keys.begin(), cm.chain_keys.end());
        cm.never |= cm.chain_keys.empty();
      }
      c.any_of.push_back(std::move(cm));
    }
    return c;
  }

  const DocList* Posting(uint32_t type, const CompiledClause& c, const CompiledMatch& m) const {
    if (m.never || c.param == kNone) return nullptr;
    auto it = s_.postings.find(PostingKey{type, c.param, m.key, c.blind ? kBlindFlag : uint8_t{0}});
    return it == s_.postings.end() ? nullptr : &it->second;
  }

  // A clause whose one value fixes the key: its posting list holds every match.
  static bool IsSingleEquality(const CompiledClause& c) {
    return c.mode == IndexClause::Mode::kMatch && c.any_of.size() == 1 && c.any_of[0].has_key;
  }

  // A single equality whose one alternative compares nothing but the key: a document is in the
  // clause's posting list exactly when one of its rows matches (RowMatches), so the candidates,
  // which were intersected with that list, all hold it.
  static bool IsDecidedByPosting(const CompiledClause& c) {
    if (!IsSingleEquality(c)) return false;
    const CompiledMatch& m = c.any_of[0];
    return !m.never && !m.has_key2 && m.prefix == nullptr && m.contains == nullptr &&
           m.ranges == nullptr && !m.has_chain;
  }

  // How many resources the union of the clause's values' lists holds, or SIZE_MAX when the
  // clause cannot give candidates (not every alternative fixes the key).
  size_t UnionSize(uint32_t type, const CompiledClause& c) const {
    if (c.mode != IndexClause::Mode::kMatch) return std::numeric_limits<size_t>::max();
    size_t total = 0;
    for (const CompiledMatch& m : c.any_of) {
      if (!m.has_key) return std::numeric_limits<size_t>::max();
      if (const DocList* list = Posting(type, c, m)) total += list->size();
    }
    return total;
  }

  bool RowMatches(const Row& row, const CompiledMatch& m, bool blind) const {
    if (m.never) return false;
    const bool row_blind = (row.flags & kBlindFlag) != 0;
    if (m.has_key && (row_blind != blind || row.key != m.key)) return false;
    if (m.has_key2 && (row_blind != blind || row.key2 != m.key2)) return false;
    if (m.prefix && (row_blind || !s_.values.Text(row.key).starts_with(*m.prefix))) return false;
    if (m.contains &&
        (row_blind || s_.values.Text(row.key).find(*m.contains) == std::string::npos)) {
      return false;
    }
    if (m.ranges != nullptr) {
      bool any_group = false;
      for (const std::vector<RangeCondition>& group : *m.ranges) {
        bool all = true;
        for (const RangeCondition& cond : group) {
          const double v = cond.column == RangeCondition::Column::kLow ? row.low : row.high;
          if (!Compare(cond.op, v, cond.value)) {
            all = false;
            break;
          }
        }
        if (all) {
          any_group = true;
          break;
        }
      }
      if (!any_group) return false;
    }
    if (m.has_chain &&
        (row_blind || !std::binary_search(m.chain_keys.begin(), m.chain_keys.end(), row.key))) {
      return false;
    }
    return true;
  }

  bool Holds(const Doc& d, const CompiledClause& c) const {
    bool any = false;
    if (c.param != kNone) {
      for (const Row& row : d.rows) {
        if (row.param != c.param) continue;
        if (c.mode == IndexClause::Mode::kMissing || c.mode == IndexClause::Mode::kPresent) {
          any = true;
          break;
        }
        for (const CompiledMatch& m : c.any_of) {
          if (RowMatches(row, m, c.blind)) {
            any = true;
            break;
          }
        }
        if (any) break;
      }
    }
    switch (c.mode) {
      case IndexClause::Mode::kMatch:
      case IndexClause::Mode::kPresent:
        return any;
      case IndexClause::Mode::kNoMatch:
      case IndexClause::Mode::kMissing:
        return !any;
    }
    return false;
  }

  const internal::SearchIndexState& s_;
  size_t budget_;
  bool over_budget_ = false;
};

}  // namespace

MemorySearchIndex::MemorySearchIndex() : state_(std::make_unique<internal::SearchIndexState>()) {}
MemorySearchIndex::~MemorySearchIndex() = default;

void MemorySearchIndex::Apply(const std::vector<IndexChange>& changes) {
  if (changes.empty()) return;
  std::unique_lock<std::shared_mutex> lock(mu_);
  for (const IndexChange& change : changes) state_->Put(change);
}

MemorySearchIndexStats MemorySearchIndex::Stats() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return {
      state_->live, state_->rows,
      static_cast<int64_t>(state_->names.size() + state_->values.size() + state_->key2s.size())};
}

StatusOr<IndexPage> MemorySearchIndex::Search(const IndexQuery& q) const {
  std::optional<StatusOr<IndexPage>> page = Search(q, std::numeric_limits<size_t>::max());
  return std::move(*page);  // An unlimited budget always answers.
}

std::optional<StatusOr<IndexPage>> MemorySearchIndex::Search(const IndexQuery& q,
                                                             size_t max_candidates) const {
  if (q.limit < 1)
    return StatusOr<IndexPage>(InvalidArgumentError("a search limit must be at least 1"));
  if (q.after && q.before)
    return StatusOr<IndexPage>(InvalidArgumentError("a search pages forward or backward"));
  for (const IndexSort& key : q.sort) {
    if (key.param.empty())
      return StatusOr<IndexPage>(InvalidArgumentError("a sort key needs a parameter"));
  }
  if (Status shape = CheckQueryShape(q); !shape.ok()) return StatusOr<IndexPage>(shape);
  const bool backward = q.before.has_value();
  const IndexCursor* from = backward ? &*q.before : q.after ? &*q.after : nullptr;
  const size_t nsort = q.sort.size();
  // The cursor's position as sort values.
  std::vector<SortValue> from_values(nsort);
  if (from != nullptr) {
    if (from->keys.size() != nsort) {
      return StatusOr<IndexPage>(
          InvalidArgumentError("the paging position does not fit this search"));
    }
    for (size_t k = 0; k < nsort; ++k) {
      const std::optional<std::string>& v = from->keys[k];
      if (!v) continue;
      from_values[k].present = true;
      if (q.sort[k].by_range) {
        char* end = nullptr;
        from_values[k].number = std::strtod(v->c_str(), &end);
        if (end == v->c_str() || *end != '\0') {
          return StatusOr<IndexPage>(InvalidArgumentError("the paging position is not valid"));
        }
      } else {
        from_values[k].text = &*v;
      }
    }
  }

  std::shared_lock<std::shared_mutex> lock(mu_);
  const internal::SearchIndexState& s = *state_;
  Evaluator evaluator(s, max_candidates);
  const std::vector<uint32_t> matches = evaluator.Match(q);
  if (evaluator.over_budget()) return std::nullopt;

  // Sort values, flat: match i's value for key k at [i * nsort + k].
  std::vector<uint32_t> sort_params(nsort);
  for (size_t k = 0; k < nsort; ++k) sort_params[k] = s.names.Find(q.sort[k].param);
  std::vector<SortValue> values(matches.size() * nsort);
  for (size_t i = 0; i < matches.size() && nsort > 0; ++i) {
    const Doc& d = s.docs[matches[i]];
    for (size_t k = 0; k < nsort; ++k) {
      SortValue& v = values[i * nsort + k];
      if (sort_params[k] == kNone) continue;
      const IndexSort& key = q.sort[k];
      for (const Row& row : d.rows) {
        if (row.param != sort_params[k]) continue;
        if (key.by_range) {
          const double x = key.descending ? row.high : row.low;
          if (!v.present || (key.descending ? x > v.number : x < v.number)) v.number = x;
        } else {
          const std::string* t = &s.values.Text(row.key);
          if (!v.present || (key.descending ? *t > *v.text : *t < *v.text)) v.text = t;
        }
        v.present = true;
      }
    }
  }
  // Position order: sort values, then id ascending.
  auto compare = [&](const SortValue* av, const std::string& aid, const SortValue* bv,
                     const std::string& bid) {
    for (size_t k = 0; k < nsort; ++k) {
      if (int c = CompareSortValue(av[k], bv[k], q.sort[k]); c != 0) return c;
    }
    return Sign(aid.compare(bid));
  };
  // Each match's id, looked up once: the sort compares them many times.
  std::vector<const std::string*> ids(matches.size());
  for (size_t i = 0; i < matches.size(); ++i) ids[i] = &s.docs[matches[i]].id;
  std::vector<uint32_t> order;  // Indexes into matches past the cursor.
  order.reserve(matches.size());
  for (size_t i = 0; i < matches.size(); ++i) {
    if (from != nullptr) {
      const int c = compare(values.data() + i * nsort, *ids[i], from_values.data(), from->id);
      if (backward ? c >= 0 : c <= 0) continue;
    }
    order.push_back(static_cast<uint32_t>(i));
  }
  auto before = [&](uint32_t a, uint32_t b) {
    const int c = compare(values.data() + a * nsort, *ids[a], values.data() + b * nsort, *ids[b]);
    return backward ? c > 0 : c < 0;
  };
  const size_t limit = static_cast<size_t>(
      std::min<int64_t>(q.limit, static_cast<int64_t>(std::numeric_limits<uint32_t>::max())));
  IndexPage page;
  page.more = order.size() > limit;
  const size_t take = std::min(order.size(), limit);
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(take), order.end(),
                    before);
  order.resize(take);
  if (backward) std::reverse(order.begin(), order.end());
  page.hits.reserve(take);
  for (uint32_t i : order) {
    IndexHit hit;
    hit.id = *ids[i];
    hit.cursor.id = hit.id;
    for (size_t k = 0; k < nsort; ++k) {
      const SortValue& v = values[i * nsort + k];
      if (!v.present) {
        hit.cursor.keys.emplace_back();
      } else if (q.sort[k].by_range) {
        hit.cursor.keys.emplace_back(NumberText(v.number));
      } else {
        hit.cursor.keys.emplace_back(*v.text);
      }
    }
    page.hits.push_back(std::move(hit));
  }
  if (q.count_total) page.total = static_cast<int64_t>(matches.size());
  return StatusOr<IndexPage>(std::move(page));
}

}  // namespace kura::store
