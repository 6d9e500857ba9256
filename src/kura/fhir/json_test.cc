// ParseResourceDocument: what intake accepts, what it refuses (and why), and the compact text it
// keeps for each member.
#include "kura/fhir/json.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kura/fhir/document_test_util.h"
#include "kura/fhir/internal/intake_handler.h"

namespace kura::fhir {
namespace {

std::string Diagnostics(const Status& s) {
  return s.details().empty() ? "" : s.details()[0].diagnostics;
}

std::string Why(std::string_view body, JsonLimits limits = {}) {
  return Diagnostics(ParseResourceDocument(body, limits).status());
}

TEST(ParseResourceDocumentTest, SplitsTopLevelMembersInOrderAsCompactJson) {
  auto doc = ParseResourceDocument(
      R"({ "resourceType" : "Patient", "b" : 1, "a" : [1, 2, {"x" : null, "y": true}] })", {});
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  ASSERT_EQ(doc->members.size(), 3u);
  EXPECT_EQ(doc->members[0].key, "resourceType");
  EXPECT_EQ(doc->members[0].json, R"("Patient")");
  EXPECT_EQ(doc->members[0].string_value, "Patient");
  EXPECT_EQ(doc->members[1].key, "b");
  EXPECT_EQ(doc->members[1].json, "1");
  EXPECT_FALSE(doc->members[1].string_value.has_value());
  EXPECT_EQ(doc->members[2].json, R"([1,2,{"x":null,"y":true}])");
  EXPECT_FALSE(doc->meta.has_value());
  EXPECT_EQ(doc->Find("b"), &doc->members[1]);
  EXPECT_EQ(doc->Find("zz"), nullptr);
}

// A compact body without escapes has its member values cut out of the text; any other body has
// them written again. Both give the same members, meta members and patient references.
TEST(ParseResourceDocumentTest, CompactBodiesAreCutOutAsTheWriterWouldWriteThem) {
  const std::vector<std::string> compact = {
      R"({"resourceType":"Observation","status":"final","valueQuantity":{"value":98.60,"unit":"F"},)"
      R"("subject":{"reference":"Patient/p1"},"note":[{"text":"a b c"}],"x":[],"y":{},)"
      R"("z":[true,false,null,-0.5e10],"meta":{"tag":[{"code":"t"}],"source":"s"},"last":1})",
      R"({"resourceType":"Patient","name":[{"family":"Müller"}],"active":true})",
      "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"M\xc3\xbcller \xe2\x82\xac\"}]}",
  };
  for (const std::string& body : compact) {
    // Whitespace between tokens (outside strings) sends the same body through the writer.
    std::string spaced;
    bool in_string = false;
    for (char c : body) {
      if (c == '"') in_string = !in_string;
      spaced += c;
      if (!in_string && (c == ',' || c == ':' || c == '{' || c == '[')) spaced += "\n  ";
    }
    auto cut = ParseResourceDocument(body, {});
    auto written = ParseResourceDocument(spaced, {});
    ASSERT_TRUE(cut.ok()) << cut.status().ToString();
    ASSERT_TRUE(written.ok()) << written.status().ToString();
    ExpectSameDocument(*cut, *written);
  }
  auto doc = ParseResourceDocument(compact[0], {});
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(doc->Find("valueQuantity")->json, R"({"value":98.60,"unit":"F"})");
  EXPECT_EQ(doc->Find("last")->json, "1");
  EXPECT_EQ(doc->Find("x")->json, "[]");
  EXPECT_EQ(doc->Find("y")->json, "{}");
  ASSERT_TRUE(doc->meta.has_value());
  EXPECT_EQ((*doc->meta)[1].json, R"("s")");
  // An escape in the body means the writer path: the value comes back minimally escaped.
  auto escaped = ParseResourceDocument(R"({"resourceType":"Patient","a":"A\/"})", {});
  ASSERT_TRUE(escaped.ok());
  EXPECT_EQ(escaped->Find("a")->json, R"("A/")");
}

// The check that decides between cutting and writing, against a plain scan of every byte, on
// every text of up to six bytes over quotes, backslashes, the four whitespace bytes and others.
TEST(ParseResourceDocumentTest, CompactCheckAgreesWithAByteByByteScan) {
  auto byte_by_byte = [](std::string_view body) {
    if (body.find('\\') != std::string_view::npos) return false;
    bool in_string = false;
    for (char c : body) {
      if (c == '"') {
        in_string = !in_string;
      } else if (!in_string && (c == ' ' || c == '\n' || c == '\r' || c == '\t')) {
        return false;
      }
    }
    return true;
  };
  const std::string alphabet = "\"\\ \n\r\ta:";
  size_t compact = 0;
  size_t checked = 0;
  std::string text;
  for (size_t length = 0; length <= 6; ++length) {
    std::vector<size_t> digits(length, 0);
    while (true) {
      text.clear();
      for (size_t d : digits) text += alphabet[d];
      const bool expected = byte_by_byte(text);
      ASSERT_EQ(internal::IsCompactWithoutEscapes(text), expected) << testing::PrintToString(text);
      compact += expected ? 1 : 0;
      ++checked;
      size_t i = 0;
      while (i < length && ++digits[i] == alphabet.size()) digits[i++] = 0;
      if (i == length) break;
    }
  }
  EXPECT_EQ(checked, 299'593u);  // 8^0 + ... + 8^6
  EXPECT_GT(compact, 0u);
}

TEST(ParseResourceDocumentTest, NumbersKeepTheirExactText) {
  // FHIR decimals carry precision in their text: 98.60 is not 98.6.
  auto doc = ParseResourceDocument(
      R"({"v":[98.60,0.1000,1.2345678901234567890,100.00,12345678901234567890.5,-0.0,1E2,)"
      R"(123456789012345678901234567890]})",
      {});
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ(doc->members[0].json,
            "[98.60,0.1000,1.2345678901234567890,100.00,12345678901234567890.5,-0.0,1E2,"
            "123456789012345678901234567890]");
}

TEST(ParseResourceDocumentTest, StringsAreUnescapedThenMinimallyEscaped) {
  auto doc = ParseResourceDocument(R"({"s":"caf\u00e9 \/ \"q\" \n \u0001 \ud83d\ude00"})", {});
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ(doc->members[0].string_value, "caf\xc3\xa9 / \"q\" \n \x01 \xf0\x9f\x98\x80");
  EXPECT_EQ(doc->members[0].json, "\"caf\xc3\xa9 / \\\"q\\\" \\n \\u0001 \xf0\x9f\x98\x80\"");
  EXPECT_EQ(JsonString("a\"b\\c\x02"), R"("a\"b\\c\u0002")");
  // Text with nothing to escape is copied between quotes, as the writer would write it.
  EXPECT_EQ(JsonString("caf\xc3\xa9 / x\x7f"), "\"caf\xc3\xa9 / x\x7f\"");
  EXPECT_EQ(JsonString(""), R"("")");
  // Appending keeps what is there, with or without escapes.
  std::string out = "[";
  AppendJsonString(out, "a\"b");
  out += ',';
  AppendJsonString(out, "plain");
  EXPECT_EQ(out, R"(["a\"b","plain")");
}

TEST(ParseResourceDocumentTest, TextAlreadyCheckedAsUtf8ParsesAlike) {
  const std::string text =
      "{\"resourceType\":\"Patient\",\"s\":\"caf\xc3\xa9 \\u00e9 \xf0\x9f\x98\x80\",\"n\":1.50}";
  auto checked = ParseResourceDocument(text, {});
  auto trusted = ParseResourceDocument(text, {.utf8_checked = true});
  ASSERT_TRUE(checked.ok()) << checked.status().ToString();
  ASSERT_TRUE(trusted.ok()) << trusted.status().ToString();
  ASSERT_EQ(checked->members.size(), trusted->members.size());
  for (size_t i = 0; i < checked->members.size(); ++i) {
    EXPECT_EQ(checked->members[i].key, trusted->members[i].key);
    EXPECT_EQ(checked->members[i].json, trusted->members[i].json);
  }
  // Unchecked text is still checked by default.
  EXPECT_FALSE(ParseResourceDocument("{\"a\":\"\xc3\x28\"}", {}).ok());
}

TEST(ParseResourceDocumentTest, MetaMembersAreSeparate) {
  auto doc = ParseResourceDocument(
      R"({"resourceType":"Patient","meta":{"versionId":"7","tag":[{"code":"t"}]},"x":1})", {});
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  ASSERT_TRUE(doc->meta.has_value());
  ASSERT_EQ(doc->meta->size(), 2u);
  EXPECT_EQ((*doc->meta)[0].string_value, "7");
  EXPECT_EQ((*doc->meta)[1].json, R"([{"code":"t"}])");
  EXPECT_EQ(doc->Find("meta"), nullptr);
  EXPECT_NE(doc->Find("x"), nullptr);
  // A meta that is not an object stays a member (and is refused later).
  auto odd = ParseResourceDocument(R"({"meta":[1]})", {});
  ASSERT_TRUE(odd.ok());
  EXPECT_FALSE(odd->meta.has_value());
  ASSERT_NE(odd->Find("meta"), nullptr);
}

TEST(ParseResourceDocumentTest, CollectsPatientReferencesWithTheirPaths) {
  auto doc = ParseResourceDocument(
      R"({"subject":{"reference":"Patient/p1"},"performer":[{"reference":"Practitioner/d"},)"
      R"({"reference":"Patient/p2"}],"participant":[{"actor":{"reference":"Patient/a"}}],)"
      R"("note":[{"text":"reference Patient/zz"}],"reference":"Patient/top"})",
      {});
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  using Ref = std::pair<std::string, std::string>;
  EXPECT_EQ(doc->patient_references, (std::vector<Ref>{{"subject", "Patient/p1"},
                                                       {"performer", "Patient/p2"},
                                                       {"participant.actor", "Patient/a"}}));
}

TEST(ParseResourceDocumentTest, RejectsBadInputWithReasons) {
  EXPECT_NE(Why("").find("empty"), std::string::npos);
  EXPECT_NE(Why("[1]").find("object"), std::string::npos);
  EXPECT_NE(Why("\"x\"").find("object"), std::string::npos);
  EXPECT_NE(Why("{\"a\":").find("malformed"), std::string::npos);
  EXPECT_NE(Why("{} {}").find("malformed"), std::string::npos);
  EXPECT_NE(Why(std::string("{}\0{}", 5)).find("after the resource"), std::string::npos);
  EXPECT_NE(Why("{\"a\":01}").find("malformed"), std::string::npos);
  EXPECT_NE(Why("{\"a\":1.}").find("malformed"), std::string::npos);
  EXPECT_NE(Why("{\"a\":NaN}").find("malformed"), std::string::npos);
  EXPECT_NE(Why("{\"a\":\"\\x\"}").find("malformed"), std::string::npos);
  EXPECT_NE(Why("{\"a\":\"\\ud800\"}").find("malformed"), std::string::npos);
  EXPECT_NE(Why("{\"a\":\"tab\there\"}").find("malformed"), std::string::npos);
  EXPECT_NE(Why("{\"a\":1,\"a\":2}").find("duplicate"), std::string::npos);
  EXPECT_NE(Why("{\"a\":{\"b\":1,\"b\":2}}").find("duplicate"), std::string::npos);
  EXPECT_NE(Why("{\"a\":1,\"\\u0061\":2}").find("duplicate"), std::string::npos);
  EXPECT_TRUE(ParseResourceDocument("{\"a\":{\"b\":1},\"b\":{\"b\":2}}", {}).ok());
  EXPECT_NE(Why("{\"a\":\"\xc3\x28\"}").find("UTF-8"), std::string::npos);
  EXPECT_NE(Why("{\"a\":\"\xed\xa0\x80\"}").find("UTF-8"), std::string::npos);  // Surrogate.
  EXPECT_NE(Why("{\"a\":\"\xc0\xaf\"}").find("UTF-8"), std::string::npos);      // Overlong.
  // An escaped lone low surrogate, which RapidJSON would decode into bytes that are not UTF-8,
  // in a value, nested, and in a key; a pair spelling one character is fine.
  EXPECT_NE(Why("{\"a\":\"x\\udead\"}").find("lone UTF-16 surrogate"), std::string::npos);
  EXPECT_NE(Why("{\"a\":[{\"b\":\"\\udc00\"}]}").find("lone UTF-16 surrogate"), std::string::npos);
  EXPECT_NE(Why("{\"\\udfff\":1}").find("lone UTF-16 surrogate"), std::string::npos);
  auto pair = ParseResourceDocument("{\"a\":\"\\ud83d\\ude00\"}", {});
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  EXPECT_EQ(pair->members[0].string_value, "\xf0\x9f\x98\x80");
}

TEST(ParseResourceDocumentTest, DuplicateKeysAreFoundInLargeObjectsToo) {
  std::string body = "{";
  for (int i = 0; i < 5000; ++i)
    body += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  EXPECT_TRUE(ParseResourceDocument(body + "\"last\":0}", {}).ok());
  EXPECT_NE(Why(body + "\"k4321\":0}").find("duplicate"), std::string::npos);
}

TEST(ParseResourceDocumentTest, EnforcesDepthLimit) {
  std::string deep = "{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}";
  auto s = ParseResourceDocument(deep, {.max_depth = 64}).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(Diagnostics(s).find("deeper"), std::string::npos);
  EXPECT_TRUE(ParseResourceDocument(deep, {.max_depth = 200}).ok());
  // Very deep input must not exhaust the stack.
  std::string very_deep = "{\"a\":" + std::string(1'000'000, '[');
  EXPECT_FALSE(ParseResourceDocument(very_deep, {.max_depth = 2'000'000}).ok());
}

}  // namespace
}  // namespace kura::fhir
