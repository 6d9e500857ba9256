// A FHIRPath subset for search parameter expressions: an expression is compiled once against the
// R4 element model (internal/r4_model.h) into a typed program, then evaluated over parsed resources
// many times.
//
// Supported: paths (`Observation.code.coding`), a leading type name that filters the context
// (`Observation.x`; `Resource.x` / `DomainResource.x` match any resource), choice elements (`value`
// yields valueQuantity, valueString, ... each typed by its suffix), `$this`, indexers with an
// integer literal (`[0]`), the union `|`, `and` / `or` / `xor` / `implies`, `=` / `!=` (string,
// boolean and number literals, primitive elements), the type operators `is T` / `as T` and the
// functions where(criteria), exists([criteria]), empty(), not(), first(), last(), ofType(T),
// as(T), is(T), extension(url), hasExtension(url) (used by an R4 search parameter; the same as
// extension(url).exists()) and resolve(). Types are FHIR type names; a cast keeps the elements of
// that type or a specialization of it (`as Quantity` keeps an Age), and `as` filters a collection
// of several items like ofType() (the R4 search expressions rely on that). resolve() fetches
// nothing: it yields a placeholder typed by the reference's type part ("Patient/1" -> Patient, a
// local "#id" -> the contained resource's type), enough for `resolve() is Patient` and
// `resolve().ofType(Patient)`; navigating below it is a compile error.
//
// Anything else (arithmetic, ordering, other functions, environment variables, unknown elements,
// extensions of primitive elements, casts that can never match) fails to compile with
// InvalidArgument; evaluation itself cannot fail. Where the spec raises a run-time error (a
// boolean operator, not() or `is` on several items) evaluation yields an empty collection.
// Primitive elements that carry only extensions ("_birthDate" without "birthDate") are not values.
//
// FhirPath and ParsedResource are thread-compatible values; a FhirPath is immutable after Compile,
// so one program may be evaluated by many threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kura/base/status.h"

namespace kura::fhir {

namespace internal {
struct NodeAccess;
struct Program;
struct ProgramAccess;
}  // namespace internal

class ParsedResource;

// One item of an evaluation result: an element of a ParsedResource (borrowed; valid while the
// ParsedResource lives), a computed boolean, a literal, or a resolve() placeholder.
class PathNode {
 public:
  enum class Kind : uint8_t { kElement, kBoolean, kString, kNumber, kResolved };

  Kind kind() const { return kind_; }
  // The FHIR type code ("Quantity", "code"), backbone element path ("Observation.component") or,
  // for kResolved, the resource type; "boolean", "string" or "decimal" for computed values.
  std::string_view type() const;
  // kBoolean: the value; kElement: true for a JSON true.
  bool boolean() const;
  // Compact JSON of the value (an element's numbers as written), e.g. {"value":98.60,"unit":"F"};
  // kResolved yields {"resourceType":"<type>"}.
  std::string ToJson() const;

 private:
  friend struct internal::NodeAccess;
  const void* value_ = nullptr;  // The element (kElement, kResolved), or the literal text.
  uint32_t size_ = 0;            // Literal text length.
  uint16_t type_ = 0;            // Model type id.
  Kind kind_ = Kind::kElement;
  bool boolean_ = false;
};

// A resource body parsed into a DOM for evaluation. Numbers keep their text.
class ParsedResource {
 public:
  // InvalidArgument when `json` is not a JSON object with a string resourceType.
  static StatusOr<ParsedResource> Parse(std::string_view json);

  ParsedResource(ParsedResource&&) noexcept;
  ParsedResource& operator=(ParsedResource&&) noexcept;
  ~ParsedResource();

  std::string_view resource_type() const;
  // The resource itself, typed by its resourceType.
  PathNode Root() const;

 private:
  friend struct internal::NodeAccess;
  struct Impl;
  explicit ParsedResource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class FhirPath {
 public:
  // Compiles `expression` for a context (the focus of evaluation) that is an element of one of
  // `context_types`: resource type names, data types or backbone element paths
  // ("Observation.component"). InvalidArgument with the reason when the expression is outside the
  // subset or does not fit the model.
  static StatusOr<FhirPath> Compile(std::string_view expression,
                                    std::span<const std::string_view> context_types);
  static StatusOr<FhirPath> Compile(std::string_view expression, std::string_view context_type);

  // Appends the result of evaluating on `resource`'s root to `out`.
  void Evaluate(const ParsedResource& resource, std::vector<PathNode>& out) const;
  // Appends the result of evaluating with `focus` (nodes of `resource`, not aliasing `out`) as
  // the context. Result nodes borrow from `resource` (and, for literals, from this FhirPath).
  void Evaluate(const ParsedResource& resource, std::span<const PathNode> focus,
                std::vector<PathNode>& out) const;

  // The types the result's items can have (see PathNode::type), sorted.
  std::vector<std::string_view> ResultTypes() const;
  const std::string& expression() const;

 private:
  friend struct internal::ProgramAccess;
  explicit FhirPath(std::shared_ptr<const internal::Program> program);
  std::shared_ptr<const internal::Program> program_;
};

}  // namespace kura::fhir
