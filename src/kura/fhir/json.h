// FHIR JSON intake: the checks every resource body passes before anything else looks at it, and
// the compact form it is stored in.
//
// ParseResourceDocument checks a body's UTF-8 (kura/base/utf8.h), reads it with RapidJSON's SAX
// reader and accepts only well-formed JSON (RFC 8259, no duplicate keys, nothing after the
// value), an object at the top and nesting no deeper than the configured limit. Each failure is
// InvalidArgument with a detail (FHIR issue code and, where it applies, a location) so the API can
// answer with an OperationOutcome. What passes is split into its top-level members, each kept as
// compact JSON text in the order received; numbers keep their exact text (FHIR decimals carry their
// precision: 98.60 stays 98.60), strings are re-escaped minimally.
//
// Json (nlohmann, keys in insertion order) is for documents the server builds itself:
// OperationOutcome, CapabilityStatement, Bundles. Thread-safe free functions.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kura/base/status.h"

namespace kura::fhir {

using Json = nlohmann::ordered_json;

struct JsonLimits {
  size_t max_depth = 64;  // Nested objects and arrays, the top-level object included.
  // The text is known to be valid UTF-8 (a resource cut out of a Bundle that ParseBundle
  // checked, or rewritten from one with ASCII ids), so ParseResourceDocument skips checking it
  // again: checking was a fifth of parsing a Bundle entry.
  bool utf8_checked = false;
};

// A top-level member (or a member of the top-level `meta` object).
struct JsonMember {
  std::string key;                          // Unescaped.
  std::string json;                         // The value as compact JSON text.
  std::optional<std::string> string_value;  // The unescaped value when it is a JSON string.
};

// A checked resource body.
struct ResourceDocument {
  // Top-level members in the order received, `meta` excluded when it is an object.
  std::vector<JsonMember> members;
  // The members of `meta` when it is an object; nullopt when absent. A `meta` that is not an
  // object stays in `members` (and fails StampServerFields).
  std::optional<std::vector<JsonMember>> meta;
  // Every `reference` string that names a Patient, with the path of object keys leading to the
  // object that holds it (arrays skipped), e.g. {"performer.actor", "Patient/1"}.
  std::vector<std::pair<std::string, std::string>> patient_references;

  const JsonMember* Find(std::string_view key) const;
};

StatusOr<ResourceDocument> ParseResourceDocument(std::string_view body, const JsonLimits& limits);

// `text` as a JSON string literal (quotes included), escaped as RapidJSON's writer does.
std::string JsonString(std::string_view text);
// The same literal, appended to `out`.
void AppendJsonString(std::string& out, std::string_view text);

// Compact serialization (no spaces), UTF-8 as-is.
std::string SerializeJson(const Json& value);

}  // namespace kura::fhir
