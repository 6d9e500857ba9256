// Search request parsing, date ranges and the data register.
#include "kura/fhir/search_query.h"

#include <gtest/gtest.h>

#include "kura/base/clock.h"
#include "kura/fhir/data_register.h"

namespace kura::fhir {
namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

int64_t Micros(std::string_view instant) { return ToMicros(*ParseInstant(instant)); }

SearchRequest Parse(std::string_view type, Params params, bool strict = false) {
  StatusOr<SearchRequest> r = ParseSearchRequest(type, params, strict, SearchLimits{});
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : SearchRequest{};
}

Status ParseError(std::string_view type, Params params, bool strict = false) {
  return ParseSearchRequest(type, params, strict, SearchLimits{}).status();
}

TEST(FhirDateRange, PrecisionGivesTheRange) {
  EXPECT_EQ(FhirDateRange("2020")->low, Micros("2020-01-01T00:00:00Z"));
  EXPECT_EQ(FhirDateRange("2020")->high, Micros("2021-01-01T00:00:00Z") - 1);
  EXPECT_EQ(FhirDateRange("2020-02")->high, Micros("2020-03-01T00:00:00Z") - 1);
  EXPECT_EQ(FhirDateRange("2020-02-29")->low, Micros("2020-02-29T00:00:00Z"));
  EXPECT_EQ(FhirDateRange("2020-02-29T10:30")->high, Micros("2020-02-29T10:31:00Z") - 1);
  EXPECT_EQ(FhirDateRange("2020-02-29T10:30:05+02:00")->low, Micros("2020-02-29T08:30:05Z"));
  EXPECT_EQ(FhirDateRange("2020-02-29T10:30:05.5Z")->high, Micros("2020-02-29T10:30:05.6Z") - 1);
  EXPECT_EQ(FhirDateRange("2020-02-29T10:30:05.123456Z")->low,
            FhirDateRange("2020-02-29T10:30:05.123456Z")->high);
  for (std::string_view bad : {"", "20", "2021-02-29", "2020-13", "2020-01-01T25:00", "2020-1-1",
                               "2020-01-01T10:00:00+2", "yesterday", "2020-01-01Z"}) {
    EXPECT_FALSE(FhirDateRange(bad)) << bad;
  }
}

TEST(ParseSearchRequest, TokensWithAndWithoutSystem) {
  SearchRequest r = Parse("Observation", {{"code", "http://loinc.org|8867-4,|abc,xyz"}});
  ASSERT_EQ(r.terms.size(), 1u);
  const auto& values = r.terms[0].any_of;
  ASSERT_EQ(values.size(), 3u);
  EXPECT_EQ(values[0].system, "http://loinc.org");
  EXPECT_EQ(values[0].code, "8867-4");
  EXPECT_EQ(values[1].system, "");
  EXPECT_EQ(values[1].code, "abc");
  EXPECT_FALSE(values[2].system.has_value());
  EXPECT_EQ(values[2].code, "xyz");
}

TEST(ParseSearchRequest, EscapedSeparatorsStayInTheValue) {
  SearchRequest r = Parse("Patient", {{"family", "a\\,b,c"}});
  ASSERT_EQ(r.terms[0].any_of.size(), 2u);
  EXPECT_EQ(r.terms[0].any_of[0].text, "a,b");
}

TEST(ParseSearchRequest, PrefixesAndNumberPrecision) {
  SearchRequest r = Parse("Observation", {{"value-quantity", "gt5.40|http://unitsofmeasure.org|mg"},
                                          {"date", "le2020-03"}});
  ASSERT_EQ(r.terms.size(), 2u);
  const SearchArgument& q = r.terms[0].any_of[0];
  EXPECT_EQ(q.prefix, SearchPrefix::kGt);
  EXPECT_DOUBLE_EQ(q.number_value, 5.4);
  EXPECT_DOUBLE_EQ(q.number_low, 5.395);
  EXPECT_DOUBLE_EQ(q.number_high, 5.405);
  EXPECT_EQ(q.system, "http://unitsofmeasure.org");
  EXPECT_EQ(q.code, "mg");
  const SearchArgument& d = r.terms[1].any_of[0];
  EXPECT_EQ(d.prefix, SearchPrefix::kLe);
  EXPECT_EQ(d.dates.low, Micros("2020-03-01T00:00:00Z"));
}

TEST(ParseSearchRequest, ReferencesModifiersAndChains) {
  SearchRequest r = Parse("Observation", {{"subject", "Patient/123"},
                                          {"subject:Patient", "456"},
                                          {"subject:identifier", "urn:mrn|77"},
                                          {"subject:Patient.name", "peter"},
                                          {"status:not", "final"},
                                          {"code:missing", "true"}});
  ASSERT_EQ(r.terms.size(), 6u);
  EXPECT_EQ(r.terms[0].any_of[0].reference_type, "Patient");
  EXPECT_EQ(r.terms[0].any_of[0].reference_id, "123");
  EXPECT_EQ(r.terms[1].modifier, SearchModifier::kType);
  EXPECT_EQ(r.terms[1].any_of[0].reference_type, "Patient");
  EXPECT_EQ(r.terms[2].modifier, SearchModifier::kIdentifier);
  EXPECT_EQ(r.terms[2].any_of[0].system, "urn:mrn");
  ASSERT_NE(r.terms[3].chained, nullptr);
  EXPECT_EQ(r.terms[3].chained_type, "Patient");
  EXPECT_EQ(r.terms[3].chained->param->code, "name");
  EXPECT_EQ(r.terms[4].modifier, SearchModifier::kNot);
  EXPECT_TRUE(r.terms[5].missing);
}

TEST(ParseSearchRequest, ResultParameters) {
  SearchRequest r = Parse("Observation", {{"_count", "5000"},
                                          {"_sort", "-date,code"},
                                          {"_include", "Observation:subject"},
                                          {"_revinclude", "Provenance:target"},
                                          {"_total", "accurate"},
                                          {"_elements", "code,subject"},
                                          {"_id", "a,b"}});
  EXPECT_EQ(r.count, 1000);
  ASSERT_EQ(r.sort.size(), 2u);
  EXPECT_TRUE(r.sort[0].descending);
  EXPECT_EQ(r.sort[0].param->code, "date");
  ASSERT_EQ(r.includes.size(), 1u);
  EXPECT_EQ(r.includes[0].param->code, "subject");
  ASSERT_EQ(r.revincludes.size(), 1u);
  EXPECT_EQ(r.revincludes[0].source_type, "Provenance");
  EXPECT_EQ(r.total, SearchRequest::Total::kAccurate);
  EXPECT_EQ(r.elements, (std::vector<std::string>{"code", "subject"}));
  EXPECT_EQ(r.ids, (std::vector<std::string>{"a", "b"}));
}

TEST(ParseSearchRequest, UnknownParametersAreIgnoredOrRefusedWhenStrict) {
  SearchRequest r = Parse("Patient", {{"nonsense", "1"}, {"family", "x"}});
  EXPECT_EQ(r.ignored, (std::vector<std::string>{"nonsense"}));
  EXPECT_EQ(r.canonical_params, (Params{{"family", "x"}}));
  Status strict = ParseError("Patient", {{"nonsense", "1"}}, true);
  EXPECT_EQ(strict.code(), StatusCode::kInvalidArgument);
  ASSERT_EQ(strict.details().size(), 1u);
  EXPECT_EQ(strict.details()[0].expression, "nonsense");
}

TEST(ParseSearchRequest, BadValuesNameTheParameterWithoutEchoingTheValue) {
  for (const auto& [name, value] : Params{{"date", "gtnotadate"},
                                          {"value-quantity", "abc"},
                                          {"subject", "Nope/1"},
                                          {"code:exact", "qqq"},
                                          {"code", "a|b|c"},
                                          {"_count", "-1"},
                                          {"_sort", "nonsense"},
                                          {"_include", "Patient:subject"},
                                          {"code:missing", "maybe"},
                                          {"subject:Patient.name.family", "qqq"}}) {
    Status s = ParseError("Observation", {{name, value}});
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << name;
    EXPECT_EQ(s.message().find(value), std::string::npos) << s.message();
  }
  EXPECT_EQ(ParseError("Basic", {}).code(), StatusCode::kInvalidArgument);
}

TEST(ParseSearchRequest, TooManyValuesAreRefused) {
  std::string many;
  for (int i = 0; i < 150; ++i) many += (i ? "," : "") + std::to_string(i);
  EXPECT_EQ(ParseError("Observation", {{"code", many}}).code(), StatusCode::kInvalidArgument);
}

TEST(DataRegister, ShippedDefaultsKeepPersonalValuesBlind) {
  const DataRegister& reg = DataRegister::Default();
  EXPECT_EQ(reg.Classify("Patient", "name"), IndexClass::kBlind);
  EXPECT_EQ(reg.Classify("Patient", "birthdate"), IndexClass::kBlind);
  EXPECT_EQ(reg.Classify("Observation", "identifier"), IndexClass::kBlind);
  EXPECT_EQ(reg.Classify("Practitioner", "telecom"), IndexClass::kBlind);
  EXPECT_EQ(reg.Classify("Organization", "name"), IndexClass::kBlind);
  EXPECT_EQ(reg.Classify("Observation", "value-string"), IndexClass::kBlind);  // Free text.
  EXPECT_EQ(reg.Classify("Observation", "code"), IndexClass::kClear);
  EXPECT_EQ(reg.Classify("Patient", "_text"), IndexClass::kNone);
}

// Standard parameters are answered from a table built at Parse; the rules must come out the
// same there as for parameters outside the R4 tables, whatever storage the names come in.
TEST(DataRegister, TypeEntriesBeatWildcardsForStandardAndOtherParameters) {
  StatusOr<DataRegister> reg = DataRegister::Parse(
      "[search]\n\"*.code\" = \"blind\"\n\"Observation.code\" = \"none\"\n"
      "\"*.custom\" = \"blind\"\n\"Patient.custom\" = \"clear\"\n");
  ASSERT_TRUE(reg.ok());
  const std::string observation = std::string("Obser") + "vation";  // Not the table's storage.
  const std::string code = std::string("co") + "de";
  EXPECT_EQ(reg->Classify(observation, code), IndexClass::kNone);
  EXPECT_EQ(reg->Classify("Condition", "code"), IndexClass::kBlind);
  EXPECT_EQ(reg->Classify("Patient", "custom"), IndexClass::kClear);
  EXPECT_EQ(reg->Classify("Observation", "custom"), IndexClass::kBlind);
  EXPECT_EQ(reg->Classify("Observation", "not-a-parameter"), IndexClass::kClear);  // default
  EXPECT_EQ(reg->Classify("Patient", "family"), IndexClass::kBlind);               // default_string
  EXPECT_EQ(reg->Classify("Observation", "date"), IndexClass::kClear);
}

// The canonical form is what the search-index fingerprint covers: the classes, not the file.
TEST(DataRegister, CanonicalFormFollowsTheClassesNotTheFile) {
  StatusOr<DataRegister> plain = DataRegister::Parse("[search]\n");
  StatusOr<DataRegister> restated = DataRegister::Parse(
      "# family names are free text: blind, as by default\n[search]\n\n\"*.family\"=\"blind\"\n"
      "\"Patient.not-a-parameter\" = \"clear\"\n");
  StatusOr<DataRegister> clear_family =
      DataRegister::Parse("[search]\n\"Patient.family\" = \"clear\"\n");
  ASSERT_TRUE(plain.ok() && restated.ok() && clear_family.ok());
  EXPECT_EQ(plain->CanonicalForm(), restated->CanonicalForm());
  EXPECT_NE(plain->CanonicalForm(), clear_family->CanonicalForm());
  EXPECT_NE(clear_family->CanonicalForm().find("\nPatient.family=clear\n"), std::string::npos);
  EXPECT_NE(plain->CanonicalForm().find("\nPatient.family=blind\n"), std::string::npos);
  const std::string shipped = DataRegister::Default().CanonicalForm();
  EXPECT_NE(shipped.find("\nPatient.name=blind\n"), std::string::npos);
  EXPECT_NE(shipped.find("\nObservation.code=clear\n"), std::string::npos);
  EXPECT_EQ(shipped.rfind("default=clear\ndefault_string=blind\n", 0), 0u);
}

TEST(DataRegister, ParseRejectsBadEntries) {
  EXPECT_TRUE(DataRegister::Parse("[search]\n\"Patient.name\" = \"clear\"\n").ok());
  EXPECT_EQ(DataRegister::Parse("[search]\n\"Patient.name\" = \"secret\"\n").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(DataRegister::Parse("[search]\nname = \"blind\"\n").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(DataRegister::Parse("[other]\n").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DataRegister::Parse("[search]\ndefault = \"none\"\n").status().code(),
            StatusCode::kInvalidArgument);
  StatusOr<DataRegister> strings_clear =
      DataRegister::Parse("[search]\ndefault_string = \"clear\"\n\"*.name\" = \"blind\"\n");
  ASSERT_TRUE(strings_clear.ok());
  EXPECT_EQ(strings_clear->Classify("Observation", "value-string"), IndexClass::kClear);
  EXPECT_EQ(strings_clear->Classify("Patient", "name"), IndexClass::kBlind);
  EXPECT_EQ(DataRegister::Parse("not toml [").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kura::fhir
