// Fuzz target: PATCH with a JSON Patch document. The input is the patch document, a NUL byte and
// the stored resource it applies to (without a NUL, a fixed Patient). ParseJsonPatch, then
// ApplyJsonPatch; a patched result must be JSON, as intake reads it next. Any input
// may be refused; none may crash or trip a sanitizer.
#include <rapidjson/reader.h>
#include <rapidjson/stream.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kura/fhir/json.h"
#include "kura/fhir/json_patch.h"
#include "property.h"

namespace {

// JSON by RFC 8259's grammar, whatever a number's size: a patch may carry 1e400 (numbers are kept
// as their text), which intake reads and validation then refuses as out of range.
bool IsJson(const std::string& text) {
  rapidjson::Reader reader;
  rapidjson::BaseReaderHandler<> any;
  rapidjson::StringStream stream(text.c_str());
  return !reader.Parse<rapidjson::kParseNumbersAsStringsFlag>(stream, any).IsError() &&
         stream.Tell() == text.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kura::fhir;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\0');
  const std::string_view patch_text = input.substr(0, split);
  const std::string_view resource =
      split == std::string_view::npos
          ? std::string_view(R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"1",)"
                             R"("lastUpdated":"2024-01-01T00:00:00Z"},"name":[{"family":"Ng",)"
                             R"("given":["A","B"]}],"active":true,"multipleBirthInteger":2})")
          : input.substr(split + 1);
  kura::StatusOr<JsonPatch> patch = ParseJsonPatch(patch_text, JsonLimits{});
  if (!patch.ok()) return 0;
  kura::StatusOr<std::string> patched = ApplyJsonPatch(*patch, resource, JsonLimits{});
  if (!patched.ok()) return 0;
  if (!IsJson(*patched)) {
    PropertyBroken("a patched resource is not JSON");
  }
  return 0;
}
