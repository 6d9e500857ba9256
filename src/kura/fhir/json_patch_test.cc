// JSON Patch: which documents are accepted, what applying them does (RFC 6902 semantics, exact
// numbers, order kept), and what is refused (failed tests, missing paths, server-owned members,
// growth bombs).
#include "kura/fhir/json_patch.h"

#include <gtest/gtest.h>

namespace kura::fhir {
namespace {

std::string Diagnostics(const Status& s) {
  return s.details().empty() ? s.message() : s.details()[0].diagnostics;
}

constexpr std::string_view kObservation =
    R"({"resourceType":"Observation","id":"o1","meta":{"versionId":"3","lastUpdated":)"
    R"("2024-01-01T00:00:00Z","tag":[{"code":"a"}]},"status":"final","code":{"text":"hr"},)"
    R"("valueQuantity":{"value":98.60,"unit":"F"},"note":[{"text":"one"},{"text":"two"}]})";

StatusOr<std::string> Apply(std::string_view patch, std::string_view resource = kObservation) {
  StatusOr<JsonPatch> parsed = ParseJsonPatch(patch, {});
  if (!parsed.ok()) return parsed.status();
  return ApplyJsonPatch(*parsed, resource, {});
}

TEST(ParseJsonPatchTest, AcceptsEveryOperation) {
  auto patch = ParseJsonPatch(
      R"([{"op":"add","path":"/a","value":1},{"op":"remove","path":"/a"},)"
      R"({"op":"replace","path":"/b","value":{"x":[1]}},{"op":"move","from":"/b","path":"/c"},)"
      R"({"op":"copy","from":"/c","path":"/d"},{"op":"test","path":"/d","value":null}, )"
      R"({"op":"add","path":"","value":{}}])",
      {});
  ASSERT_TRUE(patch.ok()) << patch.status().ToString();
  EXPECT_EQ(patch->operations.size(), 7u);
  EXPECT_TRUE(ParseJsonPatch("[]", {}).ok());
}

TEST(ParseJsonPatchTest, RefusesMalformedDocuments) {
  struct Case {
    std::string_view body;
    std::string_view why;
  };
  const Case cases[] = {
      {"", "empty"},
      {"[{]", "malformed JSON"},
      {R"({"op":"add","path":"/a","value":1})", "an array of operations"},
      {R"([1])", "operation 0: each operation must be a JSON object"},
      {R"([{"path":"/a"}])", "operation 0: 'op' is missing"},
      {R"([{"op":1,"path":"/a"}])", "operation 0: 'op' is missing or not a string"},
      {R"([{"op":"remove","path":"/a"},{"op":"delete","path":"/a"}])",
       "operation 1: 'op' must be add, remove, replace, move, copy or test, not 'delete'"},
      {R"([{"op":"remove"}])", "'path' is missing"},
      {R"([{"op":"remove","path":"a"}])", "'path' is not a JSON Pointer"},
      {R"([{"op":"remove","path":"/a~2"}])", "'path' is not a JSON Pointer"},
      {R"([{"op":"move","path":"/a"}])", "'from' is missing"},
      {R"([{"op":"copy","from":"x","path":"/a"}])", "'from' is not a JSON Pointer"},
      {R"([{"op":"move","from":"/a","path":"/a/b"}])", "moved into one of its own children"},
      {R"([{"op":"add","path":"/a"}])", "'value' is missing"},
      {R"([{"op":"test","path":"/a"}])", "'value' is missing"},
      {R"([{"op":"add","path":"/a","path":"/b","value":1}])", "duplicate JSON key"},
      {"[{\"op\":\"add\",\"path\":\"/\xff\",\"value\":1}]", "UTF-8"},
      // Escapes that decode to what UTF-8 cannot hold, in a value, in a pointer and in a key.
      {R"([{"op":"add","path":"/a","value":"x\udead"}])", "escaped lone UTF-16 surrogate"},
      {R"([{"op":"add","path":"/a","value":{"\udc00":1}}])", "escaped lone UTF-16 surrogate"},
      {R"([{"op":"remove","path":"/\udead"}])", "escaped lone UTF-16 surrogate"},
  };
  for (const Case& c : cases) {
    auto patch = ParseJsonPatch(c.body, {});
    ASSERT_FALSE(patch.ok()) << c.body;
    EXPECT_EQ(patch.status().code(), StatusCode::kInvalidArgument) << c.body;
    EXPECT_NE(Diagnostics(patch.status()).find(c.why), std::string::npos)
        << c.body << " -> " << Diagnostics(patch.status());
  }
}

TEST(ParseJsonPatchTest, ASurrogatePairIsOneCharacter) {
  auto patch = ParseJsonPatch(R"([{"op":"add","path":"/a","value":"\ud83d\ude00"}])", {});
  ASSERT_TRUE(patch.ok()) << patch.status().ToString();
  auto patched = ApplyJsonPatch(*patch, R"({"resourceType":"Basic"})", {});
  ASSERT_TRUE(patched.ok()) << patched.status().ToString();
  EXPECT_NE(patched->find("\xF0\x9F\x98\x80"), std::string::npos) << *patched;
}

TEST(ParseJsonPatchTest, BoundsOperationsAndDepth) {
  std::string many = "[";
  for (size_t i = 0; i <= kMaxJsonPatchOperations; ++i) {
    many += std::string(i ? "," : "") + R"({"op":"remove","path":"/a"})";
  }
  many += "]";
  auto too_many = ParseJsonPatch(many, {});
  ASSERT_FALSE(too_many.ok());
  EXPECT_EQ(too_many.status().details()[0].issue_code, "too-long");

  // A value may nest as deep as a resource; the document adds two levels of its own.
  auto nested = [](size_t levels) {
    std::string v;
    for (size_t i = 0; i < levels; ++i) v += "[";
    for (size_t i = 0; i < levels; ++i) v += "]";
    return R"([{"op":"add","path":"/a","value":)" + v + "}]";
  };
  EXPECT_TRUE(ParseJsonPatch(nested(8), {.max_depth = 8}).ok());
  EXPECT_FALSE(ParseJsonPatch(nested(9), {.max_depth = 8}).ok());
}

TEST(ApplyJsonPatchTest, AppliesOperationsInOrderKeepingMemberOrder) {
  auto out = Apply(R"([{"op":"replace","path":"/status","value":"amended"},)"
                   R"({"op":"add","path":"/note/1","value":{"text":"middle"}},)"
                   R"({"op":"remove","path":"/note/0"},)"
                   R"({"op":"add","path":"/note/-","value":{"text":"last"}},)"
                   R"({"op":"copy","from":"/code","path":"/category"},)"
                   R"({"op":"move","from":"/category/text","path":"/issued"},)"
                   R"({"op":"add","path":"/meta/tag/0","value":{"code":"b"}},)"
                   R"({"op":"test","path":"/issued","value":"hr"}])");
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(*out,
            R"({"resourceType":"Observation","id":"o1","meta":{"versionId":"3","lastUpdated":)"
            R"("2024-01-01T00:00:00Z","tag":[{"code":"b"},{"code":"a"}]},"status":"amended",)"
            R"("code":{"text":"hr"},"valueQuantity":{"value":98.60,"unit":"F"},)"
            R"("note":[{"text":"middle"},{"text":"two"},{"text":"last"}],"category":{},)"
            R"("issued":"hr"})");
}

TEST(ApplyJsonPatchTest, NumbersKeepTheirExactText) {
  auto out = Apply(R"([{"op":"add","path":"/valueQuantity/comparator","value":"<"},)"
                   R"({"op":"add","path":"/x","value":[1.50,1E2,-0.0,12345678901234567890123]},)"
                   R"({"op":"test","path":"/valueQuantity/value","value":98.60}])");
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_NE(out->find(R"("valueQuantity":{"value":98.60,"unit":"F","comparator":"<"})"),
            std::string::npos)
      << *out;
  EXPECT_NE(out->find(R"("x":[1.50,1E2,-0.0,12345678901234567890123])"), std::string::npos) << *out;
  // Numbers compare by their text: 98.6 is not the 98.60 that was stored.
  auto differs = Apply(R"([{"op":"test","path":"/valueQuantity/value","value":98.6}])");
  EXPECT_EQ(differs.status().code(), StatusCode::kFailedPrecondition);
}

TEST(ApplyJsonPatchTest, StringsRoundTripEscaped) {
  auto out = Apply(R"([{"op":"add","path":"/text","value":"caf\u00e9 \"q\" \n \/"}])");
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_NE(out->find("\"text\":\"caf\xc3\xa9 \\\"q\\\" \\n /\""), std::string::npos) << *out;
}

// A patch that cannot be applied to kObservation, and words its diagnostics must hold.
struct CannotApplyCase {
  std::string_view patch;
  std::string_view why;
};

void ExpectCannotApply(const CannotApplyCase& c) {
  auto out = Apply(c.patch);
  ASSERT_FALSE(out.ok()) << c.patch;
  EXPECT_EQ(out.status().code(), StatusCode::kFailedPrecondition) << c.patch;
  EXPECT_NE(Diagnostics(out.status()).find(c.why), std::string::npos)
      << c.patch << " -> " << Diagnostics(out.status());
}

TEST(ApplyJsonPatchTest, FailedTestAndMissingPathsCannotBeApplied) {
  const CannotApplyCase cases[] = {
      {R"([{"op":"test","path":"/status","value":"preliminary"}])",
       "operation 0 (test): the value at '/status' is not the expected value"},
      {R"([{"op":"test","path":"/nope","value":1}])", "is not the expected value"},
      {R"([{"op":"remove","path":"/status"},{"op":"remove","path":"/nope"}])",
       "operation 1 (remove): '/nope' does not exist"},
      {R"([{"op":"replace","path":"/nope","value":1}])", "'/nope' does not exist"},
      {R"([{"op":"add","path":"/nope/x","value":1}])", "'/nope/x' does not exist"},
      {R"([{"op":"add","path":"/note/7","value":1}])", "array index out of range in '/note/7'"},
      {R"([{"op":"remove","path":"/note/01"}])", "invalid array index"},
      {R"([{"op":"move","from":"/nope","path":"/x"}])", "'/nope' or '/x' does not exist"},
      {R"([{"op":"remove","path":""}])", "the document root cannot be removed"},
  };
  for (const CannotApplyCase& c : cases) ExpectCannotApply(c);
}

// RFC 6902 4.1: an add's target must be in an object or an array. nlohmann's patch only asserts
// that, so without the check a debug build aborts and a release build skips the operation.
TEST(ApplyJsonPatchTest, AddsIntoAValueThatIsNotAContainerCannotBeApplied) {
  const CannotApplyCase cases[] = {
      {R"([{"op":"add","path":"/status/x","value":1}])",
       "operation 0 (add): the parent of '/status/x' is not an object or an array"},
      {R"([{"op":"add","path":"/note/0/text/-","value":"x"}])",
       "the parent of '/note/0/text/-' is not an object or an array"},
      {R"([{"op":"copy","from":"/code","path":"/valueQuantity/value/0"}])",
       "operation 0 (copy): the parent of '/valueQuantity/value/0'"},
      {R"([{"op":"move","from":"/code","path":"/status/code"}])",
       "operation 0 (move): the parent of '/status/code'"},
      {R"([{"op":"add","path":"/x","value":null},{"op":"add","path":"/x/y","value":1}])",
       "operation 1 (add): the parent of '/x/y'"},
  };
  for (const CannotApplyCase& c : cases) ExpectCannotApply(c);
  // A move's target is found after its source is removed: a[0] goes, and the target's parent
  // a[1] is then the former a[2], an object (before the removal a[1] was a string).
  auto moved = Apply(R"([{"op":"move","from":"/a/0","path":"/a/1/x"}])",
                     R"({"resourceType":"Basic","id":"b","a":["s0","s1",{"o":1}]})");
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(*moved, R"({"resourceType":"Basic","id":"b","a":["s1",{"o":1,"x":"s0"}]})");
  auto into_string = Apply(R"([{"op":"move","from":"/a/0","path":"/a/1/x"}])",
                           R"({"resourceType":"Basic","id":"b","a":["s0",{"o":1},"s2"]})");
  ASSERT_FALSE(into_string.ok());
  EXPECT_NE(Diagnostics(into_string.status()).find("the parent of '/a/1/x'"), std::string::npos);
}

TEST(ApplyJsonPatchTest, ServerOwnedMembersCannotChange) {
  const std::pair<std::string_view, std::string_view> cases[] = {
      {R"([{"op":"replace","path":"/id","value":"o2"}])", "Observation.id"},
      {R"([{"op":"remove","path":"/id"}])", "Observation.id"},
      {R"([{"op":"replace","path":"/resourceType","value":"Patient"}])",
       "Observation.resourceType"},
      {R"([{"op":"replace","path":"/meta/versionId","value":"9"}])", "Observation.meta.versionId"},
      {R"([{"op":"remove","path":"/meta"}])", "Observation.meta.versionId"},
      {R"([{"op":"add","path":"/meta/lastUpdated","value":"2000-01-01T00:00:00Z"}])",
       "Observation.meta.lastUpdated"},
      {R"([{"op":"add","path":"","value":{"resourceType":"Observation"}}])", "Observation.id"},
  };
  for (const auto& [patch, expression] : cases) {
    auto out = Apply(patch);
    ASSERT_FALSE(out.ok()) << patch;
    EXPECT_EQ(out.status().code(), StatusCode::kFailedPrecondition) << patch;
    ASSERT_EQ(out.status().details().size(), 1u);
    EXPECT_EQ(out.status().details()[0].issue_code, "business-rule");
    EXPECT_EQ(out.status().details()[0].expression, expression) << patch;
  }
  // Setting them to what they are, and changing the rest of meta, is fine.
  auto same =
      Apply(R"([{"op":"replace","path":"/id","value":"o1"},{"op":"remove","path":"/meta/tag"},)"
            R"({"op":"add","path":"/meta/security","value":[{"code":"R"}]}])");
  ASSERT_TRUE(same.ok()) << same.status().ToString();
  EXPECT_NE(same->find(R"("meta":{"versionId":"3","lastUpdated":"2024-01-01T00:00:00Z",)"
                       R"("security":[{"code":"R"}]})"),
            std::string::npos)
      << *same;
}

TEST(ApplyJsonPatchTest, CopiesCannotGrowTheResourceWithoutBound) {
  // Each pair of copies doubles /a: 40 copies would make 2^20 copies of it.
  std::string patch = "[";
  for (int i = 0; i < 20; ++i) {
    patch +=
        std::string(i ? "," : "") +
        R"({"op":"copy","from":"/note","path":"/b"},{"op":"copy","from":"/b","path":"/note/-"})";
  }
  patch += "]";
  auto out = Apply(patch);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(Diagnostics(out.status()).find("copies more than"), std::string::npos)
      << out.status().ToString();
}

TEST(ApplyJsonPatchTest, ResultDepthIsBounded) {
  // Each move nests the document one level deeper.
  std::string patch = "[";
  for (int i = 0; i < 10; ++i) {
    patch += std::string(i ? "," : "") +
             R"({"op":"add","path":"/w","value":{}},{"op":"move","from":"/code","path":"/w/c"},)"
             R"({"op":"move","from":"/w","path":"/code"})";
  }
  patch += "]";
  auto parsed = ParseJsonPatch(patch, {.max_depth = 8});
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  auto out = ApplyJsonPatch(*parsed, kObservation, {.max_depth = 8});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kFailedPrecondition);
}

TEST(ApplyJsonPatchTest, RefusesAResourceThatIsNotAnObject) {
  auto parsed = ParseJsonPatch("[]", {});
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(ApplyJsonPatch(*parsed, "[1]", {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyJsonPatch(*parsed, "{", {}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kura::fhir
