// RFC 3629's well-formed byte sequences (the Unicode Standard's table 3-7), with a word-at-a-time
// skip over ASCII.
#include "kura/base/utf8.h"

#include <cstdint>
#include <cstring>

namespace kura {
namespace {

constexpr uint64_t kHighBits = 0x8080808080808080ull;

bool InRange(uint8_t byte, uint8_t low, uint8_t high) { return byte >= low && byte <= high; }

// The length of the well-formed sequence at text[i] (whose lead byte is >= 0x80), or 0.
size_t SequenceLength(const uint8_t* text, size_t i, size_t n) {
  const uint8_t lead = text[i];
  auto continuation = [&](size_t k, uint8_t low, uint8_t high) {
    return i + k < n && InRange(text[i + k], low, high);
  };
  if (InRange(lead, 0xc2, 0xdf)) return continuation(1, 0x80, 0xbf) ? 2 : 0;
  if (lead == 0xe0) return continuation(1, 0xa0, 0xbf) && continuation(2, 0x80, 0xbf) ? 3 : 0;
  if (InRange(lead, 0xe1, 0xec) || lead == 0xee || lead == 0xef) {
    return continuation(1, 0x80, 0xbf) && continuation(2, 0x80, 0xbf) ? 3 : 0;
  }
  if (lead == 0xed) {  // U+D000..U+D7FF: the next 0x800 code points are surrogates.
    return continuation(1, 0x80, 0x9f) && continuation(2, 0x80, 0xbf) ? 3 : 0;
  }
  if (lead == 0xf0) {
    return continuation(1, 0x90, 0xbf) && continuation(2, 0x80, 0xbf) && continuation(3, 0x80, 0xbf)
               ? 4
               : 0;
  }
  if (InRange(lead, 0xf1, 0xf3)) {
    return continuation(1, 0x80, 0xbf) && continuation(2, 0x80, 0xbf) && continuation(3, 0x80, 0xbf)
               ? 4
               : 0;
  }
  if (lead == 0xf4) {  // Nothing past U+10FFFF.
    return continuation(1, 0x80, 0x8f) && continuation(2, 0x80, 0xbf) && continuation(3, 0x80, 0xbf)
               ? 4
               : 0;
  }
  return 0;  // A continuation byte, 0xc0, 0xc1 or 0xf5..0xff.
}

}  // namespace

size_t FindInvalidUtf8(std::string_view text) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    if (n - i >= sizeof(uint64_t)) {
      uint64_t word;
      std::memcpy(&word, bytes + i, sizeof(word));
      if ((word & kHighBits) == 0) {
        i += sizeof(word);
        continue;
      }
    }
    if (bytes[i] < 0x80) {
      ++i;
      continue;
    }
    const size_t length = SequenceLength(bytes, i, n);
    if (length == 0) return i;
    i += length;
  }
  return std::string_view::npos;
}

std::string ToBoundedUtf8(std::string_view text, size_t max_bytes) {
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  std::string out;
  while (!text.empty()) {
    const size_t bad = FindInvalidUtf8(text);
    std::string_view good = text.substr(0, bad);
    if (good.size() > max_bytes - out.size()) {
      size_t room = max_bytes - out.size();
      // Back to the start of the character the limit falls in.
      while (room > 0 && (static_cast<unsigned char>(good[room]) & 0xC0) == 0x80) --room;
      out.append(good.substr(0, room));
      return out;
    }
    out.append(good);
    if (bad == std::string_view::npos) break;
    if (kReplacement.size() > max_bytes - out.size()) return out;
    out.append(kReplacement);
    text.remove_prefix(bad + 1);
  }
  return out;
}

}  // namespace kura
