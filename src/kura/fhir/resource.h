// Resource-level FHIR rules that do not need the full structure definitions: identity
// (resourceType, id), server-owned metadata, patient-compartment membership, and the
// OperationOutcome that every error becomes. Thread-safe free functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kura/base/clock.h"
#include "kura/base/status.h"
#include "kura/fhir/json.h"

namespace kura::fhir {

// FHIR id syntax: [A-Za-z0-9\-\.]{1,64}.
bool IsValidId(std::string_view id);

// Checks `resource.resourceType` is a known R4 type equal to `url_type`, and the id: on create
// (`url_id` empty) an id in the body is ignored as the spec says; on update it must be present
// and equal to `url_id`. InvalidArgument with an issue code and expression on failure.
Status CheckIdentity(const ResourceDocument& resource, std::string_view url_type,
                     std::optional<std::string_view> url_id);

// The resource as stored: compact JSON with resourceType, id and meta first (as FHIR JSON
// conventionally orders them), id set to `id` and meta.versionId / meta.lastUpdated set by the
// server, the rest of meta and every other member as received. InvalidArgument when meta is
// present but not an object. `resource` must have passed CheckIdentity.
StatusOr<std::string> StampServerFields(const ResourceDocument& resource, std::string_view id,
                                        int64_t version_id, TimePoint last_updated);

// Ids of the patients whose compartment holds `resource` (official R4 Patient
// CompartmentDefinition), without duplicates. A Patient is in its own
// compartment. The resource's own subject/patient reference comes first (the first entry picks the
// record's data key), then the other compartment paths in sorted order. Only references of the
// form "Patient/<id>" (or ending in "/Patient/<id>") count.
// `resource` must have passed CheckIdentity.
std::vector<std::string> PatientCompartments(const ResourceDocument& resource);

// True when the element at `expression` (a search parameter's FHIRPath on `type`, e.g.
// "Observation.subject" or "Observation.subject.where(resolve() is Patient)") is the one that
// picks a `type` resource's record compartment: it is the type's only primary compartment path
// (subject, patient, beneficiary or individual). Then `param=Patient/x` implies compartment x.
bool ExpressionPicksCompartment(std::string_view type, std::string_view expression);

// True when `expression` (a search parameter's FHIRPath on `type`) reads the element at `path`:
// "Type.path", or "Type.path.where(resolve() is Patient)".
bool ExpressionFollowsPath(std::string_view type, std::string_view path,
                           std::string_view expression);

// The structural-validation seam: the API calls Validate on every incoming resource. The
// implementation for this release checks identity-level rules; the full R4 definitions plug in
// behind the same interface.
class ResourceValidator {
 public:
  virtual ~ResourceValidator() = default;
  // InvalidArgument with one StatusDetail per problem.
  virtual Status Validate(const ResourceDocument& resource) const = 0;
};

// Accepts any object with a known resourceType; meta, if present, must be an object.
class BasicValidator final : public ResourceValidator {
 public:
  Status Validate(const ResourceDocument& resource) const override;
};

// The OperationOutcome for an error: one issue per StatusDetail (or one from the message).
// Severity "error" (or "fatal" for Internal/DataLoss).
Json OperationOutcomeFor(const Status& status);
// An informational OperationOutcome (e.g. for Prefer: return=OperationOutcome).
Json InformationOutcome(std::string_view diagnostics);

}  // namespace kura::fhir
