// Batch/transaction Bundles: intake (structure, limits, per-entry problems), request urls,
// processing order, fullUrl reference rewriting, identity overlap and PATCH entries.
#include "kura/fhir/bundle.h"

#include <gtest/gtest.h>

#include <deque>

#include "kura/fhir/document_test_util.h"

namespace kura::fhir {
namespace {

std::string Diagnostics(const Status& s) {
  return s.details().empty() ? s.message() : s.details()[0].diagnostics;
}
std::string Expression(const Status& s) {
  return s.details().empty() ? "" : s.details()[0].expression;
}

void ReplaceAll(std::string& text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

std::string Transaction(std::string_view entries, std::string_view type = "transaction") {
  return R"({"resourceType":"Bundle","type":")" + std::string(type) + R"(","entry":[)" +
         std::string(entries) + "]}";
}

// Each entry's document is what ParseResourceDocument makes of the entry's text, whether the
// Bundle is compact (values cut out of it), spaced out or holds an escape (values written again).
TEST(ParseBundleTest, ReadsEachResourceAsIntakeWouldInTheSamePass) {
  const std::string compact = Transaction(
      R"({"fullUrl":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a","resource":{"resourceType":)"
      R"("Observation","status":"final","valueQuantity":{"value":98.60,"unit":"F"},"subject":)"
      R"({"reference":"Patient/p1"},"performer":[{"reference":"Patient/p2"}],"x":[],"y":{},)"
      R"("meta":{"tag":[{"code":"t"}],"source":"s"},"contained":[{"resourceType":"Patient",)"
      R"("id":"c"}],"last":1},"request":{"method":"POST","url":"Observation"}},)"
      R"({"resource":{"resourceType":"Patient","name":[{"family":"M)"
      "\xc3\xbc"
      R"(ller"}],"active":true},"request":{"method":"PUT","url":"Patient/p1"}})");
  std::string spaced;
  bool in_string = false;
  for (char c : compact) {
    if (c == '"') in_string = !in_string;
    spaced += c;
    if (!in_string && (c == ',' || c == ':' || c == '{' || c == '[')) spaced += "\n  ";
  }
  std::string escaped = compact;
  ReplaceAll(escaped, R"("unit":"F")", R"("unit":"\u0046")");
  size_t checked = 0;
  for (const std::string* body : std::vector<const std::string*>{&compact, &spaced, &escaped}) {
    auto bundle = ParseBundle(*body, {});
    ASSERT_TRUE(bundle.ok()) << bundle.status().ToString();
    ASSERT_EQ(bundle->entries.size(), 2u);
    for (const BundleEntry& entry : bundle->entries) {
      ASSERT_TRUE(entry.document.has_value()) << entry.index;
      auto alone = ParseResourceDocument(entry.resource, {});
      ASSERT_TRUE(alone.ok()) << alone.status().ToString();
      ExpectSameDocument(*entry.document, *alone);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 6u);
  auto bundle = ParseBundle(compact, {});
  ASSERT_TRUE(bundle.ok());
  const ResourceDocument& observation = *bundle->entries[0].document;
  EXPECT_EQ(observation.Find("valueQuantity")->json, R"({"value":98.60,"unit":"F"})");
  EXPECT_EQ(observation.Find("x")->json, "[]");
  EXPECT_EQ(observation.Find("last")->json, "1");
  ASSERT_EQ(observation.patient_references.size(), 2u);
  EXPECT_EQ(observation.patient_references[1],
            (std::pair<std::string, std::string>{"performer", "Patient/p2"}));
}

// A resource intake refuses leaves its entry without a document (the entry's text, read again on
// its own, says why); the Bundle and the other entries are read as usual.
TEST(ParseBundleTest, AResourceIntakeRefusesHasNoDocument) {
  const std::string body =
      Transaction(R"({"resource":{"resourceType":"Patient","active":true,"active":false},)"
                  R"("request":{"method":"POST","url":"Patient"}},)"
                  R"({"resource":{"resourceType":"Patient","active":true},)"
                  R"("request":{"method":"POST","url":"Patient"}},)"
                  R"({"resource":[1],"request":{"method":"POST","url":"Patient"}})");
  auto bundle = ParseBundle(body, {});
  ASSERT_TRUE(bundle.ok()) << bundle.status().ToString();
  ASSERT_EQ(bundle->entries.size(), 3u);
  EXPECT_FALSE(bundle->entries[0].document.has_value());
  auto alone = ParseResourceDocument(bundle->entries[0].resource, {});
  ASSERT_FALSE(alone.ok());
  EXPECT_NE(Diagnostics(alone.status()).find("duplicate JSON key"), std::string::npos);
  ASSERT_TRUE(bundle->entries[1].document.has_value());
  EXPECT_EQ(bundle->entries[1].document->Find("active")->json, "true");
  EXPECT_FALSE(bundle->entries[2].document.has_value());
}

TEST(ParseBundleTest, KeepsRequestsFullUrlsAndResourcesAsSent) {
  auto bundle = ParseBundle(
      R"({"resourceType":"Bundle","id":"x","meta":{"tag":[]},"type":"transaction","entry":[
        {"fullUrl":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
         "resource":{"resourceType":"Patient","name":[{"family":"Z"}],"weight":72.50},
         "request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=x"}},
        {"request":{"method":"PUT","url":"Observation/o1","ifMatch":"W/\"2\""},
         "resource":{"resourceType":"Observation","id":"o1",
                     "subject":{"reference":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"},
                     "code":{"coding":[{"system":"http://loinc.org","code":"1"}]}}},
        {"request":{"method":"GET","url":"Patient/p1/_history/3"}},
        {"request":{"method":"DELETE","url":"/Patient?identifier=a|b"}}]})",
      {});
  ASSERT_TRUE(bundle.ok()) << bundle.status().ToString();
  EXPECT_EQ(bundle->type, BundleType::kTransaction);
  ASSERT_EQ(bundle->entries.size(), 4u);

  const BundleEntry& post = bundle->entries[0];
  EXPECT_TRUE(post.problem.ok()) << post.problem.ToString();
  EXPECT_EQ(post.index, 0u);
  EXPECT_EQ(post.method, EntryMethod::kPost);
  EXPECT_EQ(post.full_url, "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a");
  EXPECT_EQ(post.target.kind, EntryTarget::Kind::kType);
  EXPECT_EQ(post.target.type, "Patient");
  EXPECT_EQ(post.if_none_exist, "identifier=x");
  EXPECT_EQ(post.resource, R"({"resourceType":"Patient","name":[{"family":"Z"}],"weight":72.50})");
  EXPECT_EQ(post.resource_type, "Patient");
  EXPECT_TRUE(post.links.empty());

  const BundleEntry& put = bundle->entries[1];
  EXPECT_TRUE(put.problem.ok()) << put.problem.ToString();
  EXPECT_EQ(put.method, EntryMethod::kPut);
  EXPECT_FALSE(put.full_url.has_value());
  EXPECT_EQ(put.target.kind, EntryTarget::Kind::kInstance);
  EXPECT_EQ(put.target.id, "o1");
  EXPECT_EQ(put.if_match, "W/\"2\"");
  ASSERT_EQ(put.links.size(), 2u);
  auto token = [&](const LinkString& l) { return put.resource.substr(l.offset, l.size); };
  EXPECT_EQ(token(put.links[0]), R"("urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a")");
  EXPECT_TRUE(put.links[0].reference);
  EXPECT_EQ(token(put.links[1]), R"("http://loinc.org")");
  EXPECT_FALSE(put.links[1].reference);

  const BundleEntry& get = bundle->entries[2];
  EXPECT_TRUE(get.problem.ok());
  EXPECT_EQ(get.target.kind, EntryTarget::Kind::kVersion);
  EXPECT_EQ(get.target.version, 3);
  EXPECT_TRUE(get.resource.empty());

  const BundleEntry& del = bundle->entries[3];
  EXPECT_TRUE(del.problem.ok()) << del.problem.ToString();
  EXPECT_EQ(del.target.kind, EntryTarget::Kind::kType);
  EXPECT_EQ(del.target.query, "identifier=a|b");
}

TEST(ParseBundleTest, RefusesWhatIsNotABatchOrTransaction) {
  struct Case {
    std::string body;
    std::string_view why;
  };
  const Case cases[] = {
      {"", "empty"},
      {"[]", "must be a JSON object"},
      {R"({"resourceType":"Bundle","type":"transaction","entry":[})", "malformed JSON"},
      {R"({"resourceType":"Bundle","type":"transaction"} x)", "malformed JSON"},
      // The reader reads a NUL-terminated copy: a NUL in the body must not end it early.
      {std::string("{\"resourceType\":\"Bundle\",\"type\":\"batch\"}\0{}", 43),
       "unexpected data after the Bundle (byte 40)"},
      {std::string("{\"resourceType\":\"Bundle\",\"type\":\"ba\0tch\"}", 41), "malformed JSON"},
      {R"({"type":"transaction"})", "resourceType is missing"},
      {R"({"resourceType":"Patient","type":"transaction"})", "only a Bundle"},
      {R"({"resourceType":"Bundle"})", "Bundle.type is missing"},
      {R"({"resourceType":"Bundle","type":"collection"})", "must be batch or transaction"},
      {R"({"resourceType":"Bundle","type":"batch","entry":{}})", "Bundle.entry must be an array"},
      {R"({"resourceType":"Bundle","type":"batch","entry":3})", "Bundle.entry must be an array"},
      {R"({"resourceType":"Bundle","type":"batch","type":"batch"})", "duplicate JSON key"},
      {Transaction(R"({"request":{"method":"GET","method":"GET","url":"Patient/1"}})"),
       "duplicate JSON key"},
      {"{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"x\":\"\xc3\"}", "UTF-8"},
      // Inside an entry's resource too: entries are parsed again without checking UTF-8.
      {Transaction("{\"resource\":{\"resourceType\":\"Patient\",\"gender\":\"\xed\xa0\x80\"},"
                   "\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}}"),
       "UTF-8"},
      // An escaped lone surrogate in the Bundle's own strings and keys.
      {Transaction(R"({"fullUrl":"urn:uuid:\udead","request":{"method":"GET","url":"Patient/1"}})"),
       "lone UTF-16 surrogate"},
      {Transaction(R"({"request":{"method":"GET","url":"Patient/1","\udc00":1}})"),
       "lone UTF-16 surrogate"},
  };
  for (const Case& c : cases) {
    auto bundle = ParseBundle(c.body, {});
    ASSERT_FALSE(bundle.ok()) << c.body;
    EXPECT_EQ(bundle.status().code(), StatusCode::kInvalidArgument) << c.body;
    EXPECT_NE(Diagnostics(bundle.status()).find(c.why), std::string::npos)
        << c.body << " -> " << Diagnostics(bundle.status());
  }
  auto empty = ParseBundle(R"({"resourceType":"Bundle","type":"batch"})", {});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->type, BundleType::kBatch);
  EXPECT_TRUE(empty->entries.empty());
}

TEST(ParseBundleTest, EntryLimit) {
  auto entries = [](size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) {
      out += std::string(i ? "," : "") + R"({"request":{"method":"GET","url":"Patient/1"}})";
    }
    return Transaction(out, "batch");
  };
  const std::string five = entries(5);
  const std::string six = entries(6);
  auto at_limit = ParseBundle(five, {.max_depth = 64, .max_entries = 5, .base = ""});
  ASSERT_TRUE(at_limit.ok()) << at_limit.status().ToString();
  EXPECT_EQ(at_limit->entries.size(), 5u);
  auto over = ParseBundle(six, {.max_depth = 64, .max_entries = 5, .base = ""});
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(over.status().details()[0].issue_code, "too-long");
  EXPECT_EQ(Expression(over.status()), "Bundle.entry");
}

TEST(ParseBundleTest, ResourceDepthIsThatOfAResource) {
  auto nested = [](size_t levels) {  // The resource object plus `levels - 1` nested arrays.
    std::string v = R"({"resourceType":"Basic","x":)";
    for (size_t i = 1; i < levels; ++i) v += "[";
    for (size_t i = 1; i < levels; ++i) v += "]";
    return Transaction(R"({"request":{"method":"POST","url":"Basic"},"resource":)" + v + "}}");
  };
  const std::string eight = nested(8);
  const std::string nine = nested(9);
  EXPECT_TRUE(ParseBundle(eight, {.max_depth = 8, .max_entries = 1000, .base = ""}).ok());
  auto deep = ParseBundle(nine, {.max_depth = 8, .max_entries = 1000, .base = ""});
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(Diagnostics(deep.status()).find("deeper than the limit"), std::string::npos);
}

TEST(ParseBundleTest, EntryProblemsAreRecordedPerEntry) {
  struct Case {
    std::string entry;
    std::string_view expression;
    std::string_view why;
  };
  const Case cases[] = {
      {"3", "Bundle.entry[1]", "must be a JSON object"},
      {"[]", "Bundle.entry[1]", "must be a JSON object"},
      {R"({"resource":{"resourceType":"Basic"}})", "Bundle.entry[1].request", "needs a request"},
      {R"({"request":"GET Patient/1"})", "Bundle.entry[1].request", "must be an object"},
      {R"({"request":{"url":"Patient/1"}})", "Bundle.entry[1].request.method", "missing"},
      {R"({"request":{"method":"get","url":"Patient/1"}})", "Bundle.entry[1].request.method",
       "must be GET, HEAD, POST, PUT, PATCH or DELETE"},
      {R"({"request":{"method":"GET"}})", "Bundle.entry[1].request.url", "missing"},
      {R"({"request":{"method":"GET","url":7}})", "Bundle.entry[1].request.url", "missing"},
      {R"({"request":{"method":"GET","url":"https://elsewhere.example/Patient/1"}})",
       "Bundle.entry[1].request.url", "relative"},
      {R"({"request":{"method":"GET","url":"Patient//1"}})", "Bundle.entry[1].request.url",
       "empty path segment"},
      {R"({"request":{"method":"POST","url":"Patient/1"},"resource":{"resourceType":"Patient"}})",
       "Bundle.entry[1].request.url", "is a resource type"},
      {R"({"request":{"method":"PUT","url":"Patient"},"resource":{"resourceType":"Patient"}})",
       "Bundle.entry[1].request.url", "'Type/id' or a conditional 'Type?query'"},
      {R"({"request":{"method":"DELETE","url":"Patient/1/_history/2"}})",
       "Bundle.entry[1].request.url", "'Type/id' or a conditional"},
      {R"({"request":{"method":"POST","url":"Patient"}})", "Bundle.entry[1].resource",
       "needs a resource"},
      {R"({"request":{"method":"PUT","url":"Patient/1"},"resource":[1]})",
       "Bundle.entry[1].resource", "must be a JSON object"},
      {R"({"fullUrl":1,"request":{"method":"GET","url":"Patient/1"}})", "Bundle.entry[1].fullUrl",
       "must be a string"},
      {R"({"request":{"method":"PUT","url":"Patient/1","ifMatch":2},"resource":{}})",
       "Bundle.entry[1].request", "must be strings"},
      {R"({"request":{"method":"GET","url":"Patient/1","ifNoneMatch":["*"]}})",
       "Bundle.entry[1].request", "must be strings"},
      {R"({"request":{"method":{"m":"GET"},"url":"Patient/1"}})", "Bundle.entry[1].request.method",
       "not a string"},
      {R"({"request":{"method":"GET","url":["Patient/1"]}})", "Bundle.entry[1].request.url",
       "not a string"},
      {R"({"request":{"method":"GET","url":"Patient/1","ifModifiedSince":"2020-01-01"}})",
       "Bundle.entry[1].request.ifModifiedSince", "must be a FHIR instant"},
      {R"({"request":{"method":"GET","url":"Patient/1","ifModifiedSince":"2020-01-01T25:00:00Z"}})",
       "Bundle.entry[1].request.ifModifiedSince", "must be a FHIR instant"},
  };
  for (const Case& c : cases) {
    std::string body = Transaction(R"({"request":{"method":"GET","url":"Patient/0"}},)" + c.entry +
                                   R"(,{"request":{"method":"GET","url":"Patient/2"}})");
    auto bundle = ParseBundle(body, {});
    ASSERT_TRUE(bundle.ok()) << c.entry << " -> " << bundle.status().ToString();
    ASSERT_EQ(bundle->entries.size(), 3u) << c.entry;
    EXPECT_TRUE(bundle->entries[0].problem.ok());
    EXPECT_TRUE(bundle->entries[2].problem.ok()) << c.entry;
    const Status& problem = bundle->entries[1].problem;
    ASSERT_FALSE(problem.ok()) << c.entry;
    EXPECT_EQ(problem.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(Expression(problem), c.expression) << c.entry;
    EXPECT_NE(Diagnostics(problem).find(c.why), std::string::npos)
        << c.entry << " -> " << Diagnostics(problem);
  }
}

TEST(ParseBundleTest, KeepsConditionalReadConditions) {
  const std::string body =
      Transaction(R"({"request":{"method":"GET","url":"Patient/1","ifNoneMatch":"W/\"3\"",
                                 "ifModifiedSince":"2024-05-06T07:08:09.123+02:00"}},
                     {"request":{"method":"GET","url":"Patient/2"}})",
                  "batch");
  auto bundle = ParseBundle(body, {});
  ASSERT_TRUE(bundle.ok()) << bundle.status().ToString();
  const BundleEntry& e = bundle->entries[0];
  ASSERT_TRUE(e.problem.ok()) << e.problem.ToString();
  EXPECT_EQ(e.if_none_match, "W/\"3\"");
  EXPECT_EQ(e.if_modified_since, ParseInstant("2024-05-06T05:08:09.123Z"));
  EXPECT_FALSE(bundle->entries[1].if_none_match.has_value());
  EXPECT_FALSE(bundle->entries[1].if_modified_since.has_value());
}

TEST(ParseEntryUrlTest, SplitsRelativeUrls) {
  const std::string base = "https://kura.test/fhir/R4";
  struct Case {
    std::string_view url;
    EntryTarget::Kind kind;
    std::string_view type, id;
    int64_t version;
    std::optional<std::string> query;
  };
  using K = EntryTarget::Kind;
  const Case cases[] = {
      {"Patient", K::kType, "Patient", "", 0, std::nullopt},
      {"/Patient", K::kType, "Patient", "", 0, std::nullopt},
      {"Patient?", K::kType, "Patient", "", 0, ""},
      {"Patient?name=a&_count=1", K::kType, "Patient", "", 0, "name=a&_count=1"},
      {"Patient/p-1.a", K::kInstance, "Patient", "p-1.a", 0, std::nullopt},
      {"https://kura.test/fhir/R4/Patient/7", K::kInstance, "Patient", "7", 0, std::nullopt},
      {"Patient/7/_history/12", K::kVersion, "Patient", "7", 12, std::nullopt},
      {"Patient/7/_history", K::kOther, "Patient", "", 0, std::nullopt},
      {"Patient/$everything", K::kOther, "Patient", "", 0, std::nullopt},
      {"Patient/_search", K::kOther, "Patient", "", 0, std::nullopt},
      {"_history", K::kOther, "_history", "", 0, std::nullopt},
      {"$export", K::kOther, "$export", "", 0, std::nullopt},
      {"a/b/c", K::kOther, "a", "", 0, std::nullopt},
  };
  for (const Case& c : cases) {
    auto t = ParseEntryUrl(c.url, base);
    ASSERT_TRUE(t.ok()) << c.url << " " << t.status().ToString();
    EXPECT_EQ(t->kind, c.kind) << c.url;
    EXPECT_EQ(t->type, c.type) << c.url;
    EXPECT_EQ(t->id, c.id) << c.url;
    EXPECT_EQ(t->version, c.version) << c.url;
    EXPECT_EQ(t->query, c.query) << c.url;
  }
  for (std::string_view bad :
       {"", "/", "?x=1", "Patient//1", "Patient/1/_history/0", "Patient/1/_history/x",
        "Patient/1/_history/99999999999999999999", "http://other.example/fhir/Patient/1",
        "https://kura.test/fhir/R4x/Patient"}) {
    EXPECT_FALSE(ParseEntryUrl(bad, base).ok()) << bad;
  }
}

TEST(ProcessingOrderTest, DeletesThenCreatesThenUpdatesThenReads) {
  const std::string bundle_body = Transaction(R"(
      {"request":{"method":"GET","url":"Patient/1"}},
      {"request":{"method":"PUT","url":"Patient/2"},"resource":{}},
      {"request":{"method":"POST","url":"Patient"},"resource":{}},
      {"request":{"method":"bogus","url":"Patient"}},
      {"request":{"method":"DELETE","url":"Patient/3"}},
      {"request":{"method":"PATCH","url":"Patient/4"},"resource":{}},
      {"request":{"method":"HEAD","url":"Patient/5"}},
      {"request":{"method":"DELETE","url":"Patient/6"}},
      {"request":{"method":"POST","url":"Patient"},"resource":{}})");
  auto bundle = ParseBundle(bundle_body, {});
  ASSERT_TRUE(bundle.ok()) << bundle.status().ToString();
  EXPECT_EQ(ProcessingOrder(*bundle), (std::vector<size_t>{4, 7, 2, 8, 1, 5, 0, 6, 3}));
}

TEST(EntryStatusTest, ExpressionsBecomeRelativeToTheBundle) {
  Status s = InvalidArgumentError("bad")
                 .WithDetail({"value", "one", "Observation.subject.reference"})
                 .WithDetail({"required", "two", "Observation"})
                 .WithDetail({"structure", "three", "resourceType"})
                 .WithDetail({"invalid", "four", ""})
                 .WithDetail({"invalid", "five", "Bundle.entry[3].fullUrl"});
  Status e = EntryStatus(s, 3, "request.url");
  EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e.message(), "bad");
  ASSERT_EQ(e.details().size(), 5u);
  EXPECT_EQ(e.details()[0].expression, "Bundle.entry[3].resource.subject.reference");
  EXPECT_EQ(e.details()[0].issue_code, "value");
  EXPECT_EQ(e.details()[0].diagnostics, "one");
  EXPECT_EQ(e.details()[1].expression, "Bundle.entry[3].resource");
  EXPECT_EQ(e.details()[2].expression, "Bundle.entry[3].resource.resourceType");
  EXPECT_EQ(e.details()[3].expression, "Bundle.entry[3].request.url");
  EXPECT_EQ(e.details()[4].expression, "Bundle.entry[3].fullUrl");

  Status bare = EntryStatus(NotFoundError("no such resource"), 12);
  ASSERT_EQ(bare.details().size(), 1u);
  EXPECT_EQ(bare.code(), StatusCode::kNotFound);
  EXPECT_EQ(bare.details()[0].expression, "Bundle.entry[12]");
  EXPECT_EQ(bare.details()[0].diagnostics, "no such resource");
}

TEST(FullUrlIndexTest, RewritesEveryStringNamingAnEntry) {
  const std::string bundle_body = Transaction(R"(
      {"fullUrl":"urn:uuid:aaaa","request":{"method":"POST","url":"Patient"},
       "resource":{"resourceType":"Patient"}},
      {"fullUrl":"http://example.org/fhir/Practitioner/x","request":{"method":"PUT",
       "url":"Practitioner/pr1"},"resource":{"resourceType":"Practitioner","id":"pr1"}},
      {"request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation",
       "subject":{"reference":"urn:uuid:aaaa"},
       "performer":[{"reference":"http://example.org/fhir/Practitioner/x"},
                    {"reference":"Practitioner/other"}],
       "focus":[{"reference":"urn:uuid:aaaa"}],
       "code":{"coding":[{"system":"urn:oid:2.16.840.1.113883.6.1","code":"x"},
                         {"system":"urn:uuid:aaaa","code":"odd but equal to a fullUrl"}]},
       "note":[{"text":"urn:uuid:aaaa mentioned in text"}]}})");
  auto bundle = ParseBundle(bundle_body, {});
  ASSERT_TRUE(bundle.ok()) << bundle.status().ToString();
  FullUrlIndex index;
  EXPECT_TRUE(index.empty());
  EXPECT_TRUE(index.Add("urn:uuid:aaaa", "Patient", "new-id"));
  EXPECT_TRUE(index.Add("http://example.org/fhir/Practitioner/x", "Practitioner", "pr1"));
  EXPECT_FALSE(index.Add("urn:uuid:aaaa", "Patient", "other"));
  auto out = index.Rewrite(bundle->entries[2]);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_TRUE(out->has_value());
  // The text as sent (whitespace included), each token naming an entry replaced.
  std::string expected(bundle->entries[2].resource);
  ReplaceAll(expected, R"("urn:uuid:aaaa")", R"("Patient/new-id")");
  ReplaceAll(expected, R"("http://example.org/fhir/Practitioner/x")", R"("Practitioner/pr1")");
  EXPECT_EQ(**out, expected);
  EXPECT_NE((*out)->find(R"("system":"Patient/new-id")"), std::string::npos) << **out;
  EXPECT_NE((*out)->find(R"("urn:oid:2.16.840.1.113883.6.1")"), std::string::npos) << **out;
  EXPECT_NE((*out)->find(R"("urn:uuid:aaaa mentioned in text")"), std::string::npos) << **out;
  EXPECT_EQ((*out)->find(R"("urn:uuid:aaaa")"), std::string::npos) << **out;
  EXPECT_EQ((*out)->find("http://example.org"), std::string::npos) << **out;
  // Nothing to rewrite: the text stands as sent.
  auto same = index.Rewrite(bundle->entries[0]);
  ASSERT_TRUE(same.ok());
  EXPECT_FALSE(same->has_value());
}

TEST(FullUrlIndexTest, EscapedFullUrlsMatch) {
  const std::string bundle_body = Transaction(R"(
      {"request":{"method":"POST","url":"Basic"},"resource":{"resourceType":"Basic",
       "subject":{"reference":"urn:uuid:\u0061b"},"author":{"reference":"http:\/\/x.org\/a"}}})");
  auto bundle = ParseBundle(bundle_body, {});
  ASSERT_TRUE(bundle.ok()) << bundle.status().ToString();
  FullUrlIndex index;
  index.Add("urn:uuid:ab", "Patient", "p");
  index.Add("http://x.org/a", "Practitioner", "q");
  auto out = index.Rewrite(bundle->entries[0]);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_TRUE(out->has_value());
  std::string expected(bundle->entries[0].resource);
  ReplaceAll(expected, R"("urn:uuid:\u0061b")", R"("Patient/p")");
  ReplaceAll(expected, R"("http:\/\/x.org\/a")", R"("Practitioner/q")");
  EXPECT_EQ(**out, expected);
  EXPECT_EQ((*out)->find("urn:uuid"), std::string::npos) << **out;
  const BundleEntry& e = bundle->entries[0];
  ASSERT_EQ(e.links.size(), 2u);
  EXPECT_TRUE(e.links[0].escaped);
  EXPECT_EQ(LinkValue(e, e.links[0]), "urn:uuid:ab");
  EXPECT_EQ(LinkValue(e, e.links[1]), "http://x.org/a");
}

TEST(FullUrlIndexTest, TokensWithEscapedQuotesAndBackslashes) {
  const std::string body = Transaction(R"(
      {"request":{"method":"POST","url":"Basic"},"resource":{"resourceType":"Basic",
       "a":{"reference":"x\"y"},"b":{"reference":"urn:uuid:q\\"},
       "c" : { "reference" :  "urn:uuid:\"\\\"" }, "d":"http\\"}})");
  auto bundle = ParseBundle(body, {});
  ASSERT_TRUE(bundle.ok()) << bundle.status().ToString();
  const BundleEntry& e = bundle->entries[0];
  ASSERT_EQ(e.links.size(), 4u);
  auto token = [&](size_t i) { return e.resource.substr(e.links[i].offset, e.links[i].size); };
  EXPECT_EQ(token(0), R"("x\"y")");
  EXPECT_EQ(token(1), R"("urn:uuid:q\\")");
  EXPECT_EQ(token(2), R"("urn:uuid:\"\\\"")");
  EXPECT_EQ(token(3), R"("http\\")");
  EXPECT_EQ(LinkValue(e, e.links[0]), "x\"y");
  EXPECT_EQ(LinkValue(e, e.links[1]), "urn:uuid:q\\");
  EXPECT_EQ(LinkValue(e, e.links[2]), "urn:uuid:\"\\\"");
  FullUrlIndex index;
  index.Add("urn:uuid:q\\", "Patient", "p");
  index.Add("urn:uuid:\"\\\"", "Patient", "r");
  auto out = index.Rewrite(e);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_TRUE(out->has_value());
  EXPECT_NE((*out)->find(R"("b":{"reference":"Patient/p"})"), std::string::npos) << **out;
  EXPECT_NE((*out)->find(R"("c" : { "reference" :  "Patient/r" })"), std::string::npos) << **out;
}

TEST(FullUrlIndexTest, DanglingUrnReferenceIsAnError) {
  const std::string bundle_body = Transaction(R"(
      {"request":{"method":"POST","url":"Basic"},"resource":{"resourceType":"Basic"}},
      {"request":{"method":"POST","url":"Basic"},"resource":{"resourceType":"Basic",
       "subject":{"reference":"urn:uuid:nowhere"}}},
      {"request":{"method":"POST","url":"Basic"},"resource":{"resourceType":"Basic",
       "author":{"reference":"urn:oid:1.2.3"}}})");
  auto bundle = ParseBundle(bundle_body, {});
  ASSERT_TRUE(bundle.ok()) << bundle.status().ToString();
  FullUrlIndex index;  // Empty: every urn: reference dangles.
  auto out = index.Rewrite(bundle->entries[1]);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Expression(out.status()), "Bundle.entry[1].resource");
  EXPECT_NE(Diagnostics(out.status()).find("urn:uuid:nowhere"), std::string::npos);
  EXPECT_FALSE(index.Rewrite(bundle->entries[2]).ok());
  EXPECT_TRUE(index.Rewrite(bundle->entries[0]).ok());
}

TEST(CheckDistinctTargetsTest, RefusesTwoWritesOfOneResourceAndSharedFullUrls) {
  const std::string bundle_body = Transaction(R"(
      {"fullUrl":"urn:uuid:1","request":{"method":"PUT","url":"Patient/a"},"resource":{}},
      {"fullUrl":"urn:uuid:2","request":{"method":"GET","url":"Patient/a"}},
      {"request":{"method":"DELETE","url":"Patient/a"}})");
  auto bundle = ParseBundle(bundle_body, {});
  ASSERT_TRUE(bundle.ok()) << bundle.status().ToString();
  std::vector<std::string> targets = {"Patient/a", "", "Patient/a"};
  Status s = CheckDistinctTargets(*bundle, targets);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Expression(s), "Bundle.entry[2]");
  EXPECT_NE(Diagnostics(s).find("entries 0 and 2 both write Patient/a"), std::string::npos);
  targets[2] = "Patient/b";
  EXPECT_TRUE(CheckDistinctTargets(*bundle, targets).ok());

  const std::string shared_body = Transaction(R"(
      {"fullUrl":"urn:uuid:1","request":{"method":"POST","url":"Patient"},"resource":{}},
      {"fullUrl":"urn:uuid:1","request":{"method":"POST","url":"Patient"},"resource":{}})");
  auto shared = ParseBundle(shared_body, {});
  ASSERT_TRUE(shared.ok());
  Status dup = CheckDistinctTargets(*shared, std::vector<std::string>{"Patient/x", "Patient/y"});
  EXPECT_EQ(Expression(dup), "Bundle.entry[1].fullUrl");
}

TEST(JsonPatchOfEntryTest, ReadsABinaryAndRefusesFhirPathPatch) {
  // base64 of [{"op":"remove","path":"/a"}]
  const std::string data = "W3sib3AiOiJyZW1vdmUiLCJwYXRoIjoiL2EifV0=";
  std::deque<std::string> bodies;  // The entries' resources are views into their bodies.
  auto entry_with = [&bodies](std::string resource) {
    const std::string& body = bodies.emplace_back(Transaction(
        R"({"request":{"method":"PATCH","url":"Patient/1"},"resource":)" + resource + "}"));
    auto bundle = ParseBundle(body, {});
    EXPECT_TRUE(bundle.ok()) << bundle.status().ToString();
    return bundle->entries[0];
  };

  auto ok = JsonPatchOfEntry(entry_with(
      R"({"resourceType":"Binary","contentType":"application/json-patch+json; charset=utf-8",)"
      R"("data":")" +
      data + R"("})"));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, R"([{"op":"remove","path":"/a"}])");
  // Whitespace and missing padding are tolerated.
  auto loose = JsonPatchOfEntry(entry_with(
      R"({"resourceType":"Binary","contentType":"application/json-patch+json","data":"W3sib3Ai)"
      R"(OiJyZW1vdmUiLCJwYXRoIjoiL2EifV0"})"));
  ASSERT_TRUE(loose.ok()) << loose.status().ToString();
  EXPECT_EQ(*loose, *ok);

  auto fhirpath = JsonPatchOfEntry(
      entry_with(R"({"resourceType":"Parameters","parameter":[{"name":"operation"}]})"));
  EXPECT_EQ(fhirpath.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(Diagnostics(fhirpath.status()).find("FHIRPath Patch"), std::string::npos);

  auto other = JsonPatchOfEntry(entry_with(R"({"resourceType":"Patient"})"));
  EXPECT_EQ(other.status().code(), StatusCode::kInvalidArgument);
  auto wrong_type = JsonPatchOfEntry(entry_with(
      R"({"resourceType":"Binary","contentType":"application/json","data":")" + data + R"("})"));
  EXPECT_EQ(Expression(wrong_type.status()), "Binary.contentType");
  auto no_data = JsonPatchOfEntry(
      entry_with(R"({"resourceType":"Binary","contentType":"application/json-patch+json"})"));
  EXPECT_EQ(Expression(no_data.status()), "Binary.data");
  for (std::string_view bad : {"W3sib3A*", "W3s=b3A", "W", "W3sib3A==="}) {
    auto b = JsonPatchOfEntry(entry_with(
        R"({"resourceType":"Binary","contentType":"application/json-patch+json","data":")" +
        std::string(bad) + R"("})"));
    EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(Expression(b.status()), "Binary.data") << bad;
  }
}

}  // namespace
}  // namespace kura::fhir
