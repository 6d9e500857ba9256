// Router: maps (method, path) to a handler by route templates such as "/fhir/R4/{type}/{id}".
//
// Templates are matched segment by segment; a "{name}" segment captures one non-empty segment.
// Routes are tried in the order added, so literal routes ("/fhir/R4/metadata") go before the
// parameterized ones they would otherwise match. Built once at start-up, then read-only and
// thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kura/http/types.h"

namespace kura::http {

class Router {
 public:
  void Add(Verb method, std::string route_template, Handler handler);

  struct Match {
    const Handler* handler = nullptr;  // Null when no route matched path and method.
    std::string_view route;            // The template, for logs.
    PathParams params;
    bool path_matched = false;    // True when the path matched another method (405).
    std::string allowed_methods;  // For the Allow header of a 405.
  };
  Match Find(Verb method, std::string_view path) const;

 private:
  struct Route {
    Verb method;
    std::string route_template;
    std::vector<std::string> segments;
    bool literal = false;  // No {param} segment.
    Handler handler;
  };
  std::vector<Route> routes_;
};

// Splits a query string into decoded (name, value) pairs ('+' is a space in values, as HTML
// forms send). Malformed percent escapes are kept literally.
std::vector<std::pair<std::string, std::string>> ParseQuery(std::string_view query);
std::string PercentDecode(std::string_view text, bool plus_as_space);
std::string PercentEncode(std::string_view text);

// A whole decimal number from a path or query value; nullopt for anything else (a sign, spaces,
// overflow). The positive form also refuses 0.
std::optional<uint64_t> ParseUnsignedInteger(std::string_view text);
std::optional<int64_t> ParsePositiveInteger(std::string_view text);

}  // namespace kura::http
