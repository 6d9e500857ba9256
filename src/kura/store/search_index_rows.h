// Builders of search-index rows (search_index.h) for tests and benchmarks.
#pragma once

#include <string>
#include <utility>

#include "kura/store/search_index.h"

namespace kura::store {

// A row with a key (a token's code, a reference...) and optionally a key2 (its system).
inline IndexEntry KeyRow(std::string param, std::string key, std::string key2 = "",
                         bool blind = false) {
  IndexEntry e;
  e.param = std::move(param);
  e.key = std::move(key);
  e.key2 = std::move(key2);
  e.blind = blind;
  return e;
}

// A range row (a date, a number, a quantity's value).
inline IndexEntry RangeRow(std::string param, double low, double high) {
  IndexEntry e;
  e.param = std::move(param);
  e.low = low;
  e.high = high;
  return e;
}

}  // namespace kura::store
