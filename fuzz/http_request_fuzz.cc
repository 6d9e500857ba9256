// Fuzz target: a whole HTTP request, as bytes, through what the server does with it after TLS:
// Beast's request parser with the server's limits, the router, and the FHIR and audit handlers
// over a real data directory (SQLite store, key file, audit log), built once the way `kura serve`
// builds them. The text "@TOKEN@" in an input becomes the data directory's admin token, so that
// inputs reach the handlers behind authentication. Beyond "no crash": no handler throws, and no
// request is answered 500 (an internal error) or 503 (a record the audit log refused).
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "kura/api/audit_api.h"
#include "kura/api/fhir_api.h"
#include "kura/api/fhir_base.h"
#include "kura/api/fhir_search.h"
#include "kura/api/request_gate.h"
#include "kura/auth/api_token_authenticator.h"
#include "kura/base/log.h"
#include "kura/fhir/validator.h"
#include "kura/http/router.h"
#include "kura/ops/audit_access.h"
#include "kura/ops/data_dir.h"
#include "kura/ops/search_reindex.h"
#include "kura/store/caching_store.h"
#include "kura/store/encrypting_store.h"
#include "property.h"

namespace {

namespace asio = boost::asio;
namespace beast_http = boost::beast::http;
using namespace kura;

[[noreturn]] void SetupFailed(const char* what, const Status& status) {
  std::fprintf(stderr, "http_request fuzz setup: %s: %s\n", what, status.ToString().c_str());
  std::abort();
}

// Everything `kura serve` wires between the TLS stream and the store, on a fresh data directory.
// Built once and never destroyed: its threads run until the process exits.
struct Stack {
  std::string token;
  ops::OpenedDataDirectory dir;
  asio::thread_pool blocking{2};
  std::unique_ptr<store::CachingStore> cached;
  std::unique_ptr<store::EncryptingStore> store;
  std::unique_ptr<auth::ApiTokenAuthenticator> authenticator;
  fhir::R4Validator validator;
  fhir::DataRegister data_register = fhir::DataRegister::Default();
  std::unique_ptr<api::RequestGate> gate;
  std::unique_ptr<api::AuditApi> audit_api;
  std::unique_ptr<api::FhirSearch> search;
  std::unique_ptr<api::FhirApi> fhir_api;
  http::Router router;
  asio::io_context io;
};

Stack* Build() {
  log::SetMinLevel(log::Level::kError);
  // In the working directory (the build tree's fuzz/ under ctest), replaced on every start: the
  // requests of a run fill it, and nothing of it is needed afterwards.
  const std::filesystem::path data = std::filesystem::current_path() / "http_request-data";
  std::error_code ignored;
  std::filesystem::remove_all(data, ignored);
  StatusOr<ops::InitResult> made = ops::InitDataDirectory(data);
  if (!made.ok()) SetupFailed("init", made.status());
  StatusOr<ops::OpenedDataDirectory> dir =
      ops::OpenDataDirectory(data, {}, ops::DataDirectoryUse::kServer);
  if (!dir.ok()) SetupFailed("open", dir.status());
  auto* s = new Stack();
  s->token = made->admin_token;
  s->dir = std::move(*dir);
  const Config& config = s->dir.config;
  store::SqliteStore& backend = *s->dir.db;
  if (Status st = ops::CheckSearchIndexFingerprint(backend, s->data_register); !st.ok()) {
    SetupFailed("index fingerprint", st);
  }
  auto opened_audit = ops::OpenAuditLog(backend, *s->dir.keys, config, Clock::System());
  if (!opened_audit.ok()) SetupFailed("audit log", opened_audit.status());
  ops::AuditLogAccess& audit_log = s->dir.audit.emplace(std::move(*opened_audit));
  s->cached = std::make_unique<store::CachingStore>(backend, size_t{16} << 20);
  s->store = std::make_unique<store::EncryptingStore>(*s->cached, *s->dir.keys, config.tenant, 64);
  s->authenticator = std::make_unique<auth::ApiTokenAuthenticator>(backend);
  const std::string base = api::TrimmedPublicBase(config.server.public_base_url);
  s->gate =
      std::make_unique<api::RequestGate>(*s->store, *s->authenticator, s->blocking, config.tenant);
  s->audit_api = std::make_unique<api::AuditApi>(
      api::AuditApiOptions{.public_base_url = base, .page_size = 50, .max_page_size = 1000},
      backend, audit_log.key_lookup, audit_log.log->origin(), audit_log.log->verifier_key(),
      *s->gate, s->blocking);
  auto search =
      api::FhirSearch::Create({.public_base_url = base, .limits = {}, .max_included = 1000},
                              *s->store, s->data_register, s->blocking);
  if (!search.ok()) SetupFailed("search", search.status());
  s->search = std::move(*search);
  s->fhir_api = std::make_unique<api::FhirApi>(
      api::FhirApiOptions{.public_base_url = base,
                          .software_version = "fuzz",
                          .max_json_depth = static_cast<size_t>(config.server.max_json_depth),
                          .history_page_size = config.fhir.history_page_size,
                          .history_max_page_size = config.fhir.history_max_page_size,
                          .max_bundle_entries = 50},
      *s->store, *s->gate, s->validator, s->blocking, *s->search, s->data_register,
      s->audit_api.get());
  s->audit_api->RegisterRoutes(s->router);
  s->fhir_api->RegisterRoutes(s->router);
  return s;
}

// The request with every "@TOKEN@" replaced by the admin token.
std::string WithToken(std::string text, const std::string& token) {
  for (size_t at = text.find("@TOKEN@"); at != std::string::npos; at = text.find("@TOKEN@", at)) {
    text.replace(at, 7, token);
    at += token.size();
  }
  return text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Stack* stack = Build();
  const std::string bytes =
      WithToken(std::string(reinterpret_cast<const char*>(data), size), stack->token);

  // The server's parser and limits (ServerOptions' defaults: 16 KiB of head, 8 MiB of body).
  beast_http::request_parser<beast_http::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(8 * 1024 * 1024);
  parser.eager(true);
  boost::system::error_code ec;
  parser.put(asio::buffer(bytes), ec);
  if (ec || !parser.is_done()) return 0;  // The server answers these itself, before any handler.
  const http::Request& request = parser.get();

  http::RequestContext ctx{request, {},     {},          {},
                           {},      "fuzz", "127.0.0.1", std::chrono::steady_clock::now()};
  const std::string_view target(request.target().data(), request.target().size());
  const size_t q = target.find('?');
  ctx.path = target.substr(0, q);
  ctx.query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
  if (ctx.path.empty() || ctx.path.front() != '/') return 0;
  http::Router::Match match = stack->router.Find(request.method(), ctx.path);
  if (match.handler == nullptr) return 0;
  ctx.route = match.route;
  ctx.params = std::move(match.params);

  std::optional<unsigned> status;
  std::exception_ptr thrown;
  bool done = false;  // Set by the completion handler, which runs after the coroutine's end.
  asio::co_spawn(
      stack->io,
      [&]() -> asio::awaitable<void> {
        http::Response response = co_await (*match.handler)(ctx);
        status = response.result_int();
      },
      [&](std::exception_ptr e) {
        thrown = e;
        done = true;
      });
  // The handler waits on the blocking pool and the store's writer, which post back here.
  stack->io.restart();
  auto busy = asio::make_work_guard(stack->io);
  while (!done) stack->io.run_one();
  busy.reset();
  if (thrown) PropertyBroken("a handler threw");
  if (!status) PropertyBroken("a handler gave no response");
  // For checking that seeds get past authentication: KURA_FUZZ_PRINT_STATUS=1 prints each answer.
  static const bool print_status = std::getenv("KURA_FUZZ_PRINT_STATUS") != nullptr;
  if (print_status) std::fprintf(stderr, "status %u\n", *status);
  if (*status == 500) PropertyBroken("a request was answered 500");
  // Nothing here is overloaded or out of disk: a 503 means the request's own audit record could
  // not be written, which no input may cause.
  if (*status == 503) PropertyBroken("a request was answered 503");
  return 0;
}
