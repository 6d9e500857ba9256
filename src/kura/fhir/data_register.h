// The data register: how each search parameter is indexed (config/data-register.toml, compiled
// in as the default). `clear` values are indexed as they are (normalized), `blind` ones only as
// keyed hashes that match by equality, `none` ones not at all. Immutable once loaded; thread-safe.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "kura/base/status.h"

namespace kura::fhir {

enum class IndexClass : uint8_t { kClear, kBlind, kNone };

std::string_view IndexClassName(IndexClass c);  // "clear", "blind", "none"

class DataRegister {
 public:
  // The register shipped with Kura.
  static const DataRegister& Default();
  // Parses a register file's text. InvalidArgument naming the key on a bad entry.
  static StatusOr<DataRegister> Parse(std::string_view toml_text);

  // The class of `param` on `type`: "Type.param", else "*.param", else `default_string` for a
  // string parameter (free text), else `default`.
  IndexClass Classify(std::string_view type, std::string_view param) const;

  // The classification as text: the two defaults, then every searchable type's standard
  // parameters as "Type.param=class" lines in order. Registers that classify alike give equal
  // text, however their files are written.
  std::string CanonicalForm() const;

 private:
  using TypeParam = std::pair<std::string_view, std::string_view>;
  struct TypeParamHash {
    size_t operator()(const TypeParam& k) const {
      return std::hash<std::string_view>{}(k.first) * 31 + std::hash<std::string_view>{}(k.second);
    }
  };
  // The rule itself (entries, then defaults); Classify answers from `known_` when it can.
  IndexClass ClassifyByRules(std::string_view type, std::string_view param) const;

  IndexClass default_class_ = IndexClass::kClear;
  IndexClass default_string_class_ = IndexClass::kBlind;
  std::map<std::string, IndexClass, std::less<>> entries_;
  // Every searchable type's standard parameters, classified once at Parse: extraction asks for
  // each value of each write, and the rule builds two keys and walks the map twice. The views
  // point into the static R4 tables.
  std::unordered_map<TypeParam, IndexClass, TypeParamHash> known_;
};

// The text of config/data-register.toml as shipped (for `kura init` and docs).
std::string_view DefaultDataRegisterToml();

}  // namespace kura::fhir
