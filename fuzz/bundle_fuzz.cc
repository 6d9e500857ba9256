// Fuzz target: a batch or transaction Bundle as the base endpoint reads it. ParseBundle, then per
// entry what the transaction does before any write: the processing order, the fullUrl index and
// each entry's reference rewriting, a PATCH entry's patch document, and the distinct-target check.
// Any input may be refused; none may crash or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kura/fhir/bundle.h"
#include "kura/fhir/json_patch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kura::fhir;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  BundleLimits limits;
  limits.max_entries = 64;
  limits.base = "https://kura.test/fhir/R4";
  kura::StatusOr<Bundle> bundle = ParseBundle(body, limits);
  if (!bundle.ok()) return 0;
  (void)ProcessingOrder(*bundle);
  FullUrlIndex full_urls;
  std::vector<std::string> targets;
  for (const BundleEntry& entry : bundle->entries) {
    (void)ParseEntryUrl(entry.url, limits.base);
    targets.emplace_back();
    if (!entry.problem.ok()) continue;
    if (!entry.target.id.empty()) targets.back() = entry.target.type + "/" + entry.target.id;
    if (entry.full_url) {
      (void)full_urls.Add(*entry.full_url, entry.resource_type,
                          entry.target.id.empty() ? "new" : entry.target.id);
    }
    if (entry.method == EntryMethod::kPatch) {
      kura::StatusOr<std::string> patch = JsonPatchOfEntry(entry);
      if (patch.ok()) (void)ParseJsonPatch(*patch, JsonLimits{});
    }
  }
  for (size_t i = 0; i < bundle->entries.size(); ++i) {
    (void)full_urls.Rewrite(bundle->entries[i]);
    (void)EntryStatus(kura::InvalidArgumentError("fuzz"), i);
  }
  (void)CheckDistinctTargets(*bundle, targets);
  return 0;
}
