// kura_ucum_tool: prints what Kura makes of UCUM codes, for the ucum-lhc oracle test
// (tests/ucum_oracle) and for looking at a unit by hand.
//
//   kura_ucum_tool < CODES
//       CODES holds one code a line; for each, one JSON line:
//       {"code", "factor", "offset", "dimension": [m, s, g, rad, K, C, cd, mol], "unit"} or
//       {"code", "error"}.
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "kura/fhir/ucum.h"

int main() {
  std::string code;
  while (std::getline(std::cin, code)) {
    nlohmann::json line = {{"code", code}};
    kura::StatusOr<kura::fhir::UcumCanonical> canonical = kura::fhir::CanonicalUcum(code);
    if (canonical.ok()) {
      line["factor"] = canonical->factor;
      line["offset"] = canonical->offset;
      line["dimension"] = canonical->dimension;
      line["unit"] = canonical->unit;
    } else {
      line["error"] = canonical.status().message();
    }
    std::cout << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  }
  return 0;
}
