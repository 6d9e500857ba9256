#include "kura/http/router.h"

#include <gtest/gtest.h>

namespace kura::http {
namespace {

Handler Dummy() {
  return [](RequestContext&) -> boost::asio::awaitable<Response> { co_return Response{}; };
}

TEST(RouterTest, LiteralBeforeParameterAndCaptures) {
  Router r;
  r.Add(Verb::get, "/fhir/R4/metadata", Dummy());
  r.Add(Verb::get, "/fhir/R4/{type}/{id}", Dummy());
  r.Add(Verb::put, "/fhir/R4/{type}/{id}", Dummy());
  r.Add(Verb::get, "/fhir/R4/{type}/{id}/_history/{vid}", Dummy());

  auto m = r.Find(Verb::get, "/fhir/R4/metadata");
  EXPECT_EQ(m.route, "/fhir/R4/metadata");
  auto read = r.Find(Verb::get, "/fhir/R4/Patient/abc");
  ASSERT_NE(read.handler, nullptr);
  EXPECT_EQ(read.route, "/fhir/R4/{type}/{id}");
  EXPECT_EQ(read.params.Get("type"), "Patient");
  EXPECT_EQ(read.params.Get("id"), "abc");
  auto vread = r.Find(Verb::get, "/fhir/R4/Patient/abc/_history/2");
  EXPECT_EQ(vread.params.Get("vid"), "2");
}

TEST(RouterTest, WrongMethodAndStrictPaths) {
  Router r;
  r.Add(Verb::get, "/fhir/R4/{type}/{id}", Dummy());
  r.Add(Verb::put, "/fhir/R4/{type}/{id}", Dummy());
  auto m = r.Find(Verb::post, "/fhir/R4/Patient/1");
  EXPECT_EQ(m.handler, nullptr);
  EXPECT_TRUE(m.path_matched);
  EXPECT_EQ(m.allowed_methods, "GET, PUT");
  EXPECT_EQ(r.Find(Verb::get, "/fhir/R4/Patient/1/").handler, nullptr);
  EXPECT_EQ(r.Find(Verb::get, "/fhir//R4/Patient/1").handler, nullptr);
  EXPECT_FALSE(r.Find(Verb::get, "/other").path_matched);
}

TEST(RouterTest, LiteralPathWithOtherMethodIs405NotAParameterMatch) {
  Router r;
  r.Add(Verb::get, "/fhir/R4/metadata", Dummy());
  r.Add(Verb::post, "/fhir/R4/{type}", Dummy());
  auto m = r.Find(Verb::post, "/fhir/R4/metadata");
  EXPECT_EQ(m.handler, nullptr);
  EXPECT_TRUE(m.path_matched);
  EXPECT_EQ(m.allowed_methods, "GET");
  EXPECT_NE(r.Find(Verb::post, "/fhir/R4/Patient").handler, nullptr);
}

TEST(QueryTest, DecodesPairs) {
  auto q = ParseQuery("a=1&b=x%20y+z&c&&d=%zz");
  ASSERT_EQ(q.size(), 4u);
  EXPECT_EQ(q[1].second, "x y z");
  EXPECT_EQ(q[2].first, "c");
  EXPECT_EQ(q[2].second, "");
  EXPECT_EQ(q[3].second, "%zz");
  EXPECT_EQ(PercentEncode("a b/c"), "a%20b%2Fc");
}

}  // namespace
}  // namespace kura::http
