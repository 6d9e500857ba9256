// The R4 element model the FHIRPath compiler (fhirpath.h) types paths with: every element of the
// searchable resource types and of the data types reachable from them, and the specialization
// bases of the data types. Generated into r4_search_params.cc by tools/r4/gen_r4_search_params.mjs.
// Views of constant static storage; thread-safe.
#pragma once

#include <span>
#include <string_view>

namespace kura::fhir::internal {

// One element definition. `owner` is a type name ("Quantity", "Observation") or the path of a
// backbone element ("Observation.component"); `name` is the element name without "[x]"; `types`
// lists its type codes separated by '|' (for a backbone element its own path, for a
// contentReference the referenced path). A choice element ("value[x]") appears in JSON as the name
// followed by the capitalized type code ("valueQuantity").
struct R4Element {
  std::string_view owner;
  std::string_view name;
  bool choice;
  std::string_view types;
};

// A data type and the type it specializes (Age -> Quantity, code -> string).
struct R4TypeBase {
  std::string_view type;
  std::string_view base;
};

// Sorted by (owner, name).
std::span<const R4Element> R4Elements();
std::span<const R4TypeBase> R4TypeBases();

}  // namespace kura::fhir::internal
