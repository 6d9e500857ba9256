// Builds the SQL of search-index queries; see search_sql.h.
#include "kura/store/sqlite/search_sql.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string_view>

namespace kura::store::internal {
namespace {

// Where a resource without a value for a sort key goes: last, whichever the direction. SQLite
// orders NULL < numbers < text < blobs, so a blob sorts after every text key and a number before.
constexpr std::string_view kRangeLastAscending = "1e308";
constexpr std::string_view kRangeLastDescending = "-1e308";
constexpr std::string_view kKeyLastAscending = "X'FF'";
constexpr std::string_view kKeyLastDescending = "-1";
constexpr double kRangeSentinel = 1e308;

// The smallest string greater than every string starting with `prefix` (byte order), or nullopt
// when there is none (the prefix is all 0xFF bytes).
std::optional<std::string> PrefixUpperBound(std::string prefix) {
  while (!prefix.empty()) {
    unsigned char last = static_cast<unsigned char>(prefix.back());
    if (last != 0xFF) {
      prefix.back() = static_cast<char>(last + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::nullopt;
}

// How well a clause can drive the query: an equality on key and key2 reads one short run of the
// value index in id order; anything else reads more of it.
int DriverScore(const IndexClause& clause) {
  if (clause.mode != IndexClause::Mode::kMatch || clause.any_of.empty()) return -1;
  int score = 4;
  for (const IndexMatch& m : clause.any_of) {
    int s = m.key && m.key2 ? 4 : m.key ? 3 : m.chain || m.key_prefix ? 2 : 1;
    score = std::min(score, s);
  }
  return score;
}

int PickDriver(const IndexQuery& query) {
  int best = -1;
  int best_score = -1;
  for (size_t i = 0; i < query.all_of.size(); ++i) {
    int score = DriverScore(query.all_of[i]);
    if (score > best_score) {
      best = static_cast<int>(i);
      best_score = score;
    }
  }
  return best;
}

class Builder {
 public:
  explicit Builder(char alias_prefix = 't') : alias_prefix_(alias_prefix) {}

  std::string sql;
  std::vector<SqlValue> binds;

  void Bind(SqlValue value) {
    sql += '?';
    binds.push_back(std::move(value));
  }
  void BindKey(const std::string& key, bool blind) {
    if (blind) {
      Bind(SqlBlob{key});
    } else {
      Bind(key);
    }
  }
  std::string NewAlias() { return alias_prefix_ + std::to_string(next_alias_++); }

  // "(cond AND cond ...)" for one way a row of alias `a` matches.
  Status AppendMatch(const IndexMatch& m, const std::string& a, bool blind) {
    sql += '(';
    bool first = true;
    auto next = [&] {
      if (!first) sql += " AND ";
      first = false;
    };
    if (m.key) {
      next();
      sql += a + ".key = ";
      BindKey(*m.key, blind);
    }
    if (m.key2) {
      next();
      sql += a + ".key2 = ";
      BindKey(*m.key2, blind);
    }
    if (m.key_prefix) {
      if (blind) return InvalidArgumentError("a blind parameter matches by equality only");
      next();
      sql += a + ".key >= ";
      Bind(*m.key_prefix);
      if (std::optional<std::string> upper = PrefixUpperBound(*m.key_prefix)) {
        sql += " AND " + a + ".key < ";
        Bind(*upper);
      }
    }
    if (m.key_contains) {
      if (blind) return InvalidArgumentError("a blind parameter matches by equality only");
      next();
      sql += "instr(" + a + ".key, ";
      Bind(*m.key_contains);
      sql += ") > 0";
    }
    if (!m.range_any.empty()) {
      next();
      sql += '(';
      for (size_t g = 0; g < m.range_any.size(); ++g) {
        if (g > 0) sql += " OR ";
        sql += '(';
        if (m.range_any[g].empty()) sql += '1';
        for (size_t c = 0; c < m.range_any[g].size(); ++c) {
          const RangeCondition& cond = m.range_any[g][c];
          if (c > 0) sql += " AND ";
          sql += a + (cond.column == RangeCondition::Column::kLow ? ".low" : ".high");
          switch (cond.op) {
            case RangeCondition::Op::kLess:
              sql += " < ";
              break;
            case RangeCondition::Op::kLessOrEqual:
              sql += " <= ";
              break;
            case RangeCondition::Op::kGreater:
              sql += " > ";
              break;
            case RangeCondition::Op::kGreaterOrEqual:
              sql += " >= ";
              break;
          }
          Bind(cond.value);
        }
        sql += ')';
      }
      sql += ')';
    }
    if (m.chain) {
      if (blind) return InvalidArgumentError("a blind parameter cannot be chained");
      next();
      const std::string c = NewAlias();
      sql += a + ".key IN (SELECT ";
      Bind(m.chain_key_prefix);
      sql += " || " + c + ".id FROM (";
      KURA_RETURN_IF_ERROR(AppendIdSet(*m.chain));
      sql += ") AS " + c + ")";
    }
    if (first) sql += '1';
    sql += ')';
    return Status();
  }

  Status AppendAlternatives(const IndexClause& clause, const std::string& a) {
    if (clause.any_of.empty()) return InvalidArgumentError("a search clause has no value");
    sql += '(';
    for (size_t i = 0; i < clause.any_of.size(); ++i) {
      if (i > 0) sql += " OR ";
      KURA_RETURN_IF_ERROR(AppendMatch(clause.any_of[i], a, clause.blind));
    }
    sql += ')';
    return Status();
  }

  // A condition on the resource `outer` (an alias with type and id columns).
  Status AppendClauseFilter(const IndexClause& clause, const std::string& outer) {
    const std::string s = NewAlias();
    const bool negated =
        clause.mode == IndexClause::Mode::kNoMatch || clause.mode == IndexClause::Mode::kMissing;
    sql += negated ? "NOT EXISTS (SELECT 1 FROM search_index AS " : "EXISTS (SELECT 1 FROM ";
    if (!negated) sql += "search_index AS ";
    sql += s + " WHERE " + s + ".type = " + outer + ".type AND " + s + ".id = " + outer +
           ".id AND " + s + ".param = ";
    Bind(clause.param);
    if (clause.mode == IndexClause::Mode::kMatch || clause.mode == IndexClause::Mode::kNoMatch) {
      sql += " AND ";
      KURA_RETURN_IF_ERROR(AppendAlternatives(clause, s));
    }
    sql += ')';
    return Status();
  }

  // "FROM ... WHERE ..." selecting the matches of `query`; returns the alias whose id column
  // names them. The clause `driver_hint` is read first (-1: PickDriver's choice); with `ids` the
  // resources table is.
  StatusOr<std::string> AppendFromWhere(const IndexQuery& query, int driver_hint = -1) {
    if (query.type.empty()) return InvalidArgumentError("a search needs a resource type");
    for (const IndexClause& clause : query.all_of) {
      if (clause.param.empty()) return InvalidArgumentError("a search clause needs a parameter");
    }
    if (driver_hint >= static_cast<int>(query.all_of.size()) ||
        (driver_hint >= 0 && DriverScore(query.all_of[static_cast<size_t>(driver_hint)]) < 0)) {
      return InvalidArgumentError("the driving clause cannot drive this search");
    }
    const int driver = !query.ids.empty() ? -1 : driver_hint >= 0 ? driver_hint : PickDriver(query);
    const std::string d = NewAlias();
    if (driver >= 0) {
      const IndexClause& clause = query.all_of[static_cast<size_t>(driver)];
      // Named, because for ORDER BY id SQLite would otherwise walk the primary key (type, id, ...)
      // through every row of the type to save a sort of the few the lookup index finds.
      sql += " FROM search_index AS " + d + " INDEXED BY search_index_lookup WHERE ";
      if (!query.compartment.empty()) {
        sql += d + ".compartment = ";
        Bind(query.compartment);
        sql += " AND ";
      }
      sql += d + ".type = ";
      Bind(query.type);
      sql += " AND " + d + ".param = ";
      Bind(clause.param);
      sql += " AND ";
      KURA_RETURN_IF_ERROR(AppendAlternatives(clause, d));
    } else {
      sql += " FROM resources AS " + d + " WHERE " + d + ".type = ";
      Bind(query.type);
      sql += " AND " + d + ".deleted = 0";
      if (!query.compartment.empty()) {
        const std::string c = NewAlias();
        sql += " AND EXISTS (SELECT 1 FROM search_index AS " + c + " WHERE " + c + ".type = " + d +
               ".type AND " + c + ".id = " + d + ".id AND " + c + ".compartment = ";
        Bind(query.compartment);
        sql += ")";
      }
      if (!query.ids.empty()) {
        sql += " AND " + d + ".id IN (";
        for (size_t i = 0; i < query.ids.size(); ++i) {
          if (i > 0) sql += ", ";
          Bind(query.ids[i]);
        }
        sql += ')';
      }
    }
    for (size_t i = 0; i < query.all_of.size(); ++i) {
      if (static_cast<int>(i) == driver) continue;
      sql += " AND ";
      KURA_RETURN_IF_ERROR(AppendClauseFilter(query.all_of[i], d));
    }
    return d;
  }

  // "SELECT DISTINCT <alias>.id AS id FROM ... WHERE ..." (no order, no limit).
  Status AppendIdSet(const IndexQuery& query) {
    const size_t select_at = sql.size();
    KURA_ASSIGN_OR_RETURN(std::string d, AppendFromWhere(query));
    sql.insert(select_at, "SELECT DISTINCT " + d + ".id AS id");
    return Status();
  }

  // The value a resource sorts by for `key` (a correlated subquery on `outer`).
  void AppendSortValue(const IndexSort& key, const std::string& outer) {
    const std::string x = NewAlias();
    const char* column = key.by_range ? (key.descending ? "high" : "low") : "key";
    sql += "COALESCE((SELECT ";
    sql += key.descending ? "MAX(" : "MIN(";
    sql += x + "." + column + ") FROM search_index AS " + x + " WHERE " + x + ".type = " + outer +
           ".type AND " + x + ".id = " + outer + ".id AND " + x + ".param = ";
    Bind(key.param);
    sql += "), ";
    if (key.by_range) {
      sql += key.descending ? kRangeLastDescending : kRangeLastAscending;
    } else {
      sql += key.descending ? kKeyLastDescending : kKeyLastAscending;
    }
    sql += ')';
  }

  // Binds a cursor's sort value for `key` as the sort expression would produce it.
  Status BindCursorValue(const IndexSort& key, const std::optional<std::string>& value) {
    if (key.by_range) {
      double v = key.descending ? -kRangeSentinel : kRangeSentinel;
      if (value) {
        char* end = nullptr;
        v = std::strtod(value->c_str(), &end);
        if (end == value->c_str() || *end != '\0') {
          return InvalidArgumentError("the paging position is not valid");
        }
      }
      Bind(v);
    } else if (value) {
      Bind(*value);
    } else if (key.descending) {
      Bind(int64_t{-1});
    } else {
      Bind(SqlBlob{"\xFF"});
    }
    return Status();
  }

  // The rows strictly after (or before) `from` in the order of `sort` then id, over the columns
  // named k0..kn-1 and id.
  Status AppendKeyset(const std::vector<IndexSort>& sort, const IndexCursor& from, bool backward) {
    if (from.keys.size() != sort.size()) {
      return InvalidArgumentError("the paging position does not fit this search");
    }
    sql += '(';
    for (size_t i = 0; i <= sort.size(); ++i) {
      if (i > 0) sql += " OR ";
      sql += '(';
      for (size_t j = 0; j < i; ++j) {
        sql += "k" + std::to_string(j) + " = ";
        KURA_RETURN_IF_ERROR(BindCursorValue(sort[j], from.keys[j]));
        sql += " AND ";
      }
      if (i < sort.size()) {
        bool greater = sort[i].descending == backward;
        sql += "k" + std::to_string(i) + (greater ? " > " : " < ");
        KURA_RETURN_IF_ERROR(BindCursorValue(sort[i], from.keys[i]));
      } else {
        sql += backward ? "id < " : "id > ";
        Bind(from.id);
      }
      sql += ')';
    }
    sql += ')';
    return Status();
  }

 private:
  char alias_prefix_;
  int next_alias_ = 0;
};

Status CheckQuery(const IndexQuery& query) {
  if (query.limit < 1) return InvalidArgumentError("a search limit must be at least 1");
  for (const IndexSort& key : query.sort) {
    if (key.param.empty()) return InvalidArgumentError("a sort key needs a parameter");
  }
  return Status();
}

}  // namespace

std::vector<int> DriverCandidates(const IndexQuery& query) {
  std::vector<int> out;
  if (!query.ids.empty()) return out;
  for (size_t i = 0; i < query.all_of.size(); ++i) {
    if (DriverScore(query.all_of[i]) >= 3) out.push_back(static_cast<int>(i));
  }
  return out;
}

StatusOr<SearchSql> BuildDriverProbeSql(const IndexQuery& query, int clause, int64_t cap) {
  if (clause < 0 || clause >= static_cast<int>(query.all_of.size())) {
    return InvalidArgumentError("no such search clause");
  }
  const IndexClause& c = query.all_of[static_cast<size_t>(clause)];
  Builder b;
  b.sql = "SELECT COUNT(*) FROM (SELECT 1 FROM search_index AS t WHERE ";
  if (!query.compartment.empty()) {
    b.sql += "t.compartment = ";
    b.Bind(query.compartment);
    b.sql += " AND ";
  }
  b.sql += "t.type = ";
  b.Bind(query.type);
  b.sql += " AND t.param = ";
  b.Bind(c.param);
  b.sql += " AND ";
  // Only the equality part: enough to size the run of the value index this clause reads.
  IndexClause keys_only;
  keys_only.param = c.param;
  keys_only.blind = c.blind;
  for (const IndexMatch& m : c.any_of) {
    IndexMatch k;
    k.key = m.key;
    k.key2 = m.key2;
    keys_only.any_of.push_back(std::move(k));
  }
  KURA_RETURN_IF_ERROR(b.AppendAlternatives(keys_only, "t"));
  b.sql += " LIMIT ";
  b.Bind(cap);
  b.sql += ")";
  return SearchSql{std::move(b.sql), std::move(b.binds)};
}

StatusOr<SearchSql> BuildSearchSql(const IndexQuery& query, SearchDirection direction,
                                   const IndexCursor* from, int driver) {
  KURA_RETURN_IF_ERROR(CheckQuery(query));
  const bool backward = direction == SearchDirection::kBackward;
  const int64_t fetch =
      query.limit == std::numeric_limits<int64_t>::max() ? query.limit : query.limit + 1;
  Builder b;
  if (query.sort.empty()) {
    // Streams in id order straight from the driving index run; stops after `fetch` rows.
    b.sql = "SELECT DISTINCT ";
    const size_t select_at = b.sql.size();
    KURA_ASSIGN_OR_RETURN(std::string d, b.AppendFromWhere(query, driver));
    b.sql.insert(select_at, d + ".id");
    if (from != nullptr) {
      if (!from->keys.empty()) {
        return InvalidArgumentError("the paging position does not fit this search");
      }
      b.sql += " AND " + d + ".id " + (backward ? "< " : "> ");
      b.Bind(from->id);
    }
    b.sql += " ORDER BY " + d + ".id" + (backward ? " DESC" : "") + " LIMIT ";
    b.Bind(fetch);
    return SearchSql{std::move(b.sql), std::move(b.binds)};
  }
  // Sorted: the matches with their sort values, then the page of them.
  b.sql = "SELECT id";
  for (size_t i = 0; i < query.sort.size(); ++i) b.sql += ", k" + std::to_string(i);
  b.sql += " FROM (SELECT DISTINCT ";
  const size_t select_at = b.sql.size();
  KURA_ASSIGN_OR_RETURN(std::string d, b.AppendFromWhere(query, driver));
  // The sort expressions bind their parameters before the FROM clause's: build them apart and
  // splice text and binds in front.
  Builder head('h');  // Its own aliases: h0, h1... beside the body's t0, t1...
  head.sql = d + ".id AS id";
  for (size_t i = 0; i < query.sort.size(); ++i) {
    head.sql += ", ";
    head.AppendSortValue(query.sort[i], d);
    head.sql += " AS k" + std::to_string(i);
  }
  b.sql.insert(select_at, head.sql);
  b.binds.insert(b.binds.begin(), head.binds.begin(), head.binds.end());
  b.sql += ")";
  if (from != nullptr) {
    b.sql += " WHERE ";
    KURA_RETURN_IF_ERROR(b.AppendKeyset(query.sort, *from, backward));
  }
  b.sql += " ORDER BY ";
  for (size_t i = 0; i < query.sort.size(); ++i) {
    bool descending = query.sort[i].descending != backward;
    b.sql += "k" + std::to_string(i) + (descending ? " DESC, " : ", ");
  }
  b.sql += backward ? "id DESC LIMIT " : "id LIMIT ";
  b.Bind(fetch);
  return SearchSql{std::move(b.sql), std::move(b.binds)};
}

StatusOr<SearchSql> BuildCountSql(const IndexQuery& query) {
  Builder b;
  b.sql = "SELECT COUNT(*) FROM (";
  KURA_RETURN_IF_ERROR(b.AppendIdSet(query));
  b.sql += ")";
  return SearchSql{std::move(b.sql), std::move(b.binds)};
}

}  // namespace kura::store::internal
