// A hash for string-keyed maps that also looks keys up by std::string_view, without making a
// std::string for every lookup (heterogeneous lookup: with std::equal_to<> as the key equality).
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>

namespace kura {

struct TransparentStringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};

}  // namespace kura
