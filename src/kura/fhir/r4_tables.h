// Static FHIR R4 (4.0.1) reference tables: the resource type names and the Patient compartment
// definition reduced to JSON element paths.
//
// The data lives in r4_tables.cc, which is generated from the official definitions by
// tools/r4/gen_r4_tables.mjs (see tools/r4/README.md); edit the generator, not the table. All
// returned views point at constant static storage: no allocation, thread-safe.
#pragma once

#include <span>
#include <string_view>

namespace kura::fhir {

// All R4 resource type names (kind == "resource", not abstract: e.g. Patient, Observation, Bundle,
// Parameters...; NOT Resource, DomainResource), sorted by byte order.
std::span<const std::string_view> R4ResourceTypes();

// True when `name` is one of R4ResourceTypes() (binary search, case-sensitive).
bool IsR4ResourceType(std::string_view name);

// The Patient CompartmentDefinition (official R4 `CompartmentDefinition/patient`): for a resource
// type, the element paths relative to the resource root whose Reference values, when they point at
// a Patient, make the resource a member of that patient's compartment. Paths are dotted element
// names without the type prefix, e.g. for Observation {"performer", "subject"}, for Encounter
// {"subject"}, for Appointment {"participant.actor"}. Choice types use the concrete element name as
// it appears in JSON (e.g. "valueReference"). Paths are sorted and unique. Empty span when the type
// has no patient compartment params (or is not a resource type). For "Patient" itself returns
// {"link.other"} (the resource is also in its own compartment; the caller handles that).
std::span<const std::string_view> PatientCompartmentPaths(std::string_view resource_type);

}  // namespace kura::fhir
