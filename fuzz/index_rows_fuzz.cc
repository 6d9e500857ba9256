// Fuzz target: a resource's stored search-index rows (search_rows.index_rows), which a restart
// decodes to rebuild the in-memory index and which a copied or damaged database controls.
// DecodeIndexRows must refuse what is malformed without crashing; what it accepts must encode and
// decode again to the same rows, and load into the in-memory index.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

#include "kura/store/memory_search_index.h"
#include "property.h"

namespace {

// IndexEntry's operator== compares bounds as doubles, so NaN (which stored bytes can spell) would
// never equal itself: bounds are compared bit for bit.
bool SameRows(const std::vector<kura::store::IndexEntry>& a,
              const std::vector<kura::store::IndexEntry>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto same_bound = [](const std::optional<double>& x, const std::optional<double>& y) {
      return x.has_value() == y.has_value() && (!x || std::memcmp(&*x, &*y, sizeof(double)) == 0);
    };
    if (a[i].param != b[i].param || a[i].key != b[i].key || a[i].key2 != b[i].key2 ||
        a[i].blind != b[i].blind || !same_bound(a[i].low, b[i].low) ||
        !same_bound(a[i].high, b[i].high)) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kura::store;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  kura::StatusOr<std::vector<IndexEntry>> rows = DecodeIndexRows(bytes);
  if (!rows.ok()) return 0;
  if (!CheckIndexRows(*rows).ok()) return 0;
  kura::StatusOr<std::vector<IndexEntry>> again = DecodeIndexRows(EncodeIndexRows(*rows));
  if (!again.ok() || !SameRows(*rows, *again)) {
    PropertyBroken("index rows do not survive encoding");
  }
  MemorySearchIndex index;
  index.Apply({IndexChange{"Observation", "o1", "p1", false, &*rows}});
  index.Apply({IndexChange{"Observation", "o1", "p1", true, nullptr}});
  return 0;
}
