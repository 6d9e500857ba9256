// The searchset Bundle written by hand: valid JSON in FHIR's member order, links and total in
// the head, stored payloads spliced in as they are, no empty arrays.
#include <gtest/gtest.h>

#include "kura/api/fhir_search.h"

namespace kura::api {
namespace {

store::ResourceVersion Stored(std::string id, std::string payload) {
  store::ResourceVersion v;
  v.type = "Observation";
  v.id = std::move(id);
  v.version = 1;
  v.payload = std::move(payload);
  return v;
}

TEST(SearchsetBundleTest, HeadLinksAndEntriesAreValidJsonInOrder) {
  const store::ResourceVersion a = Stored("a", R"({"resourceType":"Observation","id":"a"})");
  const store::ResourceVersion b = Stored("b", R"({"resourceType":"Observation","id":"b"})");
  const std::string url = "https://h/fhir/R4/Observation?name=\"q\"\\x&given=Zo\xc3\xab";
  const std::string text =
      SearchsetBundle({{"self", url}, {"next", "https://h/fhir/R4/Observation?_page=t"}}, 7,
                      "https://h/fhir/R4", {{&a, "match"}, {&b, "include"}});
  const fhir::Json bundle = fhir::Json::parse(text);
  std::vector<std::string> keys;
  for (auto it = bundle.begin(); it != bundle.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"resourceType", "id", "meta", "type", "total", "link",
                                            "entry"}));
  EXPECT_EQ(bundle["resourceType"], "Bundle");
  EXPECT_EQ(bundle["type"], "searchset");
  EXPECT_EQ(bundle["total"], 7);
  EXPECT_EQ(bundle["id"].get<std::string>().size(), 36u);
  EXPECT_TRUE(bundle["meta"]["lastUpdated"].is_string());
  ASSERT_EQ(bundle["link"].size(), 2u);
  EXPECT_EQ(bundle["link"][0]["relation"], "self");
  EXPECT_EQ(bundle["link"][0]["url"], url);
  EXPECT_EQ(bundle["link"][1]["relation"], "next");
  ASSERT_EQ(bundle["entry"].size(), 2u);
  EXPECT_EQ(bundle["entry"][0]["fullUrl"], "https://h/fhir/R4/Observation/a");
  EXPECT_EQ(bundle["entry"][0]["resource"]["id"], "a");
  EXPECT_EQ(bundle["entry"][0]["search"]["mode"], "match");
  EXPECT_EQ(bundle["entry"][1]["search"]["mode"], "include");
}

TEST(SearchsetBundleTest, NoLinksNoTotalNoEntriesLeaveNoEmptyMembers) {
  const fhir::Json bundle = fhir::Json::parse(SearchsetBundle({}, std::nullopt, "https://h", {}));
  EXPECT_EQ(bundle["type"], "searchset");
  EXPECT_FALSE(bundle.contains("total"));
  EXPECT_FALSE(bundle.contains("link"));
  EXPECT_FALSE(bundle.contains("entry"));
  const fhir::Json counted = fhir::Json::parse(SearchsetBundle({}, 0, "https://h", {}));
  EXPECT_EQ(counted["total"], 0);
}

}  // namespace
}  // namespace kura::api
