// Search parameter lookups, the string-search folding and FHIR date ranges. The table itself is
// generated (r4_search_params.cc); value extraction is in search_extract.cc.
#include "kura/fhir/search_params.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

namespace kura::fhir {

std::string_view SearchParamTypeName(SearchParamType type) {
  switch (type) {
    case SearchParamType::kNumber:
      return "number";
    case SearchParamType::kDate:
      return "date";
    case SearchParamType::kString:
      return "string";
    case SearchParamType::kToken:
      return "token";
    case SearchParamType::kReference:
      return "reference";
    case SearchParamType::kComposite:
      return "composite";
    case SearchParamType::kQuantity:
      return "quantity";
    case SearchParamType::kUri:
      return "uri";
    case SearchParamType::kSpecial:
      return "special";
  }
  return "special";
}

const SearchParamDef* FindSearchParam(std::string_view resource_type, std::string_view code) {
  std::span<const SearchParamDef> params = SearchParamsFor(resource_type);
  auto it = std::ranges::lower_bound(params, code, {}, &SearchParamDef::code);
  if (it == params.end() || it->code != code) return nullptr;
  return &*it;
}

// ---------------------------------------------------------------------------------------------
// String folding.

namespace {

bool IsAsciiSpace(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

bool IsSpace(utf8proc_int32_t cp) {
  if (cp < 0x80) return IsAsciiSpace(static_cast<unsigned char>(cp));
  if (cp == 0x85) return true;
  utf8proc_category_t cat = utf8proc_category(cp);
  return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

// Appends `text` (ASCII) lower-cased with whitespace runs collapsed; `pending_space` carries a
// run across calls.
void FoldAscii(std::string_view text, std::string& out) {
  bool space = false;
  for (unsigned char c : text) {
    if (IsAsciiSpace(c)) {
      space = true;
      continue;
    }
    if (space && !out.empty()) out.push_back(' ');
    space = false;
    out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
  }
}

}  // namespace

std::string NormalizeSearchString(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  if (std::ranges::all_of(text, [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
    FoldAscii(text, out);
    return out;
  }
  utf8proc_uint8_t* mapped = nullptr;
  utf8proc_ssize_t n = utf8proc_map(
      reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
      static_cast<utf8proc_ssize_t>(text.size()), &mapped,
      static_cast<utf8proc_option_t>(UTF8PROC_COMPAT | UTF8PROC_DECOMPOSE | UTF8PROC_STRIPMARK |
                                     UTF8PROC_CASEFOLD | UTF8PROC_IGNORE));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(mapped, &std::free);
  if (n < 0) {
    // Not valid UTF-8 (intake rejects such bodies): fold the ASCII bytes only.
    FoldAscii(text, out);
    return out;
  }
  bool space = false;
  for (utf8proc_ssize_t i = 0; i < n;) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t len = utf8proc_iterate(mapped + i, n - i, &cp);
    if (len <= 0) break;
    if (IsSpace(cp)) {
      space = true;
    } else {
      if (space && !out.empty()) out.push_back(' ');
      space = false;
      out.append(reinterpret_cast<const char*>(mapped + i), static_cast<size_t>(len));
    }
    i += len;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Dates.

namespace {

constexpr int64_t kMicrosPerSecond = 1'000'000;
constexpr int64_t kMicrosPerDay = 86'400 * kMicrosPerSecond;

// Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int64_t y, int64_t m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  bool Done() const { return i_ == s_.size(); }
  bool Eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  char Peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  // Exactly `n` digits.
  bool Digits(int n, int64_t& value) {
    value = 0;
    for (int k = 0; k < n; ++k) {
      if (i_ >= s_.size() || s_[i_] < '0' || s_[i_] > '9') return false;
      value = value * 10 + (s_[i_++] - '0');
    }
    return true;
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

std::optional<InstantRange> FhirDateRange(std::string_view text) {
  Cursor c(text);
  int64_t year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0;
  if (!c.Digits(4, year) || year < 1) return std::nullopt;
  auto whole = [](int64_t start_days, int64_t end_days) {
    return InstantRange{start_days * kMicrosPerDay, end_days * kMicrosPerDay - 1};
  };
  if (c.Done()) return whole(DaysFromCivil(year, 1, 1), DaysFromCivil(year + 1, 1, 1));
  if (!c.Eat('-') || !c.Digits(2, month) || month < 1 || month > 12) return std::nullopt;
  if (c.Done()) {
    return whole(DaysFromCivil(year, month, 1),
                 month == 12 ? DaysFromCivil(year + 1, 1, 1) : DaysFromCivil(year, month + 1, 1));
  }
  if (!c.Eat('-') || !c.Digits(2, day) || day < 1 || day > DaysInMonth(year, month)) {
    return std::nullopt;
  }
  const int64_t days = DaysFromCivil(year, month, day);
  if (c.Done()) return whole(days, days + 1);
  if (!c.Eat('T') || !c.Digits(2, hour) || hour > 23 || !c.Eat(':') || !c.Digits(2, minute) ||
      minute > 59) {
    return std::nullopt;
  }
  int64_t span = 60 * kMicrosPerSecond;  // Minute precision (tolerated; FHIR requires seconds).
  int64_t micros = 0;
  if (c.Eat(':')) {
    if (!c.Digits(2, second) || second > 60) return std::nullopt;
    if (second == 60) second = 59;  // A leap second folds into the one before.
    span = kMicrosPerSecond;
    if (c.Eat('.')) {
      int digits = 0;
      int64_t scale = kMicrosPerSecond;
      while (c.Peek() >= '0' && c.Peek() <= '9') {
        int64_t d = 0;
        (void)c.Digits(1, d);
        if (++digits <= 6) {
          scale /= 10;
          micros += d * scale;
        }
      }
      if (digits == 0) return std::nullopt;
      span = std::max<int64_t>(scale, 1);
    }
  }
  int64_t offset = 0;  // Seconds east of UTC.
  if (c.Eat('Z')) {
    offset = 0;
  } else if (c.Peek() == '+' || c.Peek() == '-') {
    const int64_t sign = c.Eat('+') ? 1 : (c.Eat('-'), -1);
    int64_t oh = 0, om = 0;
    if (!c.Digits(2, oh) || oh > 14 || !c.Eat(':') || !c.Digits(2, om) || om > 59) {
      return std::nullopt;
    }
    offset = sign * (oh * 3600 + om * 60);
  }
  if (!c.Done()) return std::nullopt;
  const int64_t low = days * kMicrosPerDay +
                      ((hour * 60 + minute) * 60 + second - offset) * kMicrosPerSecond + micros;
  return InstantRange{low, low + span - 1};
}

}  // namespace kura::fhir
