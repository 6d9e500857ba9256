// The HTTP vocabulary shared by the server, the router and the handlers above: Beast's request
// and response with string bodies, and the per-request context a handler receives.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kura::http {

namespace beast_http = boost::beast::http;
using Request = beast_http::request<beast_http::string_body>;
using Response = beast_http::response<beast_http::string_body>;
using HttpStatus = beast_http::status;
using Verb = beast_http::verb;

struct PathParams {
  std::vector<std::pair<std::string_view, std::string>> values;
  // The value of {name}, or "" when the route has no such parameter.
  std::string_view Get(std::string_view name) const {
    for (const auto& [k, v] : values) {
      if (k == name) return v;
    }
    return {};
  }
};

struct RequestContext {
  const Request& request;
  std::string_view path;   // Without the query string.
  std::string_view query;  // After '?', raw (percent-encoded).
  std::string_view route;  // The matched route template, e.g. "/fhir/R4/{type}/{id}".
  PathParams params;
  std::string request_id;
  std::string remote_address;
  std::chrono::steady_clock::time_point started;
};

using Handler = std::function<boost::asio::awaitable<Response>(RequestContext&)>;

// Builds an error response in the API's format (e.g. an OperationOutcome) for errors the HTTP
// layer detects itself: unknown route, wrong method, oversized head or body, malformed request,
// an exception escaping a handler. `message` is client-safe.
using ErrorResponder = std::function<Response(HttpStatus status, std::string_view message,
                                              unsigned http_version, bool keep_alive)>;

}  // namespace kura::http
