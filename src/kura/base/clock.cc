// System clock and timestamp formatting.
#include "kura/base/clock.h"

#include <ctime>

namespace kura {
namespace {
class SystemClock final : public Clock {
 public:
  TimePoint Now() const override {
    return std::chrono::time_point_cast<std::chrono::microseconds>(
        std::chrono::system_clock::now());
  }
};

std::tm ToUtc(TimePoint t) {
  std::time_t secs = std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  if (t.time_since_epoch().count() < 0 && t.time_since_epoch().count() % 1000000 != 0) secs -= 1;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return tm;
}
}  // namespace

const Clock& Clock::System() {
  static const SystemClock* clock = new SystemClock();
  return *clock;
}

namespace {
// ISO 8601 UTC with milliseconds (`micro_digits` false) or microseconds.
std::string FormatUtc(TimePoint t, bool micro_digits) {
  std::tm tm = ToUtc(t);
  int64_t micros = t.time_since_epoch().count() % 1000000;
  if (micros < 0) micros += 1000000;
  char buf[96];
  std::snprintf(
      buf, sizeof(buf),
      micro_digits ? "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" : "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
      tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
      static_cast<int>(micro_digits ? micros : micros / 1000));
  return buf;
}
}  // namespace

std::string FormatInstant(TimePoint t) { return FormatUtc(t, false); }
std::string FormatInstantMicros(TimePoint t) { return FormatUtc(t, true); }

std::string FormatHttpDate(TimePoint t) {
  std::tm tm = ToUtc(t);
  char buf[40];
  std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

int64_t ToMicros(TimePoint t) { return t.time_since_epoch().count(); }
TimePoint FromMicros(int64_t micros) { return TimePoint(std::chrono::microseconds(micros)); }

}  // namespace kura
