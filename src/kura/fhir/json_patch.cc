// JSON Patch on a tree that keeps numbers as their exact text; nlohmann::json applies each
// operation.
#include "kura/fhir/json_patch.h"

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <array>
#include <unordered_set>
#include <utility>
#include <vector>

#include "kura/base/utf8.h"
#include "kura/fhir/internal/decoded_utf8.h"
#include "kura/fhir/internal/key_set.h"

namespace kura::fhir {
namespace {

// A JSON number is held as a binary value with this subtype, its bytes the number's text, so that
// it is written back exactly as received. Binary values never come from JSON text otherwise.
constexpr std::uint64_t kNumberSubtype = 0x4E;

using ObjectContainer = Json::object_t::Container;

Status NotJson(std::string_view what, std::string diagnostics, std::string code = "structure") {
  return InvalidArgumentError("The request body is not " + std::string(what))
      .WithDetail({std::move(code), std::move(diagnostics), ""});
}

using internal::KeySet;

// Builds a Json tree from RapidJSON's SAX events, numbers as exact text.
class TreeBuilder {
 public:
  explicit TreeBuilder(size_t max_depth) : max_depth_(max_depth) {}

  bool Null() { return Value(Json(nullptr)); }
  bool Bool(bool b) { return Value(Json(b)); }
  // With kParseNumbersAsStringsFlag every number arrives as RawNumber.
  bool Int(int) { return Fail("internal: number outside raw mode"); }
  bool Uint(unsigned) { return Fail("internal: number outside raw mode"); }
  bool Int64(int64_t) { return Fail("internal: number outside raw mode"); }
  bool Uint64(uint64_t) { return Fail("internal: number outside raw mode"); }
  bool Double(double) { return Fail("internal: number outside raw mode"); }
  bool RawNumber(const char* text, rapidjson::SizeType length, bool) {
    return Value(Json::binary(Json::binary_t::container_type(text, text + length), kNumberSubtype));
  }
  bool String(const char* text, rapidjson::SizeType length, bool) {
    if (!internal::DecodedIsUtf8(text, length)) return Fail(internal::kLoneSurrogate);
    return Value(Json(std::string(text, length)));
  }
  bool StartObject() { return Enter(Json::object()); }
  bool Key(const char* text, rapidjson::SizeType length, bool) {
    if (!internal::DecodedIsUtf8(text, length)) return Fail(internal::kLoneSurrogate);
    std::string_view key(text, length);
    if (!keys_[open_.size() - 1].Insert(key)) {
      return Fail("duplicate JSON key \"" + std::string(key.substr(0, 64)) +
                  (key.size() > 64 ? "...\"" : "\""));
    }
    pending_keys_[open_.size() - 1].assign(key);
    return true;
  }
  bool EndObject(rapidjson::SizeType) { return Leave(); }
  bool StartArray() { return Enter(Json::array()); }
  bool EndArray(rapidjson::SizeType) { return Leave(); }

  const std::string& failure() const { return failure_; }
  Json TakeRoot() { return std::move(root_); }

 private:
  bool Fail(std::string why) {
    if (failure_.empty()) failure_ = std::move(why);
    return false;
  }
  bool Enter(Json container) {
    if (open_.size() >= max_depth_) return Fail("JSON nesting is deeper than the limit");
    open_.push_back(std::move(container));
    if (keys_.size() < open_.size()) {
      keys_.resize(open_.size());
      pending_keys_.resize(open_.size());
    }
    keys_[open_.size() - 1].Clear();
    return true;
  }
  bool Leave() {
    Json done = std::move(open_.back());
    open_.pop_back();
    return Value(std::move(done));
  }
  bool Value(Json value) {
    if (open_.empty()) {
      root_ = std::move(value);
      return true;
    }
    Json& parent = open_.back();
    if (parent.is_array()) {
      parent.get_ref<Json::array_t&>().push_back(std::move(value));
    } else {
      // Duplicates were refused in Key(): append without ordered_map's linear search.
      static_cast<ObjectContainer&>(parent.get_ref<Json::object_t&>())
          .emplace_back(std::move(pending_keys_[open_.size() - 1]), std::move(value));
    }
    return true;
  }

  const size_t max_depth_;
  std::vector<Json> open_;  // Containers being filled, outermost first.
  std::vector<KeySet> keys_;
  std::vector<std::string> pending_keys_;
  Json root_;
  std::string failure_;
};

StatusOr<Json> ParseTree(std::string_view text, size_t max_depth, std::string_view what) {
  if (text.empty()) return NotJson(what, "the request body is empty", "required");
  if (size_t bad = FindInvalidUtf8(text); bad != std::string_view::npos) {
    return NotJson(what, "the body is not valid UTF-8 (byte " + std::to_string(bad) + ")");
  }
  TreeBuilder builder(max_depth);
  rapidjson::MemoryStream stream(text.data(), text.size());
  rapidjson::Reader reader;
  constexpr unsigned kFlags =
      rapidjson::kParseIterativeFlag | rapidjson::kParseNumbersAsStringsFlag;
  rapidjson::ParseResult result = reader.Parse<kFlags>(stream, builder);
  if (result.IsError()) {
    if (!builder.failure().empty()) return NotJson(what, builder.failure());
    const std::string at = " (byte " + std::to_string(result.Offset()) + ")";
    return NotJson(
        what, std::string("malformed JSON: ") + rapidjson::GetParseError_En(result.Code()) + at);
  }
  if (stream.Tell() != text.size()) {
    return NotJson(what, "malformed JSON: unexpected data after the value (byte " +
                             std::to_string(stream.Tell()) + ")");
  }
  return builder.TakeRoot();
}

// Nodes of a tree, counted iteratively.
size_t CountNodes(const Json& root) {
  size_t count = 0;
  std::vector<const Json*> todo{&root};
  while (!todo.empty()) {
    const Json* v = todo.back();
    todo.pop_back();
    ++count;
    if (v->is_object()) {
      for (const auto& [key, child] : v->get_ref<const Json::object_t&>()) todo.push_back(&child);
    } else if (v->is_array()) {
      for (const Json& child : v->get_ref<const Json::array_t&>()) todo.push_back(&child);
    }
  }
  return count;
}

// Writes `value` as compact JSON, numbers verbatim. False when nesting exceeds `max_depth`.
bool WriteTree(const Json& value, size_t max_depth, std::string& out) {
  switch (value.type()) {
    case Json::value_t::object: {
      if (max_depth == 0) return false;
      out += '{';
      bool first = true;
      for (const auto& [key, child] : value.get_ref<const Json::object_t&>()) {
        if (!first) out += ',';
        first = false;
        out += JsonString(key);
        out += ':';
        if (!WriteTree(child, max_depth - 1, out)) return false;
      }
      out += '}';
      return true;
    }
    case Json::value_t::array: {
      if (max_depth == 0) return false;
      out += '[';
      bool first = true;
      for (const Json& child : value.get_ref<const Json::array_t&>()) {
        if (!first) out += ',';
        first = false;
        if (!WriteTree(child, max_depth - 1, out)) return false;
      }
      out += ']';
      return true;
    }
    case Json::value_t::string:
      out += JsonString(value.get_ref<const std::string&>());
      return true;
    case Json::value_t::binary: {
      const Json::binary_t& bytes = value.get_binary();
      out.append(bytes.begin(), bytes.end());
      return true;
    }
    default:
      out += value.dump();  // null, booleans (numbers are binary here).
      return true;
  }
}

bool IsPointer(const std::string& text) {
  try {
    Json::json_pointer pointer(text);
    return true;
  } catch (const Json::exception&) {
    return false;
  }
}

std::string Quoted(std::string_view text) {
  constexpr size_t kMax = 200;
  return "'" + std::string(text.substr(0, kMax)) + (text.size() > kMax ? "...'" : "'");
}

Status Malformed(size_t index, std::string why) {
  return InvalidArgumentError("The request body is not a valid JSON Patch document")
      .WithDetail({"structure", "operation " + std::to_string(index) + ": " + std::move(why), ""});
}

Status CannotApply(std::string why, std::string code = "processing", std::string expression = "") {
  return FailedPreconditionError("The patch cannot be applied to the current version")
      .WithDetail({std::move(code), std::move(why), std::move(expression)});
}

// OK unless the parent of operation `index`'s target exists in `tree` and is not an object or an
// array. A missing parent is left to nlohmann, which reports it as a path that does not exist.
Status CheckAddParent(const Json& tree, size_t index, const Json& op) {
  const std::string& path = op["path"].get_ref<const std::string&>();
  const Json::json_pointer target(path);
  if (target.empty()) return Status::Ok();
  const Json::json_pointer parent = target.parent_pointer();
  if (!tree.contains(parent)) return Status::Ok();
  const Json& node = tree.at(parent);
  if (node.is_object() || node.is_array()) return Status::Ok();
  return CannotApply("operation " + std::to_string(index) + " (" +
                     op["op"].get_ref<const std::string&>() + "): the parent of " + Quoted(path) +
                     " is not an object or an array");
}

// Why operation `index` failed, from nlohmann's exception.
Status OperationFailed(size_t index, const Json& op, const Json::exception& e) {
  const std::string& name = op["op"].get_ref<const std::string&>();
  const std::string& path = op["path"].get_ref<const std::string&>();
  std::string prefix = "operation " + std::to_string(index) + " (" + name + "): ";
  switch (e.id) {
    case 501:  // other_error: test failed.
      return CannotApply(prefix + "the value at " + Quoted(path) + " is not the expected value");
    case 401:
      return CannotApply(prefix + "array index out of range in " + Quoted(path));
    case 403:
    case 404: {
      const Json* from = op.contains("from") ? &op["from"] : nullptr;
      std::string where = Quoted(path);
      if (from != nullptr) where = Quoted(from->get_ref<const std::string&>()) + " or " + where;
      return CannotApply(prefix + where + " does not exist");
    }
    case 405:
      return CannotApply(prefix + "the document root cannot be removed");
    case 106:
    case 109:
      return CannotApply(prefix + "invalid array index in " + Quoted(path));
    default:
      return CannotApply(prefix + "it cannot be applied to this resource");
  }
}

// The server-owned members, as JSON Pointers and FHIR element names.
constexpr std::array<std::pair<std::string_view, std::string_view>, 4> kServerOwned = {{
    {"/resourceType", "resourceType"},
    {"/id", "id"},
    {"/meta/versionId", "meta.versionId"},
    {"/meta/lastUpdated", "meta.lastUpdated"},
}};

const Json* Lookup(const Json& tree, std::string_view pointer) {
  const Json* at = &tree;
  size_t start = 1;
  while (start <= pointer.size()) {
    size_t slash = pointer.find('/', start);
    std::string_view key = pointer.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!at->is_object()) return nullptr;
    auto it = at->find(key);
    if (it == at->end()) return nullptr;
    at = &*it;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return at;
}

}  // namespace

StatusOr<JsonPatch> ParseJsonPatch(std::string_view text, const JsonLimits& limits) {
  KURA_ASSIGN_OR_RETURN(Json ops,
                        ParseTree(text, limits.max_depth + 2, "a valid JSON Patch document"));
  if (!ops.is_array()) {
    return InvalidArgumentError("The request body is not a valid JSON Patch document")
        .WithDetail({"structure", "a JSON Patch document is an array of operations", ""});
  }
  if (ops.size() > kMaxJsonPatchOperations) {
    return InvalidArgumentError("The JSON Patch document has too many operations")
        .WithDetail({"too-long",
                     "a JSON Patch document may hold at most " +
                         std::to_string(kMaxJsonPatchOperations) + " operations",
                     ""});
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    const Json& op = ops[i];
    if (!op.is_object()) return Malformed(i, "each operation must be a JSON object");
    auto name_it = op.find("op");
    if (name_it == op.end() || !name_it->is_string()) {
      return Malformed(i, "'op' is missing or not a string");
    }
    const std::string& name = name_it->get_ref<const std::string&>();
    const bool needs_from = name == "move" || name == "copy";
    const bool needs_value = name == "add" || name == "replace" || name == "test";
    if (!needs_from && !needs_value && name != "remove") {
      return Malformed(
          i, "'op' must be add, remove, replace, move, copy or test, not " + Quoted(name));
    }
    auto path_it = op.find("path");
    if (path_it == op.end() || !path_it->is_string()) {
      return Malformed(i, "'path' is missing or not a string");
    }
    const std::string& path = path_it->get_ref<const std::string&>();
    if (!IsPointer(path)) {
      return Malformed(i,
                       "'path' is not a JSON Pointer ('' or starting with '/'): " + Quoted(path));
    }
    if (needs_from) {
      auto from_it = op.find("from");
      if (from_it == op.end() || !from_it->is_string()) {
        return Malformed(i, "'from' is missing or not a string");
      }
      const std::string& from = from_it->get_ref<const std::string&>();
      if (!IsPointer(from)) {
        return Malformed(i,
                         "'from' is not a JSON Pointer ('' or starting with '/'): " + Quoted(from));
      }
      if (name == "move" && path.size() > from.size() && path.starts_with(from) &&
          path[from.size()] == '/') {
        return Malformed(i, "a location cannot be moved into one of its own children");
      }
    }
    if (needs_value && !op.contains("value")) return Malformed(i, "'value' is missing");
  }
  return JsonPatch{std::move(ops)};
}

StatusOr<std::string> ApplyJsonPatch(const JsonPatch& patch, std::string_view resource_json,
                                     const JsonLimits& limits) {
  KURA_ASSIGN_OR_RETURN(Json tree, ParseTree(resource_json, limits.max_depth, "a JSON resource"));
  if (!tree.is_object()) {
    return InvalidArgumentError("the resource is not a JSON object");
  }
  std::array<std::optional<Json>, kServerOwned.size()> owned;
  for (size_t i = 0; i < kServerOwned.size(); ++i) {
    if (const Json* v = Lookup(tree, kServerOwned[i].first)) owned[i] = *v;
  }
  // copy and move duplicate a subtree; repeated, they could grow the tree exponentially. Their
  // total is bounded by the size of what came in.
  const size_t copy_budget = CountNodes(tree) + CountNodes(patch.operations) + 1024;
  size_t copied = 0;
  for (size_t i = 0; i < patch.operations.size(); ++i) {
    const Json& op = patch.operations[i];
    const std::string& name = op["op"].get_ref<const std::string&>();
    try {
      if (name == "copy" || name == "move") {
        const Json& from = tree.at(Json::json_pointer(op["from"].get<std::string>()));
        copied += CountNodes(from);
        if (copied > copy_budget) {
          return CannotApply("operation " + std::to_string(i) + " (" + name +
                             "): the patch copies more than the resource and the patch hold");
        }
      }
      // An add (and the add half of copy and move) needs its target's parent to be an object or
      // an array (RFC 6902, 4.1). nlohmann's patch only asserts that: built without assertions
      // it skips the operation and reports success. So move runs as its remove, the check, then
      // its add, which is what nlohmann does inside.
      if (name == "move") {
        // Taken out rather than copied: the remove below drops what is left at `from`.
        Json value = std::move(tree.at(Json::json_pointer(op["from"].get<std::string>())));
        tree.patch_inplace(Json::array({{{"op", "remove"}, {"path", op["from"]}}}));
        if (Status parent = CheckAddParent(tree, i, op); !parent.ok()) return parent;
        tree.patch_inplace(
            Json::array({{{"op", "add"}, {"path", op["path"]}, {"value", std::move(value)}}}));
        continue;
      }
      if (name == "add" || name == "copy") {
        if (Status parent = CheckAddParent(tree, i, op); !parent.ok()) return parent;
      }
      tree.patch_inplace(Json::array({op}));
    } catch (const Json::exception& e) {
      return OperationFailed(i, op, e);
    }
  }
  if (!tree.is_object()) return CannotApply("the patched document is not a JSON object");
  std::string type = "Resource";
  if (owned[0] && owned[0]->is_string()) type = owned[0]->get<std::string>();
  for (size_t i = 0; i < kServerOwned.size(); ++i) {
    const Json* now = Lookup(tree, kServerOwned[i].first);
    const bool same = owned[i] ? (now != nullptr && *now == *owned[i]) : now == nullptr;
    if (!same) {
      return CannotApply(
          std::string(kServerOwned[i].second) + " is set by the server: a patch may not change it",
          "business-rule", type + "." + std::string(kServerOwned[i].second));
    }
  }
  std::string out;
  out.reserve(resource_json.size() + 64);
  if (!WriteTree(tree, limits.max_depth, out)) {
    return CannotApply("the patched resource nests deeper than the limit", "too-long");
  }
  return out;
}

}  // namespace kura::fhir
