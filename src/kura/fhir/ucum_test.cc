// UCUM codes reduced to base units: values a clinician would compare across units, the grammar's
// corners, and the codes that must be refused rather than guessed.
#include "kura/fhir/ucum.h"

#include <gtest/gtest.h>

#include <string>

namespace kura::fhir {
namespace {

UcumCanonical Canonical(std::string_view code) {
  StatusOr<UcumCanonical> canonical = CanonicalUcum(code);
  EXPECT_TRUE(canonical.ok()) << code << ": " << canonical.status().message();
  return canonical.ok() ? *canonical : UcumCanonical{};
}

// The base value of `value` in `code`.
double Base(double value, std::string_view code) { return Canonical(code).ToBase(value); }

TEST(CanonicalUcumTest, OneQuantityInTwoUnitsHasOneBaseValue) {
  struct Case {
    double a;
    const char* unit_a;
    double b;
    const char* unit_b;
  };
  const Case cases[] = {
      {1, "kg", 1000, "g"},
      {0.3, "kg", 300, "g"},
      {70, "kg", 70'000'000, "mg"},
      {1, "[lb_av]", 453.59237, "g"},
      {5.5, "mmol/L", 0.0055, "mol/L"},
      {100, "mg/dL", 1, "g/L"},
      {1, "L", 1000, "mL"},
      {1, "L", 0.001, "m3"},
      {1, "h", 60, "min"},
      {1, "d", 86'400, "s"},
      {120, "mm[Hg]", 15.998640, "kPa"},
      {37, "Cel", 98.6, "[degF]"},
      {0, "Cel", 273.15, "K"},
      {50, "%", 0.5, "1"},
      {3, "{score}", 3, "1"},
      {1, "10*3/uL", 1, "10*9/L"},
      {1, "10^3/uL", 1, "10*9/L"},
      {25, "kg/m2", 2.5, "g/cm2"},
      {60, "/min", 1, "s-1"},
      {60, "/min", 1, "Hz"},
      {1, "mmol/(24.h)", 1, "mmol/d"},
      {10, "L/min", 1, "10.L/min"},
      {1, "ug/g{Hb}", 1e-6, "1"},
      {2, "m.s-2", 2, "m/s2"},
      {1, "m+2", 1, "m2"},
      {1, "m0", 1, "1"},
      {1, "/100{cells}", 0.01, "1"},
      {1, "g/(8.h){shift}", 1, "g/(480.min)"},
      {1, "[in_i]", 2.54, "cm"},
      {1, "mL/min/{1.73_m2}", 1, "mL/min"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Base(c.a, c.unit_a), Base(c.b, c.unit_b))
        << c.a << " " << c.unit_a << " vs " << c.b << " " << c.unit_b;
    EXPECT_EQ(Canonical(c.unit_a).unit, Canonical(c.unit_b).unit) << c.unit_a << " " << c.unit_b;
  }
}

TEST(CanonicalUcumTest, NamesTheDimension) {
  EXPECT_EQ(Canonical("mg/dL").unit, "m-3.g");
  EXPECT_EQ(Canonical("mmol/L").unit, "m-3.mol");
  EXPECT_EQ(Canonical("10*3/uL").unit, "m-3");
  EXPECT_EQ(Canonical("[degF]").unit, "K");
  EXPECT_EQ(Canonical("%").unit, "1");
  EXPECT_EQ(Canonical("mm[Hg]").unit, "m-1.s-2.g");
  EXPECT_EQ(Canonical("kat").unit, "s-1.mol");
}

TEST(CanonicalUcumTest, TemperaturesKeepTheirOffset) {
  EXPECT_DOUBLE_EQ(Base(37, "Cel"), 310.15);
  EXPECT_DOUBLE_EQ(Base(98.6, "[degF]"), 310.15);
  EXPECT_DOUBLE_EQ(Base(-40, "[degF]"), Base(-40, "Cel"));
  EXPECT_DOUBLE_EQ(Base(80, "[degRe]"), Base(100, "Cel"));
  EXPECT_DOUBLE_EQ(Base(300, "K"), 300);
}

TEST(CanonicalUcumTest, DifferentDimensionsStayApart) {
  // The mole is a dimension of its own: amount of substance is not a count of cells.
  EXPECT_NE(Canonical("mmol/L").unit, Canonical("10*3/uL").unit);
  EXPECT_NE(Canonical("mg/dL").unit, Canonical("mmol/L").unit);
  EXPECT_NE(Canonical("kg").unit, Canonical("kg/m2").unit);
}

TEST(CanonicalUcumTest, RefusesWhatItCannotConvert) {
  const char* refused[] = {
      "",                     // empty
      "foo",                  // no such atom
      "kfoo",                 // a prefix before no atom
      "k[lb_av]",             // a prefix before an atom that takes none
      "mg/",                  // a missing unit
      "/",                    // a missing unit
      "(mg",                  // an open parenthesis
      "mg)",                  // a close parenthesis without its opening
      "[lb_av",               // an open square bracket
      "lb_av]",               // a close square bracket
      "mg{total",             // an open annotation
      "m g",                  // a space
      "mg\xc3\xa9",           // not ASCII
      "m100",                 // exponent out of range
      "10*400",               // exponent out of range
      "m-",                   // a sign without digits
      "[iU]/L",               // arbitrary
      "m[iU]/mL",             // arbitrary
      "[pH]",                 // logarithmic
      "dB",                   // logarithmic
      "Cel/s",                // an offset scale inside an expression
      "Cel2",                 // an offset scale with an exponent
      "/[degF]",              // an offset scale in a quotient
      "0",                    // a factor of zero
      "(((((((((m)))))))))",  // nested too deep
  };
  for (const char* code : refused) {
    StatusOr<UcumCanonical> canonical = CanonicalUcum(code);
    ASSERT_FALSE(canonical.ok()) << code << " -> " << (canonical.ok() ? canonical->unit : "");
    EXPECT_EQ(canonical.status().code(), StatusCode::kInvalidArgument) << code;
    EXPECT_NE(canonical.status().message().find("not a UCUM unit"), std::string::npos);
  }
  EXPECT_FALSE(CanonicalUcum(std::string(300, 'm')).ok());
  // Exponents that add up past what one unit may carry: the base unit could not be written.
  EXPECT_FALSE(CanonicalUcum("s91.s21").ok());
  EXPECT_TRUE(CanonicalUcum("s91.s8").ok());
  EXPECT_EQ(Canonical("s91.s8").unit, "s99");
}

TEST(CanonicalUcumTest, AtomsBeforePrefixes) {
  // "cd" is the candela, not a centi-day; "Pa" the pascal, not a peta-year.
  EXPECT_EQ(Canonical("cd").unit, "cd");
  EXPECT_EQ(Canonical("Pa").unit, "m-1.s-2.g");
  EXPECT_DOUBLE_EQ(Canonical("dag").factor, 10);  // deka, the one two-letter decimal prefix
  EXPECT_DOUBLE_EQ(Canonical("Kibit").factor, 1024);
}

TEST(CanonicalUcumTest, RoundsBaseValuesToTwelveDigits) {
  UcumCanonical canonical;
  canonical.factor = 0.1;
  EXPECT_EQ(canonical.ToBase(3), 0.3);  // 3 × 0.1 is 0.30000000000000004 in doubles.
  EXPECT_EQ(canonical.ToBase(0), 0);
}

}  // namespace
}  // namespace kura::fhir
