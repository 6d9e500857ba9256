#include "kura/fhir/json.h"

#include <gtest/gtest.h>

namespace kura::fhir {
namespace {

std::string Diagnostics(const Status& s) {
  return s.details().empty() ? "" : s.details()[0].diagnostics;
}

TEST(ParseResourceJsonTest, AcceptsObjectAndKeepsKeyOrder) {
  auto j = ParseResourceJson(R"({"resourceType":"Patient","b":1,"a":[1,2,{"x":null}]})", {});
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ(SerializeJson(*j), R"({"resourceType":"Patient","b":1,"a":[1,2,{"x":null}]})");
}

TEST(ParseResourceJsonTest, RejectsBadInputWithReasons) {
  EXPECT_NE(Diagnostics(ParseResourceJson("", {}).status()).find("empty"), std::string::npos);
  EXPECT_NE(Diagnostics(ParseResourceJson("[1]", {}).status()).find("object"), std::string::npos);
  EXPECT_NE(Diagnostics(ParseResourceJson("{\"a\":", {}).status()).find("malformed"),
            std::string::npos);
  EXPECT_NE(Diagnostics(ParseResourceJson("{} {}", {}).status()).find("malformed"),
            std::string::npos);
  EXPECT_NE(Diagnostics(ParseResourceJson("{\"a\":1,\"a\":2}", {}).status()).find("duplicate"),
            std::string::npos);
  std::string bad_utf8 = "{\"a\":\"\xc3\x28\"}";
  EXPECT_NE(Diagnostics(ParseResourceJson(bad_utf8, {}).status()).find("UTF-8"),
            std::string::npos);
}

TEST(ParseResourceJsonTest, EnforcesDepthLimit) {
  std::string deep = "{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}";
  auto s = ParseResourceJson(deep, {.max_depth = 64}).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(Diagnostics(s).find("deeper"), std::string::npos);
  EXPECT_TRUE(ParseResourceJson(deep, {.max_depth = 200}).ok());
  // Very deep input must not exhaust the stack.
  std::string very_deep(1'000'000, '[');
  EXPECT_FALSE(ParseResourceJson(very_deep, {}).ok());
}

}  // namespace
}  // namespace kura::fhir
