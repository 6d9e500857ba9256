// Search indexing: FHIR search values become store index rows, and FHIR search requests become
// store index queries, under the data register's classes (clear, blind, none).
//
// Row shapes (search_index.h), per parameter type:
//   token      key = code, key2 = system
//   string     clear: key = normalized value (case and accents folded), key2 = the value as
//              written; blind: key = "p" + each normalized prefix (up to kBlindPrefixChars
//              characters) and key = "x" + the value as written (:exact)
//   reference  key = "Type/id" or the absolute URL, key2 = the target type; Reference.identifier
//              gives a row of "<param>:identifier" with key = value, key2 = system
//   date       low..high in microseconds since the epoch; blind: key = "YYYY", "YYYY-MM",
//              "YYYY-MM-DD" (as precise as the value), no range
//   number     low = high = the value
//   quantity   key = code (or unit), key2 = system, low..high = the value (or a Range's bounds);
//              a quantity coded in UCUM whose unit converts also gives a row of "<param>:ucum"
//              with key = its base unit ("m-3.g"), low..high in base units (ucum.h)
//   uri        key = the URI
//   composite  key = first component ("system|code" and "*|code" for a token, the reference for a
//              reference), key2 = second component when a token or unit, range from the second
//              component when a quantity, number or date; a second component in UCUM units also
//              gives a row of "<param>:ucum" with key2 = the base unit, the range in base units
// Thread-safe free functions.
#pragma once

#include <string_view>
#include <vector>

#include "kura/base/clock.h"
#include "kura/base/status.h"
#include "kura/fhir/data_register.h"
#include "kura/fhir/search_query.h"
#include "kura/store/search_index.h"

namespace kura::api {

inline constexpr size_t kBlindPrefixChars = 32;  // Longer prefixes match on their first 32.
// The version of the rows IndexRowsFor makes. Raise it whenever a change makes the same resource
// under the same register give other rows: stored indexes then no longer match the server's
// fingerprint, and it refuses to start until `kura fhir reindex` rebuilt them.
inline constexpr int kSearchIndexFormat = 2;  // 2: the "<param>:ucum" rows.
// The suffix of the parameter name under which quantities in UCUM units are indexed in base units.
inline constexpr char kUcumRowSuffix[] = ":ucum";

// The index rows of a resource (its stored JSON); absolute references under `local_base` (this
// server's FHIR base URL) are indexed as relative ones. InvalidArgument when it cannot be read.
StatusOr<std::vector<store::IndexEntry>> IndexRowsFor(std::string_view resource_json,
                                                      const fhir::DataRegister& data_register,
                                                      std::string_view local_base);

// The store query of a parsed search (without paging or limit, which the caller sets).
// `local_base` is this server's FHIR base URL ("https://host/fhir/R4"): absolute references to
// it search as relative ones. InvalidArgument (with an OperationOutcome detail) for what the
// register forbids: a `none` parameter, or a prefix, :contains, range or sort on a blind one.
StatusOr<store::IndexQuery> CompileSearch(const fhir::SearchRequest& request,
                                          const fhir::DataRegister& data_register,
                                          std::string_view local_base, TimePoint now);

}  // namespace kura::api
