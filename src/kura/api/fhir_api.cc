// FHIR REST handlers.
#include "kura/api/fhir_api.h"

#include <boost/asio/awaitable.hpp>
#include <charconv>
#include <functional>

#include "kura/api/audit_api.h"
#include "kura/api/audit_trail.h"
#include "kura/api/request_gate.h"
#include "kura/api/responses.h"
#include "kura/audit/audit_log.h"
#include "kura/base/clock.h"
#include "kura/base/random.h"
#include "kura/base/secret_bytes.h"
#include "kura/fhir/r4_tables.h"
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

bool IsJsonMedia(std::string_view media) {
  auto semi = media.find(';');
  std::string_view base = media.substr(0, semi);
  while (!base.empty() && base.back() == ' ') base.remove_suffix(1);
  return base == "application/fhir+json" || base == "application/json" ||
         base == "application/json+fhir";
}

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

std::string ETagFor(int64_t version) { return "W/\"" + std::to_string(version) + "\""; }

// "W/\"3\"" or "\"3\"" or "3" -> 3; nullopt when unparseable.
std::optional<int64_t> ParseETag(std::string_view etag) {
  if (etag.starts_with("W/")) etag.remove_prefix(2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  return http::ParsePositiveInteger(etag);
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
                          {"url", options.public_base_url + "/fhir/R4"}};
  cs["fhirVersion"] = "4.0.1";
  cs["format"] = Json::array({"application/fhir+json", "json"});
  Json rest = Json::object();
  rest["mode"] = "server";
  rest["documentation"] =
      "Resources are checked for JSON well-formedness, resourceType and id; full structural "
      "validation against the R4 StructureDefinitions is not yet performed. Search, batch, "
      "transaction and patch are not yet supported. Every resource is encrypted at rest.";
  rest["security"] = {{"cors", false},
                      {"description",
                       "HTTPS only. Every interaction except GET /metadata requires "
                       "'Authorization: Bearer <token>'."}};
  Json resources = Json::array();
  for (std::string_view type : fhir::R4ResourceTypes()) {
    Json r = Json::object();
    r["type"] = std::string(type);
    Json interactions = Json::array();
    for (const char* code :
         {"read", "vread", "update", "delete", "history-instance", "history-type", "create"}) {
      interactions.push_back({{"code", code}});
    }
    r["interaction"] = std::move(interactions);
    r["versioning"] = "versioned-update";
    r["readHistory"] = true;
    r["updateCreate"] = true;
    r["conditionalCreate"] = false;
    r["conditionalRead"] = "not-supported";
    r["conditionalUpdate"] = false;
    r["conditionalDelete"] = "not-supported";
    resources.push_back(std::move(r));
  }
  rest["resource"] = std::move(resources);
  rest["interaction"] = Json::array({{{"code", "history-system"}}});
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

  // What the request names, bounded: an invalid name is still worth recording, a huge one not.
  static void NoteTarget(AuditNote& note, std::string_view type, std::string_view id) {
    note.resource_type = std::string(type.substr(0, 64));
    note.resource_id = std::string(id.substr(0, 64));
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

  // Parses and checks a request body as a resource of `type` (with `id` on update).
  StatusOr<fhir::ResourceDocument> ReadBody(const RequestContext& ctx, std::string_view type,
                                            std::optional<std::string_view> id) {
    KURA_ASSIGN_OR_RETURN(fhir::ResourceDocument resource,
                          fhir::ParseResourceDocument(ctx.request.body(),
                                                      {.max_depth = api_.options_.max_json_depth}));
    KURA_RETURN_IF_ERROR(fhir::CheckIdentity(resource, type, id));
    KURA_RETURN_IF_ERROR(api_.validator_.Validate(resource));
    return resource;
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
  // compartment.
  static StatusOr<store::ResourceVersion> MakeVersion(const fhir::ResourceDocument& resource,
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
    note.resource_id = v.id;
    note.resource_version = std::to_string(version);
    return v;
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
    std::optional<Response> denied = co_await Admit(ctx, note);
    if (denied) co_return std::move(*denied);
    std::string type(ctx.params.Get("type"));
    note.resource_type = type.substr(0, 64);
    if (Status s = CheckType(type); !s.ok()) co_return ErrorResponse(s, ctx);
    if (Status s = RefuseAuditEventWrite(type); !s.ok()) co_return ErrorResponse(s, ctx);
    if (!IsJsonMedia(ctx.request[bh::field::content_type])) {
      co_return UnsupportedMedia(ctx, "the request body must be application/fhir+json");
    }
    StatusOr<fhir::ResourceDocument> resource = ReadBody(ctx, type, std::nullopt);
    if (!resource.ok()) co_return ErrorResponse(resource.status(), ctx);
    StatusOr<store::ResourceVersion> version =
        MakeVersion(*resource, type, TimeOrderedUuid(Clock::System().Now()), 1, note);
    if (!version.ok()) co_return ErrorResponse(version.status(), ctx);
    StatusOr<int64_t> sequence = co_await CommitOne(*version, ctx, note, HttpStatus::created);
    if (!sequence.ok()) co_return ErrorResponse(sequence.status(), ctx);
    version->sequence = *sequence;
    co_return WriteResponse(ctx, HttpStatus::created, *version);
  }

  asio::awaitable<Response> Update(RequestContext& ctx, AuditNote& note) {
    std::optional<Response> denied = co_await Admit(ctx, note);
    if (denied) co_return std::move(*denied);
    std::string type(ctx.params.Get("type"));
    std::string id(ctx.params.Get("id"));
    NoteTarget(note, type, id);
    if (Status s = CheckType(type); !s.ok()) co_return ErrorResponse(s, ctx);
    if (Status s = RefuseAuditEventWrite(type); !s.ok()) co_return ErrorResponse(s, ctx);
    if (Status s = CheckId(id); !s.ok()) co_return ErrorResponse(s, ctx);
    if (!IsJsonMedia(ctx.request[bh::field::content_type])) {
      co_return UnsupportedMedia(ctx, "the request body must be application/fhir+json");
    }
    std::optional<int64_t> if_match;
    if (auto h = ctx.request[bh::field::if_match]; !h.empty()) {
      if_match = ParseETag(h);
      if (!if_match) {
        co_return ErrorResponse(InvalidArgumentError("If-Match must be an ETag like W/\"1\""), ctx);
      }
    }
    StatusOr<fhir::ResourceDocument> resource = ReadBody(ctx, type, id);
    if (!resource.ok()) co_return ErrorResponse(resource.status(), ctx);
    bool existed = false;
    NextVersion next = [&](const StatusOr<store::ResourceVersion>& current,
                           HttpStatus& status) -> StatusOr<std::optional<store::ResourceVersion>> {
      const int64_t current_version = current.ok() ? current->version : 0;
      existed = current.ok() && !current->deleted;
      status = existed ? HttpStatus::ok : HttpStatus::created;
      if (if_match && *if_match != current_version) {
        return FailedPreconditionError(
                   "version conflict: If-Match does not match the current version")
            .WithDetail(
                {"conflict", "the current version is " + std::to_string(current_version), ""});
      }
      KURA_ASSIGN_OR_RETURN(store::ResourceVersion v,
                            MakeVersion(*resource, type, id, current_version + 1, note));
      return std::optional<store::ResourceVersion>(std::move(v));
    };
    StatusOr<std::optional<store::ResourceVersion>> written =
        co_await CommitNextVersion(type, id, ctx, note, std::move(next));
    if (!written.ok()) co_return ErrorResponse(written.status(), ctx);
    co_return WriteResponse(ctx, existed ? HttpStatus::ok : HttpStatus::created, **written);
  }

  asio::awaitable<Response> Delete(RequestContext& ctx, AuditNote& note) {
    std::optional<Response> denied = co_await Admit(ctx, note);
    if (denied) co_return std::move(*denied);
    std::string type(ctx.params.Get("type"));
    std::string id(ctx.params.Get("id"));
    NoteTarget(note, type, id);
    if (Status s = CheckType(type); !s.ok()) co_return ErrorResponse(s, ctx);
    if (Status s = RefuseAuditEventWrite(type); !s.ok()) co_return ErrorResponse(s, ctx);
    if (Status s = CheckId(id); !s.ok()) co_return ErrorResponse(s, ctx);
    NextVersion next = [&](const StatusOr<store::ResourceVersion>& current,
                           HttpStatus& status) -> StatusOr<std::optional<store::ResourceVersion>> {
      status = HttpStatus::no_content;
      if (!current.ok()) return current.status();  // NotFound: nothing to delete.
      NoteVersion(note, *current);
      if (current->deleted) return std::optional<store::ResourceVersion>();  // Idempotent.
      store::ResourceVersion marker;
      marker.type = type;
      marker.id = id;
      marker.version = current->version + 1;
      marker.last_updated = Clock::System().Now();
      marker.deleted = true;
      marker.compartment = current->compartment;
      note.resource_version = std::to_string(marker.version);
      return std::optional<store::ResourceVersion>(std::move(marker));
    };
    StatusOr<std::optional<store::ResourceVersion>> deleted =
        co_await CommitNextVersion(type, id, ctx, note, std::move(next));
    if (!deleted.ok()) co_return ErrorResponse(deleted.status(), ctx);
    Response r{HttpStatus::no_content, ctx.request.version()};
    if (deleted->has_value()) r.set(bh::field::etag, ETagFor((*deleted)->version));
    co_return r;
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
    std::string base = api_.options_.public_base_url + "/fhir/R4";
    std::string self = base + std::string(ctx.path.substr(std::string_view("/fhir/R4").size()));
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

  asio::awaitable<Response> NotYet(RequestContext& ctx, AuditNote& note) {
    std::optional<Response> denied = co_await Admit(ctx, note);
    if (denied) co_return std::move(*denied);
    std::string type(ctx.params.Get("type"));
    note.resource_type = type.substr(0, 64);
    std::string what = note.action == audit::action::kSearch  ? "search"
                       : note.action == audit::action::kPatch ? "patch"
                                                              : "batch and transaction";
    if (!type.empty()) {
      if (Status s = CheckType(type); !s.ok()) co_return ErrorResponse(s, ctx);
    }
    if (type == kAuditEvent && api_.audit_events_ != nullptr) {
      if (note.action == audit::action::kSearch) {
        Response r = co_await api_.audit_events_->SearchAuditEvents(ctx, note);
        co_return r;
      }
      co_return ErrorResponse(RefuseAuditEventWrite(type), ctx);
    }
    co_return ErrorResponse(UnimplementedError(what + " is not supported by this server yet"), ctx);
  }

 private:
  FhirApi& api_;
};

FhirApi::FhirApi(FhirApiOptions options, store::Store& store, RequestGate& gate,
                 const fhir::ResourceValidator& validator, asio::thread_pool& blocking_pool,
                 AuditApi* audit_events)
    : options_(std::move(options)),
      capability_statement_(fhir::SerializeJson(BuildCapabilityStatement(options_))),
      store_(store),
      validator_(validator),
      pool_(blocking_pool),
      gate_(gate),
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
  router.Add(V::post, "/fhir/R4", audited(&Handlers::NotYet, act::kBatch));
  router.Add(V::get, "/fhir/R4/{type}/_history", audited(&Handlers::History, act::kHistory));
  router.Add(V::get, "/fhir/R4/{type}/{id}/_history", audited(&Handlers::History, act::kHistory));
  router.Add(V::get, "/fhir/R4/{type}/{id}/_history/{vid}", audited(&Handlers::VRead, act::kVread));
  router.Add(V::get, "/fhir/R4/{type}", audited(&Handlers::NotYet, act::kSearch));
  router.Add(V::post, "/fhir/R4/{type}", audited(&Handlers::Create, act::kCreate));
  router.Add(V::get, "/fhir/R4/{type}/{id}", audited(&Handlers::Read, act::kRead));
  router.Add(V::put, "/fhir/R4/{type}/{id}", audited(&Handlers::Update, act::kUpdate));
  router.Add(V::delete_, "/fhir/R4/{type}/{id}", audited(&Handlers::Delete, act::kDelete));
  router.Add(V::patch, "/fhir/R4/{type}/{id}", audited(&Handlers::NotYet, act::kPatch));
}

}  // namespace kura::api
