// LEB128 unsigned varints for the store's own compact encodings (search rows, audit posting
// lists): seven bits a byte, low bits first, the high bit set on every byte but the last.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kura::store {

inline void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// Takes one varint off the front of `in`. False when it is cut short or does not fit 64 bits.
inline bool GetVarint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in.empty()) return false;
    const auto byte = static_cast<unsigned char>(in.front());
    in.remove_prefix(1);
    const uint64_t bits = byte & 0x7F;
    if (shift == 63 && bits > 1) return false;
    v |= bits << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

}  // namespace kura::store
