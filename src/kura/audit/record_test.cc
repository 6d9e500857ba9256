#include "kura/audit/record.h"

#include <gtest/gtest.h>

#include <string>

#include "kura/audit/test_util.h"

namespace kura::audit {
namespace {

using testing::Hex;
using testing::SampleRecord;

AuditRecord Normalized(AuditRecord r) {
  std::sort(r.patient_compartments.begin(), r.patient_compartments.end());
  r.patient_compartments.erase(
      std::unique(r.patient_compartments.begin(), r.patient_compartments.end()),
      r.patient_compartments.end());
  std::sort(r.details.begin(), r.details.end());
  return r;
}

TEST(AuditRecordTest, RoundTripsEveryField) {
  for (uint64_t i = 0; i < 50; ++i) {
    AuditRecord r = SampleRecord(i);
    auto bytes = EncodeAuditRecord(r);
    ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
    EXPECT_EQ(static_cast<uint8_t>((*bytes)[0]), kRecordFormatV1);
    auto back = DecodeAuditRecord(*bytes);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, Normalized(r));
    EXPECT_EQ(*EncodeAuditRecord(*back), *bytes);
  }
}

TEST(AuditRecordTest, NumberingAnEncodingGivesTheEncodingOfTheNumberedRecord) {
  for (uint64_t sequence : {uint64_t{0}, uint64_t{1}, uint64_t{0x0102030405060708}, ~uint64_t{0}}) {
    AuditRecord r = SampleRecord(7);
    auto placeholder = EncodeAuditRecord(r);
    ASSERT_TRUE(placeholder.ok()) << placeholder.status().ToString();
    r.sequence = sequence;
    auto numbered = EncodeAuditRecord(r);
    ASSERT_TRUE(numbered.ok());
    ASSERT_TRUE(SetEncodedSequence(*placeholder, sequence).ok());
    EXPECT_EQ(Hex(*placeholder), Hex(*numbered)) << sequence;
    EXPECT_EQ(DecodeAuditRecord(*placeholder)->sequence, sequence);
  }
}

TEST(AuditRecordTest, NumberingRefusesWhatIsNotAV1Encoding) {
  std::string empty;
  EXPECT_EQ(SetEncodedSequence(empty, 1).code(), StatusCode::kInvalidArgument);
  std::string short_one = std::string(1, static_cast<char>(kRecordFormatV1)) + "1234567";
  EXPECT_EQ(SetEncodedSequence(short_one, 1).code(), StatusCode::kInvalidArgument);
  std::string other_format = std::string(1, '\x02') + std::string(40, '\0');
  EXPECT_EQ(SetEncodedSequence(other_format, 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(other_format, std::string(1, '\x02') + std::string(40, '\0'));
}

TEST(AuditRecordTest, EncodingIsCanonicalRegardlessOfSetOrder) {
  AuditRecord a = SampleRecord(3);
  a.patient_compartments = {"p2", "p1", "p2", "p3"};
  a.details = {{"z", "1"}, {"a", "2"}, {"m", ""}};
  AuditRecord b = a;
  b.patient_compartments = {"p3", "p1", "p2"};
  b.details = {{"m", ""}, {"z", "1"}, {"a", "2"}};
  EXPECT_EQ(*EncodeAuditRecord(a), *EncodeAuditRecord(b));
  auto decoded = DecodeAuditRecord(*EncodeAuditRecord(a));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->patient_compartments, (std::vector<std::string>{"p1", "p2", "p3"}));
  EXPECT_EQ(decoded->details.front().first, "a");
}

// The exact bytes of a minimal record: the worked example in docs/formats/audit-log.md.
TEST(AuditRecordTest, GoldenMinimalEncoding) {
  AuditRecord r;
  r.sequence = 1;
  r.time_us = 1700000000000000;  // 2023-11-14T22:13:20Z
  r.category = "system";
  r.action = "start";
  r.actor.kind = "system";
  r.details = {{"version", "0.1.0"}};
  // clang-format off
  const std::string expected_hex =
      "01"                                         // format v1
      "0000000000000001"                           // sequence 1
      "00060a24181e4000"                           // time_us 1700000000000000
      "00000006" "73797374656d"                    // category "system"
      "00000005" "7374617274"                      // action "start"
      "00"                                         // outcome 0 (success)
      "00000000"                                   // outcome_reason ""
      "00000006" "73797374656d"                    // actor.kind "system"
      "00000000" "00000000" "00000000" "00000000"  // actor id, role, tenant, client_id
      "00000000" "00000000" "00000000"             // source_address, request_id, purpose
      "00000000"                                   // 0 compartments
      "00000000" "00000000" "00000000"             // resource type, id, version
      "00000001"                                   // 1 detail
      "00000007" "76657273696f6e"                  //   key "version"
      "00000005" "302e312e30";                     //   value "0.1.0"
  // clang-format on
  auto bytes = EncodeAuditRecord(r);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(Hex(*bytes), expected_hex);
}

TEST(AuditRecordTest, EncodeRejectsInvalidRecords) {
  auto rejects = [](const AuditRecord& r) {
    return EncodeAuditRecord(r).status().code() == StatusCode::kInvalidArgument;
  };
  AuditRecord base = SampleRecord(1);
  ASSERT_TRUE(EncodeAuditRecord(base).ok());
  AuditRecord r = base;
  r.category.clear();
  EXPECT_TRUE(rejects(r));
  r = base;
  r.action.clear();
  EXPECT_TRUE(rejects(r));
  r = base;
  r.actor.id = "\xff\xfe";
  EXPECT_TRUE(rejects(r));
  r = base;
  r.purpose = "\xc0\xaf";  // Overlong '/'.
  EXPECT_TRUE(rejects(r));
  r = base;
  r.purpose = std::string(kMaxFieldBytes + 1, 'x');
  EXPECT_TRUE(rejects(r));
  r = base;
  r.details.push_back({"http.status", "500"});
  EXPECT_TRUE(rejects(r));
  r = base;
  r.details.push_back({"", "x"});
  EXPECT_TRUE(rejects(r));
  r = base;
  r.patient_compartments.push_back("");
  EXPECT_TRUE(rejects(r));
  r = base;
  r.outcome = static_cast<Outcome>(3);
  EXPECT_TRUE(rejects(r));
  r = base;
  for (int i = 0; i < 40; ++i)
    r.details.push_back({"k" + std::to_string(i), std::string(60000, 'v')});
  EXPECT_TRUE(rejects(r));  // Over kMaxRecordBytes.
}

TEST(AuditRecordTest, DecodeRejectsEveryTruncationAndTrailingBytes) {
  std::string bytes = *EncodeAuditRecord(SampleRecord(11));
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_EQ(DecodeAuditRecord(bytes.substr(0, n)).status().code(), StatusCode::kDataLoss) << n;
  }
  EXPECT_EQ(DecodeAuditRecord(bytes + '\0').status().code(), StatusCode::kDataLoss);
  std::string other_format = bytes;
  other_format[0] = '\x02';
  EXPECT_EQ(DecodeAuditRecord(other_format).status().code(), StatusCode::kDataLoss);
}

// Hand-built encodings that no encoder produces.
class RawRecord {
 public:
  RawRecord& U8(uint8_t v) {
    out_.push_back(static_cast<char>(v));
    return *this;
  }
  RawRecord& U32(uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) U8(static_cast<uint8_t>(v >> s));
    return *this;
  }
  RawRecord& U64(uint64_t v) {
    for (int s = 56; s >= 0; s -= 8) U8(static_cast<uint8_t>(v >> s));
    return *this;
  }
  RawRecord& Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s);
    return *this;
  }
  // Everything up to and including purpose, with the given outcome byte.
  RawRecord& Header(uint8_t outcome = 0, std::string_view category = "fhir") {
    U8(1).U64(7).U64(1700000000000000).Str(category).Str("read").U8(outcome);
    for (int i = 0; i < 9; ++i) Str("");  // outcome_reason .. purpose
    return *this;
  }
  RawRecord& EmptyResource() { return Str("").Str("").Str(""); }
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

TEST(AuditRecordTest, DecodeRejectsNonCanonicalForms) {
  auto status = [](const RawRecord& r) { return DecodeAuditRecord(r.bytes()).status().code(); };
  // A well-formed baseline first, so the failures below are for the stated reason.
  EXPECT_EQ(
      status(
          RawRecord().Header().U32(2).Str("a").Str("b").EmptyResource().U32(1).Str("k").Str("v")),
      StatusCode::kOk);
  EXPECT_EQ(status(RawRecord().Header().U32(2).Str("b").Str("a").EmptyResource().U32(0)),
            StatusCode::kDataLoss);  // Unsorted compartments.
  EXPECT_EQ(status(RawRecord().Header().U32(2).Str("a").Str("a").EmptyResource().U32(0)),
            StatusCode::kDataLoss);  // Repeated compartment.
  EXPECT_EQ(status(RawRecord().Header().U32(1).Str("").EmptyResource().U32(0)),
            StatusCode::kDataLoss);  // Empty compartment id.
  EXPECT_EQ(
      status(
          RawRecord().Header().U32(0).EmptyResource().U32(2).Str("k").Str("1").Str("k").Str("2")),
      StatusCode::kDataLoss);  // Repeated detail key.
  EXPECT_EQ(
      status(
          RawRecord().Header().U32(0).EmptyResource().U32(2).Str("b").Str("1").Str("a").Str("2")),
      StatusCode::kDataLoss);  // Unsorted detail keys.
  EXPECT_EQ(status(RawRecord().Header().U32(0).EmptyResource().U32(1).Str("").Str("1")),
            StatusCode::kDataLoss);  // Empty detail key.
  EXPECT_EQ(status(RawRecord().Header(5).U32(0).EmptyResource().U32(0)),
            StatusCode::kDataLoss);  // Unknown outcome code.
  EXPECT_EQ(status(RawRecord().Header(0, "").U32(0).EmptyResource().U32(0)),
            StatusCode::kDataLoss);  // Empty category.
  EXPECT_EQ(status(RawRecord().Header().U32(0xffffffff).EmptyResource().U32(0)),
            StatusCode::kDataLoss);  // Absurd count.
  EXPECT_EQ(status(RawRecord().Header().U32(1).U32(0xfffffff0).EmptyResource().U32(0)),
            StatusCode::kDataLoss);  // Length past the end.
  EXPECT_EQ(status(RawRecord().Header().U32(1).Str("\xed\xa0\x80").EmptyResource().U32(0)),
            StatusCode::kDataLoss);  // UTF-16 surrogate encoded in UTF-8.
}

// Any single-byte change either fails to decode or yields a different record that encodes back
// to exactly the changed bytes: there is one encoding per record.
TEST(AuditRecordTest, EveryByteFlipDecodesCanonicallyOrFails) {
  std::string bytes = *EncodeAuditRecord(SampleRecord(22));
  AuditRecord original = *DecodeAuditRecord(bytes);
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t mask : {0x01, 0x20, 0x80}) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      auto decoded = DecodeAuditRecord(bad);
      if (!decoded.ok()) {
        EXPECT_EQ(decoded.status().code(), StatusCode::kDataLoss);
        continue;
      }
      EXPECT_NE(*decoded, original) << i;
      auto again = EncodeAuditRecord(*decoded);
      ASSERT_TRUE(again.ok()) << i;
      EXPECT_EQ(*again, bad) << i;
    }
  }
}

TEST(AuditRecordTest, JsonRendering) {
  AuditRecord r = SampleRecord(11);
  auto json = AuditRecordToJson(r);
  EXPECT_EQ(json["sequence"], 11);
  EXPECT_EQ(json["time"], "2023-11-14T22:13:20.011000Z");
  EXPECT_EQ(json["time_us"], 1700000000011000);
  EXPECT_EQ(json["category"], "fhir");
  EXPECT_EQ(json["outcome"], "success");
  EXPECT_EQ(json["outcome_code"], 0);
  EXPECT_EQ(json["actor"]["role"], "clinician");
  EXPECT_EQ(json["purpose"], "break-glass: unconscious patient in ER");
  EXPECT_EQ(json["patient_compartments"], nlohmann::ordered_json({"pat-11", "pat-3"}));
  EXPECT_EQ(json["resource"]["type"], "Observation");
  EXPECT_EQ(json["details"]["http.status"], "200");
  // Key order is fixed, so exports diff cleanly.
  EXPECT_EQ(json.begin().key(), "sequence");
  EXPECT_EQ(json.dump().find("\"details\""), json.dump().rfind("\"details\""));
  AuditRecord failed = SampleRecord(7);
  EXPECT_EQ(AuditRecordToJson(failed)["outcome"], "minor-failure");
}

TEST(AuditRecordTest, FormatsTimes) {
  EXPECT_EQ(FormatMicrosUtc(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(FormatMicrosUtc(-1), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(FormatMicrosUtc(1700000000123456), "2023-11-14T22:13:20.123456Z");
  EXPECT_EQ(FormatMicrosUtc(951782400000000), "2000-02-29T00:00:00.000000Z");
  EXPECT_FALSE(FormatMicrosUtc(INT64_MIN).empty());  // Extremes do not crash.
  EXPECT_FALSE(FormatMicrosUtc(INT64_MAX).empty());
}

}  // namespace
}  // namespace kura::audit
