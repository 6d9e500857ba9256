#include "kura/base/status.h"

#include <gtest/gtest.h>

namespace kura {
namespace {

StatusOr<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgumentError("odd");
  return x / 2;
}

StatusOr<int> Quarter(int x) {
  KURA_ASSIGN_OR_RETURN(int h, Half(x));
  KURA_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(StatusTest, OkIsDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, ErrorKeepsMessageDetailAndDetails) {
  Status s = InvalidArgumentError("bad", "internal why")
                 .WithDetail({"value", "not a date", "Patient.birthDate"});
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "bad");
  EXPECT_EQ(s.internal_detail(), "internal why");
  ASSERT_EQ(s.details().size(), 1u);
  EXPECT_EQ(s.details()[0].expression, "Patient.birthDate");
}

TEST(StatusTest, AssignOrReturnPropagates) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Quarter(3).status().message(), "odd");
}

TEST(StatusTest, StatusOrFromOkStatusBecomesInternal) {
  StatusOr<int> v = Status::Ok();
  EXPECT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace kura
