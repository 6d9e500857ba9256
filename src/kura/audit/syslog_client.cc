// SyslogClient: blocking calls built from Asio's asynchronous operations, each run on a private
// io_context up to a deadline (the pattern of Asio's blocking_tcp_client timeout example).
#include "kura/audit/syslog_client.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <charconv>
#include <functional>
#include <optional>
#include <vector>

namespace kura::audit {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// The TLS 1.2 suites the HTTPS listener allows too: ECDHE key exchange (forward secrecy), AEAD
// ciphers only. TLS 1.3 suites are all AEAD and forward secret; OpenSSL's defaults stand.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305";

constexpr std::string_view kUnavailable = "syslog receiver unavailable";

Status InvalidUrl(std::string_view why) {
  return InvalidArgumentError("invalid syslog URL: " + std::string(why) +
                              " (expected tcp://host:port or tls://host[:port])");
}

std::string OpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

// A completion handler that stores the operation's error code and marks it done (for RunUntil).
auto StoreResult(boost::system::error_code& result, bool& done) {
  return [&result, &done](const boost::system::error_code& ec, auto&&...) {
    result = ec;
    done = true;
  };
}

bool IsIpLiteral(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

bool IsDnsName(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
  });
}

StatusOr<std::unique_ptr<ssl::context>> MakeClientTlsContext(const SyslogTlsOptions& tls) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  SSL_CTX* raw = ctx->native_handle();
  ERR_clear_error();
  if (SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(raw, kTls12Ciphers) != 1) {
    return InternalError("internal error", "TLS client policy rejected: " + OpenSslErrors());
  }
  SSL_CTX_set_options(raw, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  boost::system::error_code ec;
  if (tls.ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
  } else {
    ctx->load_verify_file(tls.ca_file.string(), ec);
  }
  if (ec) {
    return InvalidArgumentError("cannot load the syslog TLS CA file " + tls.ca_file.string(),
                                ec.message());
  }
  ctx->set_verify_mode(ssl::verify_peer);
  bool has_cert = !tls.client_certificate_file.empty();
  bool has_key = !tls.client_key_file.empty();
  if (has_cert != has_key) {
    return InvalidArgumentError("syslog TLS client certificate and key must be set together");
  }
  if (has_cert) {
    struct stat st {};
    if (::stat(tls.client_key_file.c_str(), &st) != 0) {
      return FailedPreconditionError("syslog TLS client key not found: " +
                                     tls.client_key_file.string());
    }
    if ((st.st_mode & 077) != 0) {
      return FailedPreconditionError("syslog TLS client key " + tls.client_key_file.string() +
                                     " is accessible by group or others; run: chmod 600 " +
                                     tls.client_key_file.string());
    }
    ctx->use_certificate_chain_file(tls.client_certificate_file.string(), ec);
    if (ec) {
      return InvalidArgumentError(
          "cannot load the syslog TLS client certificate " + tls.client_certificate_file.string(),
          ec.message());
    }
    ctx->use_private_key_file(tls.client_key_file.string(), ssl::context::pem, ec);
    if (ec || SSL_CTX_check_private_key(raw) != 1) {
      return InvalidArgumentError("syslog TLS client key " + tls.client_key_file.string() +
                                      " does not load or does not match the certificate",
                                  ec ? ec.message() : OpenSslErrors());
    }
  }
  return ctx;
}

}  // namespace

StatusOr<SyslogEndpoint> ParseSyslogUrl(std::string_view url) {
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) return InvalidUrl("no scheme");
  std::string scheme(url.substr(0, sep));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  SyslogEndpoint endpoint;
  if (scheme == "tcp") {
    endpoint.transport = SyslogEndpoint::Transport::kTcp;
  } else if (scheme == "tls") {
    endpoint.transport = SyslogEndpoint::Transport::kTls;
  } else {
    return InvalidUrl("unknown scheme \"" + scheme + "\"");
  }
  std::string_view rest = url.substr(sep + 3);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos) {
    return InvalidUrl("only a host and a port may follow the scheme");
  }
  std::string_view host, port;
  bool has_port = false;
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return InvalidUrl("unterminated '[' in the host");
    host = rest.substr(1, close - 1);
    boost::system::error_code ec;
    asio::ip::make_address_v6(std::string(host), ec);
    if (ec || host.find('%') != std::string_view::npos) {
      return InvalidUrl("\"" + std::string(host) + "\" is not an IPv6 address");
    }
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return InvalidUrl("unexpected text after ']'");
      port = after.substr(1);
      has_port = true;
    }
  } else {
    size_t colon = rest.find(':');
    if (colon != std::string_view::npos && rest.find(':', colon + 1) != std::string_view::npos) {
      return InvalidUrl("an IPv6 host must be written in brackets");
    }
    host = rest.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = rest.substr(colon + 1);
      has_port = true;
    }
    if (host.empty()) return InvalidUrl("no host");
    if (!IsDnsName(host)) return InvalidUrl("\"" + std::string(host) + "\" is not a host name");
  }
  if (host.empty()) return InvalidUrl("no host");
  endpoint.host = std::string(host);
  if (!has_port) {
    if (endpoint.transport == SyslogEndpoint::Transport::kTcp) {
      return InvalidUrl("a tcp:// URL needs a port");
    }
    endpoint.port = kSyslogTlsPort;
    return endpoint;
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || port.size() > 5 || ec != std::errc() || end != port.data() + port.size() ||
      value == 0 || value > 65535 || !std::isdigit(static_cast<unsigned char>(port.front()))) {
    return InvalidUrl("the port must be a number from 1 to 65535");
  }
  endpoint.port = static_cast<uint16_t>(value);
  return endpoint;
}

class SyslogClient::Impl {
 public:
  Impl(const SyslogEndpoint& endpoint, std::chrono::milliseconds timeout)
      : endpoint_(endpoint), timeout_(timeout), plain_(io_) {}

  ~Impl() { CloseSocket(); }

  Status Connect(const SyslogTlsOptions& tls) {
    if (endpoint_.transport == SyslogEndpoint::Transport::kTls) {
      KURA_ASSIGN_OR_RETURN(ssl_context_, MakeClientTlsContext(tls));
      tls_ = std::make_unique<ssl::stream<tcp::socket>>(io_, *ssl_context_);
    }
    Clock::time_point deadline = Clock::now() + timeout_;

    tcp::resolver resolver(io_);
    tcp::resolver::results_type endpoints;
    boost::system::error_code result;
    bool done = false;
    resolver.async_resolve(endpoint_.host, std::to_string(endpoint_.port),
                           tcp::resolver::numeric_service,
                           [&](const boost::system::error_code& ec, tcp::resolver::results_type r) {
                             result = ec;
                             endpoints = std::move(r);
                             done = true;
                           });
    // getaddrinfo cannot be interrupted: a resolver that hangs delays this past the deadline by
    // its own timeout (resolv.conf), after which the cancelled lookup completes.
    if (!RunUntil(done, deadline, [&] { resolver.cancel(); })) return Failed("resolve", "timeout");
    if (result) return Failed("resolve", result.message());

    done = false;
    asio::async_connect(socket(), endpoints, StoreResult(result, done));
    if (!RunUntil(done, deadline, [&] { CloseSocket(); })) return Failed("connect", "timeout");
    if (result) return Failed("connect", result.message());
    socket().set_option(asio::socket_base::keep_alive(true), result);

    if (tls_) {
      const std::string& name = tls.server_name.empty() ? endpoint_.host : tls.server_name;
      // SNI carries DNS names only (RFC 6066 section 3).
      if (!IsIpLiteral(name) &&
          SSL_set_tlsext_host_name(tls_->native_handle(), name.c_str()) != 1) {
        return Failed("handshake", "cannot set SNI");
      }
      tls_->set_verify_callback(ssl::host_name_verification(name));
      done = false;
      tls_->async_handshake(ssl::stream_base::client, StoreResult(result, done));
      if (!RunUntil(done, deadline, [&] { CloseSocket(); })) return Failed("handshake", "timeout");
      if (result) {
        long verify = SSL_get_verify_result(tls_->native_handle());
        std::string detail = result.message();
        if (verify != X509_V_OK) {
          detail += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
        }
        return Failed("handshake", detail);
      }
    }
    StartWatch();
    return Status::Ok();
  }

  Status Send(std::span<const std::string> messages) {
    if (broken_ || closed_) return Failed("send", "connection already failed or closed");
    // Collect a finished watch: a syslog receiver never sends, so a completed read means the
    // receiver closed (or broke) the connection and these bytes would go nowhere.
    io_.restart();
    io_.poll();
    if (watch_done_) return Failed("send", "receiver closed the connection: " + watch_error_);
    if (messages.empty()) return Status::Ok();
    std::vector<asio::const_buffer> buffers;
    buffers.reserve(messages.size());
    for (const auto& m : messages) buffers.push_back(asio::buffer(m));
    boost::system::error_code result;
    bool done = false;
    if (tls_) {
      asio::async_write(*tls_, buffers, StoreResult(result, done));
    } else {
      asio::async_write(plain_, buffers, StoreResult(result, done));
    }
    if (!RunUntil(done, Clock::now() + timeout_, [&] { CloseSocket(); })) {
      return Failed("send", "timeout");
    }
    if (result) return Failed("send", result.message());
    return Status::Ok();
  }

  Status Close() {
    if (closed_) return Status::Ok();
    if (broken_) return Failed("close", "connection already failed");
    io_.restart();
    io_.poll();
    if (watch_done_) return Failed("close", "receiver closed the connection: " + watch_error_);
    Clock::time_point deadline = Clock::now() + timeout_;
    // Retire the watch so the shutdown below owns the read side.
    boost::system::error_code ignored;
    socket().cancel(ignored);
    io_.restart();
    while (!watch_done_ && io_.run_one() != 0) {
    }
    boost::system::error_code result;
    bool done = false;
    if (tls_) {
      tls_->async_shutdown(StoreResult(result, done));
      if (!RunUntil(done, deadline, [&] { CloseSocket(); })) return Failed("close", "timeout");
      // A receiver may close TCP without its own close_notify; the data was still read.
      if (result && result != asio::error::eof && result != ssl::error::stream_truncated) {
        return Failed("close", result.message());
      }
    }
    // Half-close and wait for the receiver's FIN: it closes only after reading all we sent.
    socket().shutdown(tcp::socket::shutdown_send, ignored);
    std::array<char, 256> sink;
    result = {};
    while (!result) {
      done = false;
      socket().async_read_some(asio::buffer(sink), StoreResult(result, done));
      if (!RunUntil(done, deadline, [&] { CloseSocket(); })) return Failed("close", "timeout");
    }
    CloseSocket();
    if (result != asio::error::eof) return Failed("close", result.message());
    closed_ = true;
    return Status::Ok();
  }

  // After an exception the connection's state is unknown: give it up.
  void Abort() {
    broken_ = true;
    CloseSocket();
  }

 private:
  tcp::socket& socket() { return tls_ ? tls_->next_layer() : plain_; }

  void CloseSocket() {
    boost::system::error_code ignored;
    if (socket().is_open()) socket().close(ignored);
  }

  // Runs handlers until `done` or `deadline`. On the deadline, cancel() aborts the operation and
  // the handlers run to completion here, so none outlives the caller's stack frame.
  bool RunUntil(const bool& done, Clock::time_point deadline, const std::function<void()>& cancel) {
    io_.restart();
    while (!done) {
      if (io_.run_one_until(deadline) == 0) break;
    }
    if (done) return true;
    cancel();
    io_.restart();
    while (!done && io_.run_one() != 0) {
    }
    return false;
  }

  void StartWatch() {
    auto handler = [this](const boost::system::error_code& ec, size_t) {
      watch_done_ = true;
      watch_error_ = ec ? ec.message() : "unexpected data from the receiver";
    };
    if (tls_) {
      tls_->async_read_some(asio::buffer(watch_buffer_), handler);
    } else {
      plain_.async_read_some(asio::buffer(watch_buffer_), handler);
    }
  }

  std::string Scheme() const {
    return endpoint_.transport == SyslogEndpoint::Transport::kTls ? "tls://" : "tcp://";
  }

  Status Failed(std::string_view step, std::string_view detail) {
    broken_ = true;
    CloseSocket();
    return UnavailableError(std::string(kUnavailable),
                            "syslog " + std::string(step) + " " + Scheme() + endpoint_.host + ":" +
                                std::to_string(endpoint_.port) + ": " + std::string(detail));
  }

  SyslogEndpoint endpoint_;
  std::chrono::milliseconds timeout_;
  asio::io_context io_;
  std::unique_ptr<ssl::context> ssl_context_;
  tcp::socket plain_;  // The connection for kTcp; unused for kTls.
  std::unique_ptr<ssl::stream<tcp::socket>> tls_;
  std::array<char, 1> watch_buffer_{};
  bool watch_done_ = false;
  std::string watch_error_;
  bool broken_ = false;  // An operation failed; the connection is gone.
  bool closed_ = false;  // Close succeeded.
};

SyslogClient::SyslogClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SyslogClient::~SyslogClient() = default;

StatusOr<std::unique_ptr<SyslogClient>> SyslogClient::Connect(const SyslogEndpoint& endpoint,
                                                              const SyslogTlsOptions& tls,
                                                              std::chrono::milliseconds timeout) {
  try {
    auto impl = std::make_unique<Impl>(endpoint, timeout);
    KURA_RETURN_IF_ERROR(impl->Connect(tls));
    return std::unique_ptr<SyslogClient>(new SyslogClient(std::move(impl)));
  } catch (const std::exception& e) {
    // Asio reports some failures (e.g. out of descriptors) only by throwing.
    return UnavailableError(std::string(kUnavailable), std::string("syslog connect: ") + e.what());
  }
}

Status SyslogClient::Send(std::span<const std::string> framed_messages) {
  try {
    return impl_->Send(framed_messages);
  } catch (const std::exception& e) {
    impl_->Abort();
    return UnavailableError(std::string(kUnavailable), std::string("syslog send: ") + e.what());
  }
}

Status SyslogClient::Close() {
  try {
    return impl_->Close();
  } catch (const std::exception& e) {
    impl_->Abort();
    return UnavailableError(std::string(kUnavailable), std::string("syslog close: ") + e.what());
  }
}

}  // namespace kura::audit
