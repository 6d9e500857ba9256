// FhirApi: the FHIR R4 REST interactions at /fhir/R4: capabilities, search (fhir_search.h),
// create, read, vread, update,
// patch (JSON Patch), delete, history (instance, type, system), and batch and transaction Bundles,
// joining auth, fhir rules and the store.
//
// Every route but /metadata requires a bearer credential. CPU work (JSON checks) runs on the
// connection's thread, except the per-entry checks of a large Bundle, which are spread over the
// blocking pool to use every core; store calls run on the blocking pool. Thread-safe once built.
#pragma once

#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <string>

#include "kura/api/conditional_locks.h"
#include "kura/api/fhir_base.h"
#include "kura/api/fhir_search.h"
#include "kura/api/request_gate.h"
#include "kura/auth/api_token_authenticator.h"
#include "kura/fhir/json.h"
#include "kura/fhir/resource.h"
#include "kura/http/router.h"
#include "kura/store/store.h"

namespace kura::api {

class AuditApi;

struct FhirApiOptions {
  std::string public_base_url;  // e.g. https://localhost:8443 (no trailing slash)
  std::string software_version;
  size_t max_json_depth = 64;
  int64_t history_page_size = 50;
  int64_t history_max_page_size = 1000;
  size_t max_bundle_entries = 1000;  // Entries of a batch or transaction Bundle (413 above).
};

class FhirApi {
 public:
  // All references must outlive the FhirApi.
  // `gate` authenticates and audits every route but /metadata; `search` answers searches and the
  // conditional operations, over the index that writes fill under `data_register`;
  // `audit_events` (optional) serves the read-only AuditEvent type.
  FhirApi(FhirApiOptions options, store::Store& store, RequestGate& gate,
          const fhir::ResourceValidator& validator, boost::asio::thread_pool& blocking_pool,
          FhirSearch& search, const fhir::DataRegister& data_register,
          AuditApi* audit_events = nullptr);

  // Adds the FHIR routes, plus "/" and "/healthz", to `router`.
  void RegisterRoutes(http::Router& router);

 private:
  class Handlers;
  const std::string& FhirBase() const { return fhir_base_; }

  FhirApiOptions options_;
  const std::string fhir_base_;       // FhirBaseUrl(options_.public_base_url), built once.
  std::string capability_statement_;  // Serialized once.
  store::Store& store_;
  const fhir::ResourceValidator& validator_;
  boost::asio::thread_pool& pool_;
  RequestGate& gate_;
  FhirSearch& search_;
  const fhir::DataRegister& register_;
  AuditApi* audit_events_;                   // Serves AuditEvent reads and searches; may be null.
  ConditionalWriteLocks conditional_locks_;  // Held from a condition's check to its commit.
};

// The CapabilityStatement this server publishes (exposed for tests).
fhir::Json BuildCapabilityStatement(const FhirApiOptions& options);

}  // namespace kura::api
