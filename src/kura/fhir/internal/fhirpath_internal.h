// The FHIRPath evaluator's representation, for the code of this layer that converts evaluation
// results (search value extraction): the RapidJSON value behind a PathNode, model type ids, and
// the reference parsing resolve() uses. Includes RapidJSON, so only kura_fhir's own sources may
// include this header.
#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "kura/fhir/fhirpath.h"

namespace kura::fhir::internal {

using TypeId = uint16_t;
inline constexpr TypeId kNoType = 0;

// The id of a type name of the model (a FHIR type code, backbone path or resource type);
// kNoType when unknown. The model is built on first use (thread-safe).
TypeId TypeIdOf(std::string_view name);
std::string_view TypeName(TypeId type);
// True when `type` is `base` or specializes it (Age is a Quantity, code is a string).
bool IsA(TypeId type, TypeId base);
// The type of the member `json_key` of an element of type `owner` ("valueQuantity" of an Extension
// -> Quantity); kNoType when the model has no such element.
TypeId ChildType(TypeId owner, std::string_view json_key);

struct NodeAccess {
  static const rapidjson::Value* Value(const PathNode& node) {
    return static_cast<const rapidjson::Value*>(node.value_);
  }
  static TypeId Type(const PathNode& node) { return node.type_; }
  static PathNode Element(const rapidjson::Value& value, TypeId type) {
    PathNode node;
    node.value_ = &value;
    node.type_ = type;
    node.kind_ = PathNode::Kind::kElement;
    return node;
  }
  // A computed node: kBoolean (`b`), kString / kNumber (`text`, which must outlive the node), or
  // kResolved (`value` is the reference element, `type` the resource type).
  static PathNode Make(PathNode::Kind kind, TypeId type, const void* value, uint32_t size, bool b) {
    PathNode node;
    node.value_ = value;
    node.size_ = size;
    node.type_ = type;
    node.kind_ = kind;
    node.boolean_ = b;
    return node;
  }
  // The text of a kString / kNumber node.
  static std::string_view Text(const PathNode& node) {
    return {static_cast<const char*>(node.value_), node.size_};
  }
  static const rapidjson::Value& Root(const ParsedResource& resource);
};

// True when `value`, a string of a ParsedResource's DOM, was a JSON number (ParsedResource keeps
// numbers as their text: 98.60 stays "98.60"). It reads the byte before the text in the parse
// buffer, which is the opening quote for a string and never for a number.
inline bool IsNumberText(const rapidjson::Value& value) {
  return value.IsString() && value.GetString()[-1] != '"';
}

struct ProgramAccess {
  // Members of the focus object at least one of which must be present for `path` to yield
  // anything (e.g. {"code"} for "Observation.code", {"valueQuantity", "valueSampledData"} for
  // "(Observation.value as Quantity) | (Observation.value as SampledData)"); nullopt when the
  // result does not depend on the focus's members that way (a boolean test, the focus itself).
  // Lets a caller skip expressions whose first member is absent without evaluating them.
  static std::optional<std::vector<std::string_view>> FirstMembers(const FhirPath& path);
};

// The value[x] of an Extension element, typed; nullopt when it has none.
std::optional<PathNode> ExtensionValue(const PathNode& extension);

// A reference string split into its parts: "Patient/1/_history/2" -> type Patient, id 1,
// version 2; "http://x/fhir/Patient/1" -> base "http://x/fhir", type Patient, id 1; "#p1" -> id
// "p1", contained. `type` is empty when the string does not end in <R4 resource type>/<id>
// (optionally followed by /_history/<version>), e.g. for urn:uuid: references.
struct ReferenceParts {
  std::string_view base;  // Before "/<type>/<id>" in an absolute URL; empty when relative.
  std::string_view type;
  std::string_view id;
  std::string_view version;
  bool contained = false;
};
ReferenceParts ParseReference(std::string_view reference);

// The resource type `reference` points at: its type part, or for "#id" the type of the contained
// resource with that id in `resource`; empty when unknown.
std::string_view ReferenceTargetType(const rapidjson::Value& resource, std::string_view reference);

}  // namespace kura::fhir::internal
