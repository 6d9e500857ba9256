// Fuzz target: a resource body through intake as a create runs it. The body is parsed and checked
// as JSON (ParseResourceDocument), validated against the R4 definitions and, when valid, stamped
// with the server's fields, read back as a stored version is, its compartments found and its
// search values extracted. Any input may be refused; none may crash or trip a sanitizer, and a
// stamped resource must parse again (the server stores exactly that text).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "kura/fhir/json.h"
#include "kura/fhir/resource.h"
#include "kura/fhir/search_params.h"
#include "kura/fhir/validator.h"
#include "property.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kura::fhir;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  kura::StatusOr<ResourceDocument> document = ParseResourceDocument(body, JsonLimits{});
  if (!document.ok()) return 0;
  static const R4Validator validator;
  const kura::Status valid = validator.Validate(*document);
  (void)OperationOutcomeFor(valid);
  const JsonMember* type = document->Find("resourceType");
  if (type == nullptr || !type->string_value) return 0;
  if (!CheckIdentity(*document, *type->string_value, std::nullopt).ok()) return 0;
  (void)PatientCompartments(*document);
  kura::StatusOr<std::string> stamped =
      StampServerFields(*document, "fuzz", 1, kura::TimePoint(std::chrono::microseconds(0)));
  if (!stamped.ok()) return 0;
  kura::StatusOr<ResourceDocument> stored = ParseResourceDocument(*stamped, JsonLimits{});
  if (!stored.ok()) {
    std::fprintf(stderr, "%s\n", stored.status().ToString().c_str());
    PropertyBroken("a stamped resource does not parse");
  }
  if (!valid.ok()) return 0;
  if (IsSearchableResourceType(*type->string_value)) {
    if (!ExtractSearchValues(*stamped, "https://kura.test/fhir/R4").ok()) {
      PropertyBroken("search values of a valid resource cannot be extracted");
    }
  }
  return 0;
}
