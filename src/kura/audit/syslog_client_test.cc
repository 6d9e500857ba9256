// SyslogClient against a real rsyslogd (imtcp, plain and with the OpenSSL stream driver): what
// the receiver stores must be exactly what Kura formatted, escaping and checkpoint notes
// included.
#include "kura/audit/syslog_client.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kura/audit/checkpoint.h"
#include "kura/audit/export_format.h"
#include "kura/audit/rsyslog_fixture.h"
#include "kura/audit/test_util.h"

namespace kura::audit {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr char kSeed[] = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
constexpr char kOrigin[] = "kura.test/audit";
constexpr auto kTimeout = std::chrono::milliseconds(5000);
// A value with every character RFC 5424 and CEF escape, plus non-ASCII text.
constexpr char kTrickyPurpose[] = "quote \" bracket ] backslash \\ equals = pipe | caf\xc3\xa9";

using testing::Listener;
using testing::MakeTempDir;
using testing::ReadFile;
using testing::RsyslogReceiver;
using testing::TestPki;

TestPki* pki = nullptr;

// The SD-PARAMs of element `sd_id` in a stored syslog line, unescaped the way RFC 5424 section
// 6.3.3 says a receiver must. Written independently of the library's reader on purpose.
std::multimap<std::string, std::string> SdParams(const std::string& line,
                                                 const std::string& sd_id) {
  std::multimap<std::string, std::string> out;
  size_t pos = line.find("[" + sd_id + " ");
  if (pos == std::string::npos) return out;
  pos += sd_id.size() + 1;
  while (pos < line.size() && line[pos] == ' ') {
    size_t eq = line.find("=\"", pos);
    if (eq == std::string::npos) break;
    std::string name = line.substr(pos + 1, eq - pos - 1);
    std::string value;
    size_t i = eq + 2;
    for (; i < line.size() && line[i] != '"'; ++i) {
      if (line[i] == '\\' && i + 1 < line.size() &&
          std::string("\"\\]").find(line[i + 1]) != std::string::npos) {
        ++i;
      }
      value.push_back(line[i]);
    }
    out.emplace(name, value);
    pos = i + 1;
  }
  return out;
}

class SyslogClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki = new TestPki;
    pki->dir = MakeTempDir("kura-syslog-pki");
    if (pki->dir.empty() || !testing::MakeTestPki(*pki)) {
      pki_error_ = "cannot create test certificates with the openssl tool: " +
                   ReadFile(pki->dir / "openssl.log");
    }
  }
  static void TearDownTestSuite() {
    if (!pki->dir.empty()) fs::remove_all(pki->dir);
    delete pki;
    pki = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(pki_error_.empty()) << pki_error_;
    dir_ = MakeTempDir("kura-syslog");
    ASSERT_FALSE(dir_.empty());
    receiver_ = std::make_unique<RsyslogReceiver>(dir_);
  }

  void TearDown() override {
    if (receiver_) {
      receiver_->Stop();
      if (HasFailure()) std::cerr << receiver_->Diagnostics();
      receiver_.reset();
    }
    fs::remove_all(dir_);
  }

  // Starts rsyslogd on an ephemeral port of 127.0.0.1 (rsyslog_fixture.h).
  void StartRsyslog(Listener listener) {
    ASSERT_TRUE(receiver_->Start(listener, pki));
    port_ = receiver_->port();
  }

  void StopRsyslog() { receiver_->Stop(); }

  // The lines rsyslogd stored, once there are `n` of them (or whatever is there after 5 s).
  std::vector<std::string> WaitForLines(size_t n) { return receiver_->WaitForLines(n); }

  SyslogEndpoint Endpoint(SyslogEndpoint::Transport transport) const {
    return SyslogEndpoint{transport, "127.0.0.1", port_};
  }

  static SyslogTlsOptions TrustingTestCa() {
    SyslogTlsOptions tls;
    tls.ca_file = pki->ca;
    return tls;
  }

  static std::vector<std::string> Framed(const std::vector<std::string>& messages) {
    std::vector<std::string> out;
    for (const auto& m : messages) out.push_back(FrameOctetCounting(m));
    return out;
  }

  static std::string SignedNote(int records) {
    auto signer = testing::SignerFromSeedHex(kSeed);
    AuditChain chain;
    for (int i = 0; i < records; ++i) EXPECT_TRUE(chain.Append(testing::SampleRecord(i)).ok());
    auto note = SignCheckpoint(
        CheckpointOf(chain.head(), kOrigin, FromMicros(1700000000000000 + records)), signer);
    EXPECT_TRUE(note.ok());
    return *note;
  }

  static void ExpectVerifiedCheckpoint(const std::string& stored_line, const std::string& note,
                                       uint64_t tree_size) {
    auto extracted = ExtractCheckpointNote(stored_line);
    ASSERT_TRUE(extracted.ok()) << extracted.status().ToString();
    EXPECT_EQ(*extracted, note);
    auto key = CheckpointVerifierKey(kOrigin, testing::SignerFromSeedHex(kSeed));
    ASSERT_TRUE(key.ok());
    std::vector<NoteVerifierKey> trusted = {*key};
    auto checkpoint = VerifyCheckpoint(*extracted, kOrigin, trusted);
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
    EXPECT_EQ(checkpoint->tree_size, tree_size);
  }

  // Sends three records (one with kTrickyPurpose) and a checkpoint and checks what rsyslogd
  // stored: the very messages sent, with parameters and the note recoverable.
  void ExpectRoundTrip(SyslogEndpoint::Transport transport, const SyslogTlsOptions& tls) {
    SyslogFormatOptions options;
    options.hostname = "kura-test.example.org";
    options.procid = "4242";
    std::vector<AuditRecord> records = {testing::SampleRecord(1), testing::SampleRecord(2),
                                        testing::SampleRecord(3)};
    records[1].purpose = kTrickyPurpose;
    records[1].details.emplace_back("odd key=\"]", "v\\=\"]");
    std::string note = SignedNote(3);
    std::vector<std::string> sent;
    for (const auto& r : records) sent.push_back(FormatSyslog5424(r, options));
    sent.push_back(FormatCheckpointSyslog5424(note, 3, 1700000000000003, options));

    auto client = SyslogClient::Connect(Endpoint(transport), tls, kTimeout);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    // Two batches over one connection.
    std::vector<std::string> framed = Framed(sent);
    ASSERT_TRUE((*client)->Send(std::span(framed).first(1)).ok());
    ASSERT_TRUE((*client)->Send(std::span(framed).subspan(1)).ok());
    Status closed = (*client)->Close();
    ASSERT_TRUE(closed.ok()) << closed.ToString();
    EXPECT_TRUE((*client)->Close().ok());
    EXPECT_EQ((*client)->Send(framed).code(), StatusCode::kUnavailable);

    std::vector<std::string> lines = WaitForLines(sent.size());
    ASSERT_EQ(lines.size(), sent.size());
    for (size_t i = 0; i < sent.size(); ++i) EXPECT_EQ(lines[i], sent[i]) << i;

    auto params = SdParams(lines[1], "kura@32473");
    ASSERT_EQ(params.count("purpose"), 1u) << lines[1];
    EXPECT_EQ(params.find("purpose")->second, kTrickyPurpose);
    ASSERT_EQ(params.count("d.odd_key___"), 1u) << lines[1];
    EXPECT_EQ(params.find("d.odd_key___")->second, "v\\=\"]");
    EXPECT_EQ(params.find("seq")->second, "2");
    EXPECT_EQ(params.find("request_id")->second, "req-2");

    ExpectVerifiedCheckpoint(lines[3], note, 3);
    auto checkpoint_params = SdParams(lines[3], "kuraCheckpoint@32473");
    EXPECT_EQ(checkpoint_params.find("tree_size")->second, "3");
  }

  static inline std::string pki_error_;
  fs::path dir_;
  std::unique_ptr<RsyslogReceiver> receiver_;
  uint16_t port_ = 0;
};

TEST_F(SyslogClientTest, TcpDeliversRecordsAndCheckpointsExactly) {
  StartRsyslog(Listener::kTcp);
  ExpectRoundTrip(SyslogEndpoint::Transport::kTcp, {});
}

TEST_F(SyslogClientTest, TlsDeliversRecordsAndCheckpointsExactly) {
  StartRsyslog(Listener::kTlsAnon);
  ExpectRoundTrip(SyslogEndpoint::Transport::kTls, TrustingTestCa());
}

TEST_F(SyslogClientTest, CefRidesInSyslogOverTls) {
  StartRsyslog(Listener::kTlsAnon);
  SyslogFormatOptions options;
  options.hostname = "kura-test.example.org";
  options.payload = SyslogPayload::kCef;
  options.cef.product_version = "9.9.9";
  AuditRecord record = testing::SampleRecord(5);
  record.purpose = kTrickyPurpose;
  std::string note = SignedNote(6);
  std::vector<std::string> sent = {FormatSyslog5424(record, options),
                                   FormatCheckpointSyslog5424(note, 6, 1700000000000006, options)};
  auto client =
      SyslogClient::Connect(Endpoint(SyslogEndpoint::Transport::kTls), TrustingTestCa(), kTimeout);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  ASSERT_TRUE((*client)->Send(Framed(sent)).ok());
  ASSERT_TRUE((*client)->Close().ok());

  std::vector<std::string> lines = WaitForLines(sent.size());
  ASSERT_EQ(lines.size(), sent.size());
  EXPECT_EQ(lines[0], sent[0]);
  EXPECT_EQ(lines[1], sent[1]);
  // The MSG is the CEF line, BOM first because the purpose is not ASCII.
  EXPECT_NE(lines[0].find(" fhir.create - \xef\xbb\xbf"
                          "CEF:0|Kura|Kura|9.9.9|fhir.create|"),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[0].find(" cs4Label=purpose cs4=quote \" bracket ] backslash \\\\ equals \\= "
                          "pipe | caf\xc3\xa9"),
            std::string::npos)
      << lines[0];
  ExpectVerifiedCheckpoint(lines[1], note, 6);
}

TEST_F(SyslogClientTest, MutualTlsWithClientCertificate) {
  StartRsyslog(Listener::kTlsClientCert);
  SyslogTlsOptions tls = TrustingTestCa();
  tls.client_certificate_file = pki->client_cert;
  tls.client_key_file = pki->client_key;
  ExpectRoundTrip(SyslogEndpoint::Transport::kTls, tls);
}

TEST_F(SyslogClientTest, MutualTlsReceiverRefusesClientWithoutCertificate) {
  StartRsyslog(Listener::kTlsClientCert);
  std::string message = FormatSyslog5424(testing::SampleRecord(1), SyslogFormatOptions{});
  // With TLS 1.3 the server checks the client's certificate after the client's handshake is
  // done, so the refusal may surface at Connect, Send or Close; it must surface somewhere.
  auto client =
      SyslogClient::Connect(Endpoint(SyslogEndpoint::Transport::kTls), TrustingTestCa(), kTimeout);
  bool delivered = false;
  if (client.ok()) {
    std::vector<std::string> framed = {FrameOctetCounting(message)};
    Status sent = (*client)->Send(framed);
    Status closed = sent.ok() ? (*client)->Close() : sent;
    delivered = sent.ok() && closed.ok();
    if (!closed.ok()) {
      EXPECT_EQ(closed.code(), StatusCode::kUnavailable);
    }
  } else {
    EXPECT_EQ(client.status().code(), StatusCode::kUnavailable);
  }
  EXPECT_FALSE(delivered);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(ReadFile(dir_ / "received.log"), "");
}

TEST_F(SyslogClientTest, TlsRejectsServerCertificateForAnotherName) {
  StartRsyslog(Listener::kTlsAnon);
  SyslogTlsOptions tls = TrustingTestCa();
  tls.server_name = "syslog.example.org";
  auto client = SyslogClient::Connect(Endpoint(SyslogEndpoint::Transport::kTls), tls, kTimeout);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(client.status().internal_detail().find("certificate verify failed"), std::string::npos)
      << client.status().ToString();

  // The certificate names "localhost" too, so that name passes (and resolves).
  tls.server_name = "localhost";
  auto ok = SyslogClient::Connect(Endpoint(SyslogEndpoint::Transport::kTls), tls, kTimeout);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  SyslogEndpoint by_name{SyslogEndpoint::Transport::kTls, "localhost", port_};
  auto by_host = SyslogClient::Connect(by_name, TrustingTestCa(), kTimeout);
  ASSERT_TRUE(by_host.ok()) << by_host.status().ToString();
}

TEST_F(SyslogClientTest, TlsRejectsServerFromAnotherCa) {
  StartRsyslog(Listener::kTlsAnon);
  SyslogTlsOptions tls;
  tls.ca_file = pki->other_ca;
  auto client = SyslogClient::Connect(Endpoint(SyslogEndpoint::Transport::kTls), tls, kTimeout);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(client.status().internal_detail().find("certificate verify failed"), std::string::npos)
      << client.status().ToString();
}

TEST_F(SyslogClientTest, TlsFileProblemsAreSettingsErrors) {
  SyslogEndpoint endpoint{SyslogEndpoint::Transport::kTls, "127.0.0.1", 1};
  SyslogTlsOptions tls;
  tls.ca_file = dir_ / "missing-ca.pem";
  EXPECT_EQ(SyslogClient::Connect(endpoint, tls, kTimeout).status().code(),
            StatusCode::kInvalidArgument);
  tls = TrustingTestCa();
  tls.client_certificate_file = pki->client_cert;  // Without a key.
  EXPECT_EQ(SyslogClient::Connect(endpoint, tls, kTimeout).status().code(),
            StatusCode::kInvalidArgument);
  fs::path lax_key = dir_ / "client.key";
  fs::copy_file(pki->client_key, lax_key);
  ASSERT_EQ(::chmod(lax_key.c_str(), 0640), 0);
  tls.client_key_file = lax_key;
  EXPECT_EQ(SyslogClient::Connect(endpoint, tls, kTimeout).status().code(),
            StatusCode::kFailedPrecondition);
  ASSERT_EQ(::chmod(lax_key.c_str(), 0600), 0);
  tls.client_certificate_file = pki->server_cert;  // Does not match the key.
  EXPECT_EQ(SyslogClient::Connect(endpoint, tls, kTimeout).status().code(),
            StatusCode::kInvalidArgument);
}

// A port that was just free: bind to port 0, note it, close.
uint16_t UnusedPort() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

TEST(SyslogClientNetworkTest, UnavailableWhenNothingListens) {
  for (auto transport : {SyslogEndpoint::Transport::kTcp, SyslogEndpoint::Transport::kTls}) {
    auto start = std::chrono::steady_clock::now();
    auto client = SyslogClient::Connect({transport, "127.0.0.1", UnusedPort()}, {}, kTimeout);
    ASSERT_FALSE(client.ok());
    EXPECT_EQ(client.status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(client.status().message(), "syslog receiver unavailable");
    EXPECT_NE(client.status().internal_detail().find("connect"), std::string::npos)
        << client.status().ToString();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  }
  auto unresolvable = SyslogClient::Connect(
      {SyslogEndpoint::Transport::kTcp, "no-such-host.invalid", 514}, {}, kTimeout);
  EXPECT_EQ(unresolvable.status().code(), StatusCode::kUnavailable);
}

// A peer that accepts connections and then neither reads nor speaks.
class SilentPeer {
 public:
  SilentPeer()
      : acceptor_(io_,
                  boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)),
        socket_(io_) {
    acceptor_.async_accept(socket_, [](const boost::system::error_code&) {});
    thread_ = std::thread([this] { io_.run(); });
  }
  ~SilentPeer() {
    io_.stop();
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::ip::tcp::socket socket_;
  std::thread thread_;
};

TEST(SyslogClientNetworkTest, TlsHandshakeTimesOut) {
  SilentPeer peer;
  auto start = std::chrono::steady_clock::now();
  auto client =
      SyslogClient::Connect({SyslogEndpoint::Transport::kTls, "127.0.0.1", peer.port()}, {}, 300ms);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(client.status().internal_detail().find("handshake"), std::string::npos)
      << client.status().ToString();
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(elapsed, 2s);
}

TEST(SyslogClientNetworkTest, SendTimesOutWhenTheReceiverStopsReading) {
  SilentPeer peer;
  auto client =
      SyslogClient::Connect({SyslogEndpoint::Transport::kTcp, "127.0.0.1", peer.port()}, {}, 300ms);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  // Far more than the socket buffers on both ends hold.
  std::vector<std::string> batch(64, FrameOctetCounting(std::string(1 << 20, 'x')));
  auto start = std::chrono::steady_clock::now();
  Status sent = (*client)->Send(batch);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(sent.code(), StatusCode::kUnavailable);
  EXPECT_NE(sent.internal_detail().find("timeout"), std::string::npos) << sent.ToString();
  EXPECT_EQ(sent.ToString().find("xxx"), std::string::npos);  // Never message contents.
  EXPECT_LT(elapsed, 2s);
  // The connection is spent.
  EXPECT_EQ((*client)->Send(std::vector<std::string>{"1 x"}).code(), StatusCode::kUnavailable);
}

TEST_F(SyslogClientTest, SendFailsOnceTheReceiverHasGone) {
  StartRsyslog(Listener::kTcp);
  auto client = SyslogClient::Connect(Endpoint(SyslogEndpoint::Transport::kTcp), {}, kTimeout);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  std::vector<std::string> framed = {
      FrameOctetCounting(FormatSyslog5424(testing::SampleRecord(1), SyslogFormatOptions{}))};
  ASSERT_TRUE((*client)->Send(framed).ok());
  ASSERT_EQ(WaitForLines(1).size(), 1u);
  StopRsyslog();
  Status sent = (*client)->Send(framed);
  EXPECT_EQ(sent.code(), StatusCode::kUnavailable);
  EXPECT_NE(sent.internal_detail().find("closed the connection"), std::string::npos)
      << sent.ToString();
  EXPECT_EQ((*client)->Send(framed).code(), StatusCode::kUnavailable);
  EXPECT_EQ((*client)->Close().code(), StatusCode::kUnavailable);
}

TEST(SyslogUrlTest, Accepted) {
  using T = SyslogEndpoint::Transport;
  const std::vector<std::pair<std::string, SyslogEndpoint>> cases = {
      {"tcp://127.0.0.1:514", {T::kTcp, "127.0.0.1", 514}},
      {"tls://siem.example.org:6514", {T::kTls, "siem.example.org", 6514}},
      {"tls://siem.example.org", {T::kTls, "siem.example.org", 6514}},
      {"TLS://siem.example.org:10514/", {T::kTls, "siem.example.org", 10514}},
      {"tls://[2001:db8::1]:6514", {T::kTls, "2001:db8::1", 6514}},
      {"tls://[::1]", {T::kTls, "::1", 6514}},
      {"tcp://[::1]:65535", {T::kTcp, "::1", 65535}},
  };
  for (const auto& [url, expected] : cases) {
    auto parsed = ParseSyslogUrl(url);
    ASSERT_TRUE(parsed.ok()) << url << ": " << parsed.status().ToString();
    EXPECT_EQ(*parsed, expected) << url;
  }
}

TEST(SyslogUrlTest, Rejected) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "no scheme"},
      {"siem.example.org:514", "no scheme"},
      {"udp://siem.example.org:514", "unknown scheme"},
      {"http://siem.example.org", "unknown scheme"},
      {"tcp://siem.example.org", "needs a port"},
      {"tls://", "no host"},
      {"tls://:6514", "no host"},
      {"tls://2001:db8::1:6514", "brackets"},
      {"tls://[2001:db8::1:6514", "unterminated"},
      {"tls://[not-v6]:6514", "not an IPv6 address"},
      {"tls://[fe80::1%eth0]:6514", "not an IPv6 address"},
      {"tls://[::1]6514", "after ']'"},
      {"tls://host:0", "1 to 65535"},
      {"tls://host:65536", "1 to 65535"},
      {"tls://host:+1", "1 to 65535"},
      {"tls://host:", "1 to 65535"},
      {"tls://host:12ab", "1 to 65535"},
      {"tls://host:6514/path", "only a host and a port"},
      {"tls://user@host:6514", "only a host and a port"},
      {"tls://ho st:6514", "not a host name"},
  };
  for (const auto& [url, why] : cases) {
    auto parsed = ParseSyslogUrl(url);
    ASSERT_FALSE(parsed.ok()) << url;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << url;
    EXPECT_NE(parsed.status().message().find(why), std::string::npos)
        << url << ": " << parsed.status().message();
  }
}

}  // namespace
}  // namespace kura::audit
