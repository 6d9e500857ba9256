// Search index: the rows a resource's current version is found by, and the queries over them.
//
// The store knows nothing of FHIR search semantics. A row is (param, key, key2, low, high) for a
// resource (type, id): the layer above turns each extracted search value into rows (a token into
// key = code, key2 = system; a date into the range low..high; ...) and each FHIR search into an
// IndexQuery of clauses over those columns. The store keeps the rows of current versions only: a
// commit replaces a resource's rows with those of its new version, in the same transaction, and a
// delete removes them.
//
// Blind rows: a row marked `blind` has key and key2 replaced by a keyed hash (HMAC-SHA-256 under
// the tenant's blind-index key, with the parameter name bound in) before a backend sees it, by
// EncryptingStore; a query clause marked blind is hashed the same way, so it matches by equality
// only. A copy of the database then shows no value of a blind parameter.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kura::store {

struct IndexEntry {
  std::string param;  // The search parameter's name, e.g. "code", "subject", "name".
  std::string key;    // Primary value ("" when the row is a range only, e.g. a date).
  std::string key2;   // Secondary value (a token's system, a quantity's unit system...), or "".
  std::optional<double> low;   // Range, inclusive, for dates, numbers and quantities.
  std::optional<double> high;  // Set exactly when `low` is.
  bool blind = false;

  friend bool operator==(const IndexEntry&, const IndexEntry&) = default;
};

// A comparison of a row's low or high bound with a value.
struct RangeCondition {
  enum class Column : uint8_t { kLow, kHigh };
  enum class Op : uint8_t { kLess, kLessOrEqual, kGreater, kGreaterOrEqual };
  Column column = Column::kLow;
  Op op = Op::kLess;
  double value = 0;
};

struct IndexQuery;

// One way a row can match: every condition set here holds for the same row.
struct IndexMatch {
  std::optional<std::string> key;           // key == this.
  std::optional<std::string> key2;          // key2 == this.
  std::optional<std::string> key_prefix;    // key starts with this (byte-wise). Clear rows only.
  std::optional<std::string> key_contains;  // key contains this (byte-wise). Clear rows only.
  // Range conditions: any one of the groups holds, each group being all of its conditions.
  std::vector<std::vector<RangeCondition>> range_any;
  // key == key_prefix_of_chain + the id of a resource the chained query finds (a chained search
  // such as subject:Patient.name=x, with "Patient/" here).
  std::shared_ptr<const IndexQuery> chain;
  std::string chain_key_prefix;
};

// One search parameter of a query: a resource matches when one of its rows for `param` matches
// one of `any_of` (kMatch), when none does (kNoMatch, e.g. :not), when it has no row for `param`
// (kMissing) or at least one (kPresent).
struct IndexClause {
  enum class Mode : uint8_t { kMatch, kNoMatch, kMissing, kPresent };
  std::string param;
  Mode mode = Mode::kMatch;
  bool blind = false;  // The param's rows are blind: keys are hashed, only equality applies.
  std::vector<IndexMatch> any_of;
};

// Order of results by one parameter: by its lowest value ascending or its highest descending
// (the FHIR rule for repeating elements). `by_range` sorts on low/high, otherwise on key.
struct IndexSort {
  std::string param;
  bool descending = false;
  bool by_range = false;
};

// The position after the last result of a page: the sort values and the id of that result.
// Opaque to callers above the store; they pass it back unchanged.
struct IndexCursor {
  std::vector<std::optional<std::string>> keys;  // One per sort key, by_range ones as text too.
  std::string id;
};

struct IndexQuery {
  std::string type;
  // When set: only resources in this patient's compartment (ResourceVersion::compartment). A
  // caller sets it when another clause implies it (subject=Patient/x where the subject picks the
  // compartment); it lets a backend read one patient's rows together.
  std::string compartment;
  std::vector<IndexClause> all_of;    // Every clause holds.
  std::vector<std::string> ids;       // When not empty: only these ids (_id).
  std::vector<IndexSort> sort;        // Then by id, ascending (the tie-break and the default).
  std::optional<IndexCursor> after;   // Paging: results after this position...
  std::optional<IndexCursor> before;  // ...or the page just before this one (not both).
  int64_t limit = 20;
  bool count_total = false;  // Also count every match (ignoring `after` and `limit`).
};

struct IndexHit {
  std::string id;
  IndexCursor cursor;  // The position of this hit, for the next page's `after`.
};

struct IndexPage {
  std::vector<IndexHit> hits;  // At most `limit`.
  bool more = false;           // A further page exists (an earlier one, when paging with `before`).
  std::optional<int64_t> total;  // When count_total was asked.
};

}  // namespace kura::store
