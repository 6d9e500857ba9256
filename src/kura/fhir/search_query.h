// FHIR search requests: the query parameters of `GET [base]/[type]?...` (or the form body of
// `POST [base]/[type]/_search`) checked against the type's search parameters (search_params.h)
// and parsed into typed terms: prefixes, modifiers, token system|code, quantity value|system|code,
// date ranges from their precision, chains one level deep, and the result parameters (_sort,
// _count, _include, _revinclude, _total, _summary, _elements).
//
// Unknown parameters are ignored and listed (or refused when the client asked for strict
// handling). Every error is InvalidArgument with one detail naming the parameter, never echoing a
// value. Thread-safe free functions.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kura/base/status.h"
#include "kura/fhir/search_params.h"

namespace kura::fhir {

enum class SearchPrefix : uint8_t { kEq, kNe, kGt, kLt, kGe, kLe, kSa, kEb, kAp };

enum class SearchModifier : uint8_t {
  kNone,
  kExact,       // string
  kContains,    // string
  kMissing,     // any: value true/false
  kNot,         // token
  kIdentifier,  // reference: match Reference.identifier
  kType,        // reference: :[Type]
  kText,        // token, reference: refused (not supported)
  kBelow,       // uri (and token): refused unless implemented
  kAbove,
};

// One comma-separated value of a term (the values of a term are alternatives).
struct SearchArgument {
  SearchPrefix prefix = SearchPrefix::kEq;
  std::string text;  // Unescaped, prefix removed (for number, date, quantity).
  // token: `system` set when the value had a '|' (empty: "no system"); `code` may be empty for
  // "system|". quantity: the unit system and code the same way.
  std::optional<std::string> system;
  std::string code;
  // number and quantity: the decimal as written and the range its precision implies.
  std::string number;
  double number_low = 0;
  double number_high = 0;
  double number_value = 0;
  // date
  InstantRange dates;
  // reference: "Type/id", an absolute URL or a bare id (`type` empty).
  std::string reference_type;
  std::string reference_id;
  // composite: the parts between '$', each parsed as its component's type.
  std::vector<SearchArgument> components;
};

struct SearchTerm {
  const SearchParamDef* param = nullptr;
  SearchModifier modifier = SearchModifier::kNone;
  std::string type_modifier;  // For kType, and the target type of a chain.
  bool missing = false;       // The value of :missing.
  std::vector<SearchArgument> any_of;
  // A chain (subject:Patient.name=x): the term on the target type; `any_of` is then empty.
  std::shared_ptr<const SearchTerm> chained;
  std::string chained_type;
};

struct SearchSortKey {
  const SearchParamDef* param = nullptr;
  bool descending = false;
};

struct SearchInclude {
  std::string source_type;
  const SearchParamDef* param = nullptr;  // A reference parameter of source_type.
  std::string target_type;                // Optional :[Type] restriction.
};

struct SearchRequest {
  std::string type;
  std::vector<SearchTerm> terms;
  std::vector<std::string> ids;  // _id values (an alternative list).
  std::vector<SearchSortKey> sort;
  int64_t count = 20;
  std::vector<SearchInclude> includes;
  std::vector<SearchInclude> revincludes;
  enum class Total : uint8_t { kNone, kEstimate, kAccurate } total = Total::kNone;
  bool summary_count = false;
  std::vector<std::string> elements;
  std::string page;                  // _page: an opaque paging token, passed back as is.
  std::vector<std::string> ignored;  // Names of parameters that were ignored.
  // The parameters as understood (name with modifier, raw value), sorted, without _page and the
  // ignored ones: the `self` link's query and what a paging token is bound to.
  std::vector<std::pair<std::string, std::string>> canonical_params;
};

struct SearchLimits {
  int64_t default_count = 20;
  int64_t max_count = 1000;
  size_t max_values = 100;  // Terms plus comma-separated values, in all.
};

// Parses `params` (decoded name/value pairs, in order) for a search of `type`. With `strict`
// (Prefer: handling=strict) unknown parameters are an error instead of being ignored.
StatusOr<SearchRequest> ParseSearchRequest(
    std::string_view type, const std::vector<std::pair<std::string, std::string>>& params,
    bool strict, const SearchLimits& limits);

}  // namespace kura::fhir
