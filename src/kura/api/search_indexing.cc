// Search values to index rows, search requests to index queries; see search_indexing.h.
#include "kura/api/search_indexing.h"

#include <boost/unordered/unordered_flat_map.hpp>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>

#include "kura/base/string_hash.h"
#include "kura/fhir/resource.h"
#include "kura/fhir/ucum.h"

namespace kura::api {
namespace {

using fhir::IndexClass;
using fhir::SearchArgument;
using fhir::SearchModifier;
using fhir::SearchParamType;
using fhir::SearchPrefix;
using store::IndexClause;
using store::IndexEntry;
using store::IndexMatch;
using store::RangeCondition;

constexpr size_t kMaxClearKeyBytes = 512;
constexpr int64_t kMicrosPerDay = 86'400'000'000LL;

Status Refuse(std::string_view code, std::string message) {
  return InvalidArgumentError(message).WithDetail({"not-supported", message, std::string(code)});
}

double ParseNumber(std::string_view text) {
  std::string copy(text);
  return std::strtod(copy.c_str(), nullptr);
}

// The first `max_chars` UTF-8 characters of `text` as its successive prefixes.
std::vector<std::string> Utf8Prefixes(std::string_view text, size_t max_chars) {
  std::vector<std::string> out;
  size_t chars = 0;
  for (size_t i = 0; i < text.size() && chars < max_chars;) {
    size_t len = 1;
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0xF0) {
      len = 4;
    } else if (c >= 0xE0) {
      len = 3;
    } else if (c >= 0xC0) {
      len = 2;
    }
    i = std::min(text.size(), i + len);
    ++chars;
    out.emplace_back(text.substr(0, i));
  }
  return out;
}

std::string TruncateUtf8(std::string_view text, size_t max_chars) {
  std::vector<std::string> prefixes = Utf8Prefixes(text, max_chars);
  return prefixes.empty() ? std::string() : prefixes.back();
}

std::string ClearKey(std::string_view text) {
  return std::string(text.substr(0, kMaxClearKeyBytes));
}

// "YYYY", "YYYY-MM", "YYYY-MM-DD" of a range's start, as precise as the range is.
std::vector<std::string> BlindDateKeys(const fhir::InstantRange& range) {
  std::string start = FormatInstantMicros(FromMicros(range.low));  // YYYY-MM-DDThh:mm:ss.ffffffZ
  const int64_t width = range.high - range.low + 1;
  std::vector<std::string> keys = {start.substr(0, 4)};
  if (width <= 31 * kMicrosPerDay) keys.push_back(start.substr(0, 7));
  if (width <= kMicrosPerDay) keys.push_back(start.substr(0, 10));
  return keys;
}

IndexEntry Row(const std::string& param, std::string key, std::string key2, bool blind) {
  IndexEntry e;
  e.param = param;
  e.key = std::move(key);
  e.key2 = std::move(key2);
  e.blind = blind;
  return e;
}

IndexEntry RangeRow(const std::string& param, std::string key, std::string key2, double low,
                    double high) {
  IndexEntry e = Row(param, std::move(key), std::move(key2), false);
  e.low = low;
  e.high = high;
  return e;
}

// The key of a token in a composite: "system|code", and "*|code" for matching any system.
std::vector<std::string> CompositeTokenKeys(const fhir::SearchValue& v) {
  if (v.param != nullptr && v.param->type == SearchParamType::kReference) return {v.reference};
  return {v.system + "|" + v.code, "*|" + v.code};
}

bool QuantityRange(const fhir::SearchValue& v, double& low, double& high) {
  if (!v.number.empty()) {
    low = high = ParseNumber(v.number);
    return true;
  }
  if (v.range_low != 0 || v.range_high != 0) {
    low = v.range_low;
    high = v.range_high;
    return true;
  }
  return false;
}

// The base units of a quantity coded in UCUM (system and code), when its unit converts; null
// otherwise. Parsing a code costs thousands of instructions and a resource names the same few
// units over and over (an Observation's value-quantity, combo-value-quantity and the composites
// holding it), so each thread keeps the codes it has seen. The pointer is valid until the next
// call on the same thread.
const fhir::UcumCanonical* UcumBase(std::string_view system, std::string_view code) {
  if (system != fhir::kUcumSystem || code.empty()) return nullptr;
  constexpr size_t kMaxCachedCodes = 512;
  thread_local boost::unordered_flat_map<std::string, std::optional<fhir::UcumCanonical>,
                                         TransparentStringHash, std::equal_to<>>
      known;
  auto it = known.find(code);
  if (it == known.end()) {
    if (known.size() >= kMaxCachedCodes) known.clear();
    StatusOr<fhir::UcumCanonical> base = fhir::CanonicalUcum(code);
    it =
        known.emplace(std::string(code), base.ok() ? std::optional(*std::move(base)) : std::nullopt)
            .first;
  }
  return it->second ? &*it->second : nullptr;
}

void AddRows(const fhir::SearchValue& v, IndexClass c, std::vector<IndexEntry>& rows) {
  const std::string param(v.param->code);
  const bool blind = c == IndexClass::kBlind;
  switch (v.param->type) {
    case SearchParamType::kToken:
      rows.push_back(Row(param, blind ? v.code : ClearKey(v.code),
                         blind ? v.system : ClearKey(v.system), blind));
      return;
    case SearchParamType::kString: {
      std::string normalized = fhir::NormalizeSearchString(v.text);
      if (!blind) {
        rows.push_back(Row(param, ClearKey(normalized), ClearKey(v.text), false));
        return;
      }
      for (std::string& prefix : Utf8Prefixes(normalized, kBlindPrefixChars)) {
        rows.push_back(Row(param, "p" + prefix, "", true));
      }
      rows.push_back(Row(param, "x" + v.text, "", true));
      return;
    }
    case SearchParamType::kReference:
      if (!v.reference.empty()) {
        rows.push_back(
            Row(param, blind ? v.reference : ClearKey(v.reference), v.target_type, blind));
      }
      if (!v.identifier_value.empty()) {
        rows.push_back(Row(param + ":identifier", v.identifier_value, v.identifier_system, blind));
      }
      return;
    case SearchParamType::kDate:
      if (blind) {
        for (std::string& key : BlindDateKeys(v.range)) {
          rows.push_back(Row(param, std::move(key), "", true));
        }
      } else {
        rows.push_back(RangeRow(param, "", "", static_cast<double>(v.range.low),
                                static_cast<double>(v.range.high)));
      }
      return;
    case SearchParamType::kNumber:
      if (!blind && !v.number.empty()) {
        double value = ParseNumber(v.number);
        rows.push_back(RangeRow(param, "", "", value, value));
      }
      return;
    case SearchParamType::kQuantity: {
      double low = 0, high = 0;
      if (blind || !QuantityRange(v, low, high)) return;
      rows.push_back(RangeRow(param, ClearKey(v.code), ClearKey(v.system), low, high));
      if (const fhir::UcumCanonical* base = UcumBase(v.system, v.code)) {
        rows.push_back(RangeRow(param + kUcumRowSuffix, base->unit, "", base->ToBase(low),
                                base->ToBase(high)));
      }
      return;
    }
    case SearchParamType::kUri:
      rows.push_back(Row(param, blind ? v.text : ClearKey(v.text), "", blind));
      return;
    case SearchParamType::kComposite: {
      if (blind || v.components.size() != 2 || v.components[0].param == nullptr ||
          v.components[1].param == nullptr) {
        return;
      }
      const fhir::SearchValue& first = v.components[0];
      const fhir::SearchValue& second = v.components[1];
      for (const std::string& key : CompositeTokenKeys(first)) {
        switch (second.param->type) {
          case SearchParamType::kToken:
          case SearchParamType::kReference:
            for (const std::string& key2 : CompositeTokenKeys(second)) {
              rows.push_back(Row(param, ClearKey(key), ClearKey(key2), false));
            }
            break;
          case SearchParamType::kString:
            rows.push_back(Row(param, ClearKey(key),
                               ClearKey(fhir::NormalizeSearchString(second.text)), false));
            break;
          case SearchParamType::kQuantity: {
            double low = 0, high = 0;
            if (QuantityRange(second, low, high)) {
              rows.push_back(RangeRow(param, ClearKey(key),
                                      ClearKey(second.system + "|" + second.code), low, high));
              if (const fhir::UcumCanonical* base = UcumBase(second.system, second.code)) {
                rows.push_back(RangeRow(param + kUcumRowSuffix, ClearKey(key), base->unit,
                                        base->ToBase(low), base->ToBase(high)));
              }
            }
            break;
          }
          case SearchParamType::kNumber:
            if (!second.number.empty()) {
              double value = ParseNumber(second.number);
              rows.push_back(RangeRow(param, ClearKey(key), "", value, value));
            }
            break;
          case SearchParamType::kDate:
            rows.push_back(RangeRow(param, ClearKey(key), "", static_cast<double>(second.range.low),
                                    static_cast<double>(second.range.high)));
            break;
          default:
            break;
        }
      }
      return;
    }
    case SearchParamType::kSpecial:
      return;
  }
}

// A parameter's class; a composite is kept in clear only when every part is clear (its rows hold
// the parts' values in clear), and is not indexed otherwise.
IndexClass CompositeAwareClass(const fhir::DataRegister& reg, std::string_view type,
                               const fhir::SearchParamDef& def) {
  IndexClass c = reg.Classify(type, def.code);
  if (def.type != SearchParamType::kComposite || c == IndexClass::kNone) return c;
  for (const fhir::CompositeComponent& part : def.components) {
    if (reg.Classify(type, part.param) != IndexClass::kClear) return IndexClass::kNone;
  }
  return IndexClass::kClear;
}

// --- Queries ---------------------------------------------------------------------------------

using Op = RangeCondition::Op;
using Column = RangeCondition::Column;

RangeCondition Cond(Column column, Op op, double value) {
  return RangeCondition{column, op, value};
}

// The range conditions of a date comparison (R4 search.html#prefix): the target is the row's
// low..high, the search value `q` the range its precision implies.
std::vector<std::vector<RangeCondition>> DateConditions(SearchPrefix prefix, double ql, double qh,
                                                        double now) {
  const std::vector<RangeCondition> within = {Cond(Column::kLow, Op::kGreaterOrEqual, ql),
                                              Cond(Column::kHigh, Op::kLessOrEqual, qh)};
  switch (prefix) {
    case SearchPrefix::kEq:
      return {within};
    case SearchPrefix::kNe:
      return {{Cond(Column::kLow, Op::kLess, ql)}, {Cond(Column::kHigh, Op::kGreater, qh)}};
    case SearchPrefix::kGt:
      return {{Cond(Column::kHigh, Op::kGreater, qh)}};
    case SearchPrefix::kLt:
      return {{Cond(Column::kLow, Op::kLess, ql)}};
    case SearchPrefix::kGe:
      return {{Cond(Column::kHigh, Op::kGreater, qh)}, within};
    case SearchPrefix::kLe:
      return {{Cond(Column::kLow, Op::kLess, ql)}, within};
    case SearchPrefix::kSa:
      return {{Cond(Column::kLow, Op::kGreater, qh)}};
    case SearchPrefix::kEb:
      return {{Cond(Column::kHigh, Op::kLess, ql)}};
    case SearchPrefix::kAp: {
      // Approximately: within 10 % of the distance between the value and now.
      const double slack = 0.1 * std::fabs(ql - now);
      return {{Cond(Column::kLow, Op::kLessOrEqual, qh + slack),
               Cond(Column::kHigh, Op::kGreaterOrEqual, ql - slack)}};
    }
  }
  return {within};
}

// Number and quantity comparisons: equality uses the precision of the value as written (100 is
// [99.5, 100.5)), the ordering prefixes compare with the value itself.
std::vector<std::vector<RangeCondition>> NumberConditions(const SearchArgument& a) {
  const double v = a.number_value;
  switch (a.prefix) {
    case SearchPrefix::kEq:
      return {{Cond(Column::kLow, Op::kGreaterOrEqual, a.number_low),
               Cond(Column::kHigh, Op::kLess, a.number_high)}};
    case SearchPrefix::kNe:
      return {{Cond(Column::kLow, Op::kLess, a.number_low)},
              {Cond(Column::kHigh, Op::kGreaterOrEqual, a.number_high)}};
    case SearchPrefix::kGt:
    case SearchPrefix::kSa:
      return {{Cond(Column::kHigh, Op::kGreater, v)}};
    case SearchPrefix::kLt:
    case SearchPrefix::kEb:
      return {{Cond(Column::kLow, Op::kLess, v)}};
    case SearchPrefix::kGe:
      return {{Cond(Column::kHigh, Op::kGreaterOrEqual, v)}};
    case SearchPrefix::kLe:
      return {{Cond(Column::kLow, Op::kLessOrEqual, v)}};
    case SearchPrefix::kAp: {
      const double slack = std::max(0.1 * std::fabs(v), a.number_high - a.number_low);
      return {{Cond(Column::kLow, Op::kLessOrEqual, v + slack),
               Cond(Column::kHigh, Op::kGreaterOrEqual, v - slack)}};
    }
  }
  return {};
}

class Compiler {
 public:
  Compiler(const fhir::DataRegister& reg, std::string_view local_base, double now)
      : reg_(reg), local_base_(local_base), now_(now) {}

  StatusOr<IndexClause> Term(std::string_view type, const fhir::SearchTerm& term) {
    const fhir::SearchParamDef& def = *term.param;
    const std::string code(def.code);
    const IndexClass c = CompositeAwareClass(reg_, type, def);
    if (c == IndexClass::kNone) {
      return Refuse(code, "search parameter '" + code +
                              "' is not searchable on this server (data register: none)");
    }
    IndexClause clause;
    clause.param = code;
    clause.blind = c == IndexClass::kBlind;
    if (term.modifier == SearchModifier::kMissing) {
      clause.mode = term.missing ? IndexClause::Mode::kMissing : IndexClause::Mode::kPresent;
      return clause;
    }
    if (term.chained) {
      if (clause.blind) {
        return Refuse(code, "search parameter '" + code + "' is blind and cannot be chained");
      }
      auto inner = std::make_shared<store::IndexQuery>();
      inner->type = term.chained_type;
      KURA_ASSIGN_OR_RETURN(IndexClause inner_clause, Term(term.chained_type, *term.chained));
      inner->all_of.push_back(std::move(inner_clause));
      IndexMatch m;
      m.chain = std::move(inner);
      m.chain_key_prefix = term.chained_type + "/";
      clause.any_of.push_back(std::move(m));
      return clause;
    }
    if (term.modifier == SearchModifier::kNot) clause.mode = IndexClause::Mode::kNoMatch;
    if (term.modifier == SearchModifier::kIdentifier) clause.param = code + ":identifier";
    // Quantities in UCUM units compare in base units (1 kg finds 1000 g) when every alternative
    // of the term converts; a clause reads the rows of one parameter, so a term mixing units that
    // convert with others compares all of them as written.
    std::vector<fhir::UcumCanonical> bases;
    if (!clause.blind) {
      for (const SearchArgument& a : term.any_of) {
        const SearchArgument* quantity = QuantityPart(type, def, a);
        if (quantity == nullptr || !quantity->system) break;
        const fhir::UcumCanonical* base = UcumBase(*quantity->system, quantity->code);
        if (base == nullptr) break;
        bases.push_back(*base);
      }
      if (bases.size() == term.any_of.size() && !bases.empty()) {
        clause.param = code + kUcumRowSuffix;
      } else {
        bases.clear();
      }
    }
    for (size_t i = 0; i < term.any_of.size(); ++i) {
      const fhir::UcumCanonical* base = bases.empty() ? nullptr : &bases[i];
      KURA_RETURN_IF_ERROR(Argument(type, def, term, term.any_of[i], base, clause));
    }
    return clause;
  }

 private:
  // The quantity of a quantity argument, or of a composite whose second part is a quantity.
  static const SearchArgument* QuantityPart(std::string_view type, const fhir::SearchParamDef& def,
                                            const SearchArgument& a) {
    if (def.type == SearchParamType::kQuantity) return &a;
    if (def.type != SearchParamType::kComposite || def.components.size() != 2 ||
        a.components.size() != 2) {
      return nullptr;
    }
    const fhir::SearchParamDef* second = fhir::FindSearchParam(type, def.components[1].param);
    return second != nullptr && second->type == SearchParamType::kQuantity ? &a.components[1]
                                                                           : nullptr;
  }

  // The conditions on a quantity; in base units when `base` (the argument's UCUM unit) is set.
  static std::vector<std::vector<RangeCondition>> QuantityConditions(
      const SearchArgument& a, const fhir::UcumCanonical* base) {
    std::vector<std::vector<RangeCondition>> conditions = NumberConditions(a);
    if (base != nullptr) {
      // The map to base units is increasing, so every comparison keeps its direction.
      for (std::vector<RangeCondition>& group : conditions) {
        for (RangeCondition& condition : group) condition.value = base->ToBase(condition.value);
      }
    }
    return conditions;
  }

  Status Argument(std::string_view type, const fhir::SearchParamDef& def,
                  const fhir::SearchTerm& term, const SearchArgument& a,
                  const fhir::UcumCanonical* base, IndexClause& clause) {
    const std::string code(def.code);
    const bool blind = clause.blind;
    auto refuse_blind = [&](std::string_view what) {
      return Refuse(code, "search parameter '" + code + "' is blind: " + std::string(what) +
                              " is not available (data register)");
    };
    IndexMatch m;
    switch (def.type) {
      case SearchParamType::kToken:
        if (!a.code.empty()) m.key = a.code;
        if (a.system) m.key2 = *a.system;
        break;
      case SearchParamType::kString: {
        std::string normalized = fhir::NormalizeSearchString(a.text);
        if (term.modifier == SearchModifier::kExact) {
          if (blind) {
            m.key = "x" + a.text;
          } else {
            m.key = ClearKey(normalized);
            m.key2 = ClearKey(a.text);
          }
        } else if (term.modifier == SearchModifier::kContains) {
          if (blind) return refuse_blind(":contains");
          m.key_contains = normalized;
        } else if (blind) {
          m.key = "p" + TruncateUtf8(normalized, kBlindPrefixChars);
        } else {
          m.key_prefix = ClearKey(normalized);
        }
        break;
      }
      case SearchParamType::kReference:
        if (term.modifier == SearchModifier::kIdentifier) {
          m.key = a.code;
          if (a.system) m.key2 = *a.system;
          break;
        }
        if (!a.reference_id.empty()) {
          if (a.reference_type.empty()) {
            // A bare id: any of the parameter's target types.
            for (std::string_view target : def.targets) {
              IndexMatch typed;
              typed.key = std::string(target) + "/" + a.reference_id;
              clause.any_of.push_back(std::move(typed));
            }
            return Status();
          }
          m.key = a.reference_type + "/" + a.reference_id;
        } else {
          std::string_view url = a.text;
          std::string local = std::string(local_base_) + "/";
          m.key = url.starts_with(local) ? std::string(url.substr(local.size())) : a.text;
        }
        break;
      case SearchParamType::kDate:
        if (blind) {
          if (a.prefix != SearchPrefix::kEq) return refuse_blind("comparison prefixes");
          const int64_t width = a.dates.high - a.dates.low + 1;
          if (width < 86'400'000'000LL) return refuse_blind("a time of day");
          std::vector<std::string> keys = BlindDateKeys(a.dates);
          m.key = keys.back();
        } else {
          m.range_any = DateConditions(a.prefix, static_cast<double>(a.dates.low),
                                       static_cast<double>(a.dates.high), now_);
        }
        break;
      case SearchParamType::kNumber:
        if (blind) return refuse_blind("number search");
        m.range_any = NumberConditions(a);
        break;
      case SearchParamType::kQuantity:
        if (blind) return refuse_blind("quantity search");
        m.range_any = QuantityConditions(a, base);
        if (base != nullptr) {
          m.key = base->unit;
          break;
        }
        if (a.system && !a.system->empty()) m.key2 = *a.system;
        if (!a.code.empty()) m.key = a.code;
        break;
      case SearchParamType::kUri:
        m.key = a.text;
        break;
      case SearchParamType::kComposite: {
        if (blind || a.components.size() != 2) return refuse_blind("composite search");
        const SearchArgument& first = a.components[0];
        const SearchArgument& second = a.components[1];
        const fhir::SearchParamDef* second_def = nullptr;
        if (def.components.size() == 2) {
          second_def = fhir::FindSearchParam(type, def.components[1].param);
        }
        if (!first.reference_id.empty() || !first.text.empty()) {
          m.key = first.reference_type.empty() ? first.text
                                               : first.reference_type + "/" + first.reference_id;
        } else {
          m.key = first.system ? *first.system + "|" + first.code : "*|" + first.code;
        }
        if (second_def == nullptr) return Refuse(code, "this composite parameter is not supported");
        switch (second_def->type) {
          case SearchParamType::kToken:
            m.key2 = second.system ? *second.system + "|" + second.code : "*|" + second.code;
            break;
          case SearchParamType::kString:
            m.key2 = ClearKey(fhir::NormalizeSearchString(second.text));
            break;
          case SearchParamType::kQuantity:
            m.range_any = QuantityConditions(second, base);
            if (base != nullptr) {
              m.key2 = base->unit;
            } else if (second.system) {
              m.key2 = *second.system + "|" + second.code;
            }
            break;
          case SearchParamType::kNumber:
            m.range_any = NumberConditions(second);
            break;
          case SearchParamType::kDate:
            m.range_any = DateConditions(second.prefix, static_cast<double>(second.dates.low),
                                         static_cast<double>(second.dates.high), now_);
            break;
          default:
            return Refuse(code, "this composite parameter is not supported");
        }
        break;
      }
      case SearchParamType::kSpecial:
        return Refuse(code, "search parameter '" + code + "' is not supported");
    }
    clause.any_of.push_back(std::move(m));
    return Status();
  }

 private:
  const fhir::DataRegister& reg_;
  std::string_view local_base_;
  double now_;
};

}  // namespace

StatusOr<std::vector<IndexEntry>> IndexRowsFor(std::string_view resource_json,
                                               const fhir::DataRegister& data_register,
                                               std::string_view local_base) {
  std::vector<IndexEntry> rows;
  // Stored JSON starts with resourceType (StampServerFields).
  std::string_view type;
  if (auto at = resource_json.find("\"resourceType\":\""); at != std::string_view::npos) {
    type = resource_json.substr(at + 16);
    type = type.substr(0, type.find('"'));
  }
  if (!fhir::IsSearchableResourceType(type)) return rows;  // Nothing to find it by.
  KURA_ASSIGN_OR_RETURN(std::vector<fhir::SearchValue> values,
                        fhir::ExtractSearchValues(resource_json, local_base));
  rows.reserve(values.size() + 4);
  // Values come grouped by parameter: classify each parameter once.
  const fhir::SearchParamDef* classified = nullptr;
  IndexClass c = IndexClass::kNone;
  for (const fhir::SearchValue& v : values) {
    // _id searches read the resources table (IndexQuery::ids): no rows needed.
    if (v.param == nullptr || v.param->code == "_id") continue;
    if (v.param != classified) {
      classified = v.param;
      c = CompositeAwareClass(data_register, type, *v.param);
    }
    if (c == IndexClass::kNone) continue;
    AddRows(v, c, rows);
  }
  return rows;
}

StatusOr<store::IndexQuery> CompileSearch(const fhir::SearchRequest& request,
                                          const fhir::DataRegister& data_register,
                                          std::string_view local_base, TimePoint now) {
  const double now_micros = static_cast<double>(
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count());
  Compiler compiler(data_register, local_base, now_micros);
  store::IndexQuery query;
  query.type = request.type;
  query.ids = request.ids;
  for (const fhir::SearchTerm& term : request.terms) {
    KURA_ASSIGN_OR_RETURN(IndexClause clause, compiler.Term(request.type, term));
    query.all_of.push_back(std::move(clause));
    // subject=Patient/x where the subject picks the record compartment: only x's resources can
    // match, and the store can read x's rows together.
    if (query.compartment.empty() && term.chained == nullptr &&
        (term.modifier == SearchModifier::kNone || term.modifier == SearchModifier::kType) &&
        term.any_of.size() == 1 && term.param->type == SearchParamType::kReference &&
        fhir::ExpressionPicksCompartment(request.type, term.param->expression)) {
      const SearchArgument& a = term.any_of.front();
      const bool patient = a.reference_type == "Patient" ||
                           (a.reference_type.empty() && term.param->targets.size() == 1 &&
                            term.param->targets.front() == "Patient");
      if (patient && !a.reference_id.empty()) query.compartment = a.reference_id;
    }
  }
  for (const fhir::SearchSortKey& key : request.sort) {
    const std::string code(key.param->code);
    IndexClass c = data_register.Classify(request.type, key.param->code);
    if (c != IndexClass::kClear) {
      return Refuse(code, "cannot sort by '" + code + "': it is not indexed in clear");
    }
    const bool by_range = key.param->type == SearchParamType::kDate ||
                          key.param->type == SearchParamType::kNumber ||
                          key.param->type == SearchParamType::kQuantity;
    query.sort.push_back(store::IndexSort{code, key.descending, by_range});
  }
  return query;
}

}  // namespace kura::api
