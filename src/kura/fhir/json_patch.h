// JSON Patch (RFC 6902) for FHIR resources: the patch interaction's document, checked on arrival,
// and its application to a stored version.
//
// ParseJsonPatch accepts what intake accepts (valid UTF-8, well-formed JSON, no duplicate keys,
// bounded depth) and then the RFC's document rules: an array of operation objects, each with an
// `op` among add, remove, replace, move, copy and test, a `path` (and for move and copy a `from`)
// that is a JSON Pointer, and a `value` where the operation needs one. ApplyJsonPatch applies the
// operations in order with nlohmann::json's RFC 6902 implementation, all or nothing.
//
// Numbers keep their exact text through a patch, as they do everywhere else (a FHIR decimal's
// precision is in its text: 98.60 stays 98.60). The consequence for `test`: numbers compare by
// their text (72 is not 72.0) and objects by their members in order.
//
// The server owns resourceType, id, meta.versionId and meta.lastUpdated: a patch whose result
// differs in any of them is refused. Thread-safe free functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "kura/base/status.h"
#include "kura/fhir/json.h"

namespace kura::fhir {

// Most operations one patch document may hold.
inline constexpr size_t kMaxJsonPatchOperations = 1000;

// A checked patch document (see ParseJsonPatch).
struct JsonPatch {
  Json operations;  // The operations array; numbers are held as their exact text.
};

// Parses and checks a patch document. `limits.max_depth` bounds the nesting of each operation's
// `value` like a resource's (the document adds two levels of its own). InvalidArgument, with an
// issue code and an expression such as "[2].path", when the body is not JSON or not a JSON Patch
// document, or holds more than kMaxJsonPatchOperations operations.
StatusOr<JsonPatch> ParseJsonPatch(std::string_view text, const JsonLimits& limits);

// Applies `patch` to `resource_json` (a stored version: compact JSON, an object) and returns the
// patched resource as compact JSON text, numbers verbatim. FailedPrecondition when the patch cannot
// be applied: a `test` operation fails, a path does not exist (or is not an array index where one
// is needed), or the result changes resourceType, id, meta.versionId or meta.lastUpdated.
// InvalidArgument when `resource_json` is not a JSON object. The result is not checked as a
// resource: the caller runs it through intake and validation like any other body.
StatusOr<std::string> ApplyJsonPatch(const JsonPatch& patch, std::string_view resource_json,
                                     const JsonLimits& limits);

}  // namespace kura::fhir
