// The authentication and audit steps every authenticated route shares.
#include "kura/api/request_gate.h"

#include "kura/api/responses.h"
#include "kura/audit/audit_log.h"
#include "kura/base/log.h"
#include "kura/base/secret_bytes.h"
#include "kura/http/blocking.h"

namespace kura::api {
namespace asio = boost::asio;
namespace bh = http::beast_http;
using http::RequestContext;
using http::Response;

namespace {

std::string_view BearerToken(const http::Request& req) {
  std::string_view auth = req[bh::field::authorization];
  if (auth.size() > 7 && (auth.substr(0, 7) == "Bearer " || auth.substr(0, 7) == "bearer ")) {
    auth.remove_prefix(7);
    while (!auth.empty() && auth.front() == ' ') auth.remove_prefix(1);
    return auth;
  }
  return {};
}

}  // namespace

asio::awaitable<std::optional<Response>> RequestGate::Admit(RequestContext& ctx, AuditNote& note) {
  std::string_view token = BearerToken(ctx.request);
  std::optional<auth::Principal> principal = authenticator_.TryCached(token);
  if (!principal) {
    if (token.empty()) co_return Unauthenticated(ctx, note, "missing-token");
    auto authenticate = [this, presented = std::string(token)]() mutable {
      auto r = authenticator_.Authenticate(presented);
      SecureWipe(presented.data(), presented.size());
      return r;
    };
    StatusOr<auth::Principal> result = co_await http::RunBlocking(pool_, std::move(authenticate));
    if (!result.ok()) {
      if (result.status().code() == StatusCode::kUnauthenticated) {
        co_return Unauthenticated(ctx, note, "invalid-token");
      }
      co_return ErrorResponse(result.status(), ctx);
    }
    principal = std::move(*result);
    // Cache hits repeat a check that is already in the log.
    note.preceding.push_back(AuthenticationRecord(ctx, &*principal, "", tenant_));
  }
  note.principal = std::move(principal);
  co_return std::nullopt;
}

// A refused credential is recorded as an authentication failure, not as the interaction.
Response RequestGate::Unauthenticated(const RequestContext& ctx, AuditNote& note,
                                      std::string_view why) {
  note.details.emplace_back("auth.failure", std::string(why));
  note.details.emplace_back("requested.category", std::string(note.category));
  note.details.emplace_back("requested.action", std::string(note.action));
  note.category = audit::category::kAuth;
  note.action = audit::action::kAuthenticate;
  return ErrorResponse(UnauthenticatedError("missing or invalid bearer token"), ctx);
}

asio::awaitable<Response> RequestGate::Audited(RequestContext& ctx, const AuditedHandler& handler,
                                               std::string_view category, std::string_view action) {
  AuditNote note;
  note.category = category;
  note.action = action;
  Response response = co_await handler(ctx, note);
  if (note.recorded) co_return response;
  std::vector<audit::AuditRecord> records =
      AuditRecordsFor(std::move(note), ctx, response.result(), tenant_);
  Status recorded = co_await CommitAudit(std::move(records));
  if (!recorded.ok()) {
    log::Error("audit_append_failed", {{"request_id", ctx.request_id},
                                       {"code", StatusCodeName(recorded.code())},
                                       {"detail", recorded.internal_detail()}});
    co_return ErrorResponse(UnavailableError("audit log unavailable"), ctx);
  }
  co_return response;
}

asio::awaitable<Status> RequestGate::CommitAudit(std::vector<audit::AuditRecord> records) {
  auto start = [this, records = std::move(records)](store::CommitCallback done) mutable {
    store::WriteBatch batch;
    batch.audit = audit::AuditLog::Draft(std::move(records));
    store_.CommitAsync(std::move(batch), std::move(done));
  };
  StatusOr<store::CommitResult> result =
      co_await http::AwaitCallback<StatusOr<store::CommitResult>>(std::move(start));
  co_return result.status();
}

}  // namespace kura::api
