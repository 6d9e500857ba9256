// UCUM expressions parsed by recursive descent over the grammar of the specification (section
// "Syntax rules", the BNF of its appendix) against the generated prefix and atom tables.
#include "kura/fhir/ucum.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <tuple>

#include "kura/fhir/internal/ucum_model.h"

namespace kura::fhir {
namespace {

using internal::UcumAtom;
using internal::UcumPrefix;
using internal::UcumScale;

constexpr size_t kMaxCodeBytes = 256;
constexpr int kMaxDepth = 8;      // Nested parentheses.
constexpr int kMaxExponent = 99;  // Of one simple unit.
// Of the whole expression, per base unit: no more than one simple unit may have, so that the base
// unit's name is itself a code.
constexpr int kMaxDimension = kMaxExponent;
constexpr size_t kMaxFactorDigits = 15;

constexpr std::array<std::string_view, 9> kBaseNames = {"m", "s",  "g",   "rad", "K",
                                                        "C", "cd", "mol", "eq"};
static_assert(kBaseNames.size() == std::tuple_size_v<decltype(UcumCanonical::dimension)>);
static_assert(kBaseNames.size() == std::tuple_size_v<decltype(internal::UcumAtom::dimension)>);

const UcumAtom* FindAtom(std::string_view code) {
  auto atoms = internal::UcumAtoms();
  auto it = std::lower_bound(atoms.begin(), atoms.end(), code,
                             [](const UcumAtom& a, std::string_view c) { return a.code < c; });
  return it != atoms.end() && it->code == code ? &*it : nullptr;
}

const UcumPrefix* FindPrefix(std::string_view code) {
  auto prefixes = internal::UcumPrefixes();
  auto it = std::lower_bound(prefixes.begin(), prefixes.end(), code,
                             [](const UcumPrefix& p, std::string_view c) { return p.code < c; });
  return it != prefixes.end() && it->code == code ? &*it : nullptr;
}

// A simple unit: an atom, with the value of its prefix when it has one.
struct SimpleUnit {
  const UcumAtom* atom = nullptr;
  double prefix = 1;
};

// UCUM: an atom symbol is matched whole first, then as a prefix followed by a metric atom.
std::optional<SimpleUnit> ResolveSimpleUnit(std::string_view symbol) {
  if (const UcumAtom* atom = FindAtom(symbol)) return SimpleUnit{atom, 1};
  for (size_t length : {size_t{1}, size_t{2}}) {
    if (symbol.size() <= length) break;
    const UcumPrefix* prefix = FindPrefix(symbol.substr(0, length));
    if (prefix == nullptr) continue;
    const UcumAtom* atom = FindAtom(symbol.substr(length));
    if (atom != nullptr && atom->metric) return SimpleUnit{atom, prefix->value};
  }
  return std::nullopt;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// A product of powers of base units with its factor.
struct Term {
  double factor = 1;
  std::array<int, 9> dimension{};

  void Multiply(const Term& other, int sign) {
    factor = sign > 0 ? factor * other.factor : factor / other.factor;
    for (size_t i = 0; i < dimension.size(); ++i) dimension[i] += sign * other.dimension[i];
  }
};

class Parser {
 public:
  explicit Parser(std::string_view code) : code_(code) {}

  StatusOr<Term> MainTerm() {
    Term result;
    if (Peek() == '/') {
      ++pos_;
      KURA_ASSIGN_OR_RETURN(Term term, ParseTerm());
      result.Multiply(term, -1);
    } else {
      KURA_ASSIGN_OR_RETURN(result, ParseTerm());
    }
    if (pos_ != code_.size()) return Error("unexpected character");
    return result;
  }

 private:
  char Peek() const { return pos_ < code_.size() ? code_[pos_] : '\0'; }

  static Status Error(std::string_view reason) {
    return InvalidArgumentError("not a UCUM unit: " + std::string(reason));
  }

  // term: component (("." | "/") component)*, left to right.
  StatusOr<Term> ParseTerm() {
    KURA_ASSIGN_OR_RETURN(Term result, ParseComponent());
    while (Peek() == '.' || Peek() == '/') {
      const int sign = code_[pos_++] == '.' ? 1 : -1;
      KURA_ASSIGN_OR_RETURN(Term next, ParseComponent());
      result.Multiply(next, sign);
    }
    return result;
  }

  // component: "(" term ")" | annotation | factor | simple-unit [exponent], then an annotation.
  StatusOr<Term> ParseComponent() {
    if (Peek() == '(') {
      if (++depth_ > kMaxDepth) return Error("parentheses nested too deep");
      ++pos_;
      KURA_ASSIGN_OR_RETURN(Term inner, ParseTerm());
      if (Peek() != ')') return Error("a parenthesis is not closed");
      ++pos_;
      --depth_;
      KURA_RETURN_IF_ERROR(SkipAnnotationIfAny());
      return inner;
    }
    if (Peek() == '{') {
      KURA_RETURN_IF_ERROR(SkipAnnotation());
      return Term{};
    }
    const size_t start = pos_;
    while (pos_ < code_.size()) {
      const char c = code_[pos_];
      if (c == '.' || c == '/' || c == '(' || c == ')' || c == '{' || c == '}') break;
      if (c == '[') {
        const size_t close = code_.find(']', pos_);
        if (close == std::string_view::npos) return Error("a square bracket is not closed");
        pos_ = close + 1;
        continue;
      }
      if (c == ']') return Error("a square bracket is not opened");
      ++pos_;
    }
    const std::string_view token = code_.substr(start, pos_ - start);
    if (token.empty()) return Error("a unit is missing");
    StatusOr<Term> unit =
        std::all_of(token.begin(), token.end(), IsDigit) ? Factor(token) : Annotatable(token);
    if (unit.ok()) KURA_RETURN_IF_ERROR(SkipAnnotationIfAny());
    return unit;
  }

  StatusOr<Term> Factor(std::string_view digits) const {
    if (digits.size() > kMaxFactorDigits) return Error("a factor is too long");
    Term term;
    term.factor = static_cast<double>(std::strtoull(std::string(digits).c_str(), nullptr, 10));
    if (term.factor == 0) return Error("a factor is zero");
    return term;
  }

  // A simple unit and its exponent: the trailing signed digits outside square brackets.
  StatusOr<Term> Annotatable(std::string_view token) const {
    size_t end = token.size();
    while (end > 0 && IsDigit(token[end - 1])) --end;
    int exponent = 1;
    if (end < token.size()) {
      const bool signed_exponent = end > 0 && (token[end - 1] == '+' || token[end - 1] == '-');
      const std::string_view digits = token.substr(end);
      if (signed_exponent) --end;
      if (end == 0) return Error("an exponent has no unit");
      if (digits.size() > 2) return Error("an exponent is too large");
      exponent = std::atoi(std::string(digits).c_str());
      if (signed_exponent && token[end] == '-') exponent = -exponent;
    }
    const std::string_view symbol = token.substr(0, end);
    std::optional<SimpleUnit> unit = ResolveSimpleUnit(symbol);
    if (!unit) return Error("unknown unit atom");
    if (unit->atom->arbitrary) return Error("an arbitrary unit converts to nothing but itself");
    if (unit->atom->scale != UcumScale::kRatio) {
      return Error("a special unit converts only when it stands alone");
    }
    if (std::abs(exponent) > kMaxExponent) return Error("exponent out of range");
    Term term;
    term.factor = std::pow(unit->prefix * unit->atom->magnitude, exponent);
    for (size_t i = 0; i < term.dimension.size(); ++i) {
      term.dimension[i] = unit->atom->dimension[i] * exponent;
    }
    return term;
  }

  // The specification's grammar puts annotations after simple units only; the reference
  // implementation and LOINC also write them after factors and parentheses ("/100{cells}",
  // "g/(8.h){shift}").
  Status SkipAnnotationIfAny() { return Peek() == '{' ? SkipAnnotation() : Status(); }

  // annotation: "{" printable ASCII other than braces "}"; it does not change the unit.
  Status SkipAnnotation() {
    const size_t close = code_.find('}', pos_);
    if (close == std::string_view::npos) return Error("an annotation is not closed");
    if (code_.substr(pos_ + 1, close - pos_ - 1).find('{') != std::string_view::npos) {
      return Error("an annotation holds a brace");
    }
    pos_ = close + 1;
    return Status();
  }

  std::string_view code_;
  size_t pos_ = 0;
  int depth_ = 0;
};

// Degrees Celsius, Fahrenheit and Réaumur (with a prefix when metric), alone: their scales have
// an offset, so they cannot be multiplied.
std::optional<UcumCanonical> OffsetScale(std::string_view code) {
  std::optional<SimpleUnit> unit = ResolveSimpleUnit(code);
  if (!unit) return std::nullopt;
  UcumCanonical canonical;
  const double magnitude = unit->prefix * unit->atom->magnitude;
  switch (unit->atom->scale) {
    case UcumScale::kCelsius:
    case UcumScale::kReaumur:
      canonical.factor = magnitude;
      canonical.offset = 273.15;
      break;
    case UcumScale::kFahrenheit:
      canonical.factor = magnitude;
      canonical.offset = 459.67 * 5 / 9;
      break;
    default:
      return std::nullopt;
  }
  for (size_t i = 0; i < canonical.dimension.size(); ++i) {
    canonical.dimension[i] = unit->atom->dimension[i];
  }
  return canonical;
}

std::string UnitName(const std::array<int, 9>& dimension) {
  std::string name;
  for (size_t i = 0; i < dimension.size(); ++i) {
    if (dimension[i] == 0) continue;
    if (!name.empty()) name += '.';
    name += kBaseNames[i];
    if (dimension[i] != 1) name += std::to_string(dimension[i]);
  }
  return name.empty() ? "1" : name;
}

}  // namespace

double UcumCanonical::ToBase(double value) const {
  const double base = value * factor + offset;
  if (!std::isfinite(base) || base == 0) return base;
  // base rounded to the integer multiple of 10^(e - 11) nearest to it, e being its decimal
  // exponent: twelve significant digits, without the cost of formatting text.
  const int exponent = static_cast<int>(std::floor(std::log10(std::fabs(base))));
  const double scale = std::pow(10.0, 11 - exponent);
  const double scaled = base * scale;
  if (!std::isfinite(scale) || scale == 0 || !std::isfinite(scaled)) return base;
  return std::nearbyint(scaled) / scale;
}

StatusOr<UcumCanonical> CanonicalUcum(std::string_view code) {
  if (code.empty()) return InvalidArgumentError("not a UCUM unit: empty");
  if (code.size() > kMaxCodeBytes) return InvalidArgumentError("not a UCUM unit: too long");
  for (char c : code) {
    if (c < 0x21 || c > 0x7e) {
      return InvalidArgumentError("not a UCUM unit: a character outside printable ASCII");
    }
  }
  if (std::optional<UcumCanonical> offset = OffsetScale(code)) {
    offset->unit = UnitName(offset->dimension);
    return *std::move(offset);
  }
  KURA_ASSIGN_OR_RETURN(Term term, Parser(code).MainTerm());
  if (!std::isfinite(term.factor) || term.factor <= 0) {
    return InvalidArgumentError("not a UCUM unit: its magnitude is out of range");
  }
  for (int d : term.dimension) {
    if (std::abs(d) > kMaxDimension) {
      return InvalidArgumentError("not a UCUM unit: an exponent is out of range");
    }
  }
  UcumCanonical canonical;
  canonical.factor = term.factor;
  canonical.dimension = term.dimension;
  canonical.unit = UnitName(term.dimension);
  return canonical;
}

}  // namespace kura::fhir
