// FHIR JSON intake: the checks every resource body passes before anything else looks at it.
//
// ParseResourceJson accepts only valid UTF-8, well-formed JSON (RFC 8259, no duplicate keys, no
// trailing data), an object at the top and nesting no deeper than the configured limit; each
// failure is InvalidArgument with a detail (FHIR issue code and, where it applies, a location) so
// the API can answer with an OperationOutcome. Keys keep their order. Thread-safe free functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "kura/base/status.h"

namespace kura::fhir {

using Json = nlohmann::ordered_json;

struct JsonLimits {
  size_t max_depth = 64;
};

StatusOr<Json> ParseResourceJson(std::string_view body, const JsonLimits& limits);

// Compact serialization (no spaces), UTF-8 as-is.
std::string SerializeJson(const Json& value);

}  // namespace kura::fhir
