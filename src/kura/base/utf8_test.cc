// FindInvalidUtf8 against RFC 3629 edge cases, and against a plain decoder on every short
// sequence, so the word-at-a-time skip cannot hide a bad byte.
#include "kura/base/utf8.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace kura {
namespace {

constexpr size_t kNone = std::string_view::npos;

// A straightforward decoder: the reference the fast check is compared with.
bool DecodesAsUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<uint8_t>(text[i]);
    size_t len = 0;
    uint32_t cp = 0;
    uint32_t min = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (text.size() - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<uint8_t>(text[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

TEST(Utf8Test, WellFormedTextPasses) {
  EXPECT_EQ(FindInvalidUtf8(""), kNone);
  EXPECT_EQ(FindInvalidUtf8("plain ascii, longer than one word of eight bytes"), kNone);
  EXPECT_EQ(FindInvalidUtf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"), kNone);      // é € 😀
  EXPECT_EQ(FindInvalidUtf8("\xed\x9f\xbf\xee\x80\x80\xf4\x8f\xbf\xbf"), kNone);  // Edges.
  EXPECT_TRUE(IsValidUtf8("Zoë Ångström"));
}

TEST(Utf8Test, TheFirstBadByteIsNamed) {
  EXPECT_EQ(FindInvalidUtf8("\x80"), 0u);                    // Stray continuation byte.
  EXPECT_EQ(FindInvalidUtf8("abc\xc3"), 3u);                 // Cut short at the end.
  EXPECT_EQ(FindInvalidUtf8("abcdefghij\xc3\x28xyz"), 10u);  // After a whole ASCII word.
  EXPECT_EQ(FindInvalidUtf8("\xc0\xaf"), 0u);                // Overlong two-byte form.
  EXPECT_EQ(FindInvalidUtf8("\xe0\x80\xaf"), 0u);            // Overlong three-byte form.
  EXPECT_EQ(FindInvalidUtf8("\xf0\x8f\xbf\xbf"), 0u);        // Overlong four-byte form.
  EXPECT_EQ(FindInvalidUtf8("ok \xed\xa0\x80"), 3u);         // A surrogate.
  EXPECT_EQ(FindInvalidUtf8("\xf4\x90\x80\x80"), 0u);        // Past U+10FFFF.
  EXPECT_EQ(FindInvalidUtf8("\xf8\x88\x80\x80\x80"), 0u);    // Five-byte forms do not exist.
  EXPECT_EQ(FindInvalidUtf8("\xc3\xa9\xff"), 2u);
  EXPECT_EQ(FindInvalidUtf8(std::string_view("a\0b\xfe", 4)), 3u);  // NUL is a character.
  EXPECT_FALSE(IsValidUtf8("\xed\xbf\xbf"));
}

// Every sequence of up to three bytes from a set that covers each boundary of table 3-7, placed
// at every offset within a word, agrees with the plain decoder.
TEST(Utf8Test, AgreesWithAPlainDecoderOnEveryShortSequence) {
  const uint8_t samples[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                             0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee,
                             0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff};
  size_t checked = 0;
  for (uint8_t a : samples) {
    for (uint8_t b : samples) {
      for (uint8_t c : samples) {
        for (uint8_t d : {uint8_t{0x41}, uint8_t{0x80}, uint8_t{0xbf}}) {
          const std::string tail{static_cast<char>(a), static_cast<char>(b), static_cast<char>(c),
                                 static_cast<char>(d)};
          for (size_t pad = 0; pad < 9; ++pad) {
            const std::string text = std::string(pad, 'x') + tail;
            EXPECT_EQ(IsValidUtf8(text), DecodesAsUtf8(text))
                << pad << ' ' << int{a} << ' ' << int{b} << ' ' << int{c};
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, 25u * 25u * 25u * 3u * 9u);
}

TEST(Utf8Test, BoundedTextIsValidAndNeverCutsACharacter) {
  EXPECT_EQ(ToBoundedUtf8("Observation", 64), "Observation");
  EXPECT_EQ(ToBoundedUtf8("Obs\xffvation", 64), "Obs\xEF\xBF\xBDvation");
  EXPECT_EQ(ToBoundedUtf8("\xc3", 64), "\xEF\xBF\xBD");  // a sequence cut short
  EXPECT_EQ(ToBoundedUtf8("\xed\xa0\x80", 64),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
  EXPECT_EQ(ToBoundedUtf8("abcdef", 4), "abcd");
  EXPECT_EQ(ToBoundedUtf8("abc\xc3\xa4", 4), "abc");  // \xc3\xa4 does not fit whole
  EXPECT_EQ(ToBoundedUtf8("ab\xc3\xa4", 4), "ab\xc3\xa4");
  EXPECT_EQ(ToBoundedUtf8("ab\xff", 4), "ab");  // nor does U+FFFD
  EXPECT_EQ(ToBoundedUtf8("", 4), "");
  EXPECT_EQ(ToBoundedUtf8("abc", 0), "");
  for (const std::string& text :
       {std::string("a\xf0\x9f\x98\x80\xffz\xe2\x82"), std::string(100, '\x80')}) {
    for (size_t max = 0; max < 20; ++max) {
      const std::string bounded = ToBoundedUtf8(text, max);
      EXPECT_TRUE(IsValidUtf8(bounded)) << max;
      EXPECT_LE(bounded.size(), max);
    }
  }
}

}  // namespace
}  // namespace kura
