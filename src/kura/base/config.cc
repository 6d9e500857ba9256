// The configuration schema and its loader (toml++).
#include "kura/base/config.h"

#include <toml++/toml.h>

#include <charconv>
#include <fstream>
#include <functional>
#include <sstream>
#include <vector>

extern char** environ;

namespace kura {
namespace {

enum class Kind { kString, kInt, kPath };

struct Key {
  std::string_view section;  // "" for top-level keys.
  std::string_view name;
  Kind kind;
  std::string_view doc;
  int64_t min = 0;
  int64_t max = 0;
  std::function<void*(Config&)> field;
  std::function<Status(std::string_view)> check = nullptr;
};

Status OneOf(std::string_view key, std::string_view v, std::initializer_list<std::string_view> ok) {
  for (auto o : ok) {
    if (v == o) return Status::Ok();
  }
  std::string allowed;
  for (auto o : ok) allowed += (allowed.empty() ? "" : ", ") + std::string(o);
  return InvalidArgumentError("configuration key " + std::string(key) + ": must be one of " +
                              allowed);
}

const std::vector<Key>& Schema() {
  static const auto* keys = new std::vector<Key>{
      {"", "tenant", Kind::kString, "Tenant identifier bound into every encrypted record.", 0, 0,
       [](Config& c) -> void* { return &c.tenant; },
       [](std::string_view v) {
         if (v.empty() || v.size() > 64)
           return InvalidArgumentError("configuration key tenant: 1 to 64 characters");
         return Status::Ok();
       }},
      {"server", "listen", Kind::kString, "Address and port to serve HTTPS on.", 0, 0,
       [](Config& c) -> void* { return &c.server.listen; },
       [](std::string_view v) {
         if (v.rfind(':') == std::string_view::npos) {
           return InvalidArgumentError("configuration key server.listen: expected HOST:PORT");
         }
         return Status::Ok();
       }},
      {"server", "public_base_url", Kind::kString, "External base URL (used in links).", 0, 0,
       [](Config& c) -> void* { return &c.server.public_base_url; },
       [](std::string_view v) {
         if (v.rfind("https://", 0) != 0) {
           return InvalidArgumentError(
               "configuration key server.public_base_url: must start with https://");
         }
         return Status::Ok();
       }},
      {"server", "io_threads", Kind::kInt, "Network threads; 0 means one per core.", 0, 256,
       [](Config& c) -> void* { return &c.server.io_threads; }},
      {"server", "blocking_threads", Kind::kInt, "Threads for database and other blocking work.", 1,
       1024, [](Config& c) -> void* { return &c.server.blocking_threads; }},
      {"server", "max_connections", Kind::kInt, "Concurrent connections accepted.", 1, 1000000,
       [](Config& c) -> void* { return &c.server.max_connections; }},
      {"server", "max_header_bytes", Kind::kInt, "Largest request head.", 1024, 1048576,
       [](Config& c) -> void* { return &c.server.max_header_bytes; }},
      {"server", "max_body_bytes", Kind::kInt, "Largest request body (413 above).", 1024,
       1073741824, [](Config& c) -> void* { return &c.server.max_body_bytes; }},
      {"server", "max_json_depth", Kind::kInt, "Deepest JSON nesting accepted.", 8, 1024,
       [](Config& c) -> void* { return &c.server.max_json_depth; }},
      {"server", "header_timeout_seconds", Kind::kInt, "Time allowed to send the request head.", 1,
       3600, [](Config& c) -> void* { return &c.server.header_timeout_seconds; }},
      {"server", "body_timeout_seconds", Kind::kInt, "Time allowed to send the request body.", 1,
       3600, [](Config& c) -> void* { return &c.server.body_timeout_seconds; }},
      {"server", "idle_timeout_seconds", Kind::kInt,
       "Idle keep-alive connections close after this.", 1, 3600,
       [](Config& c) -> void* { return &c.server.idle_timeout_seconds; }},
      {"server", "write_timeout_seconds", Kind::kInt, "Time allowed to deliver a response.", 1,
       3600, [](Config& c) -> void* { return &c.server.write_timeout_seconds; }},
      {"server", "max_requests_per_connection", Kind::kInt,
       "Requests before a keep-alive connection closes.", 1, 10000000,
       [](Config& c) -> void* { return &c.server.max_requests_per_connection; }},
      {"server", "shutdown_grace_seconds", Kind::kInt,
       "On SIGTERM, time to drain in-flight requests.", 0, 3600,
       [](Config& c) -> void* { return &c.server.shutdown_grace_seconds; }},
      {"tls", "certificate", Kind::kPath, "PEM certificate chain.", 0, 0,
       [](Config& c) -> void* { return &c.tls.certificate; }},
      {"tls", "private_key", Kind::kPath, "PEM private key (must be mode 0600).", 0, 0,
       [](Config& c) -> void* { return &c.tls.private_key; }},
      {"storage", "backend", Kind::kString, "Storage backend: sqlite.", 0, 0,
       [](Config& c) -> void* { return &c.storage.backend; },
       [](std::string_view v) { return OneOf("storage.backend", v, {"sqlite"}); }},
      {"storage", "sqlite_path", Kind::kPath, "SQLite database file.", 0, 0,
       [](Config& c) -> void* { return &c.storage.sqlite_path; }},
      {"storage", "group_commit_max_batch", Kind::kInt,
       "Most writes that share one durable commit.", 1, 100000,
       [](Config& c) -> void* { return &c.storage.group_commit_max_batch; }},
      {"storage", "read_connections", Kind::kInt, "Concurrent read connections.", 1, 256,
       [](Config& c) -> void* { return &c.storage.read_connections; }},
      {"storage", "record_cache_mib", Kind::kInt,
       "Memory for current versions of recently used resources (ciphertext), in MiB; 0 turns the "
       "cache off.",
       0, 65536, [](Config& c) -> void* { return &c.storage.record_cache_mib; }},
      {"keys", "provider", Kind::kString, "Key provider: local-file.", 0, 0,
       [](Config& c) -> void* { return &c.keys.provider; },
       [](std::string_view v) { return OneOf("keys.provider", v, {"local-file"}); }},
      {"keys", "key_file", Kind::kPath, "Master key file (must be mode 0600).", 0, 0,
       [](Config& c) -> void* { return &c.keys.key_file; }},
      {"keys", "data_key_cache_size", Kind::kInt,
       "Unwrapped data keys kept in locked memory (each uses guarded pages; keep under ~15000).",
       16, 15000, [](Config& c) -> void* { return &c.keys.data_key_cache_size; }},
      {"fhir", "history_page_size", Kind::kInt, "Default page size of history bundles.", 1, 1000,
       [](Config& c) -> void* { return &c.fhir.history_page_size; }},
      {"fhir", "history_max_page_size", Kind::kInt, "Largest page size of history bundles.", 1,
       10000, [](Config& c) -> void* { return &c.fhir.history_max_page_size; }},
      {"fhir", "max_bundle_entries", Kind::kInt,
       "Most entries in a batch or transaction Bundle (413 above).", 1, 100000,
       [](Config& c) -> void* { return &c.fhir.max_bundle_entries; }},
      {"fhir", "data_register_file", Kind::kString,
       "Data register (how search parameters are indexed: clear, blind or none); empty for the "
       "one shipped with Kura (config/data-register.toml).",
       0, 0, [](Config& c) -> void* { return &c.fhir.data_register_file; }},
      {"audit", "checkpoint_every_records", Kind::kInt,
       "Sign a checkpoint of the audit log after this many records.", 1, 1000000,
       [](Config& c) -> void* { return &c.audit.checkpoint_every_records; }},
      {"audit", "checkpoint_every_seconds", Kind::kInt,
       "Sign a checkpoint at least this often while records arrive.", 1, 86400,
       [](Config& c) -> void* { return &c.audit.checkpoint_every_seconds; }},
      {"audit", "retention_days", Kind::kInt,
       "Keep audit records at least this long; older ones may be pruned (the rest stays "
       "verifiable).",
       1, 36500, [](Config& c) -> void* { return &c.audit.retention_days; }},
      {"audit", "verify_every_seconds", Kind::kInt,
       "A running server verifies the whole audit log this often (the first time after at most "
       "5 minutes) and records each clean result.",
       1, 2592000, [](Config& c) -> void* { return &c.audit.verify_every_seconds; }},
      {"audit", "syslog_url", Kind::kString,
       "Ship audit records to a SIEM: tcp://host:port or tls://host[:port]; empty for none.", 0, 0,
       [](Config& c) -> void* { return &c.audit.syslog_url; },
       [](std::string_view v) {
         if (!v.empty() && !v.starts_with("tcp://") && !v.starts_with("tls://")) {
           return InvalidArgumentError(
               "configuration key audit.syslog_url: must start with tcp:// or tls://");
         }
         return Status::Ok();
       }},
      {"audit", "syslog_format", Kind::kString,
       "rfc5424 (structured data) or cef (CEF in the syslog message).", 0, 0,
       [](Config& c) -> void* { return &c.audit.syslog_format; },
       [](std::string_view v) {
         return OneOf("audit.syslog_format", v, {"rfc5424", "cef"});
       }},
      {"audit", "syslog_facility", Kind::kString, "Syslog facility of audit messages.", 0, 0,
       [](Config& c) -> void* { return &c.audit.syslog_facility; }},
      {"audit", "syslog_ca_file", Kind::kString,
       "PEM CA certificates the TLS syslog receiver must chain to; empty for the system store.", 0,
       0, [](Config& c) -> void* { return &c.audit.syslog_ca_file; }},
      {"audit", "syslog_client_certificate", Kind::kString,
       "PEM client certificate for mutual TLS with the receiver; empty for none.", 0, 0,
       [](Config& c) -> void* { return &c.audit.syslog_client_certificate; }},
      {"audit", "syslog_client_key", Kind::kString,
       "PEM private key of the client certificate (mode 0600).", 0, 0,
       [](Config& c) -> void* { return &c.audit.syslog_client_key; }},
      {"audit", "syslog_server_name", Kind::kString,
       "Name the receiver's certificate must carry; empty for the URL's host.", 0, 0,
       [](Config& c) -> void* { return &c.audit.syslog_server_name; }},
      {"audit", "json_lines_file", Kind::kString,
       "Also append audit records and checkpoints to this file as JSON lines; empty for none.", 0,
       0, [](Config& c) -> void* { return &c.audit.json_lines_file; }},
      {"log", "level", Kind::kString, "debug, info, warn or error.", 0, 0,
       [](Config& c) -> void* { return &c.log.level; },
       [](std::string_view v) {
         return OneOf("log.level", v, {"debug", "info", "warn", "error"});
       }},
  };
  return *keys;
}

std::string KeyName(const Key& k) {
  return k.section.empty() ? std::string(k.name)
                           : std::string(k.section) + "." + std::string(k.name);
}

std::string EnvName(const Key& k) {
  std::string out = "KURA_";
  if (!k.section.empty()) out += std::string(k.section) + "_";
  out += k.name;
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

Status SetFromText(const Key& k, Config& c, std::string_view text, std::string_view origin) {
  void* field = k.field(c);
  switch (k.kind) {
    case Kind::kString:
      *static_cast<std::string*>(field) = std::string(text);
      break;
    case Kind::kPath:
      if (text.empty()) {
        return InvalidArgumentError("configuration key " + KeyName(k) + " (" + std::string(origin) +
                                    "): must not be empty");
      }
      *static_cast<std::filesystem::path*>(field) = std::string(text);
      break;
    case Kind::kInt: {
      int64_t v = 0;
      auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc() || ptr != text.data() + text.size()) {
        return InvalidArgumentError("configuration key " + KeyName(k) + " (" + std::string(origin) +
                                    "): expected an integer");
      }
      if (v < k.min || v > k.max) {
        return InvalidArgumentError("configuration key " + KeyName(k) + " (" + std::string(origin) +
                                    "): must be between " + std::to_string(k.min) + " and " +
                                    std::to_string(k.max));
      }
      *static_cast<int64_t*>(field) = v;
      break;
    }
  }
  if (k.check) {
    Status s = k.check(text);
    if (!s.ok()) return InvalidArgumentError(s.message() + " (" + std::string(origin) + ")");
  }
  return Status::Ok();
}

Status SetFromToml(const Key& k, Config& c, const toml::node& node) {
  if (k.kind == Kind::kInt) {
    auto v = node.value<int64_t>();
    if (!node.is_integer() || !v) {
      return InvalidArgumentError("configuration key " + KeyName(k) +
                                  " (kura.toml): expected an integer");
    }
    return SetFromText(k, c, std::to_string(*v), "kura.toml");
  }
  if (!node.is_string()) {
    return InvalidArgumentError("configuration key " + KeyName(k) +
                                " (kura.toml): expected a string");
  }
  return SetFromText(k, c, *node.value<std::string>(), "kura.toml");
}

const Key* FindKey(std::string_view section, std::string_view name) {
  for (const Key& k : Schema()) {
    if (k.section == section && k.name == name) return &k;
  }
  return nullptr;
}

bool IsSection(std::string_view name) {
  for (const Key& k : Schema()) {
    if (!k.section.empty() && k.section == name) return true;
  }
  return false;
}

}  // namespace

Environment ProcessEnvironment() {
  Environment env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    if (entry.rfind("KURA_", 0) != 0) continue;
    env.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return env;
}

StatusOr<Config> ParseConfig(std::string_view toml_text, const std::filesystem::path& data_dir,
                             const Environment& env) {
  Config c;
  c.data_dir = data_dir;
  toml::table table;
  try {
    table = toml::parse(toml_text, std::string_view("kura.toml"));
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << "kura.toml: " << e.description() << " at line " << e.source().begin.line;
    return InvalidArgumentError(msg.str());
  }
  for (const auto& [name, node] : table) {
    std::string_view n = name.str();
    if (node.is_table()) {
      if (!IsSection(n))
        return InvalidArgumentError("kura.toml: unknown section [" + std::string(n) + "]");
      for (const auto& [sub, value] : *node.as_table()) {
        const Key* k = FindKey(n, sub.str());
        if (k == nullptr) {
          return InvalidArgumentError("kura.toml: unknown configuration key " + std::string(n) +
                                      "." + std::string(sub.str()));
        }
        KURA_RETURN_IF_ERROR(SetFromToml(*k, c, value));
      }
    } else {
      const Key* k = FindKey("", n);
      if (k == nullptr) {
        return InvalidArgumentError("kura.toml: unknown configuration key " + std::string(n));
      }
      KURA_RETURN_IF_ERROR(SetFromToml(*k, c, node));
    }
  }
  // Environment overrides: exact names win; names that look like ours but match no key fail.
  for (const auto& [name, value] : env) {
    const Key* match = nullptr;
    for (const Key& k : Schema()) {
      if (EnvName(k) == name) match = &k;
    }
    if (match != nullptr) {
      KURA_RETURN_IF_ERROR(SetFromText(*match, c, value, "environment " + name));
      continue;
    }
    for (const Key& k : Schema()) {
      if (k.section.empty()) continue;
      std::string prefix = "KURA_" + std::string(k.section) + "_";
      for (char& ch : prefix) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      if (name.rfind(prefix, 0) == 0) {
        return InvalidArgumentError("environment " + name + ": unknown configuration key");
      }
    }
  }
  // Cross-key rules.
  if (c.fhir.history_page_size > c.fhir.history_max_page_size) {
    return InvalidArgumentError(
        "configuration key fhir.history_page_size: larger than fhir.history_max_page_size");
  }
  if (c.audit.syslog_client_certificate.empty() != c.audit.syslog_client_key.empty()) {
    return InvalidArgumentError(
        "configuration key audit.syslog_client_key: set both audit.syslog_client_certificate and "
        "audit.syslog_client_key, or neither");
  }
  return c;
}

StatusOr<Config> LoadConfig(const std::filesystem::path& data_dir, const Environment& env) {
  std::filesystem::path file = data_dir / "kura.toml";
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return FailedPreconditionError("cannot read " + file.string() +
                                   " (is this a Kura data directory? run `kura init`)");
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return ParseConfig(buf.str(), data_dir, env);
}

std::string DefaultConfigToml(const Config& values) {
  Config copy = values;
  std::string out =
      "# Kura configuration. Every key can be overridden by an environment variable\n"
      "# KURA_<SECTION>_<KEY>, e.g. KURA_SERVER_LISTEN=0.0.0.0:8443.\n"
      "# Relative paths are relative to this data directory.\n";
  std::string_view current;
  bool first = true;
  for (const Key& k : Schema()) {
    if (k.section != current || first) {
      if (!k.section.empty()) out += "\n[" + std::string(k.section) + "]\n";
      current = k.section;
      first = false;
    }
    out += "# " + std::string(k.doc) + "\n";
    out += std::string(k.name) + " = ";
    void* field = k.field(copy);
    switch (k.kind) {
      case Kind::kString: {
        std::ostringstream s;
        s << toml::value<std::string>(*static_cast<std::string*>(field));
        out += s.str();
        break;
      }
      case Kind::kPath: {
        std::ostringstream s;
        s << toml::value<std::string>(static_cast<std::filesystem::path*>(field)->string());
        out += s.str();
        break;
      }
      case Kind::kInt:
        out += std::to_string(*static_cast<int64_t*>(field));
        break;
    }
    out += "\n";
  }
  return out;
}

std::filesystem::path ResolvePath(const Config& config, const std::filesystem::path& p) {
  return p.is_absolute() ? p : config.data_dir / p;
}

}  // namespace kura
