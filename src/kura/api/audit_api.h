// AuditApi: reading the audit log over HTTPS.
//   GET /audit/v1/records?actor=&patient=&action=&category=&outcome=&since=&until=&_count=&_page=
//   GET /audit/v1/records/{sequence}
//   GET /audit/v1/records/{sequence}/proof[?tree_size=N]   inclusion proof against a checkpoint
//   GET /audit/v1/checkpoint                                latest signed checkpoint + public key
// and the read-only FHIR projection of the same records as AuditEvent resources (IHE Basic
// Audit Log Patterns coding), which FhirApi serves at /fhir/R4/AuditEvent.
//
// Only a system administrator may read the log for now (the security-officer role of a later
// release takes it over). Every read of the audit log is itself audited. Records are decrypted
// on the blocking pool; a record that fails its integrity check is an error, never shown.
// Thread-safe once built.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <string>

#include "kura/api/request_gate.h"
#include "kura/audit/audit_log.h"
#include "kura/fhir/json.h"
#include "kura/http/router.h"

namespace kura::api {

struct AuditApiOptions {
  std::string public_base_url;  // No trailing slash.
  int64_t page_size = 50;
  int64_t max_page_size = 1000;
};

class AuditApi {
 public:
  // All references must outlive the AuditApi.
  AuditApi(AuditApiOptions options, store::AuditLogStore& store, audit::AuditKeyLookup key_lookup,
           std::string origin, audit::NoteVerifierKey verifier_key, RequestGate& gate,
           boost::asio::thread_pool& blocking_pool);

  // Adds the /audit/v1 routes.
  void RegisterRoutes(http::Router& router);

  // The FHIR AuditEvent search (GET /fhir/R4/AuditEvent) and read; the caller has admitted the
  // request (note.principal is set) and records it.
  boost::asio::awaitable<http::Response> SearchAuditEvents(http::RequestContext& ctx,
                                                           AuditNote& note);
  boost::asio::awaitable<http::Response> ReadAuditEvent(http::RequestContext& ctx, AuditNote& note,
                                                        std::string_view id);

 private:
  class Handlers;
  AuditApiOptions options_;
  store::AuditLogStore& store_;
  const audit::AuditKeyLookup key_lookup_;
  const std::string origin_;
  const audit::NoteVerifierKey verifier_key_;
  RequestGate& gate_;
  boost::asio::thread_pool& pool_;
};

// The FHIR R4 AuditEvent view of a record (exposed for tests).
fhir::Json AuditEventFor(const audit::AuditRecord& record);

}  // namespace kura::api
