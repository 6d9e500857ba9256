// The Beast/Asio HTTPS server (see server.h for the per-connection sequence).
#include "kura/http/server.h"

#include <array>
#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "kura/base/log.h"
#include "kura/base/random.h"
#include "kura/base/thread_name.h"
#include "kura/http/security_headers.h"

namespace kura::http {
namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// One live connection as the drain logic sees it. Touched only on the connection's strand,
// except the registry's set membership (under State::mu).
struct Connection {
  TlsStream* stream = nullptr;
  bool idle = false;  // Waiting for the first byte of the next request.
  bool alive = true;  // False once the coroutine has left; set on the strand.
  bool draining = false;
};

struct Server::State {
  ServerOptions options;
  std::unique_ptr<asio::ssl::context> tls;
  Router router;
  ErrorResponder errors;
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::atomic<bool> shutting_down{false};
  std::atomic<size_t> connections{0};

  std::mutex mu;
  std::set<std::shared_ptr<Connection>> live;  // Guarded by mu.

  explicit State(int threads) : ioc(threads) {}
};

namespace {

std::string NewRequestId() {
  uint8_t raw[8];
  RandomFill(raw);
  return HexEncode(raw);
}

Response ErrorFor(Server::State& s, HttpStatus status, std::string_view message, unsigned version,
                  bool keep_alive) {
  Response r = s.errors(status, message, version, keep_alive);
  r.prepare_payload();
  return r;
}

void LogRequest(const RequestContext& ctx, const Request& req, unsigned status) {
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - ctx.started)
                    .count();
  log::Info("request", {{"request_id", ctx.request_id},
                        {"method", req.method() == beast_http::verb::unknown
                                       ? std::string_view("(other)")
                                       : std::string_view(beast_http::to_string(req.method()))},
                        {"route", ctx.route.empty() ? std::string_view("(none)") : ctx.route},
                        {"status", static_cast<int64_t>(status)},
                        {"duration_ms", static_cast<double>(micros) / 1000.0},
                        {"remote", ctx.remote_address}});
}

std::string_view MessageFor(HttpStatus status) {
  switch (status) {
    case HttpStatus::request_header_fields_too_large:
      return "the request head is too large";
    case HttpStatus::payload_too_large:
      return "the request body is too large";
    default:
      return "malformed HTTP request";
  }
}

// Sends `response`. beast's TLS stream joins a message's header and body into one write only up
// to 16 KiB; a larger answer (a page of search results) would send its header as a TLS record and
// a TCP segment of its own, so it goes out as one buffer instead. Past 1 MiB the extra record does
// not matter and copying the body would.
asio::awaitable<boost::system::error_code> WriteResponse(TlsStream& stream, Response& response) {
  constexpr size_t kJoinedByBeast = 16 * 1024 - 1024;  // Leaves room for the header.
  constexpr size_t kLargestJoined = 1024 * 1024;
  if (response.body().size() <= kJoinedByBeast || response.body().size() > kLargestJoined) {
    auto [ec, n] = co_await beast_http::async_write(stream, response, kNoThrow);
    co_return ec;
  }
  std::ostringstream header;
  header << response.base();  // Start line, fields and the blank line.
  std::string wire = std::move(header).str();
  wire.reserve(wire.size() + response.body().size());
  wire += response.body();
  auto [ec, n] = co_await asio::async_write(stream, asio::buffer(wire), kNoThrow);
  co_return ec;
}

// Answers an error found while reading the request (before any handler ran) and closes.
asio::awaitable<void> WriteEarlyError(Server::State& s, TlsStream& stream, RequestContext& ctx,
                                      HttpStatus status) {
  Response r = ErrorFor(s, status, MessageFor(status), 11, false);
  r.set("X-Request-Id", ctx.request_id);
  AddSecurityHeaders(r);
  r.prepare_payload();
  beast::get_lowest_layer(stream).expires_after(s.options.write_timeout);
  co_await beast_http::async_write(stream, r, kNoThrow);
  LogRequest(ctx, ctx.request, r.result_int());
  // Lingering close: the client may still be sending the body we refused; closing with unread
  // data would reset the connection and lose the answer. Say close_notify, stop writing, and
  // discard what arrives for a short while.
  auto& socket = beast::get_lowest_layer(stream);
  socket.expires_after(std::chrono::seconds(2));
  co_await stream.async_shutdown(kNoThrow);
  boost::system::error_code ignored;
  socket.socket().shutdown(tcp::socket::shutdown_send, ignored);
  std::array<char, 16384> scratch;
  for (size_t drained = 0; drained < 64 * 1024 * 1024;) {
    auto [ec, n] = co_await socket.async_read_some(asio::buffer(scratch), kNoThrow);
    if (ec) break;
    drained += n;
  }
}

HttpStatus StatusForReadError(const boost::system::error_code& ec) {
  if (ec == beast_http::error::header_limit) return HttpStatus::request_header_fields_too_large;
  if (ec == beast_http::error::body_limit) return HttpStatus::payload_too_large;
  return HttpStatus::bad_request;
}

// Errors that mean the peer went away or was too slow: nothing to answer.
bool IsDisconnect(const boost::system::error_code& ec) {
  return ec == beast_http::error::end_of_stream || ec == asio::error::operation_aborted ||
         ec == asio::ssl::error::stream_truncated || ec == beast::error::timeout ||
         ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe;
}

// A failed read of the request: answered with its 4xx unless the peer is simply gone.
asio::awaitable<void> AnswerReadError(Server::State& s, TlsStream& stream, RequestContext& ctx,
                                      const boost::system::error_code& ec) {
  if (!IsDisconnect(ec)) co_await WriteEarlyError(s, stream, ctx, StatusForReadError(ec));
}

asio::awaitable<Response> Dispatch(Server::State& s, RequestContext& ctx) {
  const Request& req = ctx.request;
  auto target = std::string_view(req.target().data(), req.target().size());
  auto q = target.find('?');
  ctx.path = target.substr(0, q);
  ctx.query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
  if (ctx.path.empty() || ctx.path.front() != '/') {
    co_return ErrorFor(s, HttpStatus::bad_request, "the request target must be an absolute path",
                       req.version(), req.keep_alive());
  }
  Router::Match match = s.router.Find(req.method(), ctx.path);
  ctx.route = match.route;
  if (match.handler == nullptr) {
    if (match.path_matched) {
      Response r =
          ErrorFor(s, HttpStatus::method_not_allowed, "this method is not supported on this path",
                   req.version(), req.keep_alive());
      r.set(beast_http::field::allow, match.allowed_methods);
      co_return r;
    }
    co_return ErrorFor(s, HttpStatus::not_found, "no such endpoint", req.version(),
                       req.keep_alive());
  }
  ctx.params = std::move(match.params);
  co_return co_await (*match.handler)(ctx);
}

asio::awaitable<void> Serve(std::shared_ptr<Server::State> s, std::shared_ptr<Connection> conn,
                            TlsStream& stream, std::string remote) {
  const ServerOptions& o = s->options;
  beast::get_lowest_layer(stream).expires_after(o.header_timeout);
  auto [hs_ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kNoThrow);
  if (hs_ec) co_return;  // Plain HTTP, scanners, timeouts: nothing useful to say.

  beast::flat_buffer buffer;
  for (int64_t served = 0; served < o.max_requests_per_connection; ++served) {
    beast_http::request_parser<beast_http::string_body> parser;
    parser.header_limit(static_cast<uint32_t>(o.max_header_bytes));
    parser.body_limit(o.max_body_bytes);

    RequestContext ctx{
        parser.get(), {}, {}, {}, {}, NewRequestId(), remote, std::chrono::steady_clock::now()};
    // Idle keep-alive wait for the first bytes, then a strict deadline for the whole head.
    if (buffer.size() == 0) {
      conn->idle = true;
      if (conn->draining) co_return;
      beast::get_lowest_layer(stream).expires_after(served == 0 ? o.header_timeout
                                                                : o.idle_timeout);
      auto [ec, n] = co_await beast_http::async_read_some(stream, buffer, parser, kNoThrow);
      conn->idle = false;
      ctx.started = std::chrono::steady_clock::now();
      if (ec && ec != beast_http::error::need_more) {
        co_await AnswerReadError(*s, stream, ctx, ec);
        co_return;
      }
    }
    beast::get_lowest_layer(stream).expires_after(o.header_timeout);
    if (!parser.is_header_done()) {
      auto [ec, n] = co_await beast_http::async_read_header(stream, buffer, parser, kNoThrow);
      if (ec) {
        co_await AnswerReadError(*s, stream, ctx, ec);
        co_return;
      }
    }
    const Request& head = parser.get();
    if (head.payload_size() && *head.payload_size() > o.max_body_bytes) {
      co_await WriteEarlyError(*s, stream, ctx, HttpStatus::payload_too_large);
      co_return;
    }
    if (beast::iequals(head[beast_http::field::expect], "100-continue")) {
      beast_http::response<beast_http::empty_body> cont{HttpStatus::continue_, head.version()};
      beast::get_lowest_layer(stream).expires_after(o.write_timeout);
      auto [ec, n] = co_await beast_http::async_write(stream, cont, kNoThrow);
      if (ec) co_return;
    }
    if (!parser.is_done()) {
      beast::get_lowest_layer(stream).expires_after(o.body_timeout);
      auto [ec, n] = co_await beast_http::async_read(stream, buffer, parser, kNoThrow);
      if (ec) {
        co_await AnswerReadError(*s, stream, ctx, ec);
        co_return;
      }
    }
    beast::get_lowest_layer(stream).expires_never();

    Response response;
    try {
      response = co_await Dispatch(*s, ctx);
    } catch (const std::exception& e) {
      log::Error("handler_exception", {{"request_id", ctx.request_id}, {"route", ctx.route}});
      response =
          ErrorFor(*s, HttpStatus::internal_server_error, "internal error", head.version(), false);
    }
    bool keep_alive = head.keep_alive() && !conn->draining && !s->shutting_down &&
                      served + 1 < o.max_requests_per_connection;
    response.version(head.version());
    response.keep_alive(keep_alive);
    response.set("X-Request-Id", ctx.request_id);
    AddSecurityHeaders(response);
    response.prepare_payload();
    beast::get_lowest_layer(stream).expires_after(o.write_timeout);
    const boost::system::error_code wec = co_await WriteResponse(stream, response);
    LogRequest(ctx, head, response.result_int());
    if (wec || !keep_alive) break;
  }
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
  co_await stream.async_shutdown(kNoThrow);
}

asio::awaitable<void> RunConnection(std::shared_ptr<Server::State> s, tcp::socket socket) {
  std::string remote;
  boost::system::error_code ec;
  auto endpoint = socket.remote_endpoint(ec);
  if (!ec) remote = endpoint.address().to_string();
  TlsStream stream(std::move(socket), *s->tls);
  auto conn = std::make_shared<Connection>();
  conn->stream = &stream;
  {
    std::lock_guard lock(s->mu);
    s->live.insert(conn);
  }
  try {
    co_await Serve(s, conn, stream, std::move(remote));
  } catch (const std::exception& e) {
    log::Error("connection_exception", {{"what", "unexpected exception in connection"}});
  }
  conn->alive = false;
  {
    std::lock_guard lock(s->mu);
    s->live.erase(conn);
  }
  if (--s->connections == 0 && s->shutting_down) s->ioc.stop();
}

asio::awaitable<void> AcceptLoop(std::shared_ptr<Server::State> s) {
  for (;;) {
    auto [ec, socket] = co_await s->acceptor.async_accept(asio::make_strand(s->ioc), kNoThrow);
    if (ec) {
      if (s->shutting_down || ec == asio::error::operation_aborted) co_return;
      if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space) {
        log::Warn("accept_failed", {{"reason", "out of descriptors"}});
        asio::steady_timer t(s->ioc, std::chrono::milliseconds(50));
        co_await t.async_wait(kNoThrow);
      }
      continue;
    }
    if (s->connections >= s->options.max_connections) {
      boost::system::error_code ignored;
      socket.close(ignored);  // Over the limit: refuse quickly rather than queue.
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    ++s->connections;
    auto executor = socket.get_executor();
    asio::co_spawn(executor, RunConnection(s, std::move(socket)), asio::detached);
  }
}

void BeginDrain(const std::shared_ptr<Server::State>& s) {
  if (s->shutting_down.exchange(true)) return;
  log::Info("shutdown_started", {{"active_connections", static_cast<int64_t>(s->connections)}});
  boost::system::error_code ec;
  s->acceptor.close(ec);
  std::set<std::shared_ptr<Connection>> live;
  {
    std::lock_guard lock(s->mu);
    live = s->live;
  }
  for (const auto& conn : live) {
    asio::post(conn->stream->get_executor(), [conn] {
      if (!conn->alive) return;
      conn->draining = true;
      if (conn->idle) beast::get_lowest_layer(*conn->stream).cancel();
    });
  }
  if (s->connections == 0) s->ioc.stop();
}

}  // namespace

StatusOr<std::unique_ptr<Server>> Server::Create(ServerOptions options,
                                                 std::unique_ptr<asio::ssl::context> tls,
                                                 Router router, ErrorResponder errors) {
  int threads = options.io_threads > 0 ? options.io_threads
                                       : std::max(1u, std::thread::hardware_concurrency());
  auto state = std::make_shared<State>(threads);
  state->options = std::move(options);
  state->tls = std::move(tls);
  state->router = std::move(router);
  state->errors = std::move(errors);
  boost::system::error_code ec;
  auto address = asio::ip::make_address(state->options.listen_host, ec);
  if (ec) {
    return InvalidArgumentError("server.listen: not an IP address: " + state->options.listen_host);
  }
  tcp::endpoint endpoint(address, state->options.listen_port);
  state->acceptor.open(endpoint.protocol(), ec);
  if (!ec) state->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) state->acceptor.bind(endpoint, ec);
  if (!ec) state->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return UnavailableError("cannot listen on " + state->options.listen_host + ":" +
                            std::to_string(state->options.listen_port) + ": " + ec.message());
  }
  return std::unique_ptr<Server>(new Server(std::move(state)));
}

Server::~Server() = default;

uint16_t Server::port() const {
  boost::system::error_code ec;
  return state_->acceptor.local_endpoint(ec).port();
}

size_t Server::active_connections() const { return state_->connections; }

void Server::Shutdown() {
  auto s = state_;
  asio::post(s->ioc, [s] { BeginDrain(s); });
}

kura::Status Server::Run() {
  auto s = state_;
  asio::signal_set signals(s->ioc, SIGTERM, SIGINT);
  signals.async_wait([s](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    log::Info("signal_received", {{"signal", signal == SIGTERM ? "SIGTERM" : "SIGINT"}});
    BeginDrain(s);
  });
  asio::steady_timer grace(s->ioc);
  log::Info("listening",
            {{"address", s->options.listen_host}, {"port", static_cast<int64_t>(port())}});
  asio::co_spawn(s->ioc, AcceptLoop(s), asio::detached);
  // After a drain starts, stop anyway once the grace period passes.
  asio::co_spawn(
      s->ioc,
      [s, &grace]() -> asio::awaitable<void> {
        while (!s->shutting_down) {
          grace.expires_after(std::chrono::milliseconds(200));
          co_await grace.async_wait(kNoThrow);
        }
        grace.expires_after(s->options.shutdown_grace);
        co_await grace.async_wait(kNoThrow);
        if (s->connections > 0) {
          log::Warn("shutdown_grace_expired",
                    {{"active_connections", static_cast<int64_t>(s->connections)}});
        }
        s->ioc.stop();
      },
      asio::detached);

  int threads = s->options.io_threads > 0 ? s->options.io_threads
                                          : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> workers;
  for (int i = 1; i < threads; ++i)
    workers.emplace_back([s] {
      NameThisThread("kura-io");
      s->ioc.run();
    });
  s->ioc.run();
  for (auto& t : workers) t.join();
  log::Info("shutdown_complete");
  return kura::Status::Ok();
}

}  // namespace kura::http
