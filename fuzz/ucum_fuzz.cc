// Fuzz target: UCUM unit codes (a stored quantity's code, a quantity search's unit), reduced to
// base units by CanonicalUcum. Beyond "no crash": a code that converts has a finite positive
// factor; its base unit is itself a UCUM code of factor 1, offset 0 and the same dimension; and
// its reciprocal "/(code)", when that converts, has the inverse factor and dimension.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "kura/fhir/ucum.h"
#include "property.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string code(reinterpret_cast<const char*>(data), size);
  kura::StatusOr<kura::fhir::UcumCanonical> canonical = kura::fhir::CanonicalUcum(code);
  if (!canonical.ok()) return 0;
  if (!std::isfinite(canonical->factor) || canonical->factor <= 0) {
    PropertyBroken("a converted code has a factor that is not finite and positive");
  }
  if (!std::isfinite(canonical->ToBase(1))) PropertyBroken("one unit has no finite base value");

  kura::StatusOr<kura::fhir::UcumCanonical> base = kura::fhir::CanonicalUcum(canonical->unit);
  if (!base.ok()) PropertyBroken("the base unit is not a UCUM code");
  if (base->factor != 1 || base->offset != 0 || base->dimension != canonical->dimension ||
      base->unit != canonical->unit) {
    PropertyBroken("the base unit does not convert to itself");
  }

  if (canonical->offset != 0) return 0;  // Degrees on an offset scale do not divide.
  kura::StatusOr<kura::fhir::UcumCanonical> inverse = kura::fhir::CanonicalUcum("/(" + code + ")");
  if (!inverse.ok()) return 0;  // Nested too deep, or too long, once wrapped.
  const double product = inverse->factor * canonical->factor;
  if (std::fabs(product - 1) > 1e-9) PropertyBroken("the reciprocal's factor is not the inverse");
  for (size_t i = 0; i < inverse->dimension.size(); ++i) {
    if (inverse->dimension[i] != -canonical->dimension[i]) {
      PropertyBroken("the reciprocal's dimension is not the negated dimension");
    }
  }
  return 0;
}
