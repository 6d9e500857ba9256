// R4Validator: structural validation of a resource against the official FHIR R4 (4.0.1)
// StructureDefinitions, through the generated element tables of r4_structure.h.
//
// What is checked, for the resource and everything nested in it:
//   - element names per type: unknown members are rejected; choice elements only under their
//     typed names (valueQuantity, valueString...) and at most one type per choice element;
//   - JSON shape: max "*" elements are non-empty arrays, the others single values; objects for
//     complex types, strings / numbers / booleans for primitives; no empty objects, arrays or
//     strings; null only inside a primitive array, where the `_name` array holds its extension;
//   - cardinality: required elements (min >= 1) present (a primitive's `_name` alone counts), array
//     lengths within min..max;
//   - primitive values against the regular expressions of the R4 primitive types (hand-written
//     checks, no regex engine): boolean; integer, positiveInt, unsignedInt (32-bit ranges, no
//     fraction or exponent); decimal; date, dateTime, instant (and real calendar dates), time;
//     code (no leading, trailing or double whitespace); id ([A-Za-z0-9-.]{1,64}); uri, url,
//     canonical (no whitespace); oid; uuid (urn:uuid:, lowercase); base64Binary (base64 alphabet,
//     whole 4-character groups, padding only at the end, whitespace ignored); string and markdown
//     (no control characters other than tab, CR, LF; at most 1 MiB characters); xhtml (a <div>
//     root in the XHTML namespace);
//   - primitive extensions: `_name` only beside primitive elements, an Element (id, extension) or,
//     for arrays, an array of Element-or-null as long as the value array and never null where the
//     value is null too;
//   - extensions (ext-1): `url` required, either a value[x] or nested extensions, not both, not
//     neither;
//   - Reference.reference: "Type/id" or "Type/id/_history/vid" with an R4 resource type and valid
//     ids, an absolute URL (scheme:...), "urn:uuid:<uuid>", "urn:oid:<oid>" or "#id" / "#";
//   - resources inside resources (contained, Bundle.entry.resource, Parameters.parameter.resource):
//     validated as their own resourceType; a contained resource holds no contained resources
//     (dom-2);
//   - element `id`, `extension` and `modifierExtension` wherever the definitions allow them.
// Invariants (FHIRPath constraints) other than ext-1, dom-2 and the txt-1 root element are not
// evaluated; nor are terminology bindings, reference targets or profiles in meta.profile.
//
// Every problem becomes one StatusDetail of an InvalidArgument Status: issue code `structure`
// (unknown element, wrong JSON shape), `required` (missing element, too few items), `value` (bad
// primitive value or reference) or `invalid` (rule across elements: choice, extension); an
// expression such as "Observation.valueQuantity.value" or "Patient.name[1].given[0]"; and a
// diagnostic that states the rule and never repeats the value (no PHI in errors). At most
// `max_details` problems are reported; validation stops there.
//
// Thread-safe: Validate is const and keeps its state on the stack.
#pragma once

#include <cstddef>

#include "kura/base/status.h"
#include "kura/fhir/json.h"
#include "kura/fhir/resource.h"

namespace kura::fhir {

class R4Validator final : public ResourceValidator {
 public:
  struct Options {
    size_t max_details = 100;  // Problems reported before validation stops (>= 1).
  };

  R4Validator() = default;
  explicit R4Validator(Options options) : options_(options) {}

  // OK, or InvalidArgument with one StatusDetail per problem (at most max_details). The
  // resourceType must be an R4 resource type (else one `structure` detail).
  Status Validate(const ResourceDocument& resource) const override;

 private:
  Options options_;
};

}  // namespace kura::fhir
