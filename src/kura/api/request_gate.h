// RequestGate: what every authenticated API route goes through, whatever API it belongs to:
// the bearer credential check and the audit record of the request's outcome.
//
// Exactly one outcome is recorded per request. A handler that writes puts the request's record
// into its own commit (AuditRecordsFor, then note.recorded = true); for any other outcome (reads,
// refusals, failed writes) the gate commits the record before the response leaves. When a record
// cannot be made durable the client gets 503 instead of the response: access is never granted
// unrecorded. Thread-safe once built.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kura/api/audit_trail.h"
#include "kura/auth/api_token_authenticator.h"
#include "kura/http/types.h"
#include "kura/store/store.h"

namespace kura::api {

using AuditedHandler =
    std::function<boost::asio::awaitable<http::Response>(http::RequestContext&, AuditNote&)>;

class RequestGate {
 public:
  // All references must outlive the gate.
  RequestGate(store::Store& store, auth::ApiTokenAuthenticator& authenticator,
              boost::asio::thread_pool& blocking_pool, std::string tenant)
      : store_(store),
        authenticator_(authenticator),
        pool_(blocking_pool),
        tenant_(std::move(tenant)) {}

  // Authenticates the bearer credential into note.principal. Returns the response to send
  // instead (401, or 503 when the credential store fails) or nullopt to proceed. A check that
  // reached the store is recorded as an authentication event; a refusal replaces the request's
  // record with an authentication failure.
  boost::asio::awaitable<std::optional<http::Response>> Admit(http::RequestContext& ctx,
                                                              AuditNote& note);

  // Runs `handler` under a fresh note and records its outcome (see the header comment).
  boost::asio::awaitable<http::Response> Audited(http::RequestContext& ctx,
                                                 const AuditedHandler& handler,
                                                 std::string_view category,
                                                 std::string_view action);

  // A route handler running `method` of `handlers` under Audited.
  template <typename Handlers>
  http::Handler Route(
      std::shared_ptr<Handlers> handlers,
      boost::asio::awaitable<http::Response> (Handlers::*method)(http::RequestContext&, AuditNote&),
      std::string_view category, std::string_view action) {
    AuditedHandler handler = [handlers = std::move(handlers), method](http::RequestContext& ctx,
                                                                      AuditNote& note) {
      return ((*handlers).*method)(ctx, note);
    };
    return [this, handler = std::move(handler), category, action](http::RequestContext& ctx) {
      return Audited(ctx, handler, category, action);
    };
  }

  // Commits `records` as one audit-only unit; OK once they are durable.
  boost::asio::awaitable<Status> CommitAudit(std::vector<audit::AuditRecord> records);

  const std::string& tenant() const { return tenant_; }

 private:
  http::Response Unauthenticated(const http::RequestContext& ctx, AuditNote& note,
                                 std::string_view why);

  store::Store& store_;
  auth::ApiTokenAuthenticator& authenticator_;
  boost::asio::thread_pool& pool_;
  const std::string tenant_;
};

}  // namespace kura::api
