// FHIR R4 search parameters: the official SearchParameter definitions of the searchable resource
// types (a generated table, r4_search_params.cc from tools/r4/gen_r4_search_params.mjs) and the
// typed values a resource yields for them, found by evaluating each definition's FHIRPath
// expression (fhirpath.h).
//
// Extracted values are plain data in the resource's own terms (codes, strings, instants as
// ranges); turning them into index rows, and which of them are kept in clear or as keyed hashes,
// is the job of the layer above (the data register). Thread-safe free functions; table views point
// at constant static storage.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kura/base/status.h"
#include "kura/fhir/fhirpath.h"

namespace kura::fhir {

enum class SearchParamType : uint8_t {
  kNumber,
  kDate,
  kString,
  kToken,
  kReference,
  kComposite,
  kQuantity,
  kUri,
  kSpecial,
};

std::string_view SearchParamTypeName(SearchParamType type);  // "number", "date", ...

// One component of a composite parameter: the component parameter's code (resolved from the
// definition's canonical URL, e.g. "code") and its FHIRPath expression relative to the composite's
// focus (e.g. "code" or "value.as(Quantity)").
struct CompositeComponent {
  std::string_view param;
  std::string_view expression;
};

struct SearchParamDef {
  std::string_view code;  // The name used in a query, e.g. "subject", "value-quantity", "_id".
  SearchParamType type;
  // The definition's FHIRPath expression reduced to the branches of this resource type, e.g.
  // "Observation.subject" for the shared "patient"/"subject" definitions. Empty for parameters
  // without an expression (_text, _content, _query...), which are not indexed.
  std::string_view expression;
  std::span<const std::string_view> targets;       // Reference targets, sorted; empty otherwise.
  std::span<const CompositeComponent> components;  // Composite only.
  std::string_view url;                            // Canonical URL of the definition.
};

// The resource types whose search is supported, sorted by byte order: Patient, Observation,
// Condition, ... (the list of the search feature).
std::span<const std::string_view> SearchableResourceTypes();
bool IsSearchableResourceType(std::string_view resource_type);

// Every search parameter of `resource_type`, the common Resource/DomainResource ones included
// (_id, _lastUpdated, _tag, _profile, _security, _source), sorted by code. Empty when the type is
// not searchable.
std::span<const SearchParamDef> SearchParamsFor(std::string_view resource_type);
const SearchParamDef* FindSearchParam(std::string_view resource_type, std::string_view code);

// The compiled FHIRPath of `param` (a definition from SearchParamsFor), compiled with the rest of
// the table on first use (thread-safe); nullptr when the definition has no expression.
const FhirPath* SearchParamExpression(const SearchParamDef& param);
// The compiled expression of component `index` of composite `param`, relative to the nodes
// SearchParamExpression(param) yields; nullptr when out of range.
const FhirPath* SearchParamComponentExpression(const SearchParamDef& param, size_t index);

// Instants as microseconds since 1970-01-01T00:00:00Z.
struct InstantRange {
  int64_t low = 0;   // Inclusive.
  int64_t high = 0;  // Inclusive.
};

// The range a FHIR date, dateTime or instant covers at its precision: "2020" -> the whole year
// 2020, "2020-03-01T10:00:00.5+01:00" -> that tenth of a second. Without a time (or with a time but
// no zone, which FHIR forbids) the value is taken as UTC. Precision beyond microseconds is
// truncated. nullopt when `text` is not such a value (years 0001-9999).
std::optional<InstantRange> FhirDateRange(std::string_view text);

// One value a resource has for one search parameter. Which fields are set depends on the type:
//   token      system (may be empty: "no system"), code; for a CodeableConcept one value per
//              coding; for an Identifier system|value; for a ContactPoint the value; for a code,
//              boolean, string, id or uri element the value as code with an empty system. A
//              coding without a code yields nothing; text is set to the CodeableConcept's text,
//              else the Coding's display (for :text).
//   string     text: each string part as written (HumanName family, given, prefix, suffix, text;
//              Address line, city, district, state, postalCode, country, text; or the string).
//   reference  reference: "Type/id" for a relative or local absolute reference (the version part
//              dropped), the absolute URL otherwise, or the canonical URL for a canonical;
//              target_type: the type part ("" when unknown); identifier_system / identifier_value
//              from Reference.identifier (for the :identifier modifier). A contained reference
//              stays "#id" with the contained resource's type; a canonical's "|version" is
//              dropped.
//   date       range: from the value's precision (FhirDateRange: 2020 -> the whole year; a Period
//              start..end, open ends at INT64_MIN / INT64_MAX; a Timing's outer limits: its
//              events and repeat.boundsPeriod).
//   number     number: the decimal as written; range_low == range_high == its value.
//   quantity   number, system, code (the code, or the unit when there is no code), range_low ==
//              range_high == the value; Money: system urn:iso:std:iso:4217, code the currency; a
//              Range gives its low and high as range_low / range_high (an open end is -inf /
//              +inf) and the system/code of low (else high), number empty. SampledData yields no
//              value (its data is an encoded series, not one quantity).
//   uri        text: the URI.
//   composite  components: one value per component, in the definition's order; a focus whose
//              components have several values each yields every combination.
// An Extension (extension('url') parameters) is converted by its value[x].
struct SearchValue {
  const SearchParamDef* param = nullptr;
  std::string system;
  std::string code;
  std::string text;
  std::string reference;
  std::string target_type;
  std::string identifier_system;
  std::string identifier_value;
  InstantRange range;
  std::string number;  // Decimal text, e.g. "98.60".
  double range_low = 0;
  double range_high = 0;
  std::vector<SearchValue> components;
};

// Every value `resource_json` (a whole resource, compact JSON) has for the parameters of its type,
// grouped by parameter in SearchParamsFor order. `local_base_url` is the server's FHIR base
// ("https://phr.example/fhir/R4"): absolute references under it are reported as "Type/id".
// InvalidArgument when the JSON cannot be parsed or the type is not searchable.
StatusOr<std::vector<SearchValue>> ExtractSearchValues(std::string_view resource_json,
                                                       std::string_view local_base_url = {});
StatusOr<std::vector<SearchValue>> ExtractSearchValues(const ParsedResource& resource,
                                                       std::string_view local_base_url = {});

// Folds text for the default string search: Unicode NFKD, marks removed, case folded, whitespace
// runs collapsed to one space, trimmed ("  Zoë   MÜLLER" -> "zoe muller").
std::string NormalizeSearchString(std::string_view text);

}  // namespace kura::fhir
