// Segment-wise route matching and query parsing.
#include "kura/http/router.h"

#include <algorithm>
#include <charconv>

namespace kura::http {
namespace {

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.push_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void Router::Add(Verb method, std::string route_template, Handler handler) {
  Route r{method, route_template, {}, false, std::move(handler)};
  for (std::string_view s : SplitPath(route_template)) r.segments.emplace_back(s);
  r.literal = route_template.find('{') == std::string::npos;
  routes_.push_back(std::move(r));
}

Router::Match Router::Find(Verb method, std::string_view path) const {
  Match match;
  std::vector<std::string_view> parts = SplitPath(path);
  // A trailing slash or doubled slashes are not the same resource; keep matching strict.
  bool strict_ok = path == "/" || (!path.empty() && path.back() != '/' &&
                                   path.find("//") == std::string_view::npos);
  if (!strict_ok) return match;
  // A path that a literal route names (e.g. /fhir/R4/metadata) never falls through to a
  // parameterized route ({type}) under another method: that is a 405, not another resource.
  for (const Route& r : routes_) {
    if (r.segments.size() != parts.size() || !r.literal) continue;
    if (!std::equal(r.segments.begin(), r.segments.end(), parts.begin())) continue;
    if (r.method == method) {
      match.handler = &r.handler;
      match.route = r.route_template;
      return match;
    }
    match.path_matched = true;
    match.route = r.route_template;
    std::string name(beast_http::to_string(r.method));
    if (match.allowed_methods.find(name) == std::string::npos) {
      match.allowed_methods += (match.allowed_methods.empty() ? "" : ", ") + name;
    }
  }
  if (match.path_matched) return match;
  for (const Route& r : routes_) {
    if (r.segments.size() != parts.size()) continue;
    PathParams params;
    bool ok = true;
    for (size_t i = 0; i < parts.size() && ok; ++i) {
      const std::string& seg = r.segments[i];
      if (seg.size() > 2 && seg.front() == '{' && seg.back() == '}') {
        params.values.emplace_back(std::string_view(seg).substr(1, seg.size() - 2),
                                   std::string(parts[i]));
      } else {
        ok = seg == parts[i];
      }
    }
    if (!ok) continue;
    if (r.method != method) {
      if (!match.path_matched || match.route == r.route_template) {
        match.path_matched = true;
        match.route = r.route_template;
        std::string name(beast_http::to_string(r.method));
        if (match.allowed_methods.find(name) == std::string::npos) {
          match.allowed_methods += (match.allowed_methods.empty() ? "" : ", ") + name;
        }
      }
      continue;
    }
    match.handler = &r.handler;
    match.route = r.route_template;
    match.params = std::move(params);
    return match;
  }
  return match;
}

std::string PercentDecode(std::string_view text, bool plus_as_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%' && i + 2 < text.size()) {
      int hi = HexValue(text[i + 1]);
      int lo = HexValue(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_as_space && c == '+' ? ' ' : c);
  }
  return out;
}

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> ParseQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t i = 0;
  while (i <= query.size()) {
    size_t amp = query.find('&', i);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view pair = query.substr(i, amp - i);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      std::string_view name = pair.substr(0, eq);
      std::string_view value =
          eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
      out.emplace_back(PercentDecode(name, true), PercentDecode(value, true));
    }
    i = amp + 1;
  }
  return out;
}

std::optional<uint64_t> ParseUnsignedInteger(std::string_view text) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) return std::nullopt;
  return v;
}

std::optional<int64_t> ParsePositiveInteger(std::string_view text) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v < 1) return std::nullopt;
  return v;
}

}  // namespace kura::http
