// Structured logging: one JSON object per line on stderr.
//
// Callers name an event and add typed fields; there is deliberately no free-form "message with
// arguments" API, so a request body, token or health datum cannot slip into a log by string
// formatting. Fields are keys chosen by the code, values are metadata (ids of requests, route
// templates, statuses, durations, counts). Thread-safe.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

namespace kura::log {

enum class Level { kDebug, kInfo, kWarn, kError };

struct Field {
  std::string_view key;
  std::variant<std::string_view, int64_t, double, bool> value;
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, int v) : key(k), value(static_cast<int64_t>(v)) {}
  Field(std::string_view k, int64_t v) : key(k), value(v) {}
  Field(std::string_view k, uint64_t v) : key(k), value(static_cast<int64_t>(v)) {}
  Field(std::string_view k, unsigned v) : key(k), value(static_cast<int64_t>(v)) {}
  Field(std::string_view k, double v) : key(k), value(v) {}
  Field(std::string_view k, bool v) : key(k), value(v) {}
};

void SetMinLevel(Level level);
bool ParseLevel(std::string_view text, Level& out);
bool Enabled(Level level);

// Writes {"time":..., "level":..., "event":..., fields...} as one line.
void Write(Level level, std::string_view event, std::initializer_list<Field> fields = {});

inline void Info(std::string_view event, std::initializer_list<Field> fields = {}) {
  Write(Level::kInfo, event, fields);
}
inline void Warn(std::string_view event, std::initializer_list<Field> fields = {}) {
  Write(Level::kWarn, event, fields);
}
inline void Error(std::string_view event, std::initializer_list<Field> fields = {}) {
  Write(Level::kError, event, fields);
}

// Appends `text` to `out` as the body of a JSON string (without quotes).
void AppendJsonEscaped(std::string& out, std::string_view text);

}  // namespace kura::log
