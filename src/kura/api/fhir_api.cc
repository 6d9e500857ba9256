// FHIR REST handlers.
#include "kura/api/fhir_api.h"

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <charconv>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "kura/api/audit_api.h"
#include "kura/api/audit_trail.h"
#include "kura/api/request_gate.h"
#include "kura/api/responses.h"
#include "kura/api/search_indexing.h"
#include "kura/audit/audit_log.h"
#include "kura/base/clock.h"
#include "kura/base/log.h"
#include "kura/base/random.h"
#include "kura/base/secret_bytes.h"
#include "kura/fhir/bundle.h"
#include "kura/fhir/json_patch.h"
#include "kura/fhir/r4_tables.h"
#include "kura/fhir/search_params.h"
#include "kura/http/blocking.h"

namespace kura::api {
namespace asio = boost::asio;
namespace bh = http::beast_http;
using fhir::Json;
using http::HttpStatus;
using http::RequestContext;
using http::Response;

namespace {

constexpr int kMaxWriteAttempts = 8;
// Matches a search inside a Bundle, or a conditional operation, looks at.
constexpr int64_t kMaxBundleSearchMatches = 1000;

enum class PreferReturn { kRepresentation, kMinimal, kOperationOutcome };

PreferReturn ParsePrefer(const http::Request& req) {
  std::string_view prefer = req["Prefer"];
  if (prefer.find("return=minimal") != std::string_view::npos) return PreferReturn::kMinimal;
  if (prefer.find("return=OperationOutcome") != std::string_view::npos) {
    return PreferReturn::kOperationOutcome;
  }
  return PreferReturn::kRepresentation;
}

bool IsXml(std::string_view media) { return media.find("xml") != std::string_view::npos; }

std::string_view BaseMediaType(std::string_view media) {
  std::string_view base = media.substr(0, media.find(';'));
  while (!base.empty() && base.back() == ' ') base.remove_suffix(1);
  return base;
}

bool IsJsonMedia(std::string_view media) {
  std::string_view base = BaseMediaType(media);
  return base == "application/fhir+json" || base == "application/json" ||
         base == "application/json+fhir";
}

constexpr std::string_view kJsonPatchMedia = "application/json-patch+json";

// _format and Accept: JSON only. InvalidArgument-shaped 415 via UnsupportedMedia().
std::optional<std::string> FormatProblem(const RequestContext& ctx) {
  for (const auto& [name, value] : http::ParseQuery(ctx.query)) {
    if (name == "_format" && (IsXml(value) || (value != "json" && !IsJsonMedia(value)))) {
      return "only JSON is supported (_format=json, application/fhir+json)";
    }
  }
  std::string_view accept = ctx.request[bh::field::accept];
  if (!accept.empty() && IsXml(accept) && accept.find("json") == std::string_view::npos &&
      accept.find("*/*") == std::string_view::npos) {
    return "only JSON is supported (Accept: application/fhir+json)";
  }
  return std::nullopt;
}

Response UnsupportedMedia(const RequestContext& ctx, std::string_view why) {
  Json oo = fhir::OperationOutcomeFor(InvalidArgumentError(std::string(why)));
  oo["issue"][0]["code"] = "not-supported";
  return JsonResponse(HttpStatus::unsupported_media_type, fhir::SerializeJson(oo),
                      ctx.request.version(), ctx.request.keep_alive());
}

// An error answered with `status` instead of HttpStatusFor's choice: 422 for a patch that cannot
// be applied or yields an invalid resource, 413 for a Bundle with too many entries.
Response ErrorResponseAs(HttpStatus status, const Status& error, const RequestContext& ctx) {
  Response r = ErrorResponse(error, ctx);
  r.result(status);
  return r;
}

// "201 Created", as Bundle.entry.response.status spells it.
std::string StatusLine(HttpStatus status) {
  return std::to_string(static_cast<unsigned>(status)) + " " +
         std::string(bh::obsolete_reason(status));
}

std::string ETagFor(int64_t version) { return "W/\"" + std::to_string(version) + "\""; }

// "W/\"3\"" or "\"3\"" or "3" -> 3; nullopt when unparseable.
std::optional<int64_t> ParseETag(std::string_view etag) {
  if (etag.starts_with("W/")) etag.remove_prefix(2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  return http::ParsePositiveInteger(etag);
}

// Whether an If-None-Match header (a list of entity tags, or "*") names `version`: a conditional
// read (http.html#cread) then answers 304. Tags compare weakly, as RFC 9110 asks for GET.
bool IfNoneMatchNames(std::string_view header, int64_t version) {
  while (!header.empty()) {
    const size_t comma = header.find(',');
    std::string_view tag = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    while (!tag.empty() && tag.front() == ' ') tag.remove_prefix(1);
    while (!tag.empty() && tag.back() == ' ') tag.remove_suffix(1);
    if (tag == "*" || ParseETag(tag) == version) return true;
  }
  return false;
}

// Whether a resource last updated at `last_updated` counts as not modified since `since` (RFC 9110
// 13.1.3): its update time, cut to the resolution the client was shown (whole seconds in
// Last-Modified, milliseconds in a Bundle entry's lastModified), is not after it. A date later
// than the server's clock is not valid, and is ignored.
bool NotModifiedSince(TimePoint last_updated, TimePoint since,
                      std::chrono::microseconds resolution) {
  if (since > Clock::System().Now()) return false;
  const int64_t step = resolution.count();
  const int64_t us = ToMicros(last_updated);
  const int64_t floored = us - ((us % step) + step) % step;
  return floored <= ToMicros(since);
}

// Whether a conditional read of `v` answers 304, on the plain route and in a Bundle entry alike:
// If-None-Match decides alone when it is present (RFC 9110 13.2.2), else If-Modified-Since.
bool ReadNotModified(const store::ResourceVersion& v, std::optional<std::string_view> if_none_match,
                     std::optional<TimePoint> if_modified_since,
                     std::chrono::microseconds resolution) {
  if (v.deleted) return false;
  if (if_none_match) return IfNoneMatchNames(*if_none_match, v.version);
  return if_modified_since && NotModifiedSince(v.last_updated, *if_modified_since, resolution);
}

}  // namespace

Json BuildCapabilityStatement(const FhirApiOptions& options) {
  Json cs = Json::object();
  cs["resourceType"] = "CapabilityStatement";
  cs["status"] = "active";
  cs["date"] = "2026-11-22";
  cs["publisher"] = "Kura";
  cs["kind"] = "instance";
  cs["software"] = {{"name", "Kura"}, {"version", options.software_version}};
  cs["implementation"] = {{"description", "Kura personal health record server"},
                          {"url", FhirBaseUrl(options.public_base_url)}};
  cs["fhirVersion"] = "4.0.1";
  cs["format"] = Json::array({"application/fhir+json", "json"});
  Json rest = Json::object();
  rest["mode"] = "server";
  rest["documentation"] =
      "Every incoming resource (create, update, patch results, Bundle entries, contained "
      "resources) is validated against the R4 StructureDefinitions: element names, choice types, "
      "primitive formats, cardinality, required elements, extensions, reference syntax and the "
      "invariants ext-1 and dom-2; terminology bindings and profiles are not checked. Search "
      "covers "
      "the listed types and parameters over an index of current versions; names, addresses, "
      "telecom, identifiers and birth dates are indexed only as keyed hashes (equality and "
      "starts-with; :contains, ranges and sorting on them are refused). Quantities in UCUM units "
      "(http://unitsofmeasure.org) are compared in UCUM base units, so a search in kg finds "
      "values stored in g or [lb_av]; arbitrary and logarithmic units compare as written. "
      "PATCH takes a JSON Patch "
      "(application/json-patch+json; in a Bundle, a Binary holding one); FHIRPath Patch is not "
      "supported. A batch or transaction Bundle may hold up to " +
      std::to_string(options.max_bundle_entries) +
      " entries; a transaction is committed as one unit (all of it or nothing). Every resource "
      "is encrypted at rest.";
  rest["security"] = {{"cors", false},
                      {"description",
                       "HTTPS only. Every interaction except GET /metadata requires "
                       "'Authorization: Bearer <token>'."}};
  Json resources = Json::array();
  for (std::string_view type : fhir::R4ResourceTypes()) {
    const bool searchable = fhir::IsSearchableResourceType(type);
    // AuditEvent is a read-only projection of the audit log: one version per record, no history,
    // no writes, no conditional reads.
    const bool writable = type != "AuditEvent";
    Json r = Json::object();
    r["type"] = std::string(type);
    Json interactions = Json::array();
    for (const char* code : {"read", "vread", "update", "patch", "delete", "history-instance",
                             "history-type", "create"}) {
      const bool read_only = std::string_view(code) == "read" || std::string_view(code) == "vread";
      if (writable || read_only) interactions.push_back({{"code", code}});
    }
    if (searchable) interactions.push_back({{"code", "search-type"}});
    r["interaction"] = std::move(interactions);
    r["versioning"] = writable ? "versioned-update" : "versioned";
    r["readHistory"] = writable;
    r["updateCreate"] = writable;
    r["conditionalCreate"] = writable && searchable;
    r["conditionalRead"] = writable ? "full-support" : "not-supported";
    r["conditionalUpdate"] = writable && searchable;
    r["conditionalDelete"] = writable && searchable ? "single" : "not-supported";
    if (searchable) {
      Json includes = Json::array();
      Json params = Json::array();
      for (const fhir::SearchParamDef& def : fhir::SearchParamsFor(type)) {
        if (def.expression.empty()) continue;  // Not indexed (_text, _content, ...).
        params.push_back({{"name", std::string(def.code)},
                          {"definition", std::string(def.url)},
                          {"type", std::string(fhir::SearchParamTypeName(def.type))}});
        if (def.type == fhir::SearchParamType::kReference) {
          includes.push_back(std::string(type) + ":" + std::string(def.code));
        }
      }
      r["searchInclude"] = std::move(includes);
      r["searchParam"] = std::move(params);
      if (type == "Patient") {
        r["operation"] = Json::array(
            {{{"name", "everything"},
              {"definition", "http://hl7.org/fhir/OperationDefinition/Patient-everything"}}});
      }
    }
    resources.push_back(std::move(r));
  }
  rest["resource"] = std::move(resources);
  rest["interaction"] =
      Json::array({{{"code", "transaction"}}, {{"code", "batch"}}, {{"code", "history-system"}}});
  cs["rest"] = Json::array({std::move(rest)});
  return cs;
}

// The handlers, with access to FhirApi's members.
class FhirApi::Handlers {
 public:
  explicit Handlers(FhirApi& api) : api_(api) {}

  // Authenticates (RequestGate::Admit), then checks the response format. Returns the response to
  // send instead (401, 415) or nullopt when the request may proceed.
  asio::awaitable<std::optional<Response>> Admit(RequestContext& ctx, AuditNote& note) {
    std::optional<Response> denied = co_await api_.gate_.Admit(ctx, note);
    if (denied) co_return denied;
    if (auto problem = FormatProblem(ctx)) co_return UnsupportedMedia(ctx, *problem);
    co_return std::nullopt;
  }

  // What the request names, as sent: the audit trail bounds it and makes it valid UTF-8
  // (audit_trail.cc), since an invalid name is still worth recording.
  static void NoteTarget(AuditNote& note, std::string_view type, std::string_view id) {
    note.resource_type = std::string(type);
    note.resource_id = std::string(id);
  }

  // The version this request writes, as its audit record names it: number and lastUpdated, which
  // `kura audit verify` holds the history's clear columns to. Replaces what an earlier attempt
  // (a retried conditional write) noted.
  static void NoteWrittenVersion(AuditNote& note, const store::ResourceVersion& v) {
    note.resource_version = std::to_string(v.version);
    std::string micros = std::to_string(ToMicros(v.last_updated));
    for (auto& [key, value] : note.details) {
      if (key == audit::detail::kVersionLastUpdatedUs) {
        value = std::move(micros);
        return;
      }
    }
    note.details.emplace_back(audit::detail::kVersionLastUpdatedUs, std::move(micros));
  }

  static void NoteVersion(AuditNote& note, const store::ResourceVersion& v) {
    note.resource_version = std::to_string(v.version);
    if (!v.compartment.empty()) note.compartments.push_back(v.compartment);
  }

  Status CheckType(std::string_view type) {
    if (!fhir::IsR4ResourceType(type)) {
      return NotFoundError("unknown resource type")
          .WithDetail({"not-supported",
                       "'" + std::string(type.substr(0, 64)) + "' is not a FHIR R4 resource type",
                       ""});
    }
    return Status::Ok();
  }

  // AuditEvent is the audit log's read-only projection: it is never written through the API.
  static constexpr std::string_view kAuditEvent = "AuditEvent";
  static Status RefuseAuditEventWrite(std::string_view type) {
    if (type != kAuditEvent) return Status::Ok();
    return Status(StatusCode::kUnimplemented,
                  "AuditEvent resources are read-only: the server's audit log writes them");
  }

  Status CheckId(std::string_view id) {
    if (!fhir::IsValidId(id)) {
      return InvalidArgumentError("invalid id")
          .WithDetail({"value", "the id in the URL must match [A-Za-z0-9\\-\\.]{1,64}", ""});
    }
    return Status::Ok();
  }

  // Parses and checks `text` as a resource of `type` (with `id` on update): every resource that
  // is stored passes here, whether it came as a body, a Bundle entry or the result of a patch.
  // `utf8_checked`: the text comes from a Bundle ParseBundle already checked.
  StatusOr<fhir::ResourceDocument> CheckResource(std::string_view text, std::string_view type,
                                                 std::optional<std::string_view> id,
                                                 bool utf8_checked = false) const {
    KURA_ASSIGN_OR_RETURN(
        fhir::ResourceDocument resource,
        fhir::ParseResourceDocument(
            text, {.max_depth = api_.options_.max_json_depth, .utf8_checked = utf8_checked}));
    return CheckDocument(std::move(resource), type, id);
  }

  // Checks a resource already read (by ParseResourceDocument or the Bundle reader).
  StatusOr<fhir::ResourceDocument> CheckDocument(fhir::ResourceDocument resource,
                                                 std::string_view type,
                                                 std::optional<std::string_view> id) const {
    KURA_RETURN_IF_ERROR(fhir::CheckIdentity(resource, type, id));
    KURA_RETURN_IF_ERROR(api_.validator_.Validate(resource));
    return resource;
  }

  // Parses and checks a request body as a resource of `type` (with `id` on update).
  StatusOr<fhir::ResourceDocument> ReadBody(const RequestContext& ctx, std::string_view type,
                                            std::optional<std::string_view> id) const {
    return CheckResource(ctx.request.body(), type, id);
  }

  // `current` with `patch` applied, checked as an update of it would be. Every
  // failure here answers 422: the patch was well-formed but cannot make a valid next version.
  StatusOr<fhir::ResourceDocument> PatchedResource(const fhir::JsonPatch& patch,
                                                   const store::ResourceVersion& current) const {
    KURA_ASSIGN_OR_RETURN(
        std::string patched,
        fhir::ApplyJsonPatch(patch, current.payload, {.max_depth = api_.options_.max_json_depth}));
    return CheckResource(patched, current.type, current.id);
  }

  static Status CheckIfMatch(std::optional<int64_t> if_match, int64_t current_version) {
    if (!if_match || *if_match == current_version) return Status::Ok();
    return FailedPreconditionError("version conflict: If-Match does not match the current version")
        .WithDetail({"conflict", "the current version is " + std::to_string(current_version), ""});
  }

  std::string LocationFor(std::string_view type, std::string_view id, int64_t version) const {
    return api_.options_.public_base_url + "/fhir/R4/" + std::string(type) + "/" + std::string(id) +
           "/_history/" + std::to_string(version);
  }

  Response WriteResponse(const RequestContext& ctx, HttpStatus status,
                         const store::ResourceVersion& v) {
    Response r;
    switch (ParsePrefer(ctx.request)) {
      case PreferReturn::kMinimal:
        r = Response{status, ctx.request.version()};
        break;
      case PreferReturn::kOperationOutcome:
        r = JsonResponse(status,
                         fhir::SerializeJson(fhir::InformationOutcome(
                             status == HttpStatus::created ? "created" : "updated")),
                         ctx.request.version(), true);
        break;
      case PreferReturn::kRepresentation:
        r = JsonResponse(status, v.payload, ctx.request.version(), true);
        break;
    }
    r.set(bh::field::location, LocationFor(v.type, v.id, v.version));
    r.set(bh::field::etag, ETagFor(v.version));
    r.set(bh::field::last_modified, FormatHttpDate(v.last_updated));
    return r;
  }

  // Builds the stored version from a checked resource: stamps server fields, finds the
  // compartment, extracts the search index rows.
  StatusOr<store::ResourceVersion> MakeVersion(const fhir::ResourceDocument& resource,
                                               std::string_view type, std::string_view id,
                                               int64_t version, AuditNote& note) {
    store::ResourceVersion v;
    v.type = std::string(type);
    v.id = std::string(id);
    v.version = version;
    v.last_updated = Clock::System().Now();
    KURA_ASSIGN_OR_RETURN(v.payload,
                          fhir::StampServerFields(resource, id, version, v.last_updated));
    note.compartments = fhir::PatientCompartments(resource);
    // A Patient is in its own compartment (and under its own key) from version 1, when the
    // body it was created from had no id yet.
    if (type == "Patient" && (note.compartments.empty() || note.compartments.front() != v.id)) {
      std::erase(note.compartments, v.id);
      note.compartments.insert(note.compartments.begin(), v.id);
    }
    if (!note.compartments.empty()) v.compartment = note.compartments.front();
    // The search index rows of this version commit with it (and replace the previous ones).
    KURA_ASSIGN_OR_RETURN(v.index, IndexRowsFor(v.payload, api_.register_, api_.FhirBase()));
    note.resource_id = v.id;
    NoteWrittenVersion(note, v);
    return v;
  }

  // The version that deletes `current`.
  static store::ResourceVersion DeleteMarker(const store::ResourceVersion& current) {
    store::ResourceVersion marker;
    marker.type = current.type;
    marker.id = current.id;
    marker.version = current.version + 1;
    marker.last_updated = Clock::System().Now();
    marker.deleted = true;
    marker.compartment = current.compartment;
    return marker;
  }

  // Commits one version without blocking this thread; the store's writer reports back. Returns
  // the version's commit sequence.
  // The version's audit record (the request's outcome `status`, from `note`) commits with it.
  asio::awaitable<StatusOr<int64_t>> CommitOne(store::ResourceVersion v, const RequestContext& ctx,
                                               AuditNote& note, HttpStatus status) {
    auto start = [this, v = std::move(v),
                  records = AuditRecordsFor(note, ctx, status, api_.gate_.tenant())](
                     store::CommitCallback done) mutable {
      store::WriteBatch batch;
      batch.resources.push_back(std::move(v));
      batch.audit = audit::AuditLog::Draft(std::move(records));
      api_.store_.CommitAsync(std::move(batch), std::move(done));
    };
    StatusOr<store::CommitResult> result =
        co_await http::AwaitCallback<StatusOr<store::CommitResult>>(std::move(start));
    if (!result.ok()) co_return result.status();
    note.recorded = true;
    co_return result->sequences.front();
  }

  // The current version: from memory when the store has it, else read on the blocking pool.
  asio::awaitable<StatusOr<store::ResourceVersion>> ReadCurrent(const std::string& type,
                                                                const std::string& id) {
    std::optional<StatusOr<store::ResourceVersion>> cached =
        api_.store_.ReadCurrentIfCached(type, id);
    if (cached) co_return std::move(*cached);
    auto read = [this, &type, &id] { return api_.store_.ReadCurrent(type, id); };
    StatusOr<store::ResourceVersion> v = co_await http::RunBlocking(api_.pool_, std::move(read));
    co_return v;
  }

  // A specific version, likewise.
  asio::awaitable<StatusOr<store::ResourceVersion>> ReadVersion(const std::string& type,
                                                                const std::string& id,
                                                                int64_t version) {
    std::optional<StatusOr<store::ResourceVersion>> cached =
        api_.store_.ReadVersionIfCached(type, id, version);
    if (cached) co_return std::move(*cached);
    auto read = [this, &type, &id, version] { return api_.store_.ReadVersion(type, id, version); };
    StatusOr<store::ResourceVersion> v = co_await http::RunBlocking(api_.pool_, std::move(read));
    co_return v;
  }

  // Builds the next version from the current one (NotFound when there is none); nullopt means
  // nothing to write.
  using NextVersion = std::function<StatusOr<std::optional<store::ResourceVersion>>(
      const StatusOr<store::ResourceVersion>& current, HttpStatus& status)>;

  // Read-modify-write of type/id: reads the current version, builds the next with `next` and
  // commits it; when a concurrent writer got there first, starts again from its version.
  asio::awaitable<StatusOr<std::optional<store::ResourceVersion>>> CommitNextVersion(
      const std::string& type, const std::string& id, const RequestContext& ctx, AuditNote& note,
      NextVersion next) {
    for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
      StatusOr<store::ResourceVersion> current = co_await ReadCurrent(type, id);
      if (!current.ok() && current.status().code() != StatusCode::kNotFound) {
        co_return current.status();
      }
      HttpStatus status = HttpStatus::ok;
      StatusOr<std::optional<store::ResourceVersion>> version = next(current, status);
      if (!version.ok() || !version->has_value()) co_return version;
      StatusOr<int64_t> sequence = co_await CommitOne(**version, ctx, note, status);
      if (sequence.ok()) {
        (*version)->sequence = *sequence;
        co_return version;
      }
      if (sequence.status().code() != StatusCode::kAborted) co_return sequence.status();
    }
    co_return AbortedError("version conflict: too many concurrent updates; retry");
  }

  asio::awaitable<Response> Create(RequestContext& ctx, AuditNote& note) {
    std::string type(ctx.params.Get("type"));
    std::optional<Response> refused = co_await AdmitWrite(ctx, note, type, nullptr, true);
    if (refused) co_return std::move(*refused);
    StatusOr<fhir::ResourceDocument> resource = ReadBody(ctx, type, std::nullopt);
    if (!resource.ok()) co_return ErrorResponse(resource.status(), ctx);
    // Conditional create (http.html#ccreate): a resource matching If-None-Exist is answered with
    // 200 and nothing is written; more than one match is 412.
    // Held until the create is committed (or the match answered), so a concurrent conditional
    // write of this type sees it.
    ConditionalWriteLocks::Held held;
    if (std::string_view condition = ctx.request["If-None-Exist"]; !condition.empty()) {
      std::vector<std::string> locked_types{type};
      held = co_await api_.conditional_locks_.Acquire(std::move(locked_types));
      StatusOr<std::optional<std::string>> match = co_await SingleMatch(type, condition);
      if (!match.ok()) co_return ErrorResponse(match.status(), ctx);
      if (match->has_value()) {
        StatusOr<store::ResourceVersion> existing = co_await ReadCurrent(type, **match);
        if (!existing.ok()) co_return ErrorResponse(existing.status(), ctx);
        NoteVersion(note, *existing);
        note.details.emplace_back("fhir.if-none-exist", "matched");
        co_return WriteResponse(ctx, HttpStatus::ok, *existing);
      }
    }
    StatusOr<store::ResourceVersion> version =
        MakeVersion(*resource, type, TimeOrderedUuid(Clock::System().Now()), 1, note);
    if (!version.ok()) co_return ErrorResponse(version.status(), ctx);
    StatusOr<int64_t> sequence = co_await CommitOne(*version, ctx, note, HttpStatus::created);
    if (!sequence.ok()) co_return ErrorResponse(sequence.status(), ctx);
    version->sequence = *sequence;
    co_return WriteResponse(ctx, HttpStatus::created, *version);
  }

  asio::awaitable<Response> Update(RequestContext& ctx, AuditNote& note) {
    std::string type(ctx.params.Get("type"));
    std::string id(ctx.params.Get("id"));
    std::optional<Response> refused = co_await AdmitWrite(ctx, note, type, &id, true);
    if (refused) co_return std::move(*refused);
    if (Status s = CheckId(id); !s.ok()) co_return ErrorResponse(s, ctx);
    StatusOr<std::optional<int64_t>> if_match = IfMatch(ctx);
    if (!if_match.ok()) co_return ErrorResponse(if_match.status(), ctx);
    StatusOr<fhir::ResourceDocument> resource = ReadBody(ctx, type, id);
    if (!resource.ok()) co_return ErrorResponse(resource.status(), ctx);
    Response r = co_await WriteUpdate(ctx, note, type, id, *resource, *if_match);
    co_return r;
  }

  // Conditional update (http.html#cond-update), PUT [type]?criteria: the one match is updated,
  // no match creates, several are 412.
  asio::awaitable<Response> ConditionalUpdate(RequestContext& ctx, AuditNote& note) {
    std::string type(ctx.params.Get("type"));
    std::optional<Response> refused = co_await AdmitWrite(ctx, note, type, nullptr, true);
    if (refused) co_return std::move(*refused);
    StatusOr<std::optional<int64_t>> if_match = IfMatch(ctx);
    if (!if_match.ok()) co_return ErrorResponse(if_match.status(), ctx);
    StatusOr<fhir::ResourceDocument> resource = ReadBody(ctx, type, std::nullopt);
    if (!resource.ok()) co_return ErrorResponse(resource.status(), ctx);
    std::vector<std::string> locked_types{type};
    ConditionalWriteLocks::Held held =
        co_await api_.conditional_locks_.Acquire(std::move(locked_types));
    StatusOr<std::optional<std::string>> match = co_await SingleMatch(type, ctx.query);
    if (!match.ok()) co_return ErrorResponse(match.status(), ctx);
    // An id in the body must be the match's; with no match it names the resource to create
    // (update as create), else the server assigns one.
    const fhir::JsonMember* body_id = resource->Find("id");
    std::string id;
    if (match->has_value()) {
      if (body_id != nullptr && body_id->string_value != **match) {
        co_return ErrorResponse(BodyIdMismatch(type), ctx);
      }
      id = **match;
    } else if (body_id != nullptr && body_id->string_value) {
      if (Status s = CheckId(*body_id->string_value); !s.ok()) co_return ErrorResponse(s, ctx);
      id = *body_id->string_value;
    } else {
      id = TimeOrderedUuid(Clock::System().Now());
    }
    NoteTarget(note, type, id);
    Response r = co_await WriteUpdate(ctx, note, type, id, *resource, *if_match);
    co_return r;
  }

  // Writes `resource` as the next version of (type, id): 200, or 201 when it did not exist.
  asio::awaitable<Response> WriteUpdate(RequestContext& ctx, AuditNote& note,
                                        const std::string& type, const std::string& id,
                                        const fhir::ResourceDocument& resource,
                                        std::optional<int64_t> if_match) {
    bool existed = false;
    NextVersion next = [&](const StatusOr<store::ResourceVersion>& current,
                           HttpStatus& status) -> StatusOr<std::optional<store::ResourceVersion>> {
      const int64_t current_version = current.ok() ? current->version : 0;
      existed = current.ok() && !current->deleted;
      status = existed ? HttpStatus::ok : HttpStatus::created;
      KURA_RETURN_IF_ERROR(CheckIfMatch(if_match, current_version));
      KURA_ASSIGN_OR_RETURN(store::ResourceVersion v,
                            MakeVersion(resource, type, id, current_version + 1, note));
      return std::optional<store::ResourceVersion>(std::move(v));
    };
    StatusOr<std::optional<store::ResourceVersion>> written =
        co_await CommitNextVersion(type, id, ctx, note, std::move(next));
    if (!written.ok()) co_return ErrorResponse(written.status(), ctx);
    co_return WriteResponse(ctx, existed ? HttpStatus::ok : HttpStatus::created, **written);
  }

  // The start of every write: admits the caller, notes the target (`id` null for a type-level
  // write) and refuses what RefuseWrite refuses. nullopt when the write may go on.
  asio::awaitable<std::optional<Response>> AdmitWrite(RequestContext& ctx, AuditNote& note,
                                                      const std::string& type,
                                                      const std::string* id, bool body) {
    std::optional<Response> denied = co_await Admit(ctx, note);
    if (denied) co_return denied;
    if (id != nullptr) {
      NoteTarget(note, type, *id);
    } else {
      note.resource_type = type;
    }
    co_return RefuseWrite(ctx, type, body);
  }

  // The answer refusing a write to `type` (unknown, or AuditEvent; with `body`, a body that is
  // not FHIR JSON), or nullopt.
  std::optional<Response> RefuseWrite(const RequestContext& ctx, const std::string& type,
                                      bool body) {
    if (Status s = CheckType(type); !s.ok()) return ErrorResponse(s, ctx);
    if (Status s = RefuseAuditEventWrite(type); !s.ok()) return ErrorResponse(s, ctx);
    if (body && !IsJsonMedia(ctx.request[bh::field::content_type])) {
      return UnsupportedMedia(ctx, "the request body must be application/fhir+json");
    }
    return std::nullopt;
  }

  // The version If-Match names, if the header is there.
  static StatusOr<std::optional<int64_t>> IfMatch(const RequestContext& ctx) {
    auto h = ctx.request[bh::field::if_match];
    if (h.empty()) return std::optional<int64_t>();
    std::optional<int64_t> version = ParseETag(h);
    if (!version) return InvalidArgumentError("If-Match must be an ETag like W/\"1\"");
    return version;
  }

  // The one current resource of `type` matching `query`, nullopt when none, 412 when several.
  asio::awaitable<StatusOr<std::optional<std::string>>> SingleMatch(const std::string& type,
                                                                    std::string_view query) {
    StatusOr<std::vector<std::string>> ids = co_await FindMatchingIds(type, query);
    if (!ids.ok()) co_return ids.status();
    if (ids->size() > 1) co_return SeveralMatches(ids->size());
    if (ids->empty()) co_return std::optional<std::string>();
    co_return std::optional<std::string>(std::move(ids->front()));
  }

  asio::awaitable<Response> Delete(RequestContext& ctx, AuditNote& note) {
    std::string type(ctx.params.Get("type"));
    std::string id(ctx.params.Get("id"));
    std::optional<Response> refused = co_await AdmitWrite(ctx, note, type, &id, false);
    if (refused) co_return std::move(*refused);
    if (Status s = CheckId(id); !s.ok()) co_return ErrorResponse(s, ctx);
    Response r = co_await WriteDelete(ctx, note, type, id);
    co_return r;
  }

  // Conditional delete, DELETE [type]?criteria: the one match is deleted, no match is 204 with
  // nothing written (as a second delete of one resource is), several are 412.
  asio::awaitable<Response> ConditionalDelete(RequestContext& ctx, AuditNote& note) {
    std::string type(ctx.params.Get("type"));
    std::optional<Response> refused = co_await AdmitWrite(ctx, note, type, nullptr, false);
    if (refused) co_return std::move(*refused);
    std::vector<std::string> locked_types{type};
    ConditionalWriteLocks::Held held =
        co_await api_.conditional_locks_.Acquire(std::move(locked_types));
    StatusOr<std::optional<std::string>> match = co_await SingleMatch(type, ctx.query);
    if (!match.ok()) co_return ErrorResponse(match.status(), ctx);
    if (!match->has_value()) co_return Response{HttpStatus::no_content, ctx.request.version()};
    NoteTarget(note, type, **match);
    Response r = co_await WriteDelete(ctx, note, type, **match);
    co_return r;
  }

  // Deletes (type, id): 204, with the marker's ETag when one was written.
  asio::awaitable<Response> WriteDelete(RequestContext& ctx, AuditNote& note,
                                        const std::string& type, const std::string& id) {
    NextVersion next = [&](const StatusOr<store::ResourceVersion>& current,
                           HttpStatus& status) -> StatusOr<std::optional<store::ResourceVersion>> {
      status = HttpStatus::no_content;
      if (!current.ok()) return current.status();  // NotFound: nothing to delete.
      NoteVersion(note, *current);
      if (current->deleted) return std::optional<store::ResourceVersion>();  // Idempotent.
      store::ResourceVersion marker = DeleteMarker(*current);
      NoteWrittenVersion(note, marker);
      return std::optional<store::ResourceVersion>(std::move(marker));
    };
    StatusOr<std::optional<store::ResourceVersion>> deleted =
        co_await CommitNextVersion(type, id, ctx, note, std::move(next));
    if (!deleted.ok()) co_return ErrorResponse(deleted.status(), ctx);
    Response r{HttpStatus::no_content, ctx.request.version()};
    if (deleted->has_value()) r.set(bh::field::etag, ETagFor((*deleted)->version));
    co_return r;
  }

  struct PatchRequest {
    fhir::JsonPatch patch;
    std::optional<int64_t> if_match;
  };

  // Reads a PATCH's JSON Patch document and If-Match into `out`; the refusal when they are not
  // acceptable (a wrong media type names the one accepted in Accept-Patch).
  std::optional<Response> ReadPatch(const RequestContext& ctx, PatchRequest& out) {
    std::string_view media = ctx.request[bh::field::content_type];
    if (BaseMediaType(media) != kJsonPatchMedia) {
      Response r = UnsupportedMedia(
          ctx, IsJsonMedia(media)
                   ? "FHIRPath Patch is not supported: send a JSON Patch as "
                     "application/json-patch+json"
                   : "the request body must be a JSON Patch (application/json-patch+json)");
      r.set("Accept-Patch", kJsonPatchMedia);
      return r;
    }
    StatusOr<std::optional<int64_t>> if_match = IfMatch(ctx);
    if (!if_match.ok()) return ErrorResponse(if_match.status(), ctx);
    StatusOr<fhir::JsonPatch> patch =
        fhir::ParseJsonPatch(ctx.request.body(), {.max_depth = api_.options_.max_json_depth});
    if (!patch.ok()) return ErrorResponse(patch.status(), ctx);
    out.patch = std::move(*patch);
    out.if_match = *if_match;
    return std::nullopt;
  }

  // PATCH [type]/[id] with a JSON Patch (RFC 6902): the patch applies to the current version and
  // the result is processed as an update of it (http.html#patch). 400 for a malformed patch, 422
  // when it cannot be applied (a failed test, a missing path, a server-owned member changed) or
  // the result is not a valid resource, 412 on an If-Match mismatch, 404/410 when there is
  // nothing to patch.
  asio::awaitable<Response> Patch(RequestContext& ctx, AuditNote& note) {
    std::string type(ctx.params.Get("type"));
    std::string id(ctx.params.Get("id"));
    std::optional<Response> refused = co_await AdmitWrite(ctx, note, type, &id, false);
    if (refused) co_return std::move(*refused);
    if (Status s = CheckId(id); !s.ok()) co_return ErrorResponse(s, ctx);
    PatchRequest request;
    if (std::optional<Response> bad = ReadPatch(ctx, request)) co_return std::move(*bad);
    Response r = co_await WritePatch(ctx, note, type, id, request);
    co_return r;
  }

  // Conditional patch, PATCH [type]?criteria: the one match is patched, no match is 404, several
  // are 412 (as a conditional PATCH entry in a Bundle).
  asio::awaitable<Response> ConditionalPatch(RequestContext& ctx, AuditNote& note) {
    std::string type(ctx.params.Get("type"));
    std::optional<Response> refused = co_await AdmitWrite(ctx, note, type, nullptr, false);
    if (refused) co_return std::move(*refused);
    PatchRequest request;
    if (std::optional<Response> bad = ReadPatch(ctx, request)) co_return std::move(*bad);
    std::vector<std::string> locked_types{type};
    ConditionalWriteLocks::Held held =
        co_await api_.conditional_locks_.Acquire(std::move(locked_types));
    StatusOr<std::optional<std::string>> match = co_await SingleMatch(type, ctx.query);
    if (!match.ok()) co_return ErrorResponse(match.status(), ctx);
    if (!match->has_value()) {
      co_return ErrorResponse(NotFoundError("the condition matches no resource"), ctx);
    }
    NoteTarget(note, type, **match);
    Response r = co_await WritePatch(ctx, note, type, **match, request);
    co_return r;
  }

  // Applies `request` to the current version of (type, id) and writes the result: 200.
  asio::awaitable<Response> WritePatch(RequestContext& ctx, AuditNote& note,
                                       const std::string& type, const std::string& id,
                                       const PatchRequest& request) {
    bool unprocessable = false;
    NextVersion next = [&](const StatusOr<store::ResourceVersion>& current,
                           HttpStatus& status) -> StatusOr<std::optional<store::ResourceVersion>> {
      status = HttpStatus::ok;
      if (!current.ok()) {
        return current.status().code() == StatusCode::kNotFound ? NotFoundError("no such resource")
                                                                : current.status();
      }
      NoteVersion(note, *current);
      if (current->deleted) return GoneError("the resource was deleted");
      KURA_RETURN_IF_ERROR(CheckIfMatch(request.if_match, current->version));
      StatusOr<fhir::ResourceDocument> patched = PatchedResource(request.patch, *current);
      if (!patched.ok()) {
        unprocessable = true;
        return patched.status();
      }
      KURA_ASSIGN_OR_RETURN(store::ResourceVersion v,
                            MakeVersion(*patched, type, id, current->version + 1, note));
      return std::optional<store::ResourceVersion>(std::move(v));
    };
    StatusOr<std::optional<store::ResourceVersion>> written =
        co_await CommitNextVersion(type, id, ctx, note, std::move(next));
    if (!written.ok()) {
      if (unprocessable) {
        co_return ErrorResponseAs(HttpStatus::unprocessable_entity, written.status(), ctx);
      }
      co_return ErrorResponse(written.status(), ctx);
    }
    co_return WriteResponse(ctx, HttpStatus::ok, **written);
  }

  Response ReadResponse(const RequestContext& ctx, const store::ResourceVersion& v) {
    if (v.deleted) {
      Response r = ErrorResponse(GoneError("the resource was deleted"), ctx);
      r.set(bh::field::etag, ETagFor(v.version));
      return r;
    }
    Response r = JsonResponse(HttpStatus::ok, v.payload, ctx.request.version(), true);
    r.set(bh::field::etag, ETagFor(v.version));
    r.set(bh::field::last_modified, FormatHttpDate(v.last_updated));
    return r;
  }

  asio::awaitable<Response> Read(RequestContext& ctx, AuditNote& note) {
    std::optional<Response> denied = co_await Admit(ctx, note);
    if (denied) co_return std::move(*denied);
    std::string type(ctx.params.Get("type"));
    std::string id(ctx.params.Get("id"));
    NoteTarget(note, type, id);
    if (Status s = CheckType(type); !s.ok()) co_return ErrorResponse(s, ctx);
    if (type == kAuditEvent && api_.audit_events_ != nullptr) {
      Response r = co_await api_.audit_events_->ReadAuditEvent(ctx, note, id);
      co_return r;
    }
    if (Status s = CheckId(id); !s.ok()) co_return ErrorResponse(s, ctx);
    StatusOr<store::ResourceVersion> v = co_await ReadCurrent(type, id);
    if (!v.ok()) {
      co_return ErrorResponse(v.status().code() == StatusCode::kNotFound
                                  ? NotFoundError("no such resource")
                                  : v.status(),
                              ctx);
    }
    NoteVersion(note, *v);
    // If-Modified-Since is read only without If-None-Match, and ignored when not a valid date.
    std::optional<std::string_view> if_none_match;
    std::optional<TimePoint> if_modified_since;
    if (auto it = ctx.request.find(bh::field::if_none_match); it != ctx.request.end()) {
      if_none_match = it->value();
    } else {
      if_modified_since = ParseHttpDate(ctx.request[bh::field::if_modified_since]);
    }
    if (ReadNotModified(*v, if_none_match, if_modified_since, std::chrono::seconds(1))) {
      Response r{HttpStatus::not_modified, ctx.request.version()};
      r.set(bh::field::etag, ETagFor(v->version));
      r.set(bh::field::last_modified, FormatHttpDate(v->last_updated));
      co_return r;
    }
    co_return ReadResponse(ctx, *v);
  }

  asio::awaitable<Response> VRead(RequestContext& ctx, AuditNote& note) {
    std::optional<Response> denied = co_await Admit(ctx, note);
    if (denied) co_return std::move(*denied);
    std::string type(ctx.params.Get("type"));
    std::string id(ctx.params.Get("id"));
    NoteTarget(note, type, id);
    if (Status s = CheckType(type); !s.ok()) co_return ErrorResponse(s, ctx);
    if (Status s = CheckId(id); !s.ok()) co_return ErrorResponse(s, ctx);
    std::optional<int64_t> vid = http::ParsePositiveInteger(ctx.params.Get("vid"));
    if (!vid) {
      co_return ErrorResponse(InvalidArgumentError("the version id must be a positive integer"),
                              ctx);
    }
    if (type == kAuditEvent && api_.audit_events_ != nullptr) {
      if (*vid != 1) co_return ErrorResponse(NotFoundError("no such resource version"), ctx);
      Response r = co_await api_.audit_events_->ReadAuditEvent(ctx, note, id);
      co_return r;
    }
    StatusOr<store::ResourceVersion> v = co_await ReadVersion(type, id, *vid);
    if (!v.ok()) {
      co_return ErrorResponse(v.status().code() == StatusCode::kNotFound
                                  ? NotFoundError("no such resource version")
                                  : v.status(),
                              ctx);
    }
    NoteVersion(note, *v);
    co_return ReadResponse(ctx, *v);
  }

  asio::awaitable<Response> History(RequestContext& ctx, AuditNote& note) {
    std::optional<Response> denied = co_await Admit(ctx, note);
    if (denied) co_return std::move(*denied);
    store::HistoryQuery q;
    q.type = std::string(ctx.params.Get("type"));
    q.id = std::string(ctx.params.Get("id"));
    NoteTarget(note, q.type, q.id);
    if (!q.type.empty()) {
      if (Status s = CheckType(q.type); !s.ok()) co_return ErrorResponse(s, ctx);
    }
    if (q.type == kAuditEvent) {
      co_return ErrorResponse(
          UnimplementedError("AuditEvent has no history: each audit record has one version"), ctx);
    }
    if (!q.id.empty()) {
      if (Status s = CheckId(q.id); !s.ok()) co_return ErrorResponse(s, ctx);
    }
    q.limit = api_.options_.history_page_size;
    std::string since_text;
    for (const auto& [name, value] : http::ParseQuery(ctx.query)) {
      if (name == "_count") {
        auto n = http::ParsePositiveInteger(value);
        if (!n)
          co_return ErrorResponse(InvalidArgumentError("_count must be a positive integer"), ctx);
        q.limit = std::min(*n, api_.options_.history_max_page_size);
      } else if (name == "_since") {
        auto t = ParseInstant(value);
        if (!t) {
          co_return ErrorResponse(
              InvalidArgumentError("_since must be a FHIR instant, e.g. 2024-01-01T00:00:00Z"),
              ctx);
        }
        q.since = *t;
        since_text = value;
      } else if (name == "_page") {
        auto n = http::ParsePositiveInteger(value);
        if (!n)
          co_return ErrorResponse(InvalidArgumentError("_page is not a valid page cursor"), ctx);
        q.before_sequence = *n;
      }
    }
    auto read_history = [&] { return api_.store_.History(q); };
    StatusOr<store::HistoryPage> page =
        co_await http::RunBlocking(api_.pool_, std::move(read_history));
    if (!page.ok()) co_return ErrorResponse(page.status(), ctx);
    for (const store::ResourceVersion& v : page->versions) {
      if (!v.compartment.empty()) note.compartments.push_back(v.compartment);
    }
    note.details.emplace_back("fhir.entries", std::to_string(page->versions.size()));
    co_return JsonResponse(HttpStatus::ok, HistoryBundle(ctx, q, since_text, *page),
                           ctx.request.version(), true);
  }

  std::string HistoryBundle(const RequestContext& ctx, const store::HistoryQuery& q,
                            const std::string& since_text, const store::HistoryPage& page) {
    const std::string& base = api_.FhirBase();
    std::string self = base + std::string(ctx.path.substr(kFhirBasePath.size()));
    std::string params = "_count=" + std::to_string(q.limit);
    if (!since_text.empty()) params += "&_since=" + http::PercentEncode(since_text);
    Json links = Json::array();
    links.push_back(
        {{"relation", "self"},
         {"url", self + "?" + params +
                     (q.before_sequence ? "&_page=" + std::to_string(q.before_sequence) : "")}});
    if (page.next_before_sequence != 0) {
      links.push_back(
          {{"relation", "next"},
           {"url", self + "?" + params + "&_page=" + std::to_string(page.next_before_sequence)}});
    }
    Json head = Json::object();
    head["resourceType"] = "Bundle";
    head["id"] = RandomUuid();
    head["meta"] = {{"lastUpdated", FormatInstant(Clock::System().Now())}};
    head["type"] = "history";
    head["link"] = std::move(links);
    std::string out = fhir::SerializeJson(head);
    out.pop_back();  // Reopen the object to append entries without re-parsing stored payloads.
    out += ",\"entry\":[";
    bool first = true;
    for (const store::ResourceVersion& v : page.versions) {
      if (!first) out += ',';
      first = false;
      std::string full_url = base + "/" + v.type + "/" + v.id;
      Json request = Json::object();
      Json response = Json::object();
      if (v.deleted) {
        request = {{"method", "DELETE"}, {"url", v.type + "/" + v.id}};
        response = {{"status", "204 No Content"},
                    {"etag", ETagFor(v.version)},
                    {"lastModified", FormatInstant(v.last_updated)}};
      } else {
        request = v.version == 1 ? Json{{"method", "POST"}, {"url", v.type}}
                                 : Json{{"method", "PUT"}, {"url", v.type + "/" + v.id}};
        response = {{"status", v.version == 1 ? "201 Created" : "200 OK"},
                    {"etag", ETagFor(v.version)},
                    {"lastModified", FormatInstant(v.last_updated)}};
      }
      out += "{\"fullUrl\":" + Json(full_url).dump();
      if (!v.deleted) out += ",\"resource\":" + v.payload;
      out += ",\"request\":" + fhir::SerializeJson(request);
      out += ",\"response\":" + fhir::SerializeJson(response) + "}";
    }
    out += "]}";
    return out;
  }

  asio::awaitable<Response> Metadata(RequestContext& ctx) {
    if (auto problem = FormatProblem(ctx)) co_return UnsupportedMedia(ctx, *problem);
    Response r =
        JsonResponse(HttpStatus::ok, api_.capability_statement_, ctx.request.version(), true);
    co_return r;
  }

  // GET [base]/Patient/[id]/$everything.
  asio::awaitable<Response> Everything(RequestContext& ctx, AuditNote& note) {
    std::optional<Response> denied = co_await Admit(ctx, note);
    if (denied) co_return std::move(*denied);
    std::string type(ctx.params.Get("type"));
    std::string id(ctx.params.Get("id"));
    NoteTarget(note, type, id);
    if (Status s = CheckType(type); !s.ok()) co_return ErrorResponse(s, ctx);
    if (type != "Patient") {
      co_return ErrorResponse(UnimplementedError("$everything is supported on Patient only"), ctx);
    }
    if (Status s = CheckId(id); !s.ok()) co_return ErrorResponse(s, ctx);
    Response r = co_await api_.search_.Everything(ctx, note, id, http::ParseQuery(ctx.query));
    co_return r;
  }

  // GET [base]/[type]?... and POST [base]/[type]/_search (form body, after the URL's parameters).
  asio::awaitable<Response> Search(RequestContext& ctx, AuditNote& note) {
    std::optional<Response> denied = co_await Admit(ctx, note);
    if (denied) co_return std::move(*denied);
    std::string type(ctx.params.Get("type"));
    note.resource_type = type;
    if (Status s = CheckType(type); !s.ok()) co_return ErrorResponse(s, ctx);
    if (type == kAuditEvent && api_.audit_events_ != nullptr) {
      Response r = co_await api_.audit_events_->SearchAuditEvents(ctx, note);
      co_return r;
    }
    std::vector<std::pair<std::string, std::string>> params = http::ParseQuery(ctx.query);
    if (ctx.request.method() == bh::verb::post) {
      std::string_view media = ctx.request[bh::field::content_type];
      if (!ctx.request.body().empty() &&
          media.find("application/x-www-form-urlencoded") == std::string_view::npos) {
        co_return UnsupportedMedia(ctx, "a _search body must be application/x-www-form-urlencoded");
      }
      for (auto& param : http::ParseQuery(ctx.request.body())) params.push_back(std::move(param));
    }
    Response r = co_await api_.search_.Search(ctx, note, type, std::move(params));
    co_return r;
  }

  // ---- Batch and transaction Bundles (http.html#transaction) ----

  // Everything that needs search: conditional create (ifNoneExist), conditional update, patch and
  // delete (`Type?query` urls), conditional references inside a transaction and searches inside a
  // Bundle. Returns the ids of the current `type` resources that match `query` (the raw,
  // percent-encoded query string of a search url), at most kMaxBundleSearchMatches. Unknown
  // parameters are refused here: a condition that is silently ignored would match too much.
  // A conditional update's body names another resource than the one its condition found.
  static Status BodyIdMismatch(const std::string& type) {
    return InvalidArgumentError("the resource id does not match the resource the condition found")
        .WithDetail({"invalid", "", type + ".id"});
  }

  // A condition that must match at most one resource matched `count`.
  static Status SeveralMatches(size_t count) {
    return FailedPreconditionError("the condition matches more than one resource")
        .WithDetail({"multiple-matches",
                     "the condition matches " + std::to_string(count) +
                         " resources; it must match at most one",
                     ""});
  }

  asio::awaitable<StatusOr<std::vector<std::string>>> FindMatchingIds(const std::string& type,
                                                                      std::string_view query) {
    std::string text(query);
    auto match = [this, &type, &text] {
      return api_.search_.MatchingIds(type, text, kMaxBundleSearchMatches);
    };
    StatusOr<std::vector<std::string>> ids =
        co_await http::RunBlocking(api_.pool_, std::move(match));
    co_return ids;
  }

  // One Bundle entry while it is processed.
  struct EntryWork {
    const fhir::BundleEntry* entry = nullptr;
    fhir::EntryMethod method = fhir::EntryMethod::kGet;
    std::string type;
    std::string id;  // The target: assigned for a create, resolved for a conditional operation.
    std::string_view action;   // Its audit action.
    bool conditional = false;  // PUT, PATCH or DELETE by `Type?query`.
    bool no_op = false;        // Nothing to write: a conditional create that matched, a conditional
                               // delete that matched nothing.
    std::optional<int64_t> if_match;
    // POST and PUT: the resource as the Bundle reader read it (not yet checked), then checked once.
    std::optional<fhir::ResourceDocument> read_with_bundle;
    std::optional<fhir::ResourceDocument> resource;
    std::optional<fhir::JsonPatch> patch;  // PATCH.
    std::vector<std::string> matches;      // GET Type?query: the ids found.
    // The outcome (of the latest attempt for writes).
    bool done = false;  // Failed for good, or finished.
    Status error;
    HttpStatus status = HttpStatus::ok;
    std::optional<store::ResourceVersion> version;  // Written (when `write`), or read.
    bool write = false;
    bool committed = false;  // Its audit record is durable: it rode in its own commit (batch).
    std::string search_bundle;
    AuditNote note;
    std::vector<audit::AuditRecord> records;  // Its audit record, once built.

    bool IsWrite() const { return method <= fhir::EntryMethod::kPatch; }
    bool IsRead() const { return !IsWrite(); }
    bool IsSearch() const {
      return IsRead() && entry->target.kind == fhir::EntryTarget::Kind::kType;
    }
  };

  // One work item per entry, taking over the resource the Bundle reader read.
  static std::vector<EntryWork> WorksFor(fhir::Bundle& bundle) {
    std::vector<EntryWork> works(bundle.entries.size());
    for (size_t i = 0; i < works.size(); ++i) {
      works[i].entry = &bundle.entries[i];
      works[i].read_with_bundle = std::move(bundle.entries[i].document);
    }
    return works;
  }

  static std::string_view ActionOf(const fhir::BundleEntry& e) {
    namespace act = audit::action;
    if (!e.method) return act::kBatch;
    switch (*e.method) {
      case fhir::EntryMethod::kDelete:
        return act::kDelete;
      case fhir::EntryMethod::kPost:
        return act::kCreate;
      case fhir::EntryMethod::kPut:
        return act::kUpdate;
      case fhir::EntryMethod::kPatch:
        return act::kPatch;
      case fhir::EntryMethod::kGet:
      case fhir::EntryMethod::kHead:
        break;
    }
    switch (e.target.kind) {
      case fhir::EntryTarget::Kind::kType:
        return act::kSearch;
      case fhir::EntryTarget::Kind::kVersion:
        return act::kVread;
      default:
        return act::kRead;
    }
  }

  // A fresh audit note for the entry (one per attempt: building a version fills it in).
  static AuditNote EntryNote(const AuditNote& request, const EntryWork& w) {
    AuditNote n;
    n.category = audit::category::kFhir;
    n.action = w.action;
    n.principal = request.principal;
    NoteTarget(n, w.type, w.id);
    n.details.emplace_back("bundle.index", std::to_string(w.entry->index));
    if (w.entry->method) {
      n.details.emplace_back("bundle.method", std::string(fhir::EntryMethodName(*w.entry->method)));
    }
    return n;
  }

  // Records that the entry failed with `error` (relative to the entry; `element` is where an
  // error without an expression points), answering `as` or HttpStatusFor's choice.
  static void FailEntry(EntryWork& w, const Status& error, std::string_view element = "",
                        std::optional<HttpStatus> as = std::nullopt) {
    w.error = fhir::EntryStatus(error, w.entry->index, element);
    w.status = as.value_or(HttpStatusFor(error.code()));
    w.version.reset();
    w.write = false;
    w.done = true;
  }

  // The checks of an entry that need no search: structure, type, id, If-Match; the id of a create.
  void ResolveTarget(EntryWork& w, const AuditNote& request) {
    const fhir::BundleEntry& e = *w.entry;
    if (e.method) w.method = *e.method;
    w.action = ActionOf(e);
    w.type = e.target.type;
    w.id = e.target.id;
    w.note = EntryNote(request, w);
    if (!e.problem.ok()) {
      w.error = e.problem;
      w.status = HttpStatus::bad_request;
      w.done = true;
      return;
    }
    using Kind = fhir::EntryTarget::Kind;
    if (e.target.kind == Kind::kOther) {
      FailEntry(w, UnimplementedError("this interaction is not supported inside a Bundle"),
                "request.url");
      return;
    }
    if (Status s = CheckType(w.type); !s.ok()) return FailEntry(w, s, "request.url");
    if (w.IsWrite()) {
      if (Status s = RefuseAuditEventWrite(w.type); !s.ok()) return FailEntry(w, s, "request.url");
    } else if (w.type == kAuditEvent) {
      return FailEntry(w,
                       UnimplementedError("AuditEvent is read at [base]/AuditEvent, not inside a "
                                          "Bundle"),
                       "request.url");
    }
    if (e.target.kind == Kind::kInstance || e.target.kind == Kind::kVersion) {
      if (Status s = CheckId(w.id); !s.ok()) return FailEntry(w, s, "request.url");
    }
    if (e.if_match) {
      w.if_match = ParseETag(*e.if_match);
      if (!w.if_match) {
        return FailEntry(w, InvalidArgumentError("ifMatch must be an ETag like W/\"1\""),
                         "request.ifMatch");
      }
    }
    w.conditional =
        w.IsWrite() && w.method != fhir::EntryMethod::kPost && e.target.kind == Kind::kType;
    if (w.method == fhir::EntryMethod::kPost && !e.if_none_exist) {
      w.id = TimeOrderedUuid(Clock::System().Now());
    }
  }

  // The types of a Bundle's conditional writes (ifNoneExist creates; PUT, PATCH and DELETE by
  // `Type?query`), whose locks the Bundle holds from resolving its conditions to its commit.
  static std::vector<std::string> ConditionalWriteTypes(const fhir::Bundle& bundle) {
    std::vector<std::string> types;
    for (const fhir::BundleEntry& e : bundle.entries) {
      if (!e.method || e.target.type.empty()) continue;
      const bool create = *e.method == fhir::EntryMethod::kPost && e.if_none_exist.has_value();
      const bool by_query =
          (*e.method == fhir::EntryMethod::kPut || *e.method == fhir::EntryMethod::kPatch ||
           *e.method == fhir::EntryMethod::kDelete) &&
          e.target.kind == fhir::EntryTarget::Kind::kType;
      if (create || by_query) types.push_back(e.target.type);
    }
    return types;
  }

  // The `id` a resource's JSON text names, nullopt when none (or when the text is not a resource:
  // its intake reports that later); InvalidArgument for an id that is not a valid FHIR id.
  StatusOr<std::optional<std::string>> BodyIdOf(std::string_view resource) const {
    StatusOr<fhir::ResourceDocument> doc =
        fhir::ParseResourceDocument(resource, {.max_depth = api_.options_.max_json_depth});
    if (!doc.ok()) return std::optional<std::string>();
    const fhir::JsonMember* id = doc->Find("id");
    if (id == nullptr || !id->string_value) return std::optional<std::string>();
    if (!fhir::IsValidId(*id->string_value)) {
      return InvalidArgumentError("invalid id")
          .WithDetail({"value", "the resource id must match [A-Za-z0-9\\-\\.]{1,64}", ""});
    }
    return std::optional<std::string>(*id->string_value);
  }

  static bool NeedsSearch(const EntryWork& w) {
    if (w.done) return false;
    return w.conditional || w.IsSearch() ||
           (w.method == fhir::EntryMethod::kPost && w.entry->if_none_exist.has_value());
  }

  // Resolves a conditional operation or a search through FindMatchingIds.
  asio::awaitable<void> ResolveBySearch(EntryWork& w, const AuditNote& request) {
    const fhir::BundleEntry& e = *w.entry;
    const bool create = w.method == fhir::EntryMethod::kPost;
    // Views of the entry's own strings: `cond ? *optional_string : ""` would be a temporary.
    std::string_view query;
    if (create) {
      query = *e.if_none_exist;
    } else if (e.target.query) {
      query = *e.target.query;
    }
    StatusOr<std::vector<std::string>> ids = co_await FindMatchingIds(w.type, query);
    if (!ids.ok()) {
      FailEntry(w, ids.status(), create ? "request.ifNoneExist" : "request.url");
      co_return;
    }
    if (w.IsSearch()) {
      w.matches = std::move(*ids);
      co_return;
    }
    if (ids->size() > 1) {
      FailEntry(w, SeveralMatches(ids->size()), create ? "request.ifNoneExist" : "request.url");
      co_return;
    }
    if (ids->size() == 1) {
      w.id = ids->front();
      w.no_op = create;  // A conditional create that matched reports the match.
    } else if (create) {
      w.id = TimeOrderedUuid(Clock::System().Now());  // No match: create.
    } else if (w.method == fhir::EntryMethod::kPut) {
      // No match: create, under the body's id when it names one (update as create), as the
      // plain PUT [type]?criteria does. Read here, before the id is used to rewrite references.
      StatusOr<std::optional<std::string>> body_id = BodyIdOf(e.resource);
      if (!body_id.ok()) {
        FailEntry(w, body_id.status(), "resource.id");
        co_return;
      }
      w.id = body_id->has_value() ? std::move(**body_id) : TimeOrderedUuid(Clock::System().Now());
    } else if (w.method == fhir::EntryMethod::kDelete) {
      w.no_op = true;  // Nothing matched: nothing to delete.
    } else {
      FailEntry(w, NotFoundError("the condition matches no resource"), "request.url");
      co_return;
    }
    w.note = EntryNote(request, w);
  }

  // Checks an entry's resource (POST, PUT: through the same intake as a body, after the
  // transaction's references are rewritten) or patch document, once for all attempts.
  void PrepareEntry(EntryWork& w, const fhir::FullUrlIndex* index) {
    if (w.done) return;
    const fhir::BundleEntry& e = *w.entry;
    if (w.method == fhir::EntryMethod::kPost || w.method == fhir::EntryMethod::kPut) {
      if (w.no_op) return;
      StatusOr<fhir::ResourceDocument> doc = InvalidArgumentError("unreachable");
      const bool create_like = w.method == fhir::EntryMethod::kPost || w.conditional;
      std::optional<std::string_view> url_id;
      if (!create_like) url_id = w.id;
      std::optional<std::string> rewritten;
      if (index != nullptr) {
        StatusOr<std::optional<std::string>> text = index->Rewrite(e);
        if (!text.ok()) return FailEntry(w, text.status(), "resource");
        rewritten = std::move(*text);
      }
      if (rewritten) {
        doc = CheckResource(*rewritten, w.type, url_id, /*utf8_checked=*/true);
      } else if (w.read_with_bundle) {
        doc = CheckDocument(std::move(*w.read_with_bundle), w.type, url_id);
      } else {
        doc = CheckResource(e.resource, w.type, url_id, /*utf8_checked=*/true);
      }
      w.read_with_bundle.reset();
      if (!doc.ok()) return FailEntry(w, doc.status(), "resource");
      if (w.conditional) {
        const fhir::JsonMember* body_id = doc->Find("id");
        if (body_id != nullptr && body_id->string_value && *body_id->string_value != w.id) {
          return FailEntry(w, BodyIdMismatch(w.type), "resource");
        }
      }
      w.resource = std::move(*doc);
    } else if (w.method == fhir::EntryMethod::kPatch) {
      StatusOr<std::string> text = fhir::JsonPatchOfEntry(e);
      if (!text.ok()) return FailEntry(w, text.status(), "resource");
      StatusOr<fhir::JsonPatch> patch =
          fhir::ParseJsonPatch(*text, {.max_depth = api_.options_.max_json_depth});
      if (!patch.ok()) return FailEntry(w, patch.status(), "resource.data");
      w.patch = std::move(*patch);
    }
  }

  // Whether building the entry's version needs the current version of its target.
  static bool NeedsCurrent(const EntryWork& w) {
    if (w.done) return false;
    switch (w.method) {
      case fhir::EntryMethod::kPost:
        return w.no_op;
      case fhir::EntryMethod::kDelete:
        return !w.no_op;
      case fhir::EntryMethod::kPut:
      case fhir::EntryMethod::kPatch:
        return true;
      case fhir::EntryMethod::kGet:
      case fhir::EntryMethod::kHead:
        return w.entry->target.kind == fhir::EntryTarget::Kind::kInstance;
    }
    return false;
  }

  // Builds the version a write entry commits (or its no-op outcome) from `current`.
  void BuildWrite(EntryWork& w, const StatusOr<store::ResourceVersion>* current,
                  const AuditNote& request) {
    w.note = EntryNote(request, w);
    w.version.reset();
    w.write = false;
    w.error = Status::Ok();
    auto found = [&]() -> Status {
      if (current->ok()) return Status::Ok();
      return current->status().code() == StatusCode::kNotFound ? NotFoundError("no such resource")
                                                               : current->status();
    };
    switch (w.method) {
      case fhir::EntryMethod::kPost: {
        if (w.no_op) {  // The resource the condition found.
          if (Status s = found(); !s.ok()) return FailEntry(w, s);
          NoteVersion(w.note, **current);
          w.version = **current;
          w.status = HttpStatus::ok;
          return;
        }
        StatusOr<store::ResourceVersion> v = MakeVersion(*w.resource, w.type, w.id, 1, w.note);
        if (!v.ok()) return FailEntry(w, v.status(), "resource");
        w.version = std::move(*v);
        w.write = true;
        w.status = HttpStatus::created;
        return;
      }
      case fhir::EntryMethod::kPut: {
        if (!current->ok() && current->status().code() != StatusCode::kNotFound) {
          return FailEntry(w, current->status());
        }
        const int64_t current_version = current->ok() ? (*current)->version : 0;
        if (Status s = CheckIfMatch(w.if_match, current_version); !s.ok()) {
          return FailEntry(w, s, "request.ifMatch");
        }
        const bool existed = current->ok() && !(*current)->deleted;
        StatusOr<store::ResourceVersion> v =
            MakeVersion(*w.resource, w.type, w.id, current_version + 1, w.note);
        if (!v.ok()) return FailEntry(w, v.status(), "resource");
        w.version = std::move(*v);
        w.write = true;
        w.status = existed ? HttpStatus::ok : HttpStatus::created;
        return;
      }
      case fhir::EntryMethod::kPatch: {
        if (Status s = found(); !s.ok()) return FailEntry(w, s);
        NoteVersion(w.note, **current);
        if ((*current)->deleted) return FailEntry(w, GoneError("the resource was deleted"));
        if (Status s = CheckIfMatch(w.if_match, (*current)->version); !s.ok()) {
          return FailEntry(w, s, "request.ifMatch");
        }
        StatusOr<fhir::ResourceDocument> patched = PatchedResource(*w.patch, **current);
        if (!patched.ok()) {
          return FailEntry(w, patched.status(), "resource", HttpStatus::unprocessable_entity);
        }
        StatusOr<store::ResourceVersion> v =
            MakeVersion(*patched, w.type, w.id, (*current)->version + 1, w.note);
        if (!v.ok()) return FailEntry(w, v.status(), "resource", HttpStatus::unprocessable_entity);
        w.version = std::move(*v);
        w.write = true;
        w.status = HttpStatus::ok;
        return;
      }
      case fhir::EntryMethod::kDelete: {
        w.status = HttpStatus::no_content;
        if (w.no_op) return;
        if (Status s = found(); !s.ok()) return FailEntry(w, s);
        NoteVersion(w.note, **current);
        if (Status s = CheckIfMatch(w.if_match, (*current)->version); !s.ok()) {
          return FailEntry(w, s, "request.ifMatch");
        }
        if ((*current)->deleted) {  // Idempotent: nothing to write.
          w.version = **current;
          return;
        }
        w.version = DeleteMarker(**current);
        NoteWrittenVersion(w.note, *w.version);
        w.write = true;
        return;
      }
      case fhir::EntryMethod::kGet:
      case fhir::EntryMethod::kHead:
        break;
    }
  }

  // A read entry's outcome from the version it found.
  static void FinishRead(EntryWork& w, const StatusOr<store::ResourceVersion>& v,
                         std::string_view missing) {
    if (!v.ok()) {
      return FailEntry(w, v.status().code() == StatusCode::kNotFound
                              ? NotFoundError(std::string(missing))
                              : v.status());
    }
    NoteVersion(w.note, *v);
    if (v->deleted) return FailEntry(w, GoneError("the resource was deleted"));
    w.version = *v;
    w.status = HttpStatus::ok;
    // Conditional read of an instance, as on the plain route: 304 with the entry's etag and
    // lastModified, and no resource.
    const fhir::BundleEntry& e = *w.entry;
    if (e.target.kind == fhir::EntryTarget::Kind::kInstance &&
        ReadNotModified(*v, e.if_none_match, e.if_modified_since, std::chrono::milliseconds(1))) {
      w.status = HttpStatus::not_modified;
    }
  }

  // Runs a read entry (GET or HEAD). `overlay` holds the versions the transaction writes, by
  // "Type/id": its reads see them (http.html#trules: reads come after the writes).
  asio::awaitable<void> RunRead(
      EntryWork& w, const StatusOr<store::ResourceVersion>* current, const AuditNote& request,
      const std::unordered_map<std::string, const store::ResourceVersion*>& overlay) {
    if (w.done) co_return;
    w.note = EntryNote(request, w);
    const fhir::EntryTarget& t = w.entry->target;
    if (t.kind == fhir::EntryTarget::Kind::kType) {
      co_await RunSearch(w);
      co_return;
    }
    auto written = overlay.find(w.type + "/" + w.id);
    if (t.kind == fhir::EntryTarget::Kind::kInstance) {
      if (written != overlay.end()) {
        FinishRead(w, *written->second, "no such resource");
      } else {
        FinishRead(w, *current, "no such resource");
      }
      co_return;
    }
    if (written != overlay.end() && written->second->version == t.version) {
      FinishRead(w, *written->second, "no such resource version");
      co_return;
    }
    StatusOr<store::ResourceVersion> v = co_await ReadVersion(w.type, w.id, t.version);
    FinishRead(w, v, "no such resource version");
  }

  // A search inside a Bundle: the resources FindMatchingIds found, as a searchset Bundle.
  asio::awaitable<void> RunSearch(EntryWork& w) {
    std::vector<std::pair<std::string, std::string>> keys;
    keys.reserve(w.matches.size());
    for (const std::string& id : w.matches) keys.emplace_back(w.type, id);
    std::vector<StatusOr<store::ResourceVersion>> found = co_await ReadCurrents(std::move(keys));
    std::vector<store::ResourceVersion> matches;
    for (StatusOr<store::ResourceVersion>& v : found) {
      if (!v.ok() && v.status().code() != StatusCode::kNotFound) {
        FailEntry(w, v.status());
        co_return;
      }
      if (!v.ok() || v->deleted) continue;
      if (!v->compartment.empty()) w.note.compartments.push_back(v->compartment);
      matches.push_back(std::move(*v));
    }
    w.note.details.emplace_back("fhir.entries", std::to_string(matches.size()));
    std::vector<SearchsetEntry> entries;
    entries.reserve(matches.size());
    for (const store::ResourceVersion& v : matches) entries.push_back({&v, "match"});
    w.search_bundle =
        SearchsetBundle({}, static_cast<int64_t>(matches.size()), api_.FhirBase(), entries);
    w.status = HttpStatus::ok;
  }

  // The current versions of (type, id) `keys`: from memory where the store has them, the rest in
  // one trip to the blocking pool.
  asio::awaitable<std::vector<StatusOr<store::ResourceVersion>>> ReadCurrents(
      std::vector<std::pair<std::string, std::string>> keys) {
    std::vector<std::optional<StatusOr<store::ResourceVersion>>> found(keys.size());
    std::vector<size_t> misses;
    for (size_t k = 0; k < keys.size(); ++k) {
      found[k] = api_.store_.ReadCurrentIfCached(keys[k].first, keys[k].second);
      if (!found[k]) misses.push_back(k);
    }
    if (!misses.empty()) {
      auto read = [this, &keys, &misses] {
        std::vector<StatusOr<store::ResourceVersion>> out;
        out.reserve(misses.size());
        for (size_t k : misses)
          out.push_back(api_.store_.ReadCurrent(keys[k].first, keys[k].second));
        return out;
      };
      std::vector<StatusOr<store::ResourceVersion>> read_back =
          co_await http::RunBlocking(api_.pool_, std::move(read));
      for (size_t j = 0; j < misses.size(); ++j) found[misses[j]] = std::move(read_back[j]);
    }
    std::vector<StatusOr<store::ResourceVersion>> out;
    out.reserve(found.size());
    for (auto& f : found) out.push_back(std::move(*f));
    co_return out;
  }

  // The current version of every entry that NeedsCurrent, by entry index (null for the others).
  asio::awaitable<std::vector<std::optional<StatusOr<store::ResourceVersion>>>> CurrentsFor(
      const std::vector<EntryWork>& works, const std::vector<size_t>& which) {
    std::vector<std::pair<std::string, std::string>> keys;
    std::vector<size_t> owners;
    for (size_t i : which) {
      if (!NeedsCurrent(works[i])) continue;
      keys.emplace_back(works[i].type, works[i].id);
      owners.push_back(i);
    }
    std::vector<std::optional<StatusOr<store::ResourceVersion>>> out(works.size());
    if (keys.empty()) co_return out;
    std::vector<StatusOr<store::ResourceVersion>> found = co_await ReadCurrents(std::move(keys));
    for (size_t k = 0; k < owners.size(); ++k) out[owners[k]] = std::move(found[k]);
    co_return out;
  }

  using CommitResults = std::vector<StatusOr<store::CommitResult>>;

  // Commits each batch on its own (the store's group commit shares the durable commits) and
  // waits for all of them.
  asio::awaitable<CommitResults> CommitEach(std::vector<store::WriteBatch> batches) {
    if (batches.empty()) co_return CommitResults{};
    auto start = [this,
                  batches = std::move(batches)](std::function<void(CommitResults)> done) mutable {
      struct Pending {
        std::mutex mu;
        std::vector<std::optional<StatusOr<store::CommitResult>>> results;
        size_t left = 0;
        std::function<void(CommitResults)> done;
      };
      auto pending = std::make_shared<Pending>();
      pending->results.resize(batches.size());
      pending->left = batches.size();
      pending->done = std::move(done);
      for (size_t i = 0; i < batches.size(); ++i) {
        api_.store_.CommitAsync(std::move(batches[i]),
                                [pending, i](StatusOr<store::CommitResult> result) {
                                  std::unique_lock<std::mutex> lock(pending->mu);
                                  pending->results[i] = std::move(result);
                                  if (--pending->left != 0) return;
                                  lock.unlock();
                                  CommitResults all;
                                  all.reserve(pending->results.size());
                                  for (auto& r : pending->results) all.push_back(std::move(*r));
                                  pending->done(std::move(all));
                                });
      }
    };
    CommitResults results = co_await http::AwaitCallback<CommitResults>(std::move(start));
    co_return results;
  }

  // Checks every entry up to the point where it needs the store: structure, target, search-based
  // resolution. In a transaction, stops at the first failure and returns its index.
  asio::awaitable<std::optional<size_t>> ResolveEntries(std::vector<EntryWork>& works,
                                                        const std::vector<size_t>& order,
                                                        const AuditNote& request,
                                                        bool transaction) {
    for (size_t i : order) {
      ResolveTarget(works[i], request);
      if (NeedsSearch(works[i])) co_await ResolveBySearch(works[i], request);
      if (transaction && !works[i].error.ok()) co_return i;
    }
    co_return std::nullopt;
  }

  // Resolves the conditional references ("Patient?identifier=x|1") of a transaction's resources
  // into `index`. Returns the index of the entry whose reference failed to resolve.
  asio::awaitable<std::optional<size_t>> ResolveConditionalReferences(
      std::vector<EntryWork>& works, const std::vector<size_t>& order, fhir::FullUrlIndex& index) {
    std::unordered_map<std::string, bool> seen;
    for (size_t i : order) {
      EntryWork& w = works[i];
      if (w.done || w.entry->resource.empty() || w.method == fhir::EntryMethod::kPatch) continue;
      for (const fhir::LinkString& link : w.entry->links) {
        if (!link.reference) continue;
        if (w.entry->resource.substr(link.offset, link.size).find('?') == std::string_view::npos) {
          continue;
        }
        std::string reference = fhir::LinkValue(*w.entry, link);
        const size_t q = reference.find('?');
        if (q == std::string::npos || !fhir::IsR4ResourceType(reference.substr(0, q))) continue;
        if (!seen.emplace(reference, true).second) continue;
        std::string type = reference.substr(0, q);
        StatusOr<std::vector<std::string>> ids =
            co_await FindMatchingIds(type, std::string_view(reference).substr(q + 1));
        if (ids.ok() && ids->size() != 1) {
          ids = FailedPreconditionError("a conditional reference must match exactly one resource")
                    .WithDetail({ids->empty() ? "not-found" : "multiple-matches",
                                 "the conditional reference matches " +
                                     std::to_string(ids->size()) + " resources",
                                 ""});
        }
        if (!ids.ok()) {
          FailEntry(w, ids.status(), "resource");
          co_return i;
        }
        index.Add(reference, type, ids->front());
      }
    }
    co_return std::nullopt;
  }

  // The batch-response or transaction-response Bundle.
  std::string BundleResponse(bool transaction, const std::vector<EntryWork>& works,
                             bool representation, const RequestContext& ctx) {
    const std::string& base = api_.FhirBase();
    Json head = Json::object();
    head["resourceType"] = "Bundle";
    head["id"] = RandomUuid();
    head["type"] = transaction ? "transaction-response" : "batch-response";
    head["link"] = Json::array({{{"relation", "self"}, {"url", base}}});
    std::string out = fhir::SerializeJson(head);
    out.pop_back();  // Reopen the object to append entries without re-parsing payloads.
    out += ",\"entry\":[";
    out.reserve(out.size() + works.size() * 320);
    bool first = true;
    for (const EntryWork& w : works) {
      if (!first) out += ',';
      first = false;
      out += '{';
      const store::ResourceVersion* v = w.error.ok() && w.version ? &*w.version : nullptr;
      if (v != nullptr) {
        out += "\"fullUrl\":" + fhir::JsonString(base + "/" + v->type + "/" + v->id) + ",";
        const bool show =
            (w.method == fhir::EntryMethod::kGet && w.status != HttpStatus::not_modified) ||
            (representation && w.IsWrite());
        if (show && !v->deleted) out += "\"resource\":" + v->payload + ",";
      } else if (w.error.ok() && !w.search_bundle.empty() && w.method == fhir::EntryMethod::kGet) {
        out += "\"resource\":" + w.search_bundle + ",";
      }
      // Written by hand: it is the bulk of a large Bundle's response.
      out += "\"response\":{\"status\":\"" + StatusLine(w.status) + "\"";
      if (v != nullptr) {
        if (w.IsWrite() && !v->deleted) {
          out += ",\"location\":" + fhir::JsonString(LocationFor(v->type, v->id, v->version));
        }
        out += ",\"etag\":" + fhir::JsonString(ETagFor(v->version)) + ",\"lastModified\":\"" +
               FormatInstant(v->last_updated) + "\"";
      }
      if (!w.error.ok()) {
        out += ",\"outcome\":" + fhir::SerializeJson(fhir::OperationOutcomeFor(EntryError(w, ctx)));
      }
      out += "}}";
    }
    out += "]}";
    return out;
  }

  // The entry's error as the client may see it; a 5xx is logged with its internal detail.
  static Status EntryError(const EntryWork& w, const RequestContext& ctx) {
    if (static_cast<unsigned>(w.status) >= 500) {
      log::Error("bundle_entry_failed", {{"request_id", ctx.request_id},
                                         {"entry", static_cast<int64_t>(w.entry->index)},
                                         {"code", StatusCodeName(w.error.code())},
                                         {"detail", w.error.internal_detail()}});
    }
    if (w.error.code() != StatusCode::kInternal) return w.error;
    return fhir::EntryStatus(InternalError("internal error"), w.entry->index);
  }

  // A transaction that fails answers with the failing entry's status and OperationOutcome.
  static Response TransactionFailed(const RequestContext& ctx, AuditNote& note,
                                    const EntryWork& w) {
    note.details.emplace_back("bundle.failed_entry", std::to_string(w.entry->index));
    return ErrorResponseAs(w.status, EntryError(w, ctx), ctx);
  }

  // Runs fn(k) for every k in [0, n): on the blocking pool, split over the cores, when n is large
  // (the CPU work of a big Bundle, so that it uses every core and leaves the I/O thread free);
  // here when it is small. fn must be safe to run concurrently for different k and must not
  // throw. Pass a named lambda, moved in (see the note on co_await expressions at the top).
  template <typename Fn>
  asio::awaitable<void> ParallelFor(size_t n, Fn fn) {
    static const size_t kCores = std::max<size_t>(1, std::thread::hardware_concurrency());
    constexpr size_t kMinPerChunk = 32;
    const size_t chunks = std::min(kCores, n / kMinPerChunk);
    if (chunks <= 1) {
      for (size_t k = 0; k < n; ++k) fn(k);
      co_return;
    }
    auto start = [this, n, chunks, &fn](std::function<void(bool)> done) {
      auto left = std::make_shared<std::atomic<size_t>>(chunks);
      auto finished = std::make_shared<std::function<void(bool)>>(std::move(done));
      for (size_t c = 0; c < chunks; ++c) {
        const size_t begin = n * c / chunks;
        const size_t end = n * (c + 1) / chunks;
        asio::post(api_.pool_, [&fn, begin, end, left, finished] {
          for (size_t k = begin; k < end; ++k) fn(k);
          if (left->fetch_sub(1) == 1) (*finished)(true);
        });
      }
    };
    (void)co_await http::AwaitCallback<bool>(std::move(start));
  }

  // Builds the version (and audit record) of each write entry in `writes` from the current
  // versions, in parallel. `keep_notes`: the entries' notes stay usable (a batch may still need
  // them for a record of its own); otherwise they are consumed by the records.
  asio::awaitable<void> BuildWrites(
      std::vector<EntryWork>& works, const std::vector<size_t>& writes,
      const std::vector<std::optional<StatusOr<store::ResourceVersion>>>& currents,
      const AuditNote& request, const RequestContext& ctx, bool keep_notes) {
    auto build = [&](size_t k) {
      EntryWork& w = works[writes[k]];
      BuildWrite(w, currents[writes[k]] ? &*currents[writes[k]] : nullptr, request);
      if (!w.error.ok()) return;
      w.records = keep_notes
                      ? AuditRecordsFor(w.note, ctx, w.status, api_.gate_.tenant())
                      : AuditRecordsFor(std::move(w.note), ctx, w.status, api_.gate_.tenant());
    };
    co_await ParallelFor(writes.size(), std::move(build));
  }

  // All or nothing: every entry is checked, every write built, then one commit carries the writes
  // and the audit records of every entry and of the request. A version conflict (a concurrent
  // writer) starts again from re-reading the current versions.
  asio::awaitable<Response> Transaction(RequestContext& ctx, AuditNote& note, fhir::Bundle& bundle,
                                        bool representation) {
    const size_t n = bundle.entries.size();
    std::vector<EntryWork> works = WorksFor(bundle);
    const std::vector<size_t> order = fhir::ProcessingOrder(bundle);
    std::vector<std::string> locked_types = ConditionalWriteTypes(bundle);
    ConditionalWriteLocks::Held held =
        co_await api_.conditional_locks_.Acquire(std::move(locked_types));
    std::optional<size_t> failed = co_await ResolveEntries(works, order, note, true);
    if (failed) co_return TransactionFailed(ctx, note, works[*failed]);

    std::vector<std::string> targets(n);
    fhir::FullUrlIndex index;
    std::vector<size_t> writes;  // In processing order.
    for (size_t i : order) {
      const EntryWork& w = works[i];
      if (!w.IsWrite()) continue;
      writes.push_back(i);
      if (w.no_op && w.method == fhir::EntryMethod::kDelete) continue;
      targets[i] = w.type + "/" + w.id;
      if (w.entry->full_url) index.Add(*w.entry->full_url, w.type, w.id);
    }
    if (Status s = fhir::CheckDistinctTargets(bundle, targets); !s.ok()) {
      co_return ErrorResponse(s, ctx);
    }
    failed = co_await ResolveConditionalReferences(works, order, index);
    if (failed) co_return TransactionFailed(ctx, note, works[*failed]);
    auto prepare = [&](size_t k) { PrepareEntry(works[writes[k]], &index); };
    co_await ParallelFor(writes.size(), std::move(prepare));
    for (size_t i : writes) {
      if (!works[i].error.ok()) co_return TransactionFailed(ctx, note, works[i]);
    }

    for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
      std::vector<std::optional<StatusOr<store::ResourceVersion>>> currents =
          co_await CurrentsFor(works, order);
      co_await BuildWrites(works, writes, currents, note, ctx, /*keep_notes=*/false);
      std::unordered_map<std::string, const store::ResourceVersion*> overlay;
      for (size_t i : writes) {
        EntryWork& w = works[i];
        if (!w.error.ok()) co_return TransactionFailed(ctx, note, w);
        if (w.write) overlay.emplace(w.type + "/" + w.id, &*w.version);
      }
      for (size_t i : order) {
        EntryWork& w = works[i];
        if (!w.IsRead()) continue;
        co_await RunRead(w, currents[i] ? &*currents[i] : nullptr, note, overlay);
        if (!w.error.ok()) co_return TransactionFailed(ctx, note, w);
        w.records = AuditRecordsFor(std::move(w.note), ctx, w.status, api_.gate_.tenant());
      }
      // One unit: the versions, then every entry's record and the request's.
      store::WriteBatch batch;
      batch.resources.reserve(writes.size());
      for (size_t i : writes) {
        if (!works[i].write) continue;
        // The response needs neither the index rows nor, unless asked for, the payload: hand
        // those over and copy the rest whole, so every other field travels as it is.
        store::ResourceVersion& v = works[i].version.value();
        std::vector<store::IndexEntry> index = std::move(v.index);
        std::string payload = representation ? v.payload : std::move(v.payload);
        store::ResourceVersion& out = batch.resources.emplace_back(v);
        out.payload = std::move(payload);
        out.index = std::move(index);
      }
      AuditNote request_note = note;
      for (EntryWork& w : works) {
        std::move(w.records.begin(), w.records.end(), std::back_inserter(request_note.preceding));
        w.records.clear();
      }
      batch.audit = audit::AuditLog::Draft(
          AuditRecordsFor(std::move(request_note), ctx, HttpStatus::ok, api_.gate_.tenant()));
      // The response is built while the store's writer commits.
      std::string body;
      auto start = [&, batch = std::move(batch)](store::CommitCallback done) mutable {
        api_.store_.CommitAsync(std::move(batch), std::move(done));
        body = BundleResponse(true, works, representation, ctx);
      };
      StatusOr<store::CommitResult> result =
          co_await http::AwaitCallback<StatusOr<store::CommitResult>>(std::move(start));
      if (result.ok()) {
        note.recorded = true;
        co_return JsonResponse(HttpStatus::ok, std::move(body), ctx.request.version(), true);
      }
      if (result.status().code() != StatusCode::kAborted) {
        co_return ErrorResponse(result.status(), ctx);
      }
    }
    co_return ErrorResponse(AbortedError("version conflict: too many concurrent updates; retry"),
                            ctx);
  }

  // Each entry on its own: its own commit (with its own audit record), its own outcome. The
  // entries of one phase (deletes, creates, updates and patches) commit concurrently (the store's
  // group commit shares their durable commits); the phases and then the reads follow each other.
  asio::awaitable<Response> Batch(RequestContext& ctx, AuditNote& note, fhir::Bundle& bundle,
                                  bool representation) {
    // The authentication record (a token-cache miss) goes first, as it would for one request.
    if (!note.preceding.empty()) {
      std::vector<audit::AuditRecord> authentication = std::exchange(note.preceding, {});
      Status recorded = co_await api_.gate_.CommitAudit(std::move(authentication));
      if (!recorded.ok()) co_return ErrorResponse(UnavailableError("audit log unavailable"), ctx);
    }
    std::vector<EntryWork> works = WorksFor(bundle);
    const std::vector<size_t> order = fhir::ProcessingOrder(bundle);
    std::vector<std::string> locked_types = ConditionalWriteTypes(bundle);
    ConditionalWriteLocks::Held held =
        co_await api_.conditional_locks_.Acquire(std::move(locked_types));
    (void)co_await ResolveEntries(works, order, note, false);
    auto prepare = [&](size_t k) { PrepareEntry(works[order[k]], nullptr); };
    co_await ParallelFor(order.size(), std::move(prepare));

    auto phase = [&bundle](size_t i) {
      const std::optional<fhir::EntryMethod>& m = bundle.entries[i].method;
      if (!m || *m >= fhir::EntryMethod::kGet) return 3;
      return *m == fhir::EntryMethod::kDelete ? 0 : *m == fhir::EntryMethod::kPost ? 1 : 2;
    };
    size_t at = 0;
    while (at < order.size() && phase(order[at]) < 3) {
      const int current_phase = phase(order[at]);
      std::vector<size_t> pending;
      for (; at < order.size() && phase(order[at]) == current_phase; ++at) {
        if (!works[order[at]].done) pending.push_back(order[at]);
      }
      for (int attempt = 0; attempt < kMaxWriteAttempts && !pending.empty(); ++attempt) {
        std::vector<std::optional<StatusOr<store::ResourceVersion>>> currents =
            co_await CurrentsFor(works, pending);
        co_await BuildWrites(works, pending, currents, note, ctx, /*keep_notes=*/true);
        std::vector<store::WriteBatch> batches;
        std::vector<size_t> owners;
        for (size_t i : pending) {
          EntryWork& w = works[i];
          if (!w.error.ok()) continue;
          if (!w.write) {
            w.done = true;
            continue;
          }
          store::WriteBatch& b = batches.emplace_back();
          b.resources.push_back(*w.version);
          b.audit = audit::AuditLog::Draft(std::move(w.records));
          w.records.clear();
          owners.push_back(i);
        }
        CommitResults results = co_await CommitEach(std::move(batches));
        pending.clear();
        for (size_t k = 0; k < owners.size(); ++k) {
          EntryWork& w = works[owners[k]];
          if (results[k].ok()) {
            w.version->sequence = results[k]->sequences.front();
            w.committed = true;
            w.done = true;
          } else if (results[k].status().code() == StatusCode::kAborted) {
            pending.push_back(owners[k]);
          } else {
            FailEntry(w, results[k].status());
          }
        }
      }
      for (size_t i : pending) {
        FailEntry(works[i], AbortedError("version conflict: too many concurrent updates; retry"));
      }
    }
    // Reads, after every write.
    const std::vector<size_t> reads(order.begin() + static_cast<std::ptrdiff_t>(at), order.end());
    std::vector<std::optional<StatusOr<store::ResourceVersion>>> currents =
        co_await CurrentsFor(works, reads);
    const std::unordered_map<std::string, const store::ResourceVersion*> no_overlay;
    for (size_t i : reads) {
      co_await RunRead(works[i], currents[i] ? &*currents[i] : nullptr, note, no_overlay);
    }
    // The records of entries that did not commit their own go with the request's.
    for (const EntryWork& w : works) {
      if (w.committed) continue;
      std::vector<audit::AuditRecord> records =
          AuditRecordsFor(w.note, ctx, w.status, api_.gate_.tenant());
      std::move(records.begin(), records.end(), std::back_inserter(note.preceding));
    }
    co_return JsonResponse(HttpStatus::ok, BundleResponse(false, works, representation, ctx),
                           ctx.request.version(), true);
  }

  // POST [base] with a batch or transaction Bundle.
  asio::awaitable<Response> PostBundle(RequestContext& ctx, AuditNote& note) {
    std::optional<Response> denied = co_await Admit(ctx, note);
    if (denied) co_return std::move(*denied);
    if (!IsJsonMedia(ctx.request[bh::field::content_type])) {
      co_return UnsupportedMedia(ctx, "the request body must be application/fhir+json");
    }
    StatusOr<fhir::Bundle> bundle =
        fhir::ParseBundle(ctx.request.body(), {.max_depth = api_.options_.max_json_depth,
                                               .max_entries = api_.options_.max_bundle_entries,
                                               .base = api_.FhirBase()});
    if (!bundle.ok()) {
      if (bundle.status().code() == StatusCode::kResourceExhausted) {
        co_return ErrorResponseAs(HttpStatus::payload_too_large, bundle.status(), ctx);
      }
      co_return ErrorResponse(bundle.status(), ctx);
    }
    const bool transaction = bundle->type == fhir::BundleType::kTransaction;
    note.details.emplace_back("bundle.type", transaction ? "transaction" : "batch");
    note.details.emplace_back("bundle.entries", std::to_string(bundle->entries.size()));
    const bool representation =
        ctx.request["Prefer"].find("return=representation") != std::string_view::npos;
    if (transaction) {
      Response r = co_await Transaction(ctx, note, *bundle, representation);
      co_return r;
    }
    Response r = co_await Batch(ctx, note, *bundle, representation);
    co_return r;
  }

 private:
  FhirApi& api_;
};

FhirApi::FhirApi(FhirApiOptions options, store::Store& store, RequestGate& gate,
                 const fhir::ResourceValidator& validator, asio::thread_pool& blocking_pool,
                 FhirSearch& search, const fhir::DataRegister& data_register,
                 AuditApi* audit_events)
    : options_(std::move(options)),
      fhir_base_(FhirBaseUrl(options_.public_base_url)),
      capability_statement_(fhir::SerializeJson(BuildCapabilityStatement(options_))),
      store_(store),
      validator_(validator),
      pool_(blocking_pool),
      gate_(gate),
      search_(search),
      register_(data_register),
      audit_events_(audit_events) {}

void FhirApi::RegisterRoutes(http::Router& router) {
  auto h = std::make_shared<Handlers>(*this);
  auto bind = [h](auto method) {
    return [h, method](RequestContext& ctx) { return ((*h).*method)(ctx); };
  };
  auto audited = [this, h](auto method, std::string_view action) {
    return gate_.Route(h, method, audit::category::kFhir, action);
  };
  namespace act = audit::action;
  using V = http::Verb;
  router.Add(V::get, "/", [](RequestContext& ctx) -> asio::awaitable<Response> {
    co_return JsonResponse(
        HttpStatus::ok,
        R"({"name":"Kura","description":"Personal health record server","fhir":"/fhir/R4"})",
        ctx.request.version(), true);
  });
  router.Add(V::get, "/healthz", [](RequestContext& ctx) -> asio::awaitable<Response> {
    co_return JsonResponse(HttpStatus::ok, R"({"status":"ok"})", ctx.request.version(), true);
  });
  router.Add(V::get, "/fhir/R4/metadata", bind(&Handlers::Metadata));
  router.Add(V::get, "/fhir/R4/_history", audited(&Handlers::History, act::kHistory));
  router.Add(V::post, "/fhir/R4", audited(&Handlers::PostBundle, act::kBatch));
  router.Add(V::get, "/fhir/R4/{type}/_history", audited(&Handlers::History, act::kHistory));
  router.Add(V::get, "/fhir/R4/{type}/{id}/_history", audited(&Handlers::History, act::kHistory));
  router.Add(V::get, "/fhir/R4/{type}/{id}/$everything",
             audited(&Handlers::Everything, act::kEverything));
  router.Add(V::get, "/fhir/R4/{type}/{id}/_history/{vid}", audited(&Handlers::VRead, act::kVread));
  router.Add(V::get, "/fhir/R4/{type}", audited(&Handlers::Search, act::kSearch));
  router.Add(V::post, "/fhir/R4/{type}/_search", audited(&Handlers::Search, act::kSearch));
  router.Add(V::post, "/fhir/R4/{type}", audited(&Handlers::Create, act::kCreate));
  router.Add(V::get, "/fhir/R4/{type}/{id}", audited(&Handlers::Read, act::kRead));
  router.Add(V::put, "/fhir/R4/{type}", audited(&Handlers::ConditionalUpdate, act::kUpdate));
  router.Add(V::put, "/fhir/R4/{type}/{id}", audited(&Handlers::Update, act::kUpdate));
  router.Add(V::delete_, "/fhir/R4/{type}", audited(&Handlers::ConditionalDelete, act::kDelete));
  router.Add(V::delete_, "/fhir/R4/{type}/{id}", audited(&Handlers::Delete, act::kDelete));
  router.Add(V::patch, "/fhir/R4/{type}", audited(&Handlers::ConditionalPatch, act::kPatch));
  router.Add(V::patch, "/fhir/R4/{type}/{id}", audited(&Handlers::Patch, act::kPatch));
}

}  // namespace kura::api
