// KeySet: the keys seen in one open JSON object while a SAX reader walks a body, to refuse
// duplicate keys. Shared by the readers of resources, Bundles and JSON Patches. Internal to
// kura_fhir.
#pragma once

#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace kura::fhir::internal {

// A linear scan for the small objects FHIR is made of; past a few dozen keys a hash set keeps a
// hostile body with a huge object linear. `Key` is std::string, or std::string_view where the
// reader parses in situ and every key stays in its buffer until the walk is over.
template <typename Key>
class BasicKeySet {
 public:
  void Clear() {
    keys_.clear();
    large_.clear();
  }
  // False when `key` was already present.
  bool Insert(std::string_view key) {
    if (keys_.size() < kLinearLimit) {
      for (const Key& k : keys_) {
        if (k == key) return false;
      }
      keys_.emplace_back(key);
      if (keys_.size() == kLinearLimit) large_.insert(keys_.begin(), keys_.end());
      return true;
    }
    return large_.emplace(key).second;
  }

 private:
  static constexpr size_t kLinearLimit = 32;
  std::vector<Key> keys_;
  std::unordered_set<Key> large_;
};

using KeySet = BasicKeySet<std::string>;
using KeyViewSet = BasicKeySet<std::string_view>;

}  // namespace kura::fhir::internal
