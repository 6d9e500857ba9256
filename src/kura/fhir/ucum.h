// UCUM unit codes (https://ucum.org/ucum) reduced to base units, so that quantities written in
// different units compare: 1 kg is 1000 g, 5.4 mmol/L is 5.4e-3 mol per 1e-3 m3, 98.6 [degF] is
// 310.15 K. Search indexes the base value of every quantity coded in UCUM beside its value as
// written, and a search in UCUM units compares base values (FHIR R4, search "Quantity").
//
// Supported: the full expression grammar (products ".", quotients "/", a leading "/", integer
// exponents, integer factors, parentheses, annotations "{...}", which count as 1), the prefixes
// and every atom of the specification; degrees Celsius, Fahrenheit and Réaumur when alone. Not
// converted, with a reason: arbitrary units ([iU], [arb'U]: comparable only with themselves),
// logarithmic and other special units ([pH], dB, B[SPL]), and special units inside an expression.
// The mole and the equivalent are kept as dimensions of their own (UCUM counts a mole as the
// number 6.0221367e23), so mmol/L and 10*3/uL do not compare, nor mmol/L and meq/L. Thread-safe, no
// allocation beyond the result.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "kura/base/status.h"

namespace kura::fhir {

inline constexpr std::string_view kUcumSystem = "http://unitsofmeasure.org";

// A unit in base units: base value = value × factor + offset (the offset is non-zero for degrees
// Celsius, Fahrenheit and Réaumur only); `unit` names the dimension and is itself a UCUM code,
// e.g. "m-3.g", "K", "m-3.mol", or "1" for a number.
struct UcumCanonical {
  double factor = 1;
  double offset = 0;
  // Exponents of m, s, g, rad, K, C, cd, mol and eq.
  std::array<int, 9> dimension{};
  std::string unit;

  // The base value of `value`, rounded to 12 significant digits, so that one quantity written in
  // two units (0.3 kg, 300 g) gives the same base value despite the rounding of the factors.
  double ToBase(double value) const;
};

// The base units of a case-sensitive UCUM code ("mg/dL", "mm[Hg]", "10*3/uL", "Cel").
// InvalidArgument saying why when the code is not UCUM or cannot be converted.
StatusOr<UcumCanonical> CanonicalUcum(std::string_view code);

}  // namespace kura::fhir
