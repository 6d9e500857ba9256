// Clock: the time seam. Production code asks a Clock for "now"; tests use FakeClock.
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kura {

using TimePoint = std::chrono::time_point<std::chrono::system_clock, std::chrono::microseconds>;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
  // The process-wide real clock.
  static const Clock& System();
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start) : now_us_(start.time_since_epoch().count()) {}
  TimePoint Now() const override { return TimePoint(std::chrono::microseconds(now_us_.load())); }
  void Advance(std::chrono::microseconds by) { now_us_ += by.count(); }

 private:
  std::atomic<int64_t> now_us_;
};

// "2024-01-01T00:00:00.123Z": FHIR instant with millisecond precision, always UTC.
std::string FormatInstant(TimePoint t);
// The same with microseconds: "2024-01-01T12:00:00.123456Z".
std::string FormatInstantMicros(TimePoint t);
// "Mon, 01 Jan 2024 00:00:00 GMT" for Last-Modified (RFC 9110 IMF-fixdate).
std::string FormatHttpDate(TimePoint t);
// An HTTP-date as RFC 9110 (5.6.7) asks recipients to accept: IMF-fixdate, and the obsolete
// RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994") forms;
// nullopt for anything else. The weekday is not checked against the date.
std::optional<TimePoint> ParseHttpDate(std::string_view text);
int64_t ToMicros(TimePoint t);
// A FHIR instant or dateTime with a zone ("2024-01-01T00:00:00Z", "...+02:00", fractions to the
// microsecond) or a date ("2024-01-01", midnight UTC); nullopt otherwise.
std::optional<TimePoint> ParseInstant(std::string_view text);
TimePoint FromMicros(int64_t micros);

}  // namespace kura
