// JSON-lines logger on an spdlog stderr sink (one write per line, thread-safe).
#include "kura/base/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>

#include "kura/base/clock.h"

namespace kura::log {
namespace {
std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};

spdlog::logger& Sink() {
  static spdlog::logger* logger = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto* l = new spdlog::logger("kura", sink);
    l->set_pattern("%v");
    l->set_level(spdlog::level::trace);
    l->flush_on(spdlog::level::trace);
    return l;
  }();
  return *logger;
}

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}
}  // namespace

void SetMinLevel(Level level) { g_min_level = static_cast<int>(level); }

bool ParseLevel(std::string_view text, Level& out) {
  for (Level l : {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError}) {
    if (text == LevelName(l)) {
      out = l;
      return true;
    }
  }
  return false;
}

bool Enabled(Level level) { return static_cast<int>(level) >= g_min_level.load(); }

void AppendJsonEscaped(std::string& out, std::string_view text) {
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
}

void Write(Level level, std::string_view event, std::initializer_list<Field> fields) {
  if (!Enabled(level)) return;
  std::string line;
  line.reserve(256);
  line += "{\"time\":\"";
  line += FormatInstant(Clock::System().Now());
  line += "\",\"level\":\"";
  line += LevelName(level);
  line += "\",\"event\":\"";
  AppendJsonEscaped(line, event);
  line += '"';
  for (const Field& f : fields) {
    line += ",\"";
    AppendJsonEscaped(line, f.key);
    line += "\":";
    if (const auto* s = std::get_if<std::string_view>(&f.value)) {
      line += '"';
      AppendJsonEscaped(line, *s);
      line += '"';
    } else if (const auto* i = std::get_if<int64_t>(&f.value)) {
      line += std::to_string(*i);
    } else if (const auto* d = std::get_if<double>(&f.value)) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.3f", *d);
      line += buf;
    } else {
      line += std::get<bool>(f.value) ? "true" : "false";
    }
  }
  line += '}';
  Sink().log(spdlog::level::info, line);
}

}  // namespace kura::log
