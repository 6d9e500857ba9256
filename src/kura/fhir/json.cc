// JSON intake on RapidJSON's SAX reader: validation, top-level split and compact re-writing in
// one pass, with a depth limit and duplicate-key detection.
#include "kura/fhir/json.h"

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <optional>
#include <unordered_set>

#include "kura/base/utf8.h"
#include "kura/fhir/internal/intake_handler.h"

namespace kura::fhir {
namespace {

using internal::CompactWriter;
using internal::IntakeHandler;
using internal::IsCompactWithoutEscapes;
using internal::StringSink;

Status JsonError(std::string diagnostics, std::string code = "structure") {
  return InvalidArgumentError("The request body is not a valid FHIR JSON resource")
      .WithDetail({std::move(code), std::move(diagnostics), ""});
}

}  // namespace

const JsonMember* ResourceDocument::Find(std::string_view key) const {
  for (const JsonMember& m : members) {
    if (m.key == key) return &m;
  }
  return nullptr;
}

StatusOr<ResourceDocument> ParseResourceDocument(std::string_view body, const JsonLimits& limits) {
  if (body.empty()) return JsonError("the request body is empty", "required");
  // Checked here, eight bytes at a time, rather than by the reader a byte at a time.
  if (size_t bad = limits.utf8_checked ? std::string_view::npos : FindInvalidUtf8(body);
      bad != std::string_view::npos) {
    return JsonError("the body is not valid UTF-8 (byte " + std::to_string(bad) + ")");
  }
  ResourceDocument doc;
  internal::InsituText text(body);
  IntakeHandler handler(
      doc, limits.max_depth, text,
      IsCompactWithoutEscapes(body) ? std::optional<std::string_view>(body) : std::nullopt);
  rapidjson::Reader reader;
  rapidjson::ParseResult result = reader.Parse<internal::kIntakeParseFlags>(text.stream(), handler);
  if (result.IsError()) {
    if (!handler.failure().empty()) return JsonError(handler.failure());
    const std::string at = " (byte " + std::to_string(result.Offset()) + ")";
    return JsonError(std::string("malformed JSON: ") + rapidjson::GetParseError_En(result.Code()) +
                     at);
  }
  // The reader stops at a NUL byte as if at the end; anything from there on is not JSON.
  if (text.Tell() != body.size()) {
    return JsonError("malformed JSON: unexpected data after the resource (byte " +
                     std::to_string(text.Tell()) + ")");
  }
  handler.Finish();
  return doc;
}

std::string JsonString(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  AppendJsonString(out, text);
  return out;
}

void AppendJsonString(std::string& out, std::string_view text) {
  // Most text (keys, ids) needs no escape at all: the writer would copy it between quotes.
  if (std::none_of(text.begin(), text.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\';
      })) {
    out += '"';
    out += text;
    out += '"';
    return;
  }
  StringSink sink{&out};
  CompactWriter writer(sink);
  writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
}

std::string SerializeJson(const Json& value) {
  // Strings were validated as UTF-8 on the way in; `replace` only guards internal values.
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace kura::fhir
