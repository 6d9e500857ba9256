// HTTP-date parsing (If-Modified-Since) against the three forms RFC 9110 names, and its round trip
// with FormatHttpDate.
#include "kura/base/clock.h"

#include <gtest/gtest.h>

namespace kura {
namespace {

TEST(ParseHttpDate, AcceptsTheThreeFormsOfOneInstant) {
  const TimePoint expected = TimePoint(std::chrono::seconds(784111777));  // 1994-11-06 08:49:37Z
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), expected);
  EXPECT_EQ(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"), expected);
  EXPECT_EQ(ParseHttpDate("Sun Nov  6 08:49:37 1994"), expected);
}

TEST(ParseHttpDate, RoundTripsFormatHttpDateToTheSecond) {
  const TimePoint t = FromMicros(1796505896862247);
  const std::optional<TimePoint> parsed = ParseHttpDate(FormatHttpDate(t));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, std::chrono::time_point_cast<std::chrono::seconds>(t));
}

TEST(ParseHttpDate, RefusesWhatIsNotAnHttpDate) {
  for (const char* bad : {"", "yesterday", "2024-01-01T00:00:00Z", "Sun, 06 Nov 1994 08:49:37 UTC",
                          "Sun, 06 Nov 1994 08:49:37 GMT trailing", "Sun, 06 Foo 1994 08:49:37 GMT",
                          "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:49:37 GMT",
                          "Sun, 06 Nov 1969 08:49:37 GMT", "Sun, 6 Nov 1994 08:49:37 GMT"}) {
    EXPECT_FALSE(ParseHttpDate(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace kura
