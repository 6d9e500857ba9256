// Fuzz target: PATCH with a JSON Patch document. The input is the patch document, a NUL byte and
// the stored resource it applies to (without a NUL, a fixed Patient). ParseJsonPatch, then
// ApplyJsonPatch; a patched result must be JSON, as intake reads it next. Any input
// may be refused; none may crash or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "kura/fhir/json.h"
#include "kura/fhir/json_patch.h"

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
  if (!nlohmann::json::accept(*patched)) {
    std::fprintf(stderr, "a patched resource is not JSON\n");
    std::abort();
  }
  return 0;
}
