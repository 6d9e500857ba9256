// Fuzz target: a search's query string. The first line names the resource type (without a line
// break, Observation); the rest is the raw query, split and percent-decoded by http::ParseQuery
// as the router does, then parsed by ParseSearchRequest, leniently and under handling=strict. Any
// input may be refused; none may crash or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kura/fhir/search_query.h"
#include "kura/http/router.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t line_end = input.find('\n');
  const std::string_view type = line_end == std::string_view::npos ? std::string_view("Observation")
                                                                   : input.substr(0, line_end);
  const std::string_view query =
      line_end == std::string_view::npos ? input : input.substr(line_end + 1);
  const auto params = kura::http::ParseQuery(query);
  const kura::fhir::SearchLimits limits;
  (void)kura::fhir::ParseSearchRequest(type, params, false, limits);
  (void)kura::fhir::ParseSearchRequest(type, params, true, limits);
  return 0;
}
