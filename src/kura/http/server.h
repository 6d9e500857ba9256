// Server: the HTTPS listener. One io_context on N threads, a coroutine per connection on its own
// strand, a deadline on every read and write, limits on head and body size, connections and
// requests per connection, and a graceful drain on SIGTERM/SIGINT.
//
// Per connection: TLS handshake (within the header timeout), then per request: wait up to the idle
// timeout for the first bytes, read the head within the header timeout (431 above the limit),
// answer "Expect: 100-continue", read the body within the body timeout (413 above the limit),
// route, run the handler, add the security headers, write within the write timeout, and log one
// JSON line (request id, method, route template, status, duration: never the path's values, the
// query, a header value or a body). An exception escaping a handler is logged and answered 500.
//
// Thread-safe: Run() blocks the calling thread; Shutdown() may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "kura/base/status.h"
#include "kura/http/router.h"
#include "kura/http/types.h"

namespace boost::asio::ssl {
class context;
}

namespace kura::http {

struct ServerOptions {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8443;  // 0: any free port (see Server::port()).
  int io_threads = 0;           // 0: hardware concurrency.
  size_t max_connections = 4096;
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 8 * 1024 * 1024;
  std::chrono::seconds header_timeout{10};
  std::chrono::seconds body_timeout{30};
  std::chrono::seconds idle_timeout{60};
  std::chrono::seconds write_timeout{30};
  std::chrono::seconds shutdown_grace{20};
  int64_t max_requests_per_connection = 10000;
};

class Server {
 public:
  // Binds the listening socket (so the port is known before Run). InvalidArgument for a bad
  // address, Unavailable when the port cannot be bound.
  static StatusOr<std::unique_ptr<Server>> Create(ServerOptions options,
                                                  std::unique_ptr<boost::asio::ssl::context> tls,
                                                  Router router, ErrorResponder errors);
  ~Server();

  uint16_t port() const;
  // Serves until SIGTERM/SIGINT or Shutdown(), drains in-flight requests (up to the grace
  // period), then returns OK.
  kura::Status Run();
  void Shutdown();

  // Live counters (for metrics and tests).
  size_t active_connections() const;

 struct State;  // Implementation detail, public only so server.cc's helpers can name it.

 private:
  explicit Server(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

}  // namespace kura::http
