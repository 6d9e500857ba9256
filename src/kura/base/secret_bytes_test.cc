#include "kura/base/secret_bytes.h"

#include <gtest/gtest.h>

#include "kura/base/random.h"

namespace kura {
namespace {

TEST(SecretBytesTest, RandomIsSizedAndDistinct) {
  auto a = SecretBytes::Random(32);
  auto b = SecretBytes::Random(32);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), 32u);
  EXPECT_FALSE(a->ConstantTimeEquals(*b));
  EXPECT_TRUE(a->ConstantTimeEquals(*a));
}

TEST(SecretBytesTest, MoveLeavesSourceEmpty) {
  auto a = SecretBytes::Random(16);
  ASSERT_TRUE(a.ok());
  SecretBytes b = std::move(*a);
  EXPECT_EQ(b.size(), 16u);
  EXPECT_TRUE(a->empty());
}

TEST(ConstantTimeEqualsTest, ComparesLengthAndContent) {
  const uint8_t x[] = {1, 2, 3};
  const uint8_t y[] = {1, 2, 4};
  EXPECT_TRUE(ConstantTimeEquals(x, x));
  EXPECT_FALSE(ConstantTimeEquals(x, y));
  EXPECT_FALSE(ConstantTimeEquals(std::span(x, 2), x));
}

TEST(RandomTest, UuidShapeAndTokens) {
  std::string u = RandomUuid();
  ASSERT_EQ(u.size(), 36u);
  EXPECT_EQ(u[14], '4');
  EXPECT_NE(RandomUuid(), u);
  EXPECT_EQ(RandomToken(32).size(), 43u);  // 256 bits, unpadded base64url.
  std::string decoded;
  EXPECT_TRUE(Base64Decode("aGVsbG8=", decoded));
  EXPECT_EQ(decoded, "hello");
  EXPECT_FALSE(Base64Decode("!!", decoded));
}

TEST(RandomTest, TimeOrderedUuidsCarryTheMillisecondAndSortByTime) {
  const TimePoint t = FromMicros(1'700'000'000'123'456);  // 0x18bcfe5687b ms.
  std::string u = TimeOrderedUuid(t);
  ASSERT_EQ(u.size(), 36u);
  EXPECT_EQ(u.substr(0, 13), "018bcfe5-687b");
  EXPECT_EQ(u[14], '7');
  EXPECT_NE(std::string("89ab").find(u[19]), std::string::npos);  // RFC 9562 variant.
  EXPECT_NE(TimeOrderedUuid(t), u);  // 74 random bits.
  EXPECT_LT(u, TimeOrderedUuid(t + std::chrono::milliseconds(1)));
  EXPECT_LT(TimeOrderedUuid(t - std::chrono::hours(24 * 365)), u);
}

}  // namespace
}  // namespace kura
