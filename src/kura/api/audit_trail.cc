// Turning a request's AuditNote into audit records.
#include "kura/api/audit_trail.h"

#include <chrono>
#include <iterator>
#include <string>

#include "kura/base/clock.h"
#include "kura/base/utf8.h"

namespace kura::api {
namespace {

audit::Actor ActorOf(const auth::Principal* principal, std::string_view tenant) {
  audit::Actor actor;
  actor.tenant = std::string(tenant);
  if (principal == nullptr) {
    actor.kind = "anonymous";
    return actor;
  }
  actor.kind = principal->kind;
  actor.id = principal->subject;
  actor.role = principal->role;
  return actor;
}

audit::AuditRecord BaseRecord(const http::RequestContext& ctx) {
  audit::AuditRecord r;
  r.time_us = ToMicros(Clock::System().Now());
  r.source_address = ctx.remote_address;
  r.request_id = ctx.request_id;
  r.details.emplace_back("http.method", std::string(ctx.request.method_string()));
  r.details.emplace_back("http.route", std::string(ctx.route));
  return r;
}

// A record's fields that can carry what a client wrote (a type or id from the path, a patient id
// from a query) as valid UTF-8 of bounded size: an invalid name is still worth recording, a huge
// one not. The record layer refuses anything else, and a record that cannot be written fails its
// request with 503 (fail closed): a client must not be able to make its own request's record
// unwritable. Invalid bytes become U+FFFD; no character is cut.
void MakeRecordable(std::string& field, size_t max_bytes) {
  if (field.size() > max_bytes || !IsValidUtf8(field)) field = ToBoundedUtf8(field, max_bytes);
}

void MakeRecordable(audit::AuditRecord& r) {
  constexpr size_t kMaxNameBytes = 64;      // A FHIR type name or id is at most 64 characters.
  constexpr size_t kMaxPatientBytes = 256;  // A patient id from an audit API query.
  MakeRecordable(r.resource_type, kMaxNameBytes);
  MakeRecordable(r.resource_id, kMaxNameBytes);
  MakeRecordable(r.resource_version, kMaxNameBytes);
  for (std::string& id : r.patient_compartments) MakeRecordable(id, kMaxPatientBytes);
}

}  // namespace

std::pair<audit::Outcome, std::string_view> OutcomeOfStatus(http::HttpStatus status) {
  const unsigned code = static_cast<unsigned>(status);
  if (code < 400) return {audit::Outcome::kSuccess, ""};
  using S = http::HttpStatus;
  switch (status) {
    case S::bad_request:
      return {audit::Outcome::kMinorFailure, "invalid"};
    case S::unauthorized:
      return {audit::Outcome::kMinorFailure, "unauthenticated"};
    case S::forbidden:
      return {audit::Outcome::kMinorFailure, "forbidden"};
    case S::not_found:
      return {audit::Outcome::kMinorFailure, "not-found"};
    case S::conflict:
      return {audit::Outcome::kMinorFailure, "conflict"};
    case S::gone:
      return {audit::Outcome::kMinorFailure, "gone"};
    case S::precondition_failed:
      return {audit::Outcome::kMinorFailure, "precondition-failed"};
    case S::payload_too_large:
      return {audit::Outcome::kMinorFailure, "too-large"};
    case S::unsupported_media_type:
      return {audit::Outcome::kMinorFailure, "unsupported-media"};
    case S::unprocessable_entity:
      return {audit::Outcome::kMinorFailure, "invalid"};
    case S::too_many_requests:
      return {audit::Outcome::kMinorFailure, "rate-limited"};
    case S::not_implemented:
      return {audit::Outcome::kMinorFailure, "not-supported"};
    case S::service_unavailable:
      return {audit::Outcome::kSeriousFailure, "unavailable"};
    default:
      break;
  }
  if (code < 500) return {audit::Outcome::kMinorFailure, "refused"};
  return {audit::Outcome::kSeriousFailure, "server-error"};
}

std::vector<audit::AuditRecord> AuditRecordsFor(AuditNote note, const http::RequestContext& ctx,
                                                http::HttpStatus status, std::string_view tenant) {
  std::vector<audit::AuditRecord> out = std::move(note.preceding);
  audit::AuditRecord& r = out.emplace_back(BaseRecord(ctx));
  r.category = std::string(note.category);
  r.action = std::string(note.action);
  auto [outcome, reason] = OutcomeOfStatus(status);
  r.outcome = outcome;
  r.outcome_reason = std::string(reason);
  r.actor = ActorOf(note.principal ? &*note.principal : nullptr, tenant);
  r.patient_compartments = std::move(note.compartments);
  r.resource_type = std::move(note.resource_type);
  r.resource_id = std::move(note.resource_id);
  r.resource_version = std::move(note.resource_version);
  r.details.emplace_back("http.status", std::to_string(static_cast<unsigned>(status)));
  std::move(note.details.begin(), note.details.end(), std::back_inserter(r.details));
  for (audit::AuditRecord& record : out) MakeRecordable(record);
  return out;
}

audit::AuditRecord AuthenticationRecord(const http::RequestContext& ctx,
                                        const auth::Principal* principal,
                                        std::string_view failure_reason, std::string_view tenant) {
  audit::AuditRecord r = BaseRecord(ctx);
  r.category = std::string(audit::category::kAuth);
  r.action = std::string(audit::action::kAuthenticate);
  r.actor = ActorOf(principal, tenant);
  if (principal == nullptr) {
    r.outcome = audit::Outcome::kMinorFailure;
    r.outcome_reason = std::string(failure_reason);
  }
  return r;
}

}  // namespace kura::api
