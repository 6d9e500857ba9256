// The FHIR R4 (4.0.1) structure tables: for every primitive type, complex data type, resource and
// backbone element, the JSON member names its instances may have, with each one's type and
// cardinality, and which elements are required. R4Validator (validator.h) walks resources with
// them.
//
// The data lives in r4_structure.cc, generated from the official StructureDefinitions by
// tools/r4/gen_r4_structure.mjs (see tools/r4/README.md); edit the generator, not the table. Every
// returned pointer and span refers to constant static storage: no allocation, thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace kura::fhir {

enum class R4TypeKind : uint8_t {
  kPrimitive,    // boolean, string, date, ... (R4Type::primitive says which).
  kComplex,      // A data type: Quantity, CodeableConcept, Extension, Element, SimpleQuantity...
  kBackbone,     // An element with children of its own, named by its path: "Observation.component".
  kResource,     // A resource type: Patient, Observation, Bundle...
  kAnyResource,  // "Resource": any resource, as its own resourceType says (contained, Bundle
                 // entries, Parameters.parameter.resource).
};

enum class R4Primitive : uint8_t {
  kNone,  // Not a primitive type.
  kBase64Binary,
  kBoolean,
  kCanonical,
  kCode,
  kDate,
  kDateTime,
  kDecimal,
  kId,
  kInstant,
  kInteger,
  kMarkdown,
  kOid,
  kPositiveInt,
  kString,
  kTime,
  kUnsignedInt,
  kUri,
  kUrl,
  kUuid,
  kXhtml,
};

inline constexpr uint16_t kR4Unbounded = 0xffff;  // max "*".
// No type has more element definitions than this (choice elements counted once); checked by the
// generated table, so validators may size per-object bit sets with it.
inline constexpr size_t kR4MaxBaseElements = 128;

// One JSON member name of a type. A choice element ("value[x]") has one entry per allowed type
// (valueQuantity, valueString...), all with the same `base`.
struct R4Element {
  std::string_view name;  // JSON name, e.g. "status", "valueQuantity".
  uint16_t type;          // Index into R4Types().
  uint16_t base;          // Ordinal of the element definition within its type, < base_count.
  uint16_t min;
  uint16_t max;  // >= 1; kR4Unbounded for "*". max > 1 means a JSON array.
  bool choice;   // One of the types of a "[x]" element.

  constexpr bool is_array() const { return max > 1; }
};

// A required element definition (min >= 1). `name` is the definition's name: "status", or
// "medication[x]" for a required choice.
struct R4Required {
  std::string_view name;
  uint16_t base;
  uint16_t min;
};

struct R4Type {
  std::string_view name;  // "Observation", "Quantity", "string", "Observation.component"...
  R4TypeKind kind;
  R4Primitive primitive;                // kNone unless kind == kPrimitive.
  uint16_t base_count;                  // Element definitions (choice elements counted once).
  std::span<const R4Element> elements;  // Sorted by name (byte order); empty for primitives.
  std::span<const R4Required> required;
};

// Every type, sorted by name (byte order).
std::span<const R4Type> R4Types();

// The type called `name` (binary search): a resource type ("Patient"), data type ("Quantity"),
// primitive ("dateTime"), backbone element path ("Observation.component") or "Resource". Null when
// unknown. Note that the abstract resource bases (DomainResource) are not types here, and
// "Resource" is the any-resource placeholder.
const R4Type* FindR4Type(std::string_view name);

// The element of `type` with JSON name `json_name` (binary search); null when there is none.
// Names starting with '_' (primitive extensions) are not listed: look up the name without it.
const R4Element* FindR4Element(const R4Type& type, std::string_view json_name);

}  // namespace kura::fhir
