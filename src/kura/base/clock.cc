// System clock and timestamp formatting.
#include "kura/base/clock.h"

#include <cctype>
#include <cstdio>
#include <ctime>
#include <optional>

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

namespace {

// 0-11 for "Jan".."Dec" (case as written), -1 otherwise.
int MonthIndex(std::string_view name) {
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i) {
    if (name == kMonths[i]) return i;
  }
  return -1;
}

}  // namespace

std::optional<TimePoint> ParseHttpDate(std::string_view text) {
  if (text.size() < 24 || text.size() > 40) return std::nullopt;
  const std::string t(text);
  int day = 0, year = 0, h = 0, mi = 0, s = 0, used = 0;
  char month[4] = {0};
  char weekday[10] = {0};
  if (t.size() == 29 && t[3] == ',') {  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    if (std::sscanf(t.c_str(), "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d GMT%n", weekday, &day,
                    month, &year, &h, &mi, &s, &used) != 7) {
      return std::nullopt;
    }
  } else if (t.find(',') != std::string::npos) {  // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
    if (std::sscanf(t.c_str(), "%9[A-Za-z], %2d-%3[A-Za-z]-%2d %2d:%2d:%2d GMT%n", weekday, &day,
                    month, &year, &h, &mi, &s, &used) != 7) {
      return std::nullopt;
    }
    // Two-digit years more than 50 years ahead are in the past (RFC 9110).
    year += year < 70 ? 2000 : 1900;
  } else {  // asctime: "Sun Nov  6 08:49:37 1994"
    if (std::sscanf(t.c_str(), "%3[A-Za-z] %3[A-Za-z] %2d %2d:%2d:%2d %4d%n", weekday, month, &day,
                    &h, &mi, &s, &year, &used) != 7) {
      return std::nullopt;
    }
  }
  const int mon = MonthIndex(month);
  if (used != static_cast<int>(t.size()) || mon < 0 || day < 1 || day > 31 || h > 23 || mi > 59 ||
      s > 60 || year < 1970) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon;
  tm.tm_mday = day;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  const std::time_t secs = timegm(&tm);
  if (tm.tm_mday != day) return std::nullopt;  // 31 Feb and the like, normalized by timegm.
  return TimePoint(std::chrono::seconds(secs));
}

int64_t ToMicros(TimePoint t) { return t.time_since_epoch().count(); }
TimePoint FromMicros(int64_t micros) { return TimePoint(std::chrono::microseconds(micros)); }

std::optional<TimePoint> ParseInstant(std::string_view text) {
  int y, mo, d, h = 0, mi = 0, s = 0;
  char rest[40] = {0};
  std::string t(text.substr(0, 39));
  if (t.size() == 10) {
    if (std::sscanf(t.c_str(), "%4d-%2d-%2d", &y, &mo, &d) != 3) return std::nullopt;
  } else if (std::sscanf(t.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%39s", &y, &mo, &d, &h, &mi, &s, rest) <
             6) {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return std::nullopt;
  std::string_view r(rest);
  int64_t frac_us = 0;
  if (!r.empty() && r.front() == '.') {
    r.remove_prefix(1);
    int64_t scale = 100000;
    while (!r.empty() && std::isdigit(static_cast<unsigned char>(r.front()))) {
      frac_us += (r.front() - '0') * scale;
      scale /= 10;
      r.remove_prefix(1);
    }
  }
  int64_t offset_min = 0;
  if (t.size() != 10) {
    if (r == "Z") {
    } else if (r.size() == 6 && (r[0] == '+' || r[0] == '-') && r[3] == ':') {
      int oh = 0, om = 0;
      if (std::sscanf(std::string(r.substr(1)).c_str(), "%2d:%2d", &oh, &om) != 2) {
        return std::nullopt;
      }
      offset_min = (oh * 60 + om) * (r[0] == '+' ? 1 : -1);
    } else {
      return std::nullopt;  // FHIR instants carry a zone.
    }
  }
  std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(mo),
                                  std::chrono::day(d)};
  if (!ymd.ok()) return std::nullopt;
  auto days = std::chrono::sys_days(ymd);
  auto tp = std::chrono::time_point_cast<std::chrono::microseconds>(days) + std::chrono::hours(h) +
            std::chrono::minutes(mi - offset_min) + std::chrono::seconds(s) +
            std::chrono::microseconds(frac_us);
  return TimePoint(tp.time_since_epoch());
}

}  // namespace kura
