// SyslogClient: a blocking connection to a syslog receiver over TCP (RFC 6587) or TLS (RFC 5425),
// for the one exporter thread that ships audit records and checkpoints to a SIEM.
//
// The client only moves bytes: callers format and frame the messages (export_format.h) and keep
// a durable cursor. Syslog over TCP has no acknowledgement, so "sent" means "handed to the
// kernel": on any error the client reports Unavailable and the caller reconnects and resends
// from its cursor (receivers may see a message twice; the record's sequence number tells them).
// Every operation has a deadline. TLS is 1.2 or newer with forward-secret AEAD suites; the
// server certificate must chain to the configured CA and name the host; a client certificate
// can be presented for mutual authentication. Message contents are never logged or put into a
// Status.
//
// Thread-compatible: one thread uses a client at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "kura/base/status.h"

namespace kura::audit {

// The IANA port for syslog over TLS (RFC 5425), used when a tls:// URL names none.
inline constexpr uint16_t kSyslogTlsPort = 6514;

struct SyslogEndpoint {
  enum class Transport { kTcp, kTls };
  Transport transport = Transport::kTls;
  std::string host;  // A DNS name or an IP literal (IPv6 without brackets).
  uint16_t port = 0;
  friend bool operator==(const SyslogEndpoint&, const SyslogEndpoint&) = default;
};

// Parses "tcp://host:port" or "tls://host[:port]" (port defaults to 6514 for tls only); an IPv6
// host goes in brackets ("tls://[2001:db8::1]:6514"). Nothing may follow the port but an
// optional "/". InvalidArgument, saying what is wrong, for anything else.
[[nodiscard]] StatusOr<SyslogEndpoint> ParseSyslogUrl(std::string_view url);

struct SyslogTlsOptions {
  // PEM CA certificates the server's certificate must chain to. Empty: the system trust store.
  std::filesystem::path ca_file;
  // PEM client certificate chain and private key, both or neither (mutual TLS). The key must
  // not be readable by group or others.
  std::filesystem::path client_certificate_file;
  std::filesystem::path client_key_file;
  // The name the server certificate must carry (and the SNI sent). Empty: the endpoint's host.
  std::string server_name;
};

class SyslogClient {
 public:
  // Connects (and for kTls handshakes and verifies the server) within `timeout`.
  // InvalidArgument or FailedPrecondition when the TLS files cannot be used (a setting to fix,
  // retrying will not help); Unavailable when the host does not resolve, nothing accepts the
  // connection, the handshake or certificate check fails, or the deadline passes.
  [[nodiscard]] static StatusOr<std::unique_ptr<SyslogClient>> Connect(
      const SyslogEndpoint& endpoint, const SyslogTlsOptions& tls,
      std::chrono::milliseconds timeout);

  ~SyslogClient();
  SyslogClient(const SyslogClient&) = delete;
  SyslogClient& operator=(const SyslogClient&) = delete;

  // Writes every message, in order, within the connect timeout. Each message must already be
  // framed (FrameOctetCounting). Unavailable when the write fails or times out, or when the
  // receiver has closed the connection since the last call; the connection is then unusable
  // and every later Send fails too: connect again and resend from the durable cursor.
  [[nodiscard]] Status Send(std::span<const std::string> framed_messages);

  // Ends the connection in an orderly way (TLS close_notify, then FIN) within the timeout.
  // Unavailable when that fails; the connection is closed either way.
  [[nodiscard]] Status Close();

 private:
  class Impl;
  explicit SyslogClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kura::audit
