// JSON intake on nlohmann's SAX parser, with a depth limit and duplicate-key detection.
#include "kura/fhir/json.h"

#include <unordered_set>
#include <vector>

namespace kura::fhir {
namespace {

Status JsonError(std::string diagnostics, std::string code = "structure") {
  return InvalidArgumentError("The request body is not a valid FHIR JSON resource")
      .WithDetail({std::move(code), std::move(diagnostics), ""});
}

// A DOM-building SAX handler (nlohmann's own json_sax_dom_parser does not see depth or
// duplicates) that refuses to go deeper than the limit or to take a key twice in one object.
class GuardedDomBuilder {
 public:
  using number_integer_t = Json::number_integer_t;
  using number_unsigned_t = Json::number_unsigned_t;
  using number_float_t = Json::number_float_t;
  using string_t = Json::string_t;
  using binary_t = Json::binary_t;

  GuardedDomBuilder(Json& root, size_t max_depth) : root_(root), max_depth_(max_depth) {}

  bool null() { return Add(nullptr); }
  bool boolean(bool v) { return Add(v); }
  bool number_integer(number_integer_t v) { return Add(v); }
  bool number_unsigned(number_unsigned_t v) { return Add(v); }
  bool number_float(number_float_t v, const string_t&) { return Add(v); }
  bool string(string_t& v) { return Add(std::move(v)); }
  bool binary(binary_t&) { return Fail("binary values are not JSON"); }

  bool start_object(std::size_t) {
    if (stack_.size() >= max_depth_) return Fail("JSON nesting is deeper than the limit");
    Json* obj = Place(Json::object());
    if (obj == nullptr) return false;
    stack_.push_back(obj);
    keys_.emplace_back();
    return true;
  }
  bool key(string_t& k) {
    if (!keys_.back().insert(k).second) return Fail("duplicate JSON key \"" + Printable(k) + "\"");
    pending_key_ = std::move(k);
    return true;
  }
  bool end_object() {
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }
  bool start_array(std::size_t) {
    if (stack_.size() >= max_depth_) return Fail("JSON nesting is deeper than the limit");
    Json* arr = Place(Json::array());
    if (arr == nullptr) return false;
    stack_.push_back(arr);
    keys_.emplace_back();
    return true;
  }
  bool end_array() { return end_object(); }

  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) {
    std::string what = e.what();
    if (what.find("invalid string: ill-formed UTF-8") != std::string::npos) {
      return Fail("the body is not valid UTF-8 (byte " + std::to_string(position) + ")");
    }
    auto msg = what.find("syntax error");
    return Fail("malformed JSON at byte " + std::to_string(position) +
                (msg == std::string::npos ? "" : ": " + what.substr(msg)));
  }

  const std::string& failure() const { return failure_; }

 private:
  static std::string Printable(const std::string& key) {
    return key.size() > 64 ? key.substr(0, 64) + "..." : key;
  }
  bool Fail(std::string why) {
    if (failure_.empty()) failure_ = std::move(why);
    return false;
  }
  Json* Place(Json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    Json& parent = *stack_.back();
    if (parent.is_array()) {
      parent.push_back(std::move(v));
      return &parent.back();
    }
    Json& slot = parent[pending_key_];
    slot = std::move(v);
    return &slot;
  }
  template <typename T>
  bool Add(T&& v) {
    return Place(Json(std::forward<T>(v))) != nullptr;
  }

  Json& root_;
  size_t max_depth_;
  std::vector<Json*> stack_;
  std::vector<std::unordered_set<std::string>> keys_;
  std::string pending_key_;
  std::string failure_;
};

}  // namespace

StatusOr<Json> ParseResourceJson(std::string_view body, const JsonLimits& limits) {
  if (body.empty()) return JsonError("the request body is empty", "required");
  Json root;
  GuardedDomBuilder builder(root, limits.max_depth);
  bool ok = false;
  try {
    ok = Json::sax_parse(body.begin(), body.end(), &builder, Json::input_format_t::json, true);
  } catch (const std::exception& e) {
    return JsonError("malformed JSON");
  }
  if (!ok) {
    return JsonError(builder.failure().empty() ? "malformed JSON" : builder.failure());
  }
  if (!root.is_object()) {
    return JsonError("a FHIR resource must be a JSON object", "structure");
  }
  return root;
}

std::string SerializeJson(const Json& value) {
  // Strings were validated as UTF-8 on the way in; `replace` only guards internal values.
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace kura::fhir
