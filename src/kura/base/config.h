// Config: kura.toml plus KURA_<SECTION>_<KEY> environment overrides, validated against one schema.
//
// Every key is declared once in config.cc (section, name, type, default, range, doc). Loading
// rejects unknown sections and keys, values of the wrong type and values out of range, with a
// message naming the key; an environment variable whose name starts with a known section
// (KURA_SERVER_..., KURA_TLS_...) must name a known key. Relative paths resolve against the
// data directory. Immutable after loading; safe to share.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "kura/base/status.h"

namespace kura {

struct Config {
  std::filesystem::path data_dir;

  struct Server {
    std::string listen = "127.0.0.1:8443";
    std::string public_base_url = "https://localhost:8443";
    int64_t io_threads = 0;         // 0: one per core.
    int64_t blocking_threads = 32;  // Database and other blocking work.
    int64_t max_connections = 4096;
    int64_t max_header_bytes = 16 * 1024;
    int64_t max_body_bytes = 8 * 1024 * 1024;
    int64_t max_json_depth = 64;
    int64_t header_timeout_seconds = 10;
    int64_t body_timeout_seconds = 30;
    int64_t idle_timeout_seconds = 60;
    int64_t write_timeout_seconds = 30;
    int64_t max_requests_per_connection = 10000;
    int64_t shutdown_grace_seconds = 20;
  } server;

  struct Tls {
    std::filesystem::path certificate = "tls/cert.pem";
    std::filesystem::path private_key = "tls/key.pem";
  } tls;

  struct Storage {
    std::string backend = "sqlite";
    std::filesystem::path sqlite_path = "kura.db";
    int64_t group_commit_max_batch = 1024;
    int64_t read_connections = 8;
    int64_t record_cache_mib = 64;  // Encrypted current versions kept in memory.
  } storage;

  struct Keys {
    std::string provider = "local-file";
    std::filesystem::path key_file = "keys/master.key";
    int64_t data_key_cache_size = 4096;  // Each key is a guarded sodium_malloc region.
  } keys;

  struct Fhir {
    int64_t history_page_size = 50;
    int64_t history_max_page_size = 1000;
    int64_t max_bundle_entries = 1000;  // Entries of a batch or transaction Bundle.
    std::string data_register_file;     // Empty: the data register compiled in.
  } fhir;

  struct Log {
    std::string level = "info";
  } log;

  // The audit log is always on; these say how often it is signed, how long it is kept and
  // where copies go. Empty strings mean "no such sink".
  struct Audit {
    int64_t checkpoint_every_records = 1000;
    int64_t checkpoint_every_seconds = 60;
    int64_t retention_days =
        2192;  // Six years (HIPAA documentation retention), leap days included.
    // A running server verifies the whole log this often (first after min(this, 5 minutes)).
    int64_t verify_every_seconds = 86400;
    std::string syslog_url;  // tcp://host:port or tls://host[:port]
    std::string syslog_format = "rfc5424";
    std::string syslog_facility = "authpriv";
    std::string syslog_ca_file;
    std::string syslog_client_certificate;
    std::string syslog_client_key;
    std::string syslog_server_name;
    std::string json_lines_file;
  } audit;

  std::string tenant = "default";
};

using Environment = std::map<std::string, std::string>;

// The process environment as a map (for LoadConfig).
Environment ProcessEnvironment();

// Reads DIR/kura.toml, applies environment overrides and validates. FailedPrecondition when the
// file is missing or unreadable, InvalidArgument (naming the key) on any bad key or value.
StatusOr<Config> LoadConfig(const std::filesystem::path& data_dir, const Environment& env);

// Same, from TOML text (tests).
StatusOr<Config> ParseConfig(std::string_view toml_text, const std::filesystem::path& data_dir,
                             const Environment& env);

// The kura.toml that `kura init` writes: every key with its default and a comment.
std::string DefaultConfigToml(const Config& values);

// Resolves a configured path against the data directory.
std::filesystem::path ResolvePath(const Config& config, const std::filesystem::path& p);

}  // namespace kura
