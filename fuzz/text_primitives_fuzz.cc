// Fuzz target: the small text parsers a request reaches before any resource: UTF-8 checking of
// every body, FHIR instants (`_since`, `_lastUpdated`, Bundle ifModifiedSince), HTTP dates
// (If-Modified-Since) and base64 (Binary data, PATCH in a Bundle). Each is checked against a
// property: FindInvalidUtf8, which works a word at a time, against a byte-by-byte reading of the
// Unicode well-formedness table; parsed times format and parse back to the same time; canonical
// base64 encodes back to its text.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "kura/base/clock.h"
#include "kura/base/random.h"
#include "kura/base/utf8.h"
#include "property.h"

namespace {

// The offset of the first byte that does not start a well-formed sequence (Unicode 15, table
// 3-7), or npos.
size_t FirstIllFormed(std::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char b = byte(i);
    size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;  // Bounds of the second byte.
    if (b <= 0x7F) {
      length = 1;
    } else if (b >= 0xC2 && b <= 0xDF) {
      length = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      length = 3;
      if (b == 0xE0) low = 0xA0;
      if (b == 0xED) high = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      length = 4;
      if (b == 0xF0) low = 0x90;
      if (b == 0xF4) high = 0x8F;
    } else {
      return i;
    }
    if (i + length > text.size()) return i;
    for (size_t k = 1; k < length; ++k) {
      const unsigned char c = byte(i + k);
      const unsigned char lo = k == 1 ? low : 0x80, hi = k == 1 ? high : 0xBF;
      if (c < lo || c > hi) return i;
    }
    i += length;
  }
  return std::string_view::npos;
}

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // The fast check may stop at the start of the sequence it cannot read; both name the same one.
  if ((kura::FindInvalidUtf8(text) == std::string_view::npos) !=
      (FirstIllFormed(text) == std::string_view::npos)) {
    PropertyBroken("FindInvalidUtf8 disagrees with the Unicode table");
  }
  if (std::optional<kura::TimePoint> t = kura::ParseInstant(text)) {
    if (kura::ParseInstant(kura::FormatInstantMicros(*t)) != t) {
      PropertyBroken("an instant does not survive formatting");
    }
  }
  if (std::optional<kura::TimePoint> t = kura::ParseHttpDate(text)) {
    if (kura::ParseHttpDate(kura::FormatHttpDate(*t)) != t) {
      PropertyBroken("an HTTP date does not survive formatting");
    }
  }
  std::string decoded;
  if (kura::Base64DecodeCanonical(text, decoded) && kura::Base64Encode(Bytes(decoded)) != text) {
    PropertyBroken("canonical base64 does not encode back to its text");
  }
  if (kura::Base64Decode(text, decoded)) {
    std::string again;
    if (!kura::Base64DecodeCanonical(kura::Base64Encode(Bytes(decoded)), again) ||
        again != decoded) {
      PropertyBroken("decoded base64 does not survive encoding");
    }
  }
  return 0;
}
