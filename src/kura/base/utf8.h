// Well-formed UTF-8 (RFC 3629), checked once for every body and name the server takes in.
// Request bodies are mostly ASCII, so the check reads eight bytes at a time until it meets a
// byte with the high bit set; JSON readers then parse without checking the encoding again.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kura {

// The offset of the first byte that does not start a well-formed UTF-8 sequence (an overlong
// form, a surrogate, a code point past U+10FFFF, a stray continuation byte or a sequence cut
// short), or std::string_view::npos when all of `text` is well-formed.
[[nodiscard]] size_t FindInvalidUtf8(std::string_view text);

[[nodiscard]] inline bool IsValidUtf8(std::string_view text) {
  return FindInvalidUtf8(text) == std::string_view::npos;
}

// `text` as well-formed UTF-8 of at most `max_bytes`: each byte that does not start a
// well-formed sequence becomes U+FFFD, and the text ends before a character that would not fit
// whole. For recording what a client sent (a path segment, a query value) where only valid text
// may go.
[[nodiscard]] std::string ToBoundedUtf8(std::string_view text, size_t max_bytes);

}  // namespace kura
