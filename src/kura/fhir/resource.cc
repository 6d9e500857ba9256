// Identity, server fields, compartments and OperationOutcome.
#include "kura/fhir/resource.h"

#include <algorithm>

#include "kura/fhir/r4_tables.h"

namespace kura::fhir {
namespace {

Status Invalid(std::string message, std::string code, std::string expression) {
  return InvalidArgumentError(message).WithDetail(
      {std::move(code), message, std::move(expression)});
}

std::string_view IssueCodeFor(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument:
      return "invalid";
    case StatusCode::kNotFound:
      return "not-found";
    case StatusCode::kGone:
      return "deleted";
    case StatusCode::kAlreadyExists:
      return "duplicate";
    case StatusCode::kAborted:
      return "conflict";
    case StatusCode::kFailedPrecondition:
      return "business-rule";
    case StatusCode::kPermissionDenied:
      return "forbidden";
    case StatusCode::kUnauthenticated:
      return "login";
    case StatusCode::kResourceExhausted:
      return "throttled";
    case StatusCode::kUnimplemented:
      return "not-supported";
    case StatusCode::kUnavailable:
      return "transient";
    default:
      return "exception";
  }
}

// The patient id a reference string points at, or "" when it is not a Patient reference.
std::string_view PatientIdOf(std::string_view reference) {
  auto pos = reference.rfind("Patient/");
  if (pos == std::string_view::npos) return {};
  if (pos != 0 && reference[pos - 1] != '/') return {};
  std::string_view id = reference.substr(pos + 8);
  auto hist = id.find('/');
  if (hist != std::string_view::npos) id = id.substr(0, hist);  // "Patient/1/_history/2"
  return IsValidId(id) ? id : std::string_view{};
}

std::string TypeName(const ResourceDocument& resource) {
  const JsonMember* rt = resource.Find("resourceType");
  return rt != nullptr && rt->string_value ? *rt->string_value : "Resource";
}

}  // namespace

bool IsValidId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.';
  });
}

Status CheckIdentity(const ResourceDocument& resource, std::string_view url_type,
                     std::optional<std::string_view> url_id) {
  const JsonMember* rt = resource.Find("resourceType");
  if (rt == nullptr) {
    return Invalid("resourceType is missing", "required", std::string(url_type));
  }
  if (!rt->string_value) {
    return Invalid("resourceType must be a string", "structure", std::string(url_type));
  }
  const std::string& type = *rt->string_value;
  if (!IsR4ResourceType(type)) {
    return Invalid("resourceType is not a FHIR R4 resource type", "value", "resourceType");
  }
  if (type != url_type) {
    return Invalid(
        "resourceType " + type + " does not match the URL's type " + std::string(url_type),
        "invalid", type);
  }
  const JsonMember* id = resource.Find("id");
  if (url_id.has_value()) {
    if (id == nullptr) {
      return Invalid("the resource must have an id equal to the URL's id", "required",
                     type + ".id");
    }
    if (!id->string_value || !IsValidId(*id->string_value)) {
      return Invalid("id must match [A-Za-z0-9\\-\\.]{1,64}", "value", type + ".id");
    }
    if (*id->string_value != *url_id) {
      return Invalid("the resource id does not match the URL's id", "invalid", type + ".id");
    }
  } else if (id != nullptr && !id->string_value) {
    return Invalid("id must be a string", "structure", type + ".id");
  }
  return Status::Ok();
}

StatusOr<std::string> StampServerFields(const ResourceDocument& resource, std::string_view id,
                                        int64_t version_id, TimePoint last_updated) {
  if (resource.Find("meta") != nullptr) {
    return Invalid("meta must be an object", "structure", TypeName(resource) + ".meta");
  }
  const JsonMember* rt = resource.Find("resourceType");
  if (rt == nullptr) return Invalid("resourceType is missing", "required", "resourceType");
  std::string out;
  size_t size = 96 + id.size();
  for (const JsonMember& m : resource.members) size += m.key.size() + m.json.size() + 4;
  if (resource.meta) {
    for (const JsonMember& m : *resource.meta) size += m.key.size() + m.json.size() + 4;
  }
  out.reserve(size);
  out += "{\"resourceType\":";
  out += rt->json;
  out += ",\"id\":";
  out += JsonString(id);
  out += ",\"meta\":{\"versionId\":\"";
  out += std::to_string(version_id);
  out += "\",\"lastUpdated\":\"";
  out += FormatInstant(last_updated);
  out += '"';
  auto append = [&out](const JsonMember& m) {
    out += ',';
    out += JsonString(m.key);
    out += ':';
    out += m.json;
  };
  if (resource.meta) {
    for (const JsonMember& m : *resource.meta) {
      if (m.key != "versionId" && m.key != "lastUpdated") append(m);
    }
  }
  out += '}';
  for (const JsonMember& m : resource.members) {
    if (m.key != "resourceType" && m.key != "id") append(m);
  }
  out += '}';
  return out;
}

namespace {

bool IsPrimaryCompartmentPath(std::string_view path) {
  return path == "subject" || path == "patient" || path == "beneficiary" || path == "individual";
}

}  // namespace

bool ExpressionPicksCompartment(std::string_view type, std::string_view expression) {
  std::string_view primary;
  for (std::string_view path : PatientCompartmentPaths(type)) {
    if (!IsPrimaryCompartmentPath(path)) continue;
    if (!primary.empty()) return false;  // Two candidates: either may pick the compartment.
    primary = path;
  }
  return !primary.empty() && ExpressionFollowsPath(type, primary, expression);
}

bool ExpressionFollowsPath(std::string_view type, std::string_view path,
                           std::string_view expression) {
  const std::string plain = std::string(type) + "." + std::string(path);
  return expression == plain || expression == plain + ".where(resolve() is Patient)";
}

std::vector<std::string> PatientCompartments(const ResourceDocument& resource) {
  std::vector<std::string> out;
  const JsonMember* rt = resource.Find("resourceType");
  if (rt == nullptr || !rt->string_value) return out;
  const std::string& type = *rt->string_value;
  if (type == "Patient") {
    const JsonMember* id = resource.Find("id");
    if (id != nullptr && id->string_value) out.push_back(*id->string_value);
  }
  // The resource's own subject/patient comes first: the first compartment picks the data key.
  auto paths = PatientCompartmentPaths(type);
  auto is_primary = IsPrimaryCompartmentPath;
  auto collect = [&](std::string_view path) {
    for (const auto& [ref_path, reference] : resource.patient_references) {
      if (ref_path != path) continue;
      std::string_view patient = PatientIdOf(reference);
      if (!patient.empty() && std::find(out.begin(), out.end(), patient) == out.end()) {
        out.emplace_back(patient);
      }
    }
  };
  for (std::string_view path : paths) {
    if (is_primary(path)) collect(path);
  }
  for (std::string_view path : paths) {
    if (!is_primary(path)) collect(path);
  }
  return out;
}

Status BasicValidator::Validate(const ResourceDocument& resource) const {
  const JsonMember* rt = resource.Find("resourceType");
  if (rt == nullptr || !rt->string_value || !IsR4ResourceType(*rt->string_value)) {
    return Invalid("resourceType is missing or unknown", "structure", "resourceType");
  }
  if (resource.Find("meta") != nullptr) {
    return Invalid("meta must be an object", "structure", TypeName(resource) + ".meta");
  }
  return Status::Ok();
}

Json OperationOutcomeFor(const Status& status) {
  Json oo = Json::object();
  oo["resourceType"] = "OperationOutcome";
  Json issues = Json::array();
  std::string severity =
      (status.code() == StatusCode::kInternal || status.code() == StatusCode::kDataLoss) ? "fatal"
                                                                                         : "error";
  if (status.details().empty()) {
    Json issue = Json::object();
    issue["severity"] = severity;
    issue["code"] = std::string(IssueCodeFor(status.code()));
    issue["diagnostics"] = status.message();
    issues.push_back(std::move(issue));
  }
  for (const StatusDetail& d : status.details()) {
    Json issue = Json::object();
    issue["severity"] = severity;
    issue["code"] = d.issue_code.empty() ? std::string(IssueCodeFor(status.code())) : d.issue_code;
    issue["diagnostics"] = d.diagnostics.empty() ? status.message() : d.diagnostics;
    if (!d.expression.empty()) issue["expression"] = Json::array({d.expression});
    issues.push_back(std::move(issue));
  }
  oo["issue"] = std::move(issues);
  return oo;
}

Json InformationOutcome(std::string_view diagnostics) {
  Json issue = Json::object();
  issue["severity"] = "information";
  issue["code"] = "informational";
  issue["diagnostics"] = std::string(diagnostics);
  Json oo = Json::object();
  oo["resourceType"] = "OperationOutcome";
  oo["issue"] = Json::array({std::move(issue)});
  return oo;
}

}  // namespace kura::fhir
