// Test-only: a real rsyslogd receiver and a throwaway PKI, shared by the syslog client and the
// exporter tests.
//
// RsyslogReceiver runs Debian's rsyslogd in the foreground on a loopback port with its own
// configuration (imtcp, plain or with the OpenSSL stream driver) and stores each message it
// receives with RSYSLOG_SyslogProtocol23Format, i.e. the RFC 5424 message rebuilt from its parsed
// fields, one per line. A receiver can be stopped and started again on the same port, appending
// to the same file, which is how the tests take "the SIEM" down and bring it back.
//
// Thread-compatible; the receiver is started and stopped from the thread that owns it (the
// child dies with that thread through PR_SET_PDEATHSIG, so run it on the test's main thread).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace kura::audit::testing {

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// A fresh directory under the system temp directory; empty on failure.
inline std::filesystem::path MakeTempDir(const std::string& prefix) {
  std::string templ = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (::mkdtemp(templ.data()) == nullptr) return {};
  return templ;
}

inline std::string FindRsyslogd() {
  for (const char* candidate : {"/usr/sbin/rsyslogd", "/sbin/rsyslogd"}) {
    if (::access(candidate, X_OK) == 0) return candidate;
  }
  return "";
}

// Runs a shell command quietly; false (with its output in `log`) when it fails.
inline bool RunQuietly(const std::string& command, const std::filesystem::path& log) {
  std::string full = command + " >>" + log.string() + " 2>&1";
  return std::system(full.c_str()) == 0;
}

// A throwaway PKI made with the openssl tool: a CA, a server certificate for
// localhost/127.0.0.1, a client certificate, and a second CA that signed none of them.
struct TestPki {
  std::filesystem::path dir;
  std::filesystem::path ca, server_cert, server_key, client_cert, client_key, other_ca;
};

// Fills `p` under p.dir. False when the openssl tool fails (its output is in dir/openssl.log).
inline bool MakeTestPki(TestPki& p) {
  namespace fs = std::filesystem;
  fs::path log = p.dir / "openssl.log";
  auto ec_key = [](const fs::path& key) {
    return "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " + key.string();
  };
  auto make_ca = [&](const fs::path& cert, const fs::path& key, const std::string& cn) {
    return RunQuietly("openssl req -x509 " + ec_key(key) + " -out " + cert.string() +
                          " -days 2 -subj '/CN=" + cn +
                          "' -addext 'basicConstraints=critical,CA:TRUE' "
                          "-addext 'keyUsage=critical,keyCertSign,cRLSign'",
                      log);
  };
  auto make_leaf = [&](const std::string& name, const std::string& ext) {
    fs::path key = p.dir / (name + ".key"), csr = p.dir / (name + ".csr"),
             cert = p.dir / (name + ".pem"), extfile = p.dir / (name + ".ext");
    std::ofstream(extfile) << ext;
    return RunQuietly(
               "openssl req " + ec_key(key) + " -out " + csr.string() + " -subj '/CN=" + name + "'",
               log) &&
           RunQuietly("openssl x509 -req -in " + csr.string() + " -CA " + p.ca.string() +
                          " -CAkey " + (p.dir / "ca.key").string() +
                          " -CAcreateserial -days 2 -out " + cert.string() + " -extfile " +
                          extfile.string(),
                      log) &&
           ::chmod(key.c_str(), 0600) == 0;
  };
  p.ca = p.dir / "ca.pem";
  p.other_ca = p.dir / "other-ca.pem";
  p.server_cert = p.dir / "server.pem";
  p.server_key = p.dir / "server.key";
  p.client_cert = p.dir / "client.pem";
  p.client_key = p.dir / "client.key";
  return make_ca(p.ca, p.dir / "ca.key", "Kura Test CA") &&
         make_ca(p.other_ca, p.dir / "other-ca.key", "Other Test CA") &&
         make_leaf("server",
                   "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                   "extendedKeyUsage=serverAuth\n") &&
         make_leaf("client",
                   "subjectAltName=DNS:exporter.kura.test\nbasicConstraints=CA:FALSE\n"
                   "extendedKeyUsage=clientAuth\n");
}

// True when something listens on 127.0.0.1:`port` (from /proc/net/tcp, without connecting).
inline bool IsListeningOnLoopback(uint16_t port) {
  char wanted[32];
  std::snprintf(wanted, sizeof wanted, "0100007F:%04X", static_cast<unsigned>(port));
  std::istringstream in(ReadFile("/proc/net/tcp"));
  std::string line;
  std::getline(in, line);  // Header.
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    if (local == wanted && state == "0A") return true;  // TCP_LISTEN.
  }
  return false;
}

enum class Listener { kTcp, kTlsAnon, kTlsClientCert };

class RsyslogReceiver {
 public:
  // Keeps its configuration, logs and received.log in `dir` (which the caller owns).
  explicit RsyslogReceiver(std::filesystem::path dir) : dir_(std::move(dir)) {}
  ~RsyslogReceiver() { Stop(); }
  RsyslogReceiver(const RsyslogReceiver&) = delete;
  RsyslogReceiver& operator=(const RsyslogReceiver&) = delete;

  // Starts rsyslogd on 127.0.0.1:`port` (0: an ephemeral port, reported by port()). `pki` is
  // needed for the TLS listeners. Use as ASSERT_TRUE(receiver.Start(...)).
  ::testing::AssertionResult Start(Listener listener, const TestPki* pki, uint16_t port = 0) {
    using namespace std::chrono_literals;
    namespace fs = std::filesystem;
    if (pid_ > 0) return ::testing::AssertionFailure() << "rsyslogd is already running";
    std::string rsyslogd = FindRsyslogd();
    if (rsyslogd.empty()) {
      return ::testing::AssertionFailure()
             << "rsyslogd not found: install the Debian packages rsyslog and rsyslog-openssl "
                "(`make test-deps` does)";
    }
    if (listener != Listener::kTcp && pki == nullptr) {
      return ::testing::AssertionFailure() << "a TLS listener needs the test PKI";
    }
    fs::create_directories(dir_ / "work");
    std::error_code ignored;
    fs::remove(port_file(), ignored);
    std::string module = "module(load=\"imtcp\")";
    std::string tls_files;
    if (listener != Listener::kTcp) {
      module =
          std::string("module(load=\"imtcp\" streamDriver.name=\"ossl\" streamDriver.mode=\"1\" ") +
          "streamDriver.authMode=\"" +
          (listener == Listener::kTlsAnon ? "anon" : "x509/certvalid") + "\")";
      tls_files = " streamDriver.caFile=\"" + pki->ca.string() + "\" streamDriver.certFile=\"" +
                  pki->server_cert.string() + "\" streamDriver.keyFile=\"" +
                  pki->server_key.string() + "\"";
    }
    std::ofstream(dir_ / "rsyslog.conf")
        << "global(workDirectory=\"" << (dir_ / "work").string()
        << "\" maxMessageSize=\"64k\" net.enableDNS=\"off\")\n"
        << module << "\n"
        << "input(type=\"imtcp\" port=\"" << port
        << "\" address=\"127.0.0.1\" listenPortFileName=\"" << port_file().string()
        << "\" ruleset=\"remote\"" << tls_files << ")\n"
        << "ruleset(name=\"remote\") {\n"
        << "  action(type=\"omfile\" file=\"" << received_path().string()
        << "\" template=\"RSYSLOG_SyslogProtocol23Format\")\n"
        << "}\n"
        << "action(type=\"omfile\" file=\"" << (dir_ / "internal.log").string() << "\")\n";

    std::string conf = (dir_ / "rsyslog.conf").string();
    std::string pidfile = (dir_ / "rsyslogd.pid").string();
    std::string out = (dir_ / "rsyslogd.out").string();
    std::vector<char*> argv = {rsyslogd.data(), const_cast<char*>("-n"), const_cast<char*>("-f"),
                               conf.data(),     const_cast<char*>("-i"), pidfile.data(),
                               nullptr};
    pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) return ::testing::AssertionFailure() << "fork failed";
    if (pid_ == 0) {
      // Dies with the test process even if the test never stops it (a crash).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    // Generous: rsyslogd starts in well under a second, but a loaded machine may be slow.
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return ::testing::AssertionFailure()
               << "rsyslogd exited during start-up (status " << status << ")";
      }
      // rsyslogd writes the port file only for an ephemeral port.
      if (port != 0) {
        if (IsListeningOnLoopback(port)) {
          port_ = port;
          return ::testing::AssertionSuccess();
        }
      } else {
        std::string text = ReadFile(port_file());
        if (!text.empty() && text.back() == '\n') text.pop_back();
        if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) {
          port_ = static_cast<uint16_t>(std::stoi(text));
          return ::testing::AssertionSuccess();
        }
      }
      std::this_thread::sleep_for(10ms);
    }
    return ::testing::AssertionFailure() << "rsyslogd did not listen within 20 s";
  }

  // SIGTERM (rsyslogd flushes its files), SIGKILL after a grace period.
  void Stop() {
    using namespace std::chrono_literals;
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(10ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  bool running() const { return pid_ > 0; }
  // The port of the last start (kept after Stop, so a restart can reuse it).
  uint16_t port() const { return port_; }
  std::filesystem::path received_path() const { return dir_ / "received.log"; }
  std::vector<std::string> ReceivedLines() const { return Lines(ReadFile(received_path())); }

  // The lines rsyslogd stored, once there are at least `n` of them (or whatever is there when
  // `timeout` has passed).
  std::vector<std::string> WaitForLines(
      size_t n, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<std::string> lines;
    while (true) {
      lines = ReceivedLines();
      if (lines.size() >= n || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return lines;
  }

  // rsyslogd's own output, its internal log and what it received, for failure messages.
  std::string Diagnostics() const {
    return "rsyslogd output:\n" + ReadFile(dir_ / "rsyslogd.out") + "\nrsyslogd internal log:\n" +
           ReadFile(dir_ / "internal.log") + "\nreceived:\n" + ReadFile(received_path()) + "\n";
  }

 private:
  std::filesystem::path port_file() const { return dir_ / "port"; }

  std::filesystem::path dir_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

}  // namespace kura::audit::testing
