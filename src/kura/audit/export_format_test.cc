#include "kura/audit/export_format.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kura/audit/checkpoint.h"
#include "kura/audit/test_util.h"
#include "kura/base/random.h"

namespace kura::audit {
namespace {

constexpr char kSeed[] = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
constexpr char kOrigin[] = "kura.test/audit";

// 2023-11-14T22:13:20.123456Z
constexpr int64_t kTime = 1700000000123456;

AuditRecord FullRecord() {
  AuditRecord r;
  r.sequence = 17;
  r.time_us = kTime;
  r.category = "fhir";
  r.action = "read";
  r.actor = {"account", "acct-1", "clinician", "tenant-1", "app-42"};
  r.source_address = "192.0.2.7";
  r.request_id = "req-1";
  r.patient_compartments = {"pat-b", "pat-a", "pat-b"};
  r.resource_type = "Observation";
  r.resource_id = "obs-1";
  r.resource_version = "2";
  r.details = {{"http.status", "200"}, {"bundle.index", "3"}};
  return r;
}

AuditRecord MinimalRecord() {
  AuditRecord r;
  r.sequence = 0;
  r.time_us = kTime;
  r.category = "auth";
  r.action = "login";
  return r;
}

SyslogFormatOptions Options() {
  SyslogFormatOptions o;
  o.hostname = "kura.example.org";
  o.procid = "4242";
  o.cef.product_version = "1.2.3";
  return o;
}

std::string SignedNote() {
  auto signer = testing::SignerFromSeedHex(kSeed);
  AuditChain chain;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(chain.Append(testing::SampleRecord(i)).ok());
  auto note = SignCheckpoint(CheckpointOf(chain.head(), kOrigin, FromMicros(kTime)), signer);
  EXPECT_TRUE(note.ok()) << note.status().ToString();
  return *note;
}

// The part of a syslog message after the HEADER and before MSG.
std::string StructuredData(const std::string& message) {
  size_t open = message.find(" [");
  size_t close = message.rfind("] ");
  if (open == std::string::npos || close == std::string::npos) return "";
  return message.substr(open + 1, close - open);
}

TEST(SyslogFormatTest, FullRecordLayout) {
  EXPECT_EQ(FormatSyslog5424(FullRecord(), Options()),
            "<86>1 2023-11-14T22:13:20.123456Z kura.example.org kura 4242 fhir.read "
            "[kura@32473 seq=\"17\" category=\"fhir\" action=\"read\" outcome=\"success\" "
            "actor_kind=\"account\" actor_id=\"acct-1\" actor_role=\"clinician\" "
            "tenant=\"tenant-1\" client_id=\"app-42\" src=\"192.0.2.7\" request_id=\"req-1\" "
            "resource_type=\"Observation\" resource_id=\"obs-1\" resource_version=\"2\" "
            "patients=\"pat-a,pat-b\" d.bundle.index=\"3\" d.http.status=\"200\"] "
            "fhir read Observation/obs-1 success");
}

TEST(SyslogFormatTest, EmptyFieldsAreLeftOutAndNilValuesUsed) {
  SyslogFormatOptions o;  // No hostname, no procid.
  EXPECT_EQ(FormatSyslog5424(MinimalRecord(), o),
            "<86>1 2023-11-14T22:13:20.123456Z - kura - auth.login "
            "[kura@32473 seq=\"0\" category=\"auth\" action=\"login\" outcome=\"success\"] "
            "auth login success");
}

TEST(SyslogFormatTest, SeverityAndFacility) {
  EXPECT_EQ(SyslogSeverity(Outcome::kSuccess), 6);
  EXPECT_EQ(SyslogSeverity(Outcome::kMinorFailure), 5);
  EXPECT_EQ(SyslogSeverity(Outcome::kSeriousFailure), 4);
  EXPECT_EQ(SyslogSeverity(Outcome::kMajorFailure), 3);
  AuditRecord r = MinimalRecord();
  SyslogFormatOptions o;
  const std::vector<std::pair<Outcome, std::string>> cases = {{Outcome::kSuccess, "<86>"},
                                                              {Outcome::kMinorFailure, "<85>"},
                                                              {Outcome::kSeriousFailure, "<84>"},
                                                              {Outcome::kMajorFailure, "<83>"}};
  for (const auto& [outcome, pri] : cases) {
    r.outcome = outcome;
    EXPECT_EQ(FormatSyslog5424(r, o).substr(0, 4), pri) << OutcomeName(outcome);
  }
  o.facility = kSyslogFacilityLocal0;
  r.outcome = Outcome::kMajorFailure;
  EXPECT_EQ(FormatSyslog5424(r, o).substr(0, 7), "<131>1 ");
  o.facility = 0;
  r.outcome = Outcome::kSuccess;
  EXPECT_EQ(FormatSyslog5424(r, o).substr(0, 5), "<6>1 ");
}

TEST(SyslogFormatTest, FailureSummaryNamesOutcomeAndReason) {
  AuditRecord r = MinimalRecord();
  r.outcome = Outcome::kMinorFailure;
  r.outcome_reason = "bad-password";
  std::string m = FormatSyslog5424(r, Options());
  EXPECT_NE(m.find(" outcome=\"minor-failure\" outcome_reason=\"bad-password\"]"),
            std::string::npos)
      << m;
  EXPECT_TRUE(m.ends_with("] auth login minor-failure bad-password")) << m;
}

TEST(SyslogFormatTest, ParamValueEscaping) {
  AuditRecord r = MinimalRecord();
  r.purpose = "a\"b\\c]d=e[f";
  std::string m = FormatSyslog5424(r, Options());
  EXPECT_NE(m.find(" purpose=\"a\\\"b\\\\c\\]d=e[f\"]"), std::string::npos) << m;

  // Control characters cannot be escaped in RFC 5424 and would split or garble SIEM lines.
  r.purpose = "line1\nline2\r\tend\x7f";
  m = FormatSyslog5424(r, Options());
  EXPECT_NE(m.find(" purpose=\"line1 line2  end \"]"), std::string::npos) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos);

  // UTF-8 passes through; invalid bytes become U+FFFD.
  r.purpose = "J\xc3\xbcrgen \xe2\x80\x94 \xff\xc3";
  m = FormatSyslog5424(r, Options());
  EXPECT_NE(m.find(" purpose=\"J\xc3\xbcrgen \xe2\x80\x94 \xef\xbf\xbd\xef\xbf\xbd\"]"),
            std::string::npos)
      << m;
}

TEST(SyslogFormatTest, DetailKeysBecomeValidParamNames) {
  AuditRecord r = MinimalRecord();
  r.details = {{"a b=c]d\"e", "1"},
               {"\xc3\xbc-key", "2"},
               {"0123456789012345678901234567890123456789", "3"},
               {"empty", ""}};
  std::string sd = StructuredData(FormatSyslog5424(r, Options()));
  EXPECT_EQ(sd,
            "[kura@32473 seq=\"0\" category=\"auth\" action=\"login\" outcome=\"success\" "
            "d.012345678901234567890123456789=\"3\" d.a_b_c_d_e=\"1\" d._-key=\"2\"]");
}

TEST(SyslogFormatTest, HeaderTokensAreSanitized) {
  AuditRecord r = MinimalRecord();
  r.category = "fhir";
  r.action = "$everything";
  SyslogFormatOptions o;
  o.hostname = "host name\n";
  o.app_name = std::string(60, 'a');
  o.procid = "\xc3\xa9t\xc3\xa9";
  std::string m = FormatSyslog5424(r, o);
  EXPECT_TRUE(m.starts_with("<86>1 2023-11-14T22:13:20.123456Z host_name_ " + std::string(48, 'a') +
                            " _t_ fhir.$everything ["))
      << m;
  r.action = "l\xc3\xa9sen-with-a-very-long-action-name";
  m = FormatSyslog5424(r, Options());
  EXPECT_NE(m.find(" 4242 fhir.l_sen-with-a-very-long-acti ["), std::string::npos) << m;
}

TEST(SyslogFormatTest, MsgIsAsciiOrBomPrefixedUtf8) {
  AuditRecord r = MinimalRecord();
  r.resource_type = "kura:Account";
  r.resource_id = "acct-\xc3\xa9";
  std::string m = FormatSyslog5424(r, Options());
  EXPECT_TRUE(
      m.ends_with("] \xef\xbb\xbf"
                  "auth login kura:Account/acct-\xc3\xa9 success"))
      << m;
  r.resource_id = "acct\n1";
  m = FormatSyslog5424(r, Options());
  EXPECT_TRUE(m.ends_with("] auth login kura:Account/acct 1 success")) << m;
}

TEST(SyslogFormatTest, EnterpriseNumberIsConfigurable) {
  SyslogFormatOptions o = Options();
  o.enterprise_number = 99999;
  EXPECT_NE(FormatSyslog5424(MinimalRecord(), o).find(" [kura@99999 seq="), std::string::npos);
}

TEST(SyslogFormatTest, FacilityNamesAndValidation) {
  EXPECT_EQ(*ParseSyslogFacility("authpriv"), 10);
  EXPECT_EQ(*ParseSyslogFacility("audit"), 13);
  EXPECT_EQ(*ParseSyslogFacility("logaudit"), 13);
  EXPECT_EQ(*ParseSyslogFacility("local0"), 16);
  EXPECT_EQ(*ParseSyslogFacility("local7"), 23);
  EXPECT_EQ(*ParseSyslogFacility("0"), 0);
  EXPECT_EQ(*ParseSyslogFacility("23"), 23);
  for (std::string_view bad : {"", "24", "01", "-1", "authPriv", "local8", " 10"}) {
    auto f = ParseSyslogFacility(bad);
    EXPECT_FALSE(f.ok()) << bad;
    EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  SyslogFormatOptions o;
  EXPECT_TRUE(ValidateSyslogFormatOptions(o).ok());
  o.facility = 24;
  EXPECT_EQ(ValidateSyslogFormatOptions(o).code(), StatusCode::kInvalidArgument);
  o.facility = 23;
  o.app_name.clear();
  EXPECT_EQ(ValidateSyslogFormatOptions(o).code(), StatusCode::kInvalidArgument);
}

TEST(CefFormatTest, FullRecordLayout) {
  EXPECT_EQ(FormatCef(FullRecord(), Options().cef),
            "CEF:0|Kura|Kura|1.2.3|fhir.read|fhir read|3|rt=1700000000123 externalId=17 "
            "cn1Label=sequence cn1=17 cat=fhir act=read outcome=success suser=acct-1 "
            "spriv=clinician flexString1Label=actorKind flexString1=account cs5Label=tenant "
            "cs5=tenant-1 cs6Label=clientId cs6=app-42 src=192.0.2.7 cs1Label=requestId "
            "cs1=req-1 cs2Label=resource cs2=Observation/obs-1/_history/2 cs3Label=patients "
            "cs3=pat-a,pat-b msg={\"bundle.index\":\"3\",\"http.status\":\"200\"}");
}

TEST(CefFormatTest, MinimalRecordAndDefaultVersion) {
  std::string line = FormatCef(MinimalRecord(), CefFormatOptions{});
  EXPECT_EQ(line, "CEF:0|Kura|Kura|" KURA_VERSION
                  "|auth.login|auth login|3|rt=1700000000123 externalId=0 cn1Label=sequence "
                  "cn1=0 cat=auth act=login outcome=success");
}

TEST(CefFormatTest, Severity) {
  EXPECT_EQ(CefSeverity(Outcome::kSuccess), 3);
  EXPECT_EQ(CefSeverity(Outcome::kMinorFailure), 5);
  EXPECT_EQ(CefSeverity(Outcome::kSeriousFailure), 7);
  EXPECT_EQ(CefSeverity(Outcome::kMajorFailure), 9);
  AuditRecord r = MinimalRecord();
  r.outcome = Outcome::kSeriousFailure;
  r.outcome_reason = "store-unavailable";
  std::string line = FormatCef(r, Options().cef);
  EXPECT_NE(line.find("|auth login|7|"), std::string::npos) << line;
  EXPECT_NE(line.find(" outcome=serious-failure reason=store-unavailable"), std::string::npos);
}

TEST(CefFormatTest, HeaderEscaping) {
  AuditRecord r = MinimalRecord();
  r.category = "a|b\\c";
  r.action = "x\ny";
  CefFormatOptions o;
  o.product_version = "1|2\\3\r";
  std::string line = FormatCef(r, o);
  EXPECT_TRUE(line.starts_with("CEF:0|Kura|Kura|1\\|2\\\\3 |a\\|b\\\\c.x y|a\\|b\\\\c x y|3|rt="))
      << line;
  // Extension values do not escape the pipe.
  EXPECT_NE(line.find(" cat=a|b\\\\c act=x\\ny"), std::string::npos) << line;
}

TEST(CefFormatTest, ExtensionEscaping) {
  AuditRecord r = MinimalRecord();
  r.purpose = "a=b\\c\nd\re|f\tg \"h\" ]";
  r.details = {{"k=1", "v=2"}};
  std::string line = FormatCef(r, Options().cef);
  EXPECT_NE(line.find(" cs4Label=purpose cs4=a\\=b\\\\c\\nd\\re|f g \"h\" ] msg="),
            std::string::npos)
      << line;
  EXPECT_TRUE(line.ends_with(" msg={\"k\\=1\":\"v\\=2\"}")) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.find('\r'), std::string::npos);
  EXPECT_EQ(line.find('\t'), std::string::npos);

  r.purpose = "\xc3\xa9t\xc3\xa9 \xfe";
  line = FormatCef(r, Options().cef);
  EXPECT_NE(line.find(" cs4=\xc3\xa9t\xc3\xa9 \xef\xbf\xbd msg="), std::string::npos) << line;
}

TEST(CefFormatTest, SourceAddressOnlyWhenAnIpAddress) {
  AuditRecord r = MinimalRecord();
  r.source_address = "2001:db8::1";
  std::string line = FormatCef(r, Options().cef);
  EXPECT_TRUE(line.ends_with(" c6a2Label=Source IPv6 Address c6a2=2001:db8::1")) << line;
  EXPECT_EQ(line.find(" src="), std::string::npos);
  r.source_address = "unix:/run/kura.sock";
  line = FormatCef(r, Options().cef);
  EXPECT_EQ(line.find(" src="), std::string::npos) << line;
  EXPECT_EQ(line.find("c6a2"), std::string::npos) << line;
}

TEST(CefFormatTest, ReceiptTimeFloorsToMilliseconds) {
  AuditRecord r = MinimalRecord();
  r.time_us = -1;
  EXPECT_NE(FormatCef(r, Options().cef).find("|rt=-1 "), std::string::npos);
  r.time_us = 1999;
  EXPECT_NE(FormatCef(r, Options().cef).find("|rt=1 "), std::string::npos);
}

TEST(CefFormatTest, RidesInASyslogEnvelope) {
  SyslogFormatOptions o = Options();
  o.payload = SyslogPayload::kCef;
  AuditRecord r = FullRecord();
  EXPECT_EQ(FormatSyslog5424(r, o),
            "<86>1 2023-11-14T22:13:20.123456Z kura.example.org kura 4242 fhir.read - " +
                FormatCef(r, o.cef));
  r.purpose = "\xc3\xa9";
  EXPECT_EQ(FormatSyslog5424(r, o),
            "<86>1 2023-11-14T22:13:20.123456Z kura.example.org kura 4242 fhir.read - "
            "\xef\xbb\xbf" +
                FormatCef(r, o.cef));
}

TEST(JsonLineTest, RecordLineIsTypedCompactAndStable) {
  std::string line = FormatJsonLine(FullRecord());
  ASSERT_TRUE(line.ends_with("\n"));
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  EXPECT_EQ(line,
            "{\"type\":\"record\",\"sequence\":17,\"time\":\"2023-11-14T22:13:20.123456Z\","
            "\"time_us\":1700000000123456,\"category\":\"fhir\",\"action\":\"read\","
            "\"outcome\":\"success\",\"outcome_code\":0,\"outcome_reason\":\"\","
            "\"actor\":{\"kind\":\"account\",\"id\":\"acct-1\",\"role\":\"clinician\","
            "\"tenant\":\"tenant-1\",\"client_id\":\"app-42\"},\"source_address\":\"192.0.2.7\","
            "\"request_id\":\"req-1\",\"purpose\":\"\",\"patient_compartments\":[\"pat-a\","
            "\"pat-b\"],\"resource\":{\"type\":\"Observation\",\"id\":\"obs-1\",\"version\":\"2\"},"
            "\"details\":{\"bundle.index\":\"3\",\"http.status\":\"200\"}}\n");
}

TEST(JsonLineTest, RecordLineIsLossless) {
  AuditRecord r = FullRecord();
  r.purpose = "line1\nline2 \"q\" \\ ] = | \xc3\xa9";
  std::string line = FormatJsonLine(r);
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  auto parsed = nlohmann::ordered_json::parse(line);
  EXPECT_EQ(parsed["type"], "record");
  parsed.erase("type");
  EXPECT_EQ(parsed, AuditRecordToJson(r));
}

TEST(JsonLineTest, CheckpointLine) {
  EXPECT_EQ(FormatCheckpointJsonLine("origin\n3\n", 3, kTime),
            "{\"type\":\"checkpoint\",\"tree_size\":3,\"time\":\"2023-11-14T22:13:20.123456Z\","
            "\"time_us\":1700000000123456,\"note\":\"origin\\n3\\n\"}\n");
}

TEST(FramingTest, OctetCountingCountsBytes) {
  EXPECT_EQ(FrameOctetCounting("hello"), "5 hello");
  EXPECT_EQ(FrameOctetCounting(""), "0 ");
  EXPECT_EQ(FrameOctetCounting("h\xc3\xa9llo"), "6 h\xc3\xa9llo");
  std::string bom_msg = "\xef\xbb\xbf\xe2\x80\x94";
  EXPECT_EQ(FrameOctetCounting(bom_msg), "6 " + bom_msg);
  std::string big(12345, 'x');
  EXPECT_EQ(FrameOctetCounting(big), "12345 " + big);
}

TEST(CheckpointExportTest, SyslogCarriesTheNoteByteExactly) {
  const std::string note = SignedNote();
  std::string m = FormatCheckpointSyslog5424(note, 3, kTime, Options());
  std::string note_b64 = Base64Encode({reinterpret_cast<const uint8_t*>(note.data()), note.size()});
  EXPECT_EQ(m,
            "<85>1 2023-11-14T22:13:20.123456Z kura.example.org kura 4242 audit.checkpoint "
            "[kuraCheckpoint@32473 tree_size=\"3\" time_us=\"1700000000123456\" note=\"" +
                note_b64 + "\"] audit checkpoint tree_size=3");
  auto extracted = ExtractCheckpointNote(m + "\n");
  ASSERT_TRUE(extracted.ok()) << extracted.status().ToString();
  EXPECT_EQ(*extracted, note);

  auto signer = testing::SignerFromSeedHex(kSeed);
  auto key = CheckpointVerifierKey(kOrigin, signer);
  ASSERT_TRUE(key.ok());
  std::vector<NoteVerifierKey> trusted = {*key};
  auto checkpoint = VerifyCheckpoint(*extracted, kOrigin, trusted);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
  EXPECT_EQ(checkpoint->tree_size, 3u);
}

TEST(CheckpointExportTest, CefCarriesTheNoteByteExactly) {
  const std::string note = SignedNote();
  std::string line = FormatCheckpointCef(note, 3, kTime, Options().cef);
  EXPECT_TRUE(
      line.starts_with("CEF:0|Kura|Kura|1.2.3|audit.checkpoint|audit checkpoint|3|"
                       "rt=1700000000123 cn1Label=treeSize cn1=3 cn2Label=timeMicros "
                       "cn2=1700000000123456 cs1Label=checkpointNote cs1="))
      << line;
  // Base64 padding is an '=' and must be escaped in a CEF value.
  EXPECT_TRUE(line.ends_with("\\=")) << line;
  auto extracted = ExtractCheckpointNote(line);
  ASSERT_TRUE(extracted.ok()) << extracted.status().ToString();
  EXPECT_EQ(*extracted, note);

  SyslogFormatOptions o = Options();
  o.payload = SyslogPayload::kCef;
  std::string m = FormatCheckpointSyslog5424(note, 3, kTime, o);
  EXPECT_EQ(
      m, "<85>1 2023-11-14T22:13:20.123456Z kura.example.org kura 4242 audit.checkpoint - " + line);
  extracted = ExtractCheckpointNote(m);
  ASSERT_TRUE(extracted.ok()) << extracted.status().ToString();
  EXPECT_EQ(*extracted, note);
}

TEST(CheckpointExportTest, JsonLineCarriesTheNoteByteExactly) {
  const std::string note = SignedNote();
  auto extracted = ExtractCheckpointNote(FormatCheckpointJsonLine(note, 3, kTime));
  ASSERT_TRUE(extracted.ok()) << extracted.status().ToString();
  EXPECT_EQ(*extracted, note);
}

std::string NoteBase64(const std::string& note) {
  return Base64Encode({reinterpret_cast<const uint8_t*>(note.data()), note.size()});
}

// Each of `lines` is refused by `extract` as InvalidArgument, and so are lines of neither kind:
// empty, not a message, and an ordinary record in each format.
template <typename Extract>
void ExpectRefused(Extract extract, std::vector<std::string> lines) {
  for (std::string other :
       {std::string(), std::string("hello"), FormatJsonLine(FullRecord()),
        FormatSyslog5424(FullRecord(), Options()), FormatCef(FullRecord(), Options().cef)}) {
    lines.push_back(std::move(other));
  }
  for (const auto& line : lines) {
    auto extracted = extract(line);
    EXPECT_FALSE(extracted.ok()) << line;
    EXPECT_EQ(extracted.status().code(), StatusCode::kInvalidArgument) << line;
  }
}

TEST(CheckpointExportTest, ExtractRejectsWhatIsNoCheckpoint) {
  const std::string note = SignedNote();
  std::string good = FormatCheckpointSyslog5424(note, 3, kTime, Options());
  std::string b64 = NoteBase64(note);
  ExpectRefused(
      ExtractCheckpointNote,
      {
          "{\"type\":\"checkpoint\",\"note\":3}",
          "{not json",
          good.substr(0, good.size() - 30),                         // Truncated.
          "[kuraCheckpoint@32473 tree_size=\"3\"] no note",         // No note.
          "[kuraCheckpoint@32473 note=\"" + b64.substr(1) + "\"]",  // Not base64 of the note.
          "[kuraCheckpoint@32473 note=\"" + b64 + "\" note=\"" + b64 + "\"]",  // Twice.
          "CEF:0|Kura|Kura|1|audit.checkpoint|x|3|cs1Label=other cs1=" + b64,
      });
}

// A prune record carries its step's anchor (detail prune.anchor); every format a receiver may
// store gives the note back byte for byte, syslog with either payload included.
TEST(PruneAnchorExportTest, EveryFormatOfThePruneRecordCarriesTheAnchor) {
  const std::string note = SignedNote();
  AuditRecord prune = FullRecord();
  prune.category = "system";
  prune.action = "prune";
  prune.details.emplace_back(std::string(detail::kPruneAnchor), NoteBase64(note));
  SyslogFormatOptions cef_payload = Options();
  cef_payload.payload = SyslogPayload::kCef;
  const std::vector<std::string> lines = {
      FormatJsonLine(prune),
      FormatSyslog5424(prune, Options()),
      FormatSyslog5424(prune, cef_payload),
      FormatCef(prune, Options().cef),
  };
  for (const std::string& line : lines) {
    auto extracted = ExtractPruneAnchorNote(line);
    ASSERT_TRUE(extracted.ok()) << extracted.status().ToString() << "\n" << line;
    EXPECT_EQ(*extracted, note) << line;
    EXPECT_FALSE(ExtractCheckpointNote(line).ok()) << line;
  }
}

TEST(PruneAnchorExportTest, ExtractRejectsWhatCarriesNoAnchor) {
  const std::string note = SignedNote();
  const std::string b64 = NoteBase64(note);
  ExpectRefused(
      ExtractPruneAnchorNote,
      {
          FormatCheckpointJsonLine(note, 3, kTime),
          FormatCheckpointSyslog5424(note, 3, kTime, Options()),
          FormatCheckpointCef(note, 3, kTime, Options().cef),
          "{\"type\":\"record\",\"details\":{\"prune.anchor\":3}}",
          "{\"type\":\"checkpoint\",\"details\":{\"prune.anchor\":\"" + b64 + "\"}}",
          "{\"type\":\"record\",\"details\":{\"prune.anchor\":\"" + b64.substr(1) + "\"}}",
          "[kura@32473 d.prune.anchor=\"" + b64 + "\" d.prune.anchor=\"" + b64 + "\"]",  // Twice.
          "[kura@32473 d.prune.anchor=\"" + b64,                                         // Cut off.
          "CEF:0|Kura|Kura|1|system.prune|x|3|msg={\"prune.anchor\":1}",
      });
}

}  // namespace
}  // namespace kura::audit
