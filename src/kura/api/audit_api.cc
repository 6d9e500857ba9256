// Audit log reading: the /audit/v1 JSON API and the FHIR AuditEvent projection.
#include "kura/api/audit_api.h"

#include <optional>

#include "kura/api/responses.h"
#include "kura/base/clock.h"
#include "kura/base/random.h"
#include "kura/http/blocking.h"

namespace kura::api {
namespace asio = boost::asio;
using fhir::Json;
using http::HttpStatus;
using http::RequestContext;
using http::Response;

namespace {

namespace act = audit::action;

// Actions that read, write or do something else, for AuditEvent.action (C R U D E).
std::string_view CrudCode(const audit::AuditRecord& r) {
  if (r.category != audit::category::kFhir) return "E";
  if (r.action == act::kCreate) return "C";
  if (r.action == act::kRead || r.action == act::kVread || r.action == act::kSearch ||
      r.action == act::kHistory || r.action == act::kEverything) {
    return "R";
  }
  if (r.action == act::kUpdate || r.action == act::kPatch) return "U";
  if (r.action == act::kDelete) return "D";
  return "E";
}

constexpr std::string_view kDicom = "http://dicom.nema.org/resources/ontology/DCM";
constexpr std::string_view kKuraAuditCodes = "https://kura.invalid/fhir/CodeSystem/audit-action";

Json Coding(std::string_view system, std::string_view code, std::string_view display) {
  Json c = Json::object();
  c["system"] = std::string(system);
  c["code"] = std::string(code);
  if (!display.empty()) c["display"] = std::string(display);
  return c;
}

// AuditEvent.type and .subtype: FHIR interactions are RESTful operations with the interaction
// as subtype (as IHE BALP does); authentication is DICOM "User Authentication"; system and
// administrative events are DICOM "Application Activity" with Kura's action code.
std::pair<Json, Json> TypeAndSubtype(const audit::AuditRecord& r) {
  if (r.category == audit::category::kFhir) {
    std::string interaction = r.action;
    if (r.action == act::kSearch) interaction = "search-type";
    if (r.action == act::kEverything) interaction = "operation";
    return {Coding("http://terminology.hl7.org/CodeSystem/audit-event-type", "rest",
                   "Restful Operation"),
            Coding("http://hl7.org/fhir/restful-interaction", interaction, "")};
  }
  if (r.category == audit::category::kAuth) {
    return {Coding(kDicom, "110114", "User Authentication"), Coding(kKuraAuditCodes, r.action, "")};
  }
  return {Coding(kDicom, "110100", "Application Activity"),
          Coding(kKuraAuditCodes, r.category + "." + r.action, "")};
}

}  // namespace

Json AuditEventFor(const audit::AuditRecord& r) {
  Json e = Json::object();
  e["resourceType"] = "AuditEvent";
  e["id"] = std::to_string(r.sequence);
  e["meta"] = {{"versionId", "1"}, {"lastUpdated", audit::FormatMicrosUtc(r.time_us)}};
  auto [type, subtype] = TypeAndSubtype(r);
  e["type"] = std::move(type);
  e["subtype"] = Json::array({std::move(subtype)});
  e["action"] = std::string(CrudCode(r));
  e["recorded"] = audit::FormatMicrosUtc(r.time_us);
  e["outcome"] = std::to_string(static_cast<int>(r.outcome));
  if (!r.outcome_reason.empty()) e["outcomeDesc"] = r.outcome_reason;
  if (!r.purpose.empty()) e["purposeOfEvent"] = Json::array({{{"text", r.purpose}}});

  Json agent = Json::object();
  agent["type"] = {
      {"coding", Json::array({Coding("http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                     "IRCP", "information recipient")})}};
  if (!r.actor.role.empty()) agent["role"] = Json::array({{{"text", r.actor.role}}});
  Json who = Json::object();
  if (!r.actor.id.empty()) {
    who["identifier"] = {{"system", "https://kura.invalid/actor/" + r.actor.kind},
                         {"value", r.actor.id}};
  }
  who["display"] = r.actor.kind + (r.actor.id.empty() ? "" : " " + r.actor.id);
  agent["who"] = std::move(who);
  agent["requestor"] = true;
  if (!r.source_address.empty()) {
    agent["network"] = {{"address", r.source_address}, {"type", "2"}};  // 2: IP address.
  }
  Json agents = Json::array({std::move(agent)});
  if (!r.actor.client_id.empty()) {
    agents.push_back(
        {{"type", {{"coding", Json::array({Coding(kDicom, "110150", "Application")})}}},
         {"who", {{"identifier", {{"value", r.actor.client_id}}}}},
         {"requestor", false}});
  }
  e["agent"] = std::move(agents);
  e["source"] = {
      {"observer", {{"display", "Kura"}}},
      {"type", Json::array({Coding("http://terminology.hl7.org/CodeSystem/security-source-type",
                                   "4", "Application Server")})}};

  Json entities = Json::array();
  if (!r.resource_type.empty() && !r.resource_type.starts_with("kura:")) {
    std::string reference = r.resource_type;
    if (!r.resource_id.empty()) reference += "/" + r.resource_id;
    if (!r.resource_id.empty() && !r.resource_version.empty()) {
      reference += "/_history/" + r.resource_version;
    }
    entities.push_back({{"what", {{"reference", reference}}},
                        {"type", Coding("http://terminology.hl7.org/CodeSystem/audit-entity-type",
                                        "2", "System Object")}});
  }
  for (const std::string& patient : r.patient_compartments) {
    entities.push_back(
        {{"what", {{"reference", "Patient/" + patient}}},
         {"type", Coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "1", "Person")},
         {"role", Coding("http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient")}});
  }
  if (!r.request_id.empty()) {
    // IHE BALP carries the X-Request-Id as a transaction entity.
    entities.push_back(
        {{"what", {{"identifier", {{"value", r.request_id}}}}},
         {"type", Coding("https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType",
                         "XrequestId", "")}});
  }
  if (!r.details.empty()) {
    Json detail = Json::array();
    for (const auto& [key, value] : r.details) {
      detail.push_back({{"type", key}, {"valueString", value}});
    }
    entities.push_back({{"what", {{"display", "request"}}}, {"detail", std::move(detail)}});
  }
  if (!entities.empty()) e["entity"] = std::move(entities);
  return e;
}

class AuditApi::Handlers {
 public:
  explicit Handlers(AuditApi& api) : api_(api) {}

  // Admits a system administrator; the response to send instead otherwise.
  asio::awaitable<std::optional<Response>> AdmitAdmin(RequestContext& ctx, AuditNote& note) {
    std::optional<Response> denied = co_await api_.gate_.Admit(ctx, note);
    if (denied) co_return denied;
    if (Status s = RequireAdmin(note); !s.ok()) co_return ErrorResponse(s, ctx);
    co_return std::nullopt;
  }

  static Status RequireAdmin(const AuditNote& note) {
    if (!note.principal || note.principal->role != auth::kSystemAdminRole) {
      return PermissionDeniedError("reading the audit log requires the system-admin role");
    }
    return Status::Ok();
  }

  // The shared query parameters of both search forms. `fhir` selects the AuditEvent names.
  StatusOr<store::AuditQuery> ParseSearch(const RequestContext& ctx, bool fhir,
                                          std::string& self_params) {
    store::AuditQuery q;
    q.limit = api_.options_.page_size;
    auto keep = [&self_params](std::string_view name, std::string_view value) {
      self_params +=
          (self_params.empty() ? "" : "&") + std::string(name) + "=" + http::PercentEncode(value);
    };
    for (const auto& [name, value] : http::ParseQuery(ctx.query)) {
      if (name == "_count") {
        auto n = http::ParsePositiveInteger(value);
        if (!n) return InvalidArgumentError("_count must be a positive integer");
        q.limit = std::min(*n, api_.options_.max_page_size);
      } else if (name == "_page") {
        auto n = http::ParsePositiveInteger(value);
        if (!n) return InvalidArgumentError("_page is not a valid page cursor");
        q.before_sequence = static_cast<uint64_t>(*n);
        continue;  // The paging links add their own.
      } else if (name == (fhir ? "agent" : "actor")) {
        q.actor = value;
      } else if (name == "patient") {
        std::string_view id = value;
        if (id.starts_with("Patient/")) id.remove_prefix(8);
        q.patient_id = std::string(id);
      } else if (name == (fhir ? "subtype" : "action")) {
        q.action = value == "search-type" ? "search" : value;
      } else if (!fhir && name == "category") {
        q.category = value;
      } else if (name == "outcome") {
        std::optional<int> code = OutcomeCode(value);
        if (!code) {
          return InvalidArgumentError(
              "outcome must be success, minor-failure, serious-failure, major-failure or 0, 4, "
              "8, 12");
        }
        q.outcome = *code;
      } else if (!fhir && (name == "since" || name == "until")) {
        std::optional<TimePoint> t = ParseInstant(value);
        if (!t)
          return InvalidArgumentError(name + " must be an instant, e.g. 2024-01-01T00:00:00Z");
        (name == "since" ? q.since_us : q.until_us) = ToMicros(*t);
      } else if (fhir && name == "date") {
        KURA_RETURN_IF_ERROR(ApplyDate(value, q));
      } else {
        continue;  // Unknown parameters are ignored and left out of the links.
      }
      keep(name, value);
    }
    return q;
  }

  static std::optional<int> OutcomeCode(std::string_view v) {
    for (audit::Outcome o : {audit::Outcome::kSuccess, audit::Outcome::kMinorFailure,
                             audit::Outcome::kSeriousFailure, audit::Outcome::kMajorFailure}) {
      if (v == audit::OutcomeName(o) || v == std::to_string(static_cast<int>(o))) {
        return static_cast<int>(o);
      }
    }
    return std::nullopt;
  }

  // FHIR date search on AuditEvent.recorded: ge/gt/le/lt bound one side; eq (or no prefix) is
  // the whole day of a date, or the instant itself.
  static Status ApplyDate(std::string_view value, store::AuditQuery& q) {
    std::string_view prefix = value.size() > 2 ? value.substr(0, 2) : "";
    if (prefix == "ge" || prefix == "gt" || prefix == "le" || prefix == "lt" || prefix == "eq") {
      value.remove_prefix(2);
    } else {
      prefix = "eq";
    }
    std::optional<TimePoint> t = ParseInstant(value);
    if (!t) return InvalidArgumentError("date must be a FHIR date or instant, e.g. ge2024-01-01");
    const int64_t us = ToMicros(*t);
    const int64_t span = value.size() == 10 ? int64_t{86400} * 1000000 : 1;
    if (prefix == "ge") q.since_us = us;
    if (prefix == "gt") q.since_us = us + span;
    if (prefix == "le") q.until_us = us + span;
    if (prefix == "lt") q.until_us = us;
    if (prefix == "eq") {
      q.since_us = us;
      q.until_us = us + span;
    }
    return Status::Ok();
  }

  asio::awaitable<StatusOr<audit::AuditRecordPage>> Search(store::AuditQuery q) {
    auto search = [this, q = std::move(q)] {
      return audit::SearchAuditRecords(api_.store_, api_.key_lookup_, q);
    };
    StatusOr<audit::AuditRecordPage> page =
        co_await http::RunBlocking(api_.pool_, std::move(search));
    co_return page;
  }

  asio::awaitable<StatusOr<audit::AuditRecord>> ReadOne(uint64_t sequence) {
    auto read = [this, sequence] {
      return audit::ReadAuditRecord(api_.store_, api_.key_lookup_, sequence);
    };
    StatusOr<audit::AuditRecord> record = co_await http::RunBlocking(api_.pool_, std::move(read));
    co_return record;
  }

  static void NoteResults(AuditNote& note, const store::AuditQuery& q, size_t count) {
    note.resource_type = "AuditEvent";
    if (!q.patient_id.empty()) note.compartments.push_back(q.patient_id);
    note.details.emplace_back("audit.results", std::to_string(count));
  }

  std::string NextLink(std::string_view path, const std::string& params, int64_t limit,
                       uint64_t before) const {
    std::string url = api_.options_.public_base_url + std::string(path) + "?" + params;
    if (params.find("_count=") == std::string::npos) {
      url += std::string(params.empty() ? "" : "&") + "_count=" + std::to_string(limit);
    }
    return url + "&_page=" + std::to_string(before);
  }

  asio::awaitable<Response> Records(RequestContext& ctx, AuditNote& note) {
    std::optional<Response> denied = co_await AdmitAdmin(ctx, note);
    if (denied) co_return std::move(*denied);
    std::string params;
    StatusOr<store::AuditQuery> q = ParseSearch(ctx, false, params);
    if (!q.ok()) co_return ErrorResponse(q.status(), ctx);
    StatusOr<audit::AuditRecordPage> page = co_await Search(*q);
    if (!page.ok()) co_return ErrorResponse(page.status(), ctx);
    NoteResults(note, *q, page->records.size());
    Json out = Json::object();
    Json records = Json::array();
    for (const audit::AuditRecord& r : page->records)
      records.push_back(audit::AuditRecordToJson(r));
    out["records"] = std::move(records);
    if (page->next_before_sequence != 0) {
      out["next"] = NextLink(ctx.path, params, q->limit, page->next_before_sequence);
    }
    co_return JsonResponse(HttpStatus::ok, out.dump(), ctx.request.version(), true);
  }

  // The {sequence} a record route names, noted as the AuditEvent the request reads.
  static StatusOr<uint64_t> NoteRecordTarget(const RequestContext& ctx, AuditNote& note) {
    std::optional<uint64_t> sequence = http::ParseUnsignedInteger(ctx.params.Get("sequence"));
    if (!sequence) {
      return InvalidArgumentError("the record sequence must be a non-negative integer");
    }
    note.resource_type = "AuditEvent";
    note.resource_id = std::to_string(*sequence);
    return *sequence;
  }

  asio::awaitable<Response> Record(RequestContext& ctx, AuditNote& note) {
    std::optional<Response> denied = co_await AdmitAdmin(ctx, note);
    if (denied) co_return std::move(*denied);
    StatusOr<uint64_t> sequence = NoteRecordTarget(ctx, note);
    if (!sequence.ok()) co_return ErrorResponse(sequence.status(), ctx);
    StatusOr<audit::AuditRecord> record = co_await ReadOne(*sequence);
    if (!record.ok()) co_return ErrorResponse(record.status(), ctx);
    note.compartments = record->patient_compartments;
    co_return JsonResponse(HttpStatus::ok, audit::AuditRecordToJson(*record).dump(),
                           ctx.request.version(), true);
  }

  asio::awaitable<Response> Proof(RequestContext& ctx, AuditNote& note) {
    std::optional<Response> denied = co_await AdmitAdmin(ctx, note);
    if (denied) co_return std::move(*denied);
    StatusOr<uint64_t> sequence = NoteRecordTarget(ctx, note);
    if (!sequence.ok()) co_return ErrorResponse(sequence.status(), ctx);
    uint64_t tree_size = 0;
    for (const auto& [name, value] : http::ParseQuery(ctx.query)) {
      if (name != "tree_size") continue;
      auto n = http::ParsePositiveInteger(value);
      if (!n) co_return ErrorResponse(InvalidArgumentError("tree_size must be positive"), ctx);
      tree_size = static_cast<uint64_t>(*n);
    }
    auto prove = [this, sequence = *sequence, tree_size] {
      std::vector<audit::NoteVerifierKey> trusted = {api_.verifier_key_};
      return audit::ProveStoredInclusion(api_.store_, api_.key_lookup_, api_.origin_, trusted,
                                         sequence, tree_size);
    };
    StatusOr<audit::InclusionEvidence> evidence =
        co_await http::RunBlocking(api_.pool_, std::move(prove));
    if (!evidence.ok()) {
      Status s = evidence.status();
      if (s.code() == StatusCode::kNotFound) {
        s = NotFoundError(
            "no such record, or no signed checkpoint covers it yet (checkpoints are signed every "
            "audit.checkpoint_every_records records or audit.checkpoint_every_seconds)");
      }
      co_return ErrorResponse(s, ctx);
    }
    note.compartments = evidence->record.patient_compartments;
    Json out = Json::object();
    out["record"] = audit::AuditRecordToJson(evidence->record);
    const auto* bytes = reinterpret_cast<const uint8_t*>(evidence->canonical.data());
    out["canonical"] = Base64Encode({bytes, evidence->canonical.size()});
    out["proof"] = audit::InclusionProofToJson(evidence->proof);
    out["checkpoint"] = evidence->checkpoint_note;
    out["verifier_key"] = api_.verifier_key_.ToString();
    co_return JsonResponse(HttpStatus::ok, out.dump(), ctx.request.version(), true);
  }

  asio::awaitable<Response> Checkpoint(RequestContext& ctx, AuditNote& note) {
    std::optional<Response> denied = co_await AdmitAdmin(ctx, note);
    if (denied) co_return std::move(*denied);
    note.resource_type = "kura:AuditCheckpoint";
    auto latest = [this] { return api_.store_.FindAuditCheckpoint(0); };
    StatusOr<std::optional<store::AuditStatement>> found =
        co_await http::RunBlocking(api_.pool_, std::move(latest));
    if (!found.ok()) co_return ErrorResponse(found.status(), ctx);
    if (!found->has_value()) {
      co_return ErrorResponse(NotFoundError("no checkpoint has been signed yet"), ctx);
    }
    Json out = Json::object();
    out["origin"] = api_.origin_;
    out["tree_size"] = (*found)->tree_size;
    out["time"] = audit::FormatMicrosUtc((*found)->time_us);
    out["note"] = (*found)->note;
    out["verifier_key"] = api_.verifier_key_.ToString();
    co_return JsonResponse(HttpStatus::ok, out.dump(), ctx.request.version(), true);
  }

 private:
  AuditApi& api_;
};

AuditApi::AuditApi(AuditApiOptions options, store::AuditLogStore& store,
                   audit::AuditKeyLookup key_lookup, std::string origin,
                   audit::NoteVerifierKey verifier_key, RequestGate& gate,
                   asio::thread_pool& blocking_pool)
    : options_(std::move(options)),
      store_(store),
      key_lookup_(std::move(key_lookup)),
      origin_(std::move(origin)),
      verifier_key_(std::move(verifier_key)),
      gate_(gate),
      pool_(blocking_pool) {}

void AuditApi::RegisterRoutes(http::Router& router) {
  auto h = std::make_shared<Handlers>(*this);
  auto audited = [this, h](auto method, std::string_view action) {
    return gate_.Route(h, method, audit::category::kAdmin, action);
  };
  using V = http::Verb;
  router.Add(V::get, "/audit/v1/records", audited(&Handlers::Records, "audit-search"));
  router.Add(V::get, "/audit/v1/checkpoint", audited(&Handlers::Checkpoint, "audit-checkpoint"));
  router.Add(V::get, "/audit/v1/records/{sequence}", audited(&Handlers::Record, "audit-read"));
  router.Add(V::get, "/audit/v1/records/{sequence}/proof",
             audited(&Handlers::Proof, "audit-proof"));
}

asio::awaitable<Response> AuditApi::SearchAuditEvents(RequestContext& ctx, AuditNote& note) {
  Handlers h(*this);
  if (Status s = Handlers::RequireAdmin(note); !s.ok()) co_return ErrorResponse(s, ctx);
  std::string params;
  StatusOr<store::AuditQuery> q = h.ParseSearch(ctx, true, params);
  if (!q.ok()) co_return ErrorResponse(q.status(), ctx);
  StatusOr<audit::AuditRecordPage> page = co_await h.Search(*q);
  if (!page.ok()) co_return ErrorResponse(page.status(), ctx);
  Handlers::NoteResults(note, *q, page->records.size());
  const std::string self = options_.public_base_url + std::string(ctx.path);
  Json bundle = Json::object();
  bundle["resourceType"] = "Bundle";
  bundle["id"] = RandomUuid();
  bundle["meta"] = {{"lastUpdated", FormatInstant(Clock::System().Now())}};
  bundle["type"] = "searchset";
  Json links = Json::array();
  std::string self_url = self + (params.empty() ? "" : "?" + params);
  if (q->before_sequence != 0) {
    self_url +=
        std::string(params.empty() ? "?" : "&") + "_page=" + std::to_string(q->before_sequence);
  }
  links.push_back({{"relation", "self"}, {"url", self_url}});
  if (page->next_before_sequence != 0) {
    links.push_back({{"relation", "next"},
                     {"url", h.NextLink(ctx.path, params, q->limit, page->next_before_sequence)}});
  }
  bundle["link"] = std::move(links);
  Json entries = Json::array();
  for (const audit::AuditRecord& r : page->records) {
    entries.push_back({{"fullUrl", self + "/" + std::to_string(r.sequence)},
                       {"resource", AuditEventFor(r)},
                       {"search", {{"mode", "match"}}}});
  }
  bundle["entry"] = std::move(entries);
  co_return JsonResponse(HttpStatus::ok, fhir::SerializeJson(bundle), ctx.request.version(), true);
}

asio::awaitable<Response> AuditApi::ReadAuditEvent(RequestContext& ctx, AuditNote& note,
                                                   std::string_view id) {
  if (Status s = Handlers::RequireAdmin(note); !s.ok()) co_return ErrorResponse(s, ctx);
  std::optional<uint64_t> sequence = http::ParseUnsignedInteger(id);
  if (!sequence) co_return ErrorResponse(NotFoundError("no such resource"), ctx);
  Handlers h(*this);
  StatusOr<audit::AuditRecord> record = co_await h.ReadOne(*sequence);
  if (!record.ok()) {
    co_return ErrorResponse(record.status().code() == StatusCode::kNotFound
                                ? NotFoundError("no such resource")
                                : record.status(),
                            ctx);
  }
  note.compartments = record->patient_compartments;
  note.resource_version = "1";
  Response r = JsonResponse(HttpStatus::ok, fhir::SerializeJson(AuditEventFor(*record)),
                            ctx.request.version(), true);
  r.set(http::beast_http::field::etag, "W/\"1\"");
  co_return r;
}

}  // namespace kura::api
