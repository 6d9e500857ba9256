// Batch/transaction Bundle intake on RapidJSON's SAX reader, processing order, reference rewriting.
#include "kura/fhir/bundle.h"

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <array>
#include <boost/unordered/unordered_flat_map.hpp>

#include "kura/base/utf8.h"
#include "kura/fhir/internal/intake_handler.h"
#include "kura/fhir/internal/key_set.h"
#include "kura/fhir/r4_tables.h"

namespace kura::fhir {
namespace {

Status BundleError(std::string diagnostics, std::string code = "structure",
                   std::string expression = "") {
  return InvalidArgumentError("The request body is not a valid batch or transaction Bundle")
      .WithDetail({std::move(code), std::move(diagnostics), std::move(expression)});
}

Status EntryProblem(size_t index, std::string_view element, std::string diagnostics,
                    std::string code = "structure") {
  std::string expression = "Bundle.entry[" + std::to_string(index) + "]";
  if (!element.empty()) expression += "." + std::string(element);
  return InvalidArgumentError("Bundle.entry[" + std::to_string(index) + "] is not a valid entry")
      .WithDetail({std::move(code), std::move(diagnostics), std::move(expression)});
}

using internal::KeyViewSet;

// What the SAX pass saw of one entry; turned into BundleEntry::problem at the end.
struct EntryFacts {
  bool not_object = false;
  bool full_url_bad = false;
  bool has_request = false;
  bool request_not_object = false;
  std::optional<std::string> method;
  bool method_bad = false;  // Present but not a string.
  std::optional<std::string> url;
  bool url_bad = false;
  bool condition_bad = false;  // ifMatch, ifNoneMatch, ifModifiedSince or ifNoneExist not a string.
  std::optional<std::string> if_modified_since;  // As written; checked at the end.
  enum class Resource : uint8_t { kAbsent, kObject, kOther } resource = Resource::kAbsent;
};

// Depths: 1 the Bundle, 2 Bundle.entry, 3 an entry, 4 an entry's request or resource; a resource's
// own level n is depth n + 3. Inside a resource nothing is copied: its extent in the body and the
// strings worth noting are positions in the text (InsituText).
class BundleHandler {
 public:
  BundleHandler(Bundle& bundle, std::vector<EntryFacts>& facts, const BundleLimits& limits,
                std::string_view body, const internal::InsituText& text)
      : bundle_(bundle),
        facts_(facts),
        limits_(limits),
        max_depth_(limits.max_depth + 3),
        body_(body),
        text_(text),
        compact_source_(internal::IsCompactWithoutEscapes(body)
                            ? std::optional<std::string_view>(body)
                            : std::nullopt) {}

  bool Null() {
    if (!capturing()) return Scalar(ScalarKind::kOther, {});
    ForwardToIntake([](internal::IntakeHandler& h) { return h.Null(); });
    return true;
  }
  bool Bool(bool b) {
    if (!capturing()) return Scalar(ScalarKind::kOther, {});
    ForwardToIntake([b](internal::IntakeHandler& h) { return h.Bool(b); });
    return true;
  }
  bool Int(int) { return Fail("internal: number outside raw mode"); }
  bool Uint(unsigned) { return Fail("internal: number outside raw mode"); }
  bool Int64(int64_t) { return Fail("internal: number outside raw mode"); }
  bool Uint64(uint64_t) { return Fail("internal: number outside raw mode"); }
  bool Double(double) { return Fail("internal: number outside raw mode"); }
  bool RawNumber(const char* text, rapidjson::SizeType length, bool copy) {
    if (!capturing()) return Scalar(ScalarKind::kOther, {});
    ForwardToIntake([&](internal::IntakeHandler& h) { return h.RawNumber(text, length, copy); });
    return true;
  }
  bool String(const char* text, rapidjson::SizeType length, bool copy) {
    std::string_view value(text, length);
    if (!capturing()) {
      if (!internal::DecodedIsUtf8(text, length)) return Fail(internal::kLoneSurrogate);
      return Scalar(ScalarKind::kString, value);
    }
    ForwardToIntake([&](internal::IntakeHandler& h) { return h.String(text, length, copy); });
    return CaptureString(value, text_.OffsetOf(text));
  }

  bool StartObject() {
    if (!Enter()) return false;
    if (capturing()) {
      ForwardToIntake([](internal::IntakeHandler& h) { return h.StartObject(); });
      return true;
    }
    keys_[depth_ - 1].Clear();
    if (depth_ == 1) return true;
    if (depth_ == 2) {
      if (path_[0] == "entry") entry_bad_ = true;
      return true;
    }
    if (depth_ == 3 && in_entries_) return StartEntry(false);
    if (depth_ == 5 && in_request_) RequestMember(false, {});
    if (depth_ == 4 && InEntry()) {
      const std::string_view key = path_[2];
      if (key == "request") {
        facts_.back().has_request = true;
        in_request_ = true;
      } else if (key == "resource") {
        facts_.back().resource = EntryFacts::Resource::kObject;
        capture_depth_ = depth_;
        capture_start_ = text_.Tell();  // The reader calls StartObject at the '{'.
        intake_document_ = ResourceDocument();
        intake_.emplace(intake_document_, limits_.max_depth, text_, compact_source_);
        ForwardToIntake([](internal::IntakeHandler& h) { return h.StartObject(); });
      }
    }
    return true;
  }
  bool Key(const char* text, rapidjson::SizeType length, bool copy) {
    std::string_view key(text, length);
    path_[depth_ - 1] = key;
    if (capturing()) {
      ForwardToIntake([&](internal::IntakeHandler& h) { return h.Key(text, length, copy); });
      return true;
    }
    if (!internal::DecodedIsUtf8(text, length)) return Fail(internal::kLoneSurrogate);
    if (!keys_[depth_ - 1].Insert(key)) {
      return Fail("duplicate JSON key \"" + std::string(key.substr(0, 64)) +
                  (key.size() > 64 ? "...\"" : "\""));
    }
    return true;
  }
  bool EndObject(rapidjson::SizeType members) {
    if (capturing()) {
      ForwardToIntake([members](internal::IntakeHandler& h) { return h.EndObject(members); });
    }
    if (capturing() && depth_ == capture_depth_) {
      // The reader calls EndObject at the '}'.
      BundleEntry& entry = bundle_.entries.back();
      entry.resource = body_.substr(capture_start_, text_.Tell() + 1 - capture_start_);
      capture_depth_ = 0;
      if (intake_) {
        intake_->Finish();
        entry.document = std::move(intake_document_);
        intake_.reset();
      }
    } else if (!capturing() && depth_ == 4 && in_request_) {
      in_request_ = false;
    }
    --depth_;
    return true;
  }
  bool StartArray() {
    if (!Enter()) return false;
    path_[depth_ - 1] = {};
    if (capturing()) {
      ForwardToIntake([](internal::IntakeHandler& h) { return h.StartArray(); });
      return true;
    }
    if (depth_ == 1) return Fail("a Bundle must be a JSON object");
    if (depth_ == 2) {
      if (path_[0] == "entry") in_entries_ = true;
      return true;
    }
    if (depth_ == 3 && in_entries_) return StartEntry(true);
    if (depth_ == 4 && InEntry()) NonObjectMember();
    if (depth_ == 5 && in_request_) RequestMember(false, {});
    return true;
  }
  bool EndArray(rapidjson::SizeType elements) {
    if (capturing()) {
      ForwardToIntake([elements](internal::IntakeHandler& h) { return h.EndArray(elements); });
    }
    if (!capturing() && depth_ == 2 && in_entries_) in_entries_ = false;
    --depth_;
    return true;
  }

  const std::string& failure() const { return failure_; }
  const std::string& failure_expression() const { return failure_expression_; }
  bool too_many() const { return too_many_; }
  const std::optional<std::string>& resource_type() const { return resource_type_; }
  const std::optional<std::string>& type() const { return type_; }
  bool resource_type_bad() const { return resource_type_bad_; }
  bool type_bad() const { return type_bad_; }
  bool entry_bad() const { return entry_bad_; }

 private:
  enum class ScalarKind : uint8_t { kString, kOther };

  bool capturing() const { return capture_depth_ != 0; }

  // Hands a SAX event inside the captured resource to intake. A failure there (a duplicate key)
  // only drops the entry's document: the entry's text is then read again on its own, which
  // reports the problem as a resource body's would.
  template <typename Event>
  void ForwardToIntake(Event event) {
    if (intake_ && !event(*intake_)) intake_.reset();
  }
  bool InEntry() const { return in_entries_ && !bundle_.entries.empty(); }

  bool Fail(std::string why, std::string expression = "") {
    if (failure_.empty()) {
      failure_ = std::move(why);
      failure_expression_ = std::move(expression);
    }
    return false;
  }
  bool Enter() {
    if (depth_ >= max_depth_) return Fail("JSON nesting is deeper than the limit");
    ++depth_;
    if (keys_.size() < depth_) {
      keys_.resize(depth_);
      path_.resize(depth_);
    }
    path_[depth_ - 1] = {};
    return true;
  }

  bool StartEntry(bool array) {
    if (bundle_.entries.size() >= limits_.max_entries) {
      too_many_ = true;
      return Fail("the Bundle has more than " + std::to_string(limits_.max_entries) + " entries");
    }
    BundleEntry& entry = bundle_.entries.emplace_back();
    entry.index = bundle_.entries.size() - 1;
    EntryFacts& facts = facts_.emplace_back();
    facts.not_object = array;
    return true;
  }

  // A value at depth 4 of an entry that is not an object where one is expected.
  void NonObjectMember() {
    const std::string_view key = path_[2];
    if (key == "request") {
      facts_.back().has_request = true;
      facts_.back().request_not_object = true;
    } else if (key == "resource") {
      facts_.back().resource = EntryFacts::Resource::kOther;
    }
  }

  // A member of an entry's request: a string goes where it belongs; anything else (a number, an
  // object, an array) marks the member bad.
  void RequestMember(bool is_string, std::string_view value) {
    const std::string_view key = path_[3];
    EntryFacts& facts = facts_.back();
    BundleEntry& entry = bundle_.entries.back();
    auto take = [&](std::optional<std::string>& target, bool& bad) {
      if (is_string) {
        target = std::string(value);
      } else {
        bad = true;
      }
    };
    if (key == "method") {
      take(facts.method, facts.method_bad);
    } else if (key == "url") {
      take(facts.url, facts.url_bad);
    } else if (key == "ifMatch") {
      take(entry.if_match, facts.condition_bad);
    } else if (key == "ifNoneExist") {
      take(entry.if_none_exist, facts.condition_bad);
    } else if (key == "ifNoneMatch") {
      take(entry.if_none_match, facts.condition_bad);
    } else if (key == "ifModifiedSince") {
      take(facts.if_modified_since, facts.condition_bad);
    }
  }

  bool Scalar(ScalarKind kind, std::string_view value) {
    if (depth_ == 0) return Fail("a Bundle must be a JSON object");
    const bool is_string = kind == ScalarKind::kString;
    if (depth_ == 1) {
      const std::string_view key = path_[0];
      if (key == "resourceType") {
        if (is_string) {
          resource_type_ = std::string(value);
        } else {
          resource_type_bad_ = true;
        }
      } else if (key == "type") {
        if (is_string) {
          type_ = std::string(value);
        } else {
          type_bad_ = true;
        }
      } else if (key == "entry") {
        entry_bad_ = true;
      }
      return true;
    }
    if (depth_ == 2 && in_entries_) return StartEntry(true);
    if (depth_ == 3 && InEntry()) {
      const std::string_view key = path_[2];
      if (key == "fullUrl") {
        if (is_string) {
          bundle_.entries.back().full_url = std::string(value);
        } else {
          facts_.back().full_url_bad = true;
        }
      } else if (key == "request" || key == "resource") {
        NonObjectMember();
      }
      return true;
    }
    if (depth_ == 4 && in_request_ && InEntry()) RequestMember(is_string, value);
    return true;
  }

  // A string inside the resource being captured, whose text begins at `value_offset` of the body:
  // noted when it may name another entry.
  bool CaptureString(std::string_view value, size_t value_offset) {
    BundleEntry& entry = bundle_.entries.back();
    const std::string_view key = path_[depth_ - 1];
    const bool reference = key == "reference";
    if (depth_ == capture_depth_ && key == "resourceType") entry.resource_type = std::string(value);
    if (!reference && !value.starts_with("urn:") && !value.starts_with("http")) return true;
    // The token opens just before `value_offset`. Without escapes it is the value between quotes;
    // with them it is longer and closes at the first quote that is not part of an escape.
    const size_t start = value_offset - 1;
    size_t close = value_offset + value.size();
    const bool escaped = close >= body_.size() || body_[close] != '"' ||
                         body_.substr(value_offset, value.size()).find('\\') != body_.npos;
    if (escaped) {
      close = value_offset;
      while (close < body_.size() && body_[close] != '"') {
        close += body_[close] == '\\' ? 2 : 1;  // An escape: the backslash and what it escapes.
      }
      if (close >= body_.size()) return Fail("internal: string out of range");
    }
    const size_t end = close + 1;
    entry.links.push_back({static_cast<uint32_t>(start - capture_start_),
                           static_cast<uint32_t>(end - start), reference, escaped});
    return true;
  }

  Bundle& bundle_;
  std::vector<EntryFacts>& facts_;
  const BundleLimits& limits_;
  const size_t max_depth_;
  const std::string_view body_;
  const internal::InsituText& text_;
  size_t depth_ = 0;
  // Keys point into the in-situ copy (InsituText), which outlives the walk.
  std::vector<KeyViewSet> keys_;        // Per open container, outside captured resources.
  std::vector<std::string_view> path_;  // Current key per open object; "" for arrays.
  bool in_entries_ = false;
  bool in_request_ = false;
  size_t capture_depth_ = 0;  // Depth of the resource being captured; 0 when none.
  size_t capture_start_ = 0;  // Offset of its '{' in the body.
  // The body when intake may cut member values out of it (see IsCompactWithoutEscapes).
  const std::optional<std::string_view> compact_source_;
  // Intake of the resource being captured, until it ends or intake refuses it.
  std::optional<internal::IntakeHandler> intake_;
  ResourceDocument intake_document_;
  std::optional<std::string> resource_type_;
  std::optional<std::string> type_;
  bool resource_type_bad_ = false;
  bool type_bad_ = false;
  bool entry_bad_ = false;
  bool too_many_ = false;
  std::string failure_;
  std::string failure_expression_;
};

std::optional<EntryMethod> MethodOf(std::string_view text) {
  static constexpr std::array<std::pair<std::string_view, EntryMethod>, 6> kMethods = {{
      {"DELETE", EntryMethod::kDelete},
      {"POST", EntryMethod::kPost},
      {"PUT", EntryMethod::kPut},
      {"PATCH", EntryMethod::kPatch},
      {"GET", EntryMethod::kGet},
      {"HEAD", EntryMethod::kHead},
  }};
  for (const auto& [name, method] : kMethods) {
    if (name == text) return method;
  }
  return std::nullopt;
}

// The first structural problem of an entry, from what the SAX pass saw.
Status CheckEntry(BundleEntry& entry, const EntryFacts& facts, std::string_view base) {
  const size_t i = entry.index;
  if (facts.not_object) return EntryProblem(i, "", "each entry must be a JSON object");
  if (facts.full_url_bad) return EntryProblem(i, "fullUrl", "fullUrl must be a string");
  if (!facts.has_request) {
    return EntryProblem(i, "request", "each entry of a batch or transaction needs a request",
                        "required");
  }
  if (facts.request_not_object) return EntryProblem(i, "request", "request must be an object");
  if (facts.method_bad || !facts.method) {
    return EntryProblem(i, "request.method", "request.method is missing or not a string",
                        "required");
  }
  entry.method = MethodOf(*facts.method);
  if (!entry.method) {
    return EntryProblem(i, "request.method",
                        "request.method must be GET, HEAD, POST, PUT, PATCH or DELETE", "value");
  }
  if (facts.url_bad || !facts.url) {
    return EntryProblem(i, "request.url", "request.url is missing or not a string", "required");
  }
  if (facts.condition_bad) {
    return EntryProblem(i, "request",
                        "request.ifMatch, ifNoneMatch, ifModifiedSince and ifNoneExist must be "
                        "strings");
  }
  if (facts.if_modified_since) {
    // An instant: a time with its zone, not just a date.
    if (facts.if_modified_since->find('T') != std::string::npos) {
      entry.if_modified_since = ParseInstant(*facts.if_modified_since);
    }
    if (!entry.if_modified_since) {
      return EntryProblem(i, "request.ifModifiedSince",
                          "request.ifModifiedSince must be a FHIR instant", "value");
    }
  }
  entry.url = *facts.url;
  StatusOr<EntryTarget> target = ParseEntryUrl(entry.url, base);
  if (!target.ok()) return EntryProblem(i, "request.url", target.status().message(), "value");
  entry.target = std::move(*target);
  using Kind = EntryTarget::Kind;
  const Kind kind = entry.target.kind;
  const bool conditional =
      kind == Kind::kType && entry.target.query && !entry.target.query->empty();
  switch (*entry.method) {
    case EntryMethod::kPost:
      if (kind == Kind::kInstance || kind == Kind::kVersion || conditional) {
        return EntryProblem(i, "request.url",
                            "a POST entry's request.url is a resource type, e.g. 'Patient'",
                            "value");
      }
      break;
    case EntryMethod::kPut:
    case EntryMethod::kPatch:
    case EntryMethod::kDelete:
      if (kind == Kind::kVersion || (kind == Kind::kType && !conditional)) {
        return EntryProblem(i, "request.url",
                            "a " + std::string(EntryMethodName(*entry.method)) +
                                " entry's request.url is 'Type/id' or a conditional 'Type?query'",
                            "value");
      }
      break;
    case EntryMethod::kGet:
    case EntryMethod::kHead:
      break;
  }
  const bool needs_resource = *entry.method == EntryMethod::kPost ||
                              *entry.method == EntryMethod::kPut ||
                              *entry.method == EntryMethod::kPatch;
  if (needs_resource && facts.resource == EntryFacts::Resource::kAbsent) {
    return EntryProblem(
        i, "resource",
        "a " + std::string(EntryMethodName(*entry.method)) + " entry needs a resource", "required");
  }
  if (facts.resource == EntryFacts::Resource::kOther) {
    return EntryProblem(i, "resource", "resource must be a JSON object");
  }
  return Status::Ok();
}

bool IsBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  return c == '+' ? 62 : 63;
}

// Standard base64 (RFC 4648 section 4); whitespace is skipped (FHIR base64Binary allows it),
// padding is optional. nullopt when anything else is wrong.
std::optional<std::string> DecodeBase64(std::string_view text) {
  std::string out;
  out.reserve(text.size() / 4 * 3 + 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t padding = 0;
  size_t symbols = 0;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    if (padding != 0 || !IsBase64Char(c)) return std::nullopt;
    ++symbols;
    acc = (acc << 6) | static_cast<uint32_t>(Base64Value(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (symbols % 4 == 1 || padding > 2) return std::nullopt;
  if (padding != 0 && (symbols + padding) % 4 != 0) return std::nullopt;
  return out;
}

std::string_view BaseMedia(std::string_view media) {
  media = media.substr(0, media.find(';'));
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  while (!media.empty() && media.front() == ' ') media.remove_prefix(1);
  return media;
}

}  // namespace

std::string_view EntryMethodName(EntryMethod method) {
  switch (method) {
    case EntryMethod::kDelete:
      return "DELETE";
    case EntryMethod::kPost:
      return "POST";
    case EntryMethod::kPut:
      return "PUT";
    case EntryMethod::kPatch:
      return "PATCH";
    case EntryMethod::kGet:
      return "GET";
    case EntryMethod::kHead:
      return "HEAD";
  }
  return "";
}

StatusOr<EntryTarget> ParseEntryUrl(std::string_view url, std::string_view base) {
  if (!base.empty() && url.starts_with(base) &&
      (url.size() == base.size() || url[base.size()] == '/' || url[base.size()] == '?')) {
    url.remove_prefix(base.size());
  }
  if (url.find("://") != std::string_view::npos) {
    return InvalidArgumentError("request.url must be relative to this server's FHIR base");
  }
  if (url.starts_with('/')) url.remove_prefix(1);
  EntryTarget target;
  std::string_view path = url;
  if (size_t q = url.find('?'); q != std::string_view::npos) {
    path = url.substr(0, q);
    target.query = std::string(url.substr(q + 1));
  }
  if (path.empty()) return InvalidArgumentError("request.url names no resource type");
  std::vector<std::string_view> segments;
  for (size_t start = 0;;) {
    size_t slash = path.find('/', start);
    std::string_view segment = path.substr(start, slash - start);
    if (segment.empty()) return InvalidArgumentError("request.url has an empty path segment");
    segments.push_back(segment);
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  auto special = [](std::string_view s) { return s.starts_with('$') || s.starts_with('_'); };
  target.type = std::string(segments[0]);
  if (special(segments[0])) {
    target.kind = EntryTarget::Kind::kOther;
  } else if (segments.size() == 1) {
    target.kind = EntryTarget::Kind::kType;
  } else if (segments.size() == 2 && !special(segments[1])) {
    target.kind = EntryTarget::Kind::kInstance;
    target.id = std::string(segments[1]);
  } else if (segments.size() == 4 && !special(segments[1]) && segments[2] == "_history") {
    int64_t version = 0;
    for (char c : segments[3]) {
      if (c < '0' || c > '9' || version > (INT64_MAX - 9) / 10) {
        return InvalidArgumentError("the version in request.url must be a positive integer");
      }
      version = version * 10 + (c - '0');
    }
    if (version < 1) {
      return InvalidArgumentError("the version in request.url must be a positive integer");
    }
    target.kind = EntryTarget::Kind::kVersion;
    target.id = std::string(segments[1]);
    target.version = version;
  } else {
    target.kind = EntryTarget::Kind::kOther;
  }
  return target;
}

StatusOr<Bundle> ParseBundle(std::string_view body, const BundleLimits& limits) {
  if (body.empty()) return BundleError("the request body is empty", "required");
  // Checked once for the whole body (the entries cut out of it are not checked again), eight
  // bytes at a time rather than by the reader a byte at a time.
  if (size_t bad = FindInvalidUtf8(body); bad != std::string_view::npos) {
    return BundleError("the body is not valid UTF-8 (byte " + std::to_string(bad) + ")");
  }
  Bundle bundle;
  std::vector<EntryFacts> facts;
  internal::InsituText text(body);
  BundleHandler handler(bundle, facts, limits, body, text);
  rapidjson::Reader reader;
  rapidjson::ParseResult result = reader.Parse<internal::kIntakeParseFlags>(text.stream(), handler);
  if (result.IsError()) {
    if (handler.too_many()) {
      return ResourceExhaustedError("The Bundle has too many entries")
          .WithDetail({"too-long", handler.failure(), "Bundle.entry"});
    }
    if (!handler.failure().empty()) {
      return BundleError(handler.failure(), "structure", handler.failure_expression());
    }
    const std::string at = " (byte " + std::to_string(result.Offset()) + ")";
    return BundleError(std::string("malformed JSON: ") +
                       rapidjson::GetParseError_En(result.Code()) + at);
  }
  if (text.Tell() != body.size()) {
    return BundleError("malformed JSON: unexpected data after the Bundle (byte " +
                       std::to_string(text.Tell()) + ")");
  }
  if (handler.resource_type_bad() || !handler.resource_type()) {
    return BundleError("resourceType is missing or not a string", "required", "resourceType");
  }
  if (*handler.resource_type() != "Bundle") {
    return BundleError("only a Bundle (of type batch or transaction) can be posted to the base",
                       "value", "resourceType");
  }
  if (handler.type_bad() || !handler.type()) {
    return BundleError("Bundle.type is missing or not a string", "required", "Bundle.type");
  }
  if (*handler.type() == "batch") {
    bundle.type = BundleType::kBatch;
  } else if (*handler.type() == "transaction") {
    bundle.type = BundleType::kTransaction;
  } else {
    return BundleError("Bundle.type must be batch or transaction to be posted to the base", "value",
                       "Bundle.type");
  }
  if (handler.entry_bad())
    return BundleError("Bundle.entry must be an array", "structure", "Bundle.entry");
  for (size_t i = 0; i < bundle.entries.size(); ++i) {
    bundle.entries[i].problem = CheckEntry(bundle.entries[i], facts[i], limits.base);
  }
  return bundle;
}

std::vector<size_t> ProcessingOrder(const Bundle& bundle) {
  std::vector<size_t> order(bundle.entries.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto rank = [&bundle](size_t i) {
    const std::optional<EntryMethod>& m = bundle.entries[i].method;
    if (!m) return 6;
    switch (*m) {
      case EntryMethod::kDelete:
        return 0;
      case EntryMethod::kPost:
        return 1;
      case EntryMethod::kPut:
      case EntryMethod::kPatch:
        return 2;
      case EntryMethod::kGet:
      case EntryMethod::kHead:
        return 3;
    }
    return 6;
  };
  std::stable_sort(order.begin(), order.end(),
                   [&rank](size_t a, size_t b) { return rank(a) < rank(b); });
  return order;
}

Status EntryStatus(const Status& status, size_t index, std::string_view default_element) {
  const std::string prefix = "Bundle.entry[" + std::to_string(index) + "]";
  auto relative = [&](std::string_view expression) -> std::string {
    if (expression.empty()) {
      return default_element.empty() ? prefix : prefix + "." + std::string(default_element);
    }
    if (expression.starts_with("Bundle.entry[")) return std::string(expression);
    // "Observation.subject" -> "<prefix>.resource.subject"; "resourceType" ->
    // ".resource.resourceType"
    std::string_view head = expression.substr(0, expression.find_first_of(".["));
    if (IsR4ResourceType(head)) {
      return prefix + ".resource" + std::string(expression.substr(head.size()));
    }
    return prefix + ".resource." + std::string(expression);
  };
  Status out(status.code(), status.message(), status.internal_detail());
  if (status.details().empty()) {
    return std::move(out).WithDetail({"", status.message(), relative("")});
  }
  for (const StatusDetail& d : status.details()) {
    out = std::move(out).WithDetail({d.issue_code, d.diagnostics, relative(d.expression)});
  }
  return out;
}

bool FullUrlIndex::Add(std::string_view full_url, std::string_view type, std::string_view id) {
  std::string target(type);
  target += '/';
  target += id;
  return tokens_.emplace(std::string(full_url), JsonString(target)).second;
}

std::string LinkValue(const BundleEntry& entry, const LinkString& link) {
  std::string_view token = entry.resource.substr(link.offset, link.size);
  if (!link.escaped) return std::string(token.substr(1, token.size() - 2));
  try {
    return Json::parse(token).get<std::string>();
  } catch (const Json::exception&) {
    return "";  // Cannot happen: the reader validated the token as a JSON string.
  }
}

StatusOr<std::optional<std::string>> FullUrlIndex::Rewrite(const BundleEntry& entry) const {
  const std::string_view text = entry.resource;
  std::string out;
  size_t copied = 0;  // text[0, copied) is in `out`.
  bool changed = false;
  for (const LinkString& link : entry.links) {
    std::string escaped_value;
    std::string_view value = text.substr(link.offset + 1, link.size - 2);
    if (link.escaped) {
      escaped_value = LinkValue(entry, link);
      value = escaped_value;
    }
    auto it = tokens_.find(value);
    if (it == tokens_.end()) {
      if (link.reference && (value.starts_with("urn:uuid:") || value.starts_with("urn:oid:"))) {
        return InvalidArgumentError("a reference names no entry of the transaction")
            .WithDetail({"not-found",
                         "the reference \"" + std::string(value.substr(0, 100)) +
                             (value.size() > 100 ? "...\"" : "\"") +
                             " matches the fullUrl of no entry in this transaction",
                         "Bundle.entry[" + std::to_string(entry.index) + "].resource"});
      }
      continue;
    }
    if (!changed) {
      out.reserve(text.size() + 64);
      changed = true;
    }
    out.append(text, copied, link.offset - copied);
    out += it->second;
    copied = link.offset + link.size;
  }
  if (!changed) return std::optional<std::string>();
  out.append(text, copied, std::string_view::npos);
  return std::optional<std::string>(std::move(out));
}

Status CheckDistinctTargets(const Bundle& bundle, std::span<const std::string> targets) {
  boost::unordered_flat_map<std::string_view, size_t> written;
  boost::unordered_flat_map<std::string_view, size_t> full_urls;
  for (size_t i = 0; i < bundle.entries.size(); ++i) {
    const BundleEntry& entry = bundle.entries[i];
    if (i < targets.size() && !targets[i].empty()) {
      auto [it, fresh] = written.emplace(targets[i], i);
      if (!fresh) {
        return InvalidArgumentError("Two entries of the transaction touch the same resource")
            .WithDetail({"business-rule",
                         "entries " + std::to_string(it->second) + " and " + std::to_string(i) +
                             " both write " + targets[i] +
                             ": a transaction may touch each resource once",
                         "Bundle.entry[" + std::to_string(i) + "]"});
      }
    }
    if (entry.full_url) {
      auto [it, fresh] = full_urls.emplace(*entry.full_url, i);
      if (!fresh) {
        return InvalidArgumentError("Two entries of the transaction have the same fullUrl")
            .WithDetail({"business-rule",
                         "entries " + std::to_string(it->second) + " and " + std::to_string(i) +
                             " have the same fullUrl",
                         "Bundle.entry[" + std::to_string(i) + "].fullUrl"});
      }
    }
  }
  return Status::Ok();
}

StatusOr<std::string> JsonPatchOfEntry(const BundleEntry& entry) {
  if (entry.resource_type == "Parameters") {
    return UnimplementedError(
               "FHIRPath Patch is not supported: send a JSON Patch in a Binary resource")
        .WithDetail({"not-supported",
                     "FHIRPath Patch (a Parameters resource) is not supported; a PATCH entry's "
                     "resource must be a Binary with contentType application/json-patch+json",
                     "Parameters"});
  }
  if (entry.resource_type != "Binary") {
    return InvalidArgumentError("a PATCH entry's resource must be a Binary holding a JSON Patch")
        .WithDetail({"invalid",
                     "a PATCH entry's resource must be a Binary with contentType "
                     "application/json-patch+json",
                     ""});
  }
  KURA_ASSIGN_OR_RETURN(ResourceDocument binary,
                        ParseResourceDocument(entry.resource, {.max_depth = 1024}));
  const JsonMember* content_type = binary.Find("contentType");
  if (content_type == nullptr || !content_type->string_value ||
      BaseMedia(*content_type->string_value) != "application/json-patch+json") {
    return InvalidArgumentError("a PATCH entry's Binary must hold a JSON Patch")
        .WithDetail({"invalid", "Binary.contentType must be application/json-patch+json",
                     "Binary.contentType"});
  }
  const JsonMember* data = binary.Find("data");
  if (data == nullptr || !data->string_value) {
    return InvalidArgumentError("a PATCH entry's Binary must hold a JSON Patch")
        .WithDetail({"required", "Binary.data must hold the base64 of the JSON Patch document",
                     "Binary.data"});
  }
  std::optional<std::string> document = DecodeBase64(*data->string_value);
  if (!document) {
    return InvalidArgumentError("a PATCH entry's Binary must hold a JSON Patch")
        .WithDetail({"value", "Binary.data is not valid base64", "Binary.data"});
  }
  return std::move(*document);
}

}  // namespace kura::fhir
