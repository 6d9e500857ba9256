// Identity, server fields, compartments and OperationOutcome.
#include "kura/fhir/resource.h"

#include <algorithm>

#include "kura/fhir/r4_tables.h"

namespace kura::fhir {
namespace {

Status Invalid(std::string message, std::string code, std::string expression) {
  return InvalidArgumentError(message).WithDetail({std::move(code), message, std::move(expression)});
}

std::string_view IssueCodeFor(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument: return "invalid";
    case StatusCode::kNotFound: return "not-found";
    case StatusCode::kGone: return "deleted";
    case StatusCode::kAlreadyExists: return "duplicate";
    case StatusCode::kAborted: return "conflict";
    case StatusCode::kFailedPrecondition: return "business-rule";
    case StatusCode::kPermissionDenied: return "forbidden";
    case StatusCode::kUnauthenticated: return "login";
    case StatusCode::kResourceExhausted: return "throttled";
    case StatusCode::kUnimplemented: return "not-supported";
    case StatusCode::kUnavailable: return "transient";
    default: return "exception";
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

void CollectPatientRefs(const Json& node, std::string_view path, std::vector<std::string>& out) {
  if (node.is_array()) {
    for (const Json& item : node) CollectPatientRefs(item, path, out);
    return;
  }
  if (!node.is_object()) return;
  if (path.empty()) {
    auto ref = node.find("reference");
    if (ref != node.end() && ref->is_string()) {
      std::string_view id = PatientIdOf(ref->get_ref<const std::string&>());
      if (!id.empty() && std::find(out.begin(), out.end(), id) == out.end()) out.emplace_back(id);
    }
    return;
  }
  auto dot = path.find('.');
  std::string_view head = path.substr(0, dot);
  std::string_view rest = dot == std::string_view::npos ? std::string_view{} : path.substr(dot + 1);
  auto child = node.find(std::string(head));
  if (child != node.end()) CollectPatientRefs(*child, rest, out);
}

}  // namespace

bool IsValidId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.';
  });
}

Status CheckIdentity(const Json& resource, std::string_view url_type,
                     std::optional<std::string_view> url_id) {
  auto rt = resource.find("resourceType");
  if (rt == resource.end()) {
    return Invalid("resourceType is missing", "required", std::string(url_type));
  }
  if (!rt->is_string()) {
    return Invalid("resourceType must be a string", "structure", std::string(url_type));
  }
  const std::string& type = rt->get_ref<const std::string&>();
  if (!IsR4ResourceType(type)) {
    return Invalid("resourceType is not a FHIR R4 resource type", "value", "resourceType");
  }
  if (type != url_type) {
    return Invalid("resourceType " + type + " does not match the URL's type " +
                       std::string(url_type),
                   "invalid", type);
  }
  auto id = resource.find("id");
  if (url_id.has_value()) {
    if (id == resource.end()) {
      return Invalid("the resource must have an id equal to the URL's id", "required", type + ".id");
    }
    if (!id->is_string() || !IsValidId(id->get_ref<const std::string&>())) {
      return Invalid("id must match [A-Za-z0-9\\-\\.]{1,64}", "value", type + ".id");
    }
    if (id->get_ref<const std::string&>() != *url_id) {
      return Invalid("the resource id does not match the URL's id", "invalid", type + ".id");
    }
  } else if (id != resource.end() && !id->is_string()) {
    return Invalid("id must be a string", "structure", type + ".id");
  }
  return Status::Ok();
}

Status StampServerFields(Json& resource, std::string_view id, int64_t version_id,
                         TimePoint last_updated) {
  auto meta_it = resource.find("meta");
  if (meta_it != resource.end() && !meta_it->is_object()) {
    return Invalid("meta must be an object", "structure",
                   resource.value("resourceType", std::string("Resource")) + ".meta");
  }
  // Rebuild so resourceType, id and meta lead, as FHIR JSON conventionally orders them.
  Json out = Json::object();
  out["resourceType"] = resource["resourceType"];
  out["id"] = std::string(id);
  Json meta = meta_it != resource.end() ? std::move(*meta_it) : Json::object();
  Json new_meta = Json::object();
  new_meta["versionId"] = std::to_string(version_id);
  new_meta["lastUpdated"] = FormatInstant(last_updated);
  for (auto& [k, v] : meta.items()) {
    if (k != "versionId" && k != "lastUpdated") new_meta[k] = std::move(v);
  }
  out["meta"] = std::move(new_meta);
  for (auto& [k, v] : resource.items()) {
    if (k != "resourceType" && k != "id" && k != "meta") out[k] = std::move(v);
  }
  resource = std::move(out);
  return Status::Ok();
}

std::vector<std::string> PatientCompartments(const Json& resource) {
  std::vector<std::string> out;
  auto rt = resource.find("resourceType");
  if (rt == resource.end() || !rt->is_string()) return out;
  const std::string& type = rt->get_ref<const std::string&>();
  if (type == "Patient") {
    auto id = resource.find("id");
    if (id != resource.end() && id->is_string()) out.push_back(id->get<std::string>());
  }
  // The resource's own subject/patient comes first: the first compartment picks the data key.
  auto paths = PatientCompartmentPaths(type);
  auto is_primary = [](std::string_view p) {
    return p == "subject" || p == "patient" || p == "beneficiary" || p == "individual";
  };
  for (std::string_view path : paths) {
    if (is_primary(path)) CollectPatientRefs(resource, path, out);
  }
  for (std::string_view path : paths) {
    if (!is_primary(path)) CollectPatientRefs(resource, path, out);
  }
  return out;
}

Status BasicValidator::Validate(const Json& resource) const {
  auto rt = resource.find("resourceType");
  if (rt == resource.end() || !rt->is_string() ||
      !IsR4ResourceType(rt->get_ref<const std::string&>())) {
    return Invalid("resourceType is missing or unknown", "structure", "resourceType");
  }
  auto meta = resource.find("meta");
  if (meta != resource.end() && !meta->is_object()) {
    return Invalid("meta must be an object", "structure", rt->get<std::string>() + ".meta");
  }
  return Status::Ok();
}

Json OperationOutcomeFor(const Status& status) {
  Json oo = Json::object();
  oo["resourceType"] = "OperationOutcome";
  Json issues = Json::array();
  std::string severity = (status.code() == StatusCode::kInternal ||
                          status.code() == StatusCode::kDataLoss)
                             ? "fatal"
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
