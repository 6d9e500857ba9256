// The check every SAX reader of client JSON runs on a string it keeps: RapidJSON decodes \u
// escapes, and one of them can spell what UTF-8 cannot hold.
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>

#include "kura/base/utf8.h"

namespace kura::fhir::internal {

// A \u escape can spell a lone UTF-16 surrogate (\udead), which RapidJSON decodes into bytes that
// are not UTF-8 (ED A0..BF xx); stored, such text would fail the server's own intake when read
// back. The body was checked as UTF-8 before parsing, so only a decoded string holding 0xED needs
// a second look.
inline bool DecodedIsUtf8(const char* text, size_t length) {
  return std::memchr(text, 0xED, length) == nullptr || IsValidUtf8(std::string_view(text, length));
}
inline constexpr char kLoneSurrogate[] = "a string holds an escaped lone UTF-16 surrogate";

}  // namespace kura::fhir::internal
