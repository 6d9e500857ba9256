// AuditNote: what a request's audit record says, gathered while its handler runs, and how it
// becomes AuditRecords. Every authenticated API route is wrapped so that exactly one outcome is
// recorded per request: a write's record rides in the write's own commit; anything else (reads,
// refusals, failed writes) is committed on its own before the response leaves.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kura/audit/record.h"
#include "kura/auth/principal.h"
#include "kura/http/types.h"

namespace kura::api {

struct AuditNote {
  std::string_view category;          // audit::category::...
  std::string_view action;            // audit::action::...
  std::string_view action_requested;  // The interaction asked for (kept when `action` changes).
  std::optional<auth::Principal> principal;
  std::string resource_type;
  std::string resource_id;
  std::string resource_version;
  std::vector<std::string> compartments;
  std::vector<std::pair<std::string, std::string>> details;
  // Records to commit before this request's own, e.g. a token check that missed the cache.
  std::vector<audit::AuditRecord> preceding;
  // The request's record is durable already (it was committed with the write).
  bool recorded = false;
};

// The outcome and reason code of an HTTP status: 2xx/3xx success, 4xx minor failure, 5xx
// serious failure; the reason names the class of failure ("not-found", "invalid", ...).
std::pair<audit::Outcome, std::string_view> OutcomeOfStatus(http::HttpStatus status);

// The request's records: `note.preceding`, then the request's own with `status`'s outcome.
// Takes the note by value: the gate hands over a finished note, a write keeps its own for retries.
std::vector<audit::AuditRecord> AuditRecordsFor(AuditNote note, const http::RequestContext& ctx,
                                                http::HttpStatus status, std::string_view tenant);

// The authentication record of a request (success when `principal` is set).
audit::AuditRecord AuthenticationRecord(const http::RequestContext& ctx,
                                        const auth::Principal* principal,
                                        std::string_view failure_reason, std::string_view tenant);

}  // namespace kura::api
