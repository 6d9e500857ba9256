// The SQL of a search-index query (search_index.h) for the SQLite backend.
//
// The statement text depends only on the query's shape (which clauses, modifiers and sort keys);
// every value is a bound parameter, in the order of `binds`. Rows live in
//
//   search_index(type, id, param, key, key2, low, high, compartment)
//       PRIMARY KEY(type, id, param, key, key2, low, high) WITHOUT ROWID
//   search_index_lookup ON search_index(type, param, key, key2, compartment)
//
// with low = high = 0 for rows without a range. The query is driven from its most selective
// clause (an equality on key and key2, and the compartment when the query has one, reads one run
// of search_index_lookup, already in id order), the other clauses are primary-key probes for the
// same (type, id).
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "kura/base/status.h"
#include "kura/store/search_index.h"

namespace kura::store::internal {

struct SqlBlob {
  std::string bytes;
};
using SqlValue = std::variant<int64_t, double, std::string, SqlBlob>;

struct SearchSql {
  std::string text;
  std::vector<SqlValue> binds;
  // Result columns: id, then one per sort key (for the cursor).
};

enum class SearchDirection { kForward, kBackward };

// The clauses that could drive the query (a match clause whose every value fixes `key`), by index
// into query.all_of. When there are several, the caller counts each one's rows with
// BuildDriverProbeSql and passes the smallest as `driver`.
std::vector<int> DriverCandidates(const IndexQuery& query);

// Counts the rows of clause `clause` of `query`, stopping at `cap`.
StatusOr<SearchSql> BuildDriverProbeSql(const IndexQuery& query, int clause, int64_t cap);

// The page statement: ids in the query's order after query.after (forward) or, backward, the ids
// before `from` in reverse order (the caller reverses them). Asks for query.limit + 1 rows, so
// the caller sees whether more follow. `driver` is the clause to read first (-1: the best by
// the shape of the clauses). InvalidArgument for a malformed query.
StatusOr<SearchSql> BuildSearchSql(const IndexQuery& query, SearchDirection direction,
                                   const IndexCursor* from, int driver = -1);

// The statement counting every match of `query` (cursor and limit ignored).
StatusOr<SearchSql> BuildCountSql(const IndexQuery& query);

}  // namespace kura::store::internal
