// Search value extraction: every parameter's FHIRPath is compiled once (on first use), evaluated
// over the parsed resource, and each resulting node is converted by the parameter's type and the
// node's FHIR type.
#include <algorithm>
#include <boost/unordered/unordered_flat_map.hpp>
#include <charconv>
#include <limits>
#include <optional>

#include "kura/fhir/fhirpath.h"
#include "kura/fhir/internal/fhirpath_internal.h"
#include "kura/fhir/search_params.h"

namespace kura::fhir {
namespace {

using internal::NodeAccess;
using internal::TypeId;

// ---------------------------------------------------------------------------------------------
// Compiled table.

// Which top-level members of a resource an expression can start from, as bits of the type's
// member index; `any` when it cannot be told (the expression is then always evaluated).
struct MemberMask {
  uint64_t bits[2] = {0, 0};
  bool any = true;
  void Set(size_t bit) { bits[bit / 64] |= uint64_t{1} << (bit % 64); }
  bool Intersects(const MemberMask& other) const {
    return ((bits[0] & other.bits[0]) | (bits[1] & other.bits[1])) != 0;
  }
};

struct CompiledParam {
  std::optional<FhirPath> expression;
  MemberMask needs;
  std::vector<FhirPath> components;                   // Composite only; same order as the def.
  std::vector<const SearchParamDef*> component_defs;  // The component parameters.
};

struct CompiledType {
  std::span<const SearchParamDef> defs;
  std::vector<CompiledParam> params;  // Parallel to defs.
  // The top-level member names some expression starts from, each with its bit (at most 128).
  boost::unordered_flat_map<std::string_view, size_t> member_bits;

  // The bits of the members `resource` has.
  MemberMask Present(const rapidjson::Value& resource) const {
    MemberMask present;
    present.any = false;
    for (auto m = resource.MemberBegin(); m != resource.MemberEnd(); ++m) {
      auto it = member_bits.find(std::string_view(m->name.GetString(), m->name.GetStringLength()));
      if (it != member_bits.end()) present.Set(it->second);
    }
    return present;
  }
};

class CompiledTable {
 public:
  static const CompiledTable& Get() {
    static const CompiledTable table;
    return table;
  }

  const CompiledType* For(std::string_view type) const {
    auto it = by_type_.find(type);
    return it == by_type_.end() ? nullptr : &it->second;
  }
  const CompiledParam* For(const SearchParamDef& def) const {
    for (const auto& [type, compiled] : by_type_) {
      if (&def >= compiled.defs.data() && &def < compiled.defs.data() + compiled.defs.size()) {
        return &compiled.params[static_cast<size_t>(&def - compiled.defs.data())];
      }
    }
    return nullptr;
  }

 private:
  // A definition that does not compile (a bug the unit tests catch: every one of the generated
  // table compiles) is left without an expression and so yields no values.
  CompiledTable() {
    for (std::string_view type : SearchableResourceTypes()) {
      CompiledType& ct = by_type_[type];
      ct.defs = SearchParamsFor(type);
      ct.params.resize(ct.defs.size());
      for (size_t i = 0; i < ct.defs.size(); ++i) {
        const SearchParamDef& def = ct.defs[i];
        if (def.expression.empty()) continue;
        StatusOr<FhirPath> expr = FhirPath::Compile(def.expression, type);
        if (!expr.ok()) continue;
        CompiledParam& cp = ct.params[i];
        if (def.type == SearchParamType::kComposite) {
          std::vector<std::string_view> focus = expr->ResultTypes();
          bool ok = true;
          for (const CompositeComponent& c : def.components) {
            const SearchParamDef* cdef = FindSearchParam(type, c.param);
            StatusOr<FhirPath> cexpr = FhirPath::Compile(c.expression, focus);
            if (cdef == nullptr || !cexpr.ok()) {
              ok = false;
              break;
            }
            cp.components.push_back(*std::move(cexpr));
            cp.component_defs.push_back(cdef);
          }
          if (!ok) {
            cp.components.clear();
            cp.component_defs.clear();
            continue;
          }
        }
        if (auto keys = internal::ProgramAccess::FirstMembers(*expr)) {
          MemberMask mask;
          mask.any = false;
          for (std::string_view key : *keys) {
            auto [it, added] = ct.member_bits.emplace(key, ct.member_bits.size());
            if (it->second >= 128) {
              mask.any = true;  // Out of bits: always evaluated.
              break;
            }
            mask.Set(it->second);
          }
          cp.needs = mask;
        }
        cp.expression = *std::move(expr);
      }
    }
  }

  boost::unordered_flat_map<std::string_view, CompiledType> by_type_;
};

// ---------------------------------------------------------------------------------------------
// Conversion.

// The node types conversion distinguishes, looked up once.
struct Types {
  TypeId codeable_concept, coding, identifier, contact_point, boolean, string, uri, canonical,
      human_name, address, reference, date, date_time, instant, period, timing, decimal, integer,
      quantity, money, range, extension;

  static const Types& Get() {
    static const Types types = [] {
      using internal::TypeIdOf;
      Types t{};
      t.codeable_concept = TypeIdOf("CodeableConcept");
      t.coding = TypeIdOf("Coding");
      t.identifier = TypeIdOf("Identifier");
      t.contact_point = TypeIdOf("ContactPoint");
      t.boolean = TypeIdOf("boolean");
      t.string = TypeIdOf("string");
      t.uri = TypeIdOf("uri");
      t.canonical = TypeIdOf("canonical");
      t.human_name = TypeIdOf("HumanName");
      t.address = TypeIdOf("Address");
      t.reference = TypeIdOf("Reference");
      t.date = TypeIdOf("date");
      t.date_time = TypeIdOf("dateTime");
      t.instant = TypeIdOf("instant");
      t.period = TypeIdOf("Period");
      t.timing = TypeIdOf("Timing");
      t.decimal = TypeIdOf("decimal");
      t.integer = TypeIdOf("integer");
      t.quantity = TypeIdOf("Quantity");
      t.money = TypeIdOf("Money");
      t.range = TypeIdOf("Range");
      t.extension = TypeIdOf("Extension");
      return t;
    }();
    return types;
  }
};

std::string_view Str(const rapidjson::Value& v) { return {v.GetString(), v.GetStringLength()}; }

// The string member `key` of object `v`, or nullptr.
const rapidjson::Value* Member(const rapidjson::Value& v, std::string_view key) {
  if (!v.IsObject()) return nullptr;
  auto m = v.FindMember(rapidjson::StringRef(key.data(), key.size()));
  return m == v.MemberEnd() ? nullptr : &m->value;
}

using internal::IsNumberText;

bool IsText(const rapidjson::Value& v) { return v.IsString() && !IsNumberText(v); }

// The string member `key` of `v` (empty when absent or not a JSON string).
std::string_view StringMember(const rapidjson::Value& v, std::string_view key) {
  const rapidjson::Value* m = Member(v, key);
  return m != nullptr && IsText(*m) ? Str(*m) : std::string_view();
}

// The text of the number member `key` of `v` (empty when absent or not a JSON number).
std::string_view NumberMember(const rapidjson::Value& v, std::string_view key) {
  const rapidjson::Value* m = Member(v, key);
  return m != nullptr && IsNumberText(*m) ? Str(*m) : std::string_view();
}

// Calls f(string) for the string member `key` or each string of the array member `key`.
template <typename F>
void ForEachString(const rapidjson::Value& v, std::string_view key, F&& f) {
  const rapidjson::Value* m = Member(v, key);
  if (m == nullptr) return;
  if (IsText(*m)) {
    f(Str(*m));
  } else if (m->IsArray()) {
    for (const rapidjson::Value& item : m->GetArray()) {
      if (IsText(item)) f(Str(item));
    }
  }
}

std::optional<double> ParseDouble(std::string_view text) {
  double d = 0;
  auto r = std::from_chars(text.data(), text.data() + text.size(), d);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size()) return std::nullopt;
  return d;
}

class Converter {
 public:
  Converter(const rapidjson::Value& root, std::string_view local_base)
      : root_(root), local_base_(local_base), t_(Types::Get()) {}

  // Appends the values of `node` for a parameter of `type` to `out`.
  void Convert(const SearchParamDef& def, SearchParamType type, const PathNode& node,
               std::vector<SearchValue>& out) const {
    if (node.kind() == PathNode::Kind::kBoolean) {
      if (type == SearchParamType::kToken) Add(def, out).code = node.boolean() ? "true" : "false";
      return;
    }
    if (node.kind() != PathNode::Kind::kElement) return;
    TypeId nt = NodeAccess::Type(node);
    if (nt == t_.extension) {
      std::optional<PathNode> value = internal::ExtensionValue(node);
      if (value) Convert(def, type, *value, out);
      return;
    }
    const rapidjson::Value& v = *NodeAccess::Value(node);
    switch (type) {
      case SearchParamType::kToken:
        return Token(def, nt, v, out);
      case SearchParamType::kString:
        return String(def, nt, v, out);
      case SearchParamType::kReference:
        return Reference(def, nt, v, out);
      case SearchParamType::kDate:
        return Date(def, nt, v, out);
      case SearchParamType::kNumber:
        if (IsNumberText(v) && (Is(nt, t_.decimal) || Is(nt, t_.integer))) {
          std::optional<double> d = ParseDouble(Str(v));
          if (!d) return;
          SearchValue& sv = Add(def, out);
          sv.number = Str(v);
          sv.range_low = sv.range_high = *d;
        }
        return;
      case SearchParamType::kQuantity:
        return Quantity(def, nt, v, out);
      case SearchParamType::kUri:
        if (IsText(v) && Is(nt, t_.uri)) Add(def, out).text = Str(v);
        return;
      case SearchParamType::kComposite:
      case SearchParamType::kSpecial:
        return;
    }
  }

 private:
  static bool Is(TypeId type, TypeId base) { return internal::IsA(type, base); }

  static SearchValue& Add(const SearchParamDef& def, std::vector<SearchValue>& out) {
    SearchValue& sv = out.emplace_back();
    sv.param = &def;
    return sv;
  }

  void Token(const SearchParamDef& def, TypeId nt, const rapidjson::Value& v,
             std::vector<SearchValue>& out) const {
    if (nt == t_.codeable_concept) {
      std::string_view text = StringMember(v, "text");
      const rapidjson::Value* codings = Member(v, "coding");
      if (codings == nullptr || !codings->IsArray()) return;
      for (const rapidjson::Value& coding : codings->GetArray()) Coding(def, coding, text, out);
    } else if (nt == t_.coding) {
      Coding(def, v, {}, out);
    } else if (nt == t_.identifier) {
      std::string_view value = StringMember(v, "value");
      if (value.empty()) return;
      SearchValue& sv = Add(def, out);
      sv.system = StringMember(v, "system");
      sv.code = value;
    } else if (nt == t_.contact_point) {
      std::string_view value = StringMember(v, "value");
      if (!value.empty()) Add(def, out).code = value;
    } else if (v.IsBool()) {
      Add(def, out).code = v.GetBool() ? "true" : "false";
    } else if (IsText(v) && (Is(nt, t_.string) || Is(nt, t_.uri))) {
      Add(def, out).code = Str(v);
    }
  }

  static void Coding(const SearchParamDef& def, const rapidjson::Value& coding,
                     std::string_view concept_text, std::vector<SearchValue>& out) {
    std::string_view code = StringMember(coding, "code");
    if (code.empty()) return;
    SearchValue& sv = Add(def, out);
    sv.system = StringMember(coding, "system");
    sv.code = code;
    sv.text = concept_text.empty() ? StringMember(coding, "display") : concept_text;
  }

  void String(const SearchParamDef& def, TypeId nt, const rapidjson::Value& v,
              std::vector<SearchValue>& out) const {
    auto add = [&](std::string_view s) {
      if (!s.empty()) Add(def, out).text = s;
    };
    if (nt == t_.human_name) {
      for (std::string_view key : {"family", "given", "prefix", "suffix", "text"}) {
        ForEachString(v, key, add);
      }
    } else if (nt == t_.address) {
      for (std::string_view key :
           {"line", "city", "district", "state", "postalCode", "country", "text"}) {
        ForEachString(v, key, add);
      }
    } else if (IsText(v) && Is(nt, t_.string)) {
      add(Str(v));
    }
  }

  void Reference(const SearchParamDef& def, TypeId nt, const rapidjson::Value& v,
                 std::vector<SearchValue>& out) const {
    if (nt == t_.reference) {
      std::string_view ref = StringMember(v, "reference");
      const rapidjson::Value* identifier = Member(v, "identifier");
      std::string_view id_value =
          identifier != nullptr ? StringMember(*identifier, "value") : std::string_view();
      if (ref.empty() && id_value.empty()) return;
      SearchValue& sv = Add(def, out);
      if (!ref.empty()) {
        internal::ReferenceParts parts = internal::ParseReference(ref);
        if (parts.contained) {
          sv.reference = ref;
          sv.target_type = internal::ReferenceTargetType(root_, ref);
        } else if (!parts.type.empty() && (parts.base.empty() || IsLocal(parts.base))) {
          sv.reference.reserve(parts.type.size() + 1 + parts.id.size());
          sv.reference.append(parts.type).append("/").append(parts.id);
          sv.target_type = parts.type;
        } else if (!parts.type.empty()) {
          // Absolute and elsewhere: the URL without its version part.
          sv.reference =
              ref.substr(0, static_cast<size_t>(parts.id.data() - ref.data()) + parts.id.size());
          sv.target_type = parts.type;
        } else {
          sv.reference = ref;
        }
      }
      if (sv.target_type.empty()) sv.target_type = StringMember(v, "type");
      if (!id_value.empty()) {
        sv.identifier_system = StringMember(*identifier, "system");
        sv.identifier_value = id_value;
      }
    } else if (IsText(v) && Is(nt, t_.uri)) {
      std::string_view url = Str(v);
      if (nt == t_.canonical) url = url.substr(0, url.find('|'));
      if (url.empty()) return;
      SearchValue& sv = Add(def, out);
      sv.reference = url;
      sv.target_type = internal::ParseReference(url).type;
    }
  }

  bool IsLocal(std::string_view base) const {
    std::string_view local = local_base_;
    while (local.ends_with('/')) local.remove_suffix(1);
    return !local.empty() && base == local;
  }

  void Date(const SearchParamDef& def, TypeId nt, const rapidjson::Value& v,
            std::vector<SearchValue>& out) const {
    constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    if (IsText(v) && (nt == t_.date || nt == t_.date_time || nt == t_.instant)) {
      if (std::optional<InstantRange> r = FhirDateRange(Str(v))) Add(def, out).range = *r;
    } else if (nt == t_.period) {
      std::optional<InstantRange> range = PeriodRange(v);
      if (range) Add(def, out).range = *range;
    } else if (nt == t_.timing) {
      // The outer limits: the earliest and latest events and the bounds period.
      InstantRange all{kMax, kMin};
      bool any = false;
      auto widen = [&](const InstantRange& r) {
        all.low = std::min(all.low, r.low);
        all.high = std::max(all.high, r.high);
        any = true;
      };
      ForEachString(v, "event", [&](std::string_view e) {
        if (std::optional<InstantRange> r = FhirDateRange(e)) widen(*r);
      });
      const rapidjson::Value* repeat = Member(v, "repeat");
      const rapidjson::Value* bounds =
          repeat != nullptr ? Member(*repeat, "boundsPeriod") : nullptr;
      if (bounds != nullptr) {
        if (std::optional<InstantRange> r = PeriodRange(*bounds)) widen(*r);
      }
      if (any) Add(def, out).range = all;
    }
  }

  static std::optional<InstantRange> PeriodRange(const rapidjson::Value& period) {
    std::string_view start = StringMember(period, "start");
    std::string_view end = StringMember(period, "end");
    if (start.empty() && end.empty()) return std::nullopt;
    InstantRange range{std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()};
    if (!start.empty()) {
      std::optional<InstantRange> r = FhirDateRange(start);
      if (!r) return std::nullopt;
      range.low = r->low;
    }
    if (!end.empty()) {
      std::optional<InstantRange> r = FhirDateRange(end);
      if (!r) return std::nullopt;
      range.high = r->high;
    }
    return range;
  }

  void Quantity(const SearchParamDef& def, TypeId nt, const rapidjson::Value& v,
                std::vector<SearchValue>& out) const {
    if (Is(nt, t_.quantity) || nt == t_.money) {
      std::string_view value = NumberMember(v, "value");
      std::optional<double> d = ParseDouble(value);
      if (!d) return;
      SearchValue& sv = Add(def, out);
      sv.number = value;
      sv.range_low = sv.range_high = *d;
      if (nt == t_.money) {
        sv.system = "urn:iso:std:iso:4217";
        sv.code = StringMember(v, "currency");
      } else {
        sv.system = StringMember(v, "system");
        std::string_view code = StringMember(v, "code");
        sv.code = code.empty() ? StringMember(v, "unit") : code;
      }
    } else if (nt == t_.range) {
      const rapidjson::Value* low = Member(v, "low");
      const rapidjson::Value* high = Member(v, "high");
      std::optional<double> lo = low ? ParseDouble(NumberMember(*low, "value")) : std::nullopt;
      std::optional<double> hi = high ? ParseDouble(NumberMember(*high, "value")) : std::nullopt;
      if (!lo && !hi) return;
      const rapidjson::Value& unit = lo ? *low : *high;
      SearchValue& sv = Add(def, out);
      sv.range_low = lo.value_or(-std::numeric_limits<double>::infinity());
      sv.range_high = hi.value_or(std::numeric_limits<double>::infinity());
      sv.system = StringMember(unit, "system");
      std::string_view code = StringMember(unit, "code");
      sv.code = code.empty() ? StringMember(unit, "unit") : code;
    }
  }

  const rapidjson::Value& root_;
  std::string_view local_base_;
  const Types& t_;
};

// Appends every combination of one value per component.
void Combine(const SearchParamDef& def, std::span<const std::vector<SearchValue>> parts,
             size_t index, std::vector<SearchValue>& prefix, std::vector<SearchValue>& out) {
  if (index == parts.size()) {
    SearchValue& sv = out.emplace_back();
    sv.param = &def;
    sv.components.reserve(prefix.size());
    sv.components = prefix;
    return;
  }
  for (const SearchValue& v : parts[index]) {
    prefix.push_back(v);
    Combine(def, parts, index + 1, prefix, out);
    prefix.pop_back();
  }
}

}  // namespace

const FhirPath* SearchParamExpression(const SearchParamDef& param) {
  const CompiledParam* cp = CompiledTable::Get().For(param);
  return cp != nullptr && cp->expression ? &*cp->expression : nullptr;
}

const FhirPath* SearchParamComponentExpression(const SearchParamDef& param, size_t index) {
  const CompiledParam* cp = CompiledTable::Get().For(param);
  return cp != nullptr && index < cp->components.size() ? &cp->components[index] : nullptr;
}

StatusOr<std::vector<SearchValue>> ExtractSearchValues(const ParsedResource& resource,
                                                       std::string_view local_base_url) {
  const CompiledType* compiled = CompiledTable::Get().For(resource.resource_type());
  if (compiled == nullptr) {
    return InvalidArgumentError("Search is not supported for this resource type");
  }
  const rapidjson::Value& root = NodeAccess::Root(resource);
  const MemberMask present = compiled->Present(root);
  Converter converter(root, local_base_url);
  std::vector<SearchValue> out;
  out.reserve(32);
  std::vector<PathNode> nodes;
  nodes.reserve(16);
  std::vector<std::vector<PathNode>> component_nodes;  // Per composite component.
  std::vector<std::vector<SearchValue>> parts;
  std::vector<SearchValue> prefix;
  for (size_t i = 0; i < compiled->defs.size(); ++i) {
    const SearchParamDef& def = compiled->defs[i];
    const CompiledParam& cp = compiled->params[i];
    if (!cp.expression) continue;
    if (!cp.needs.any && !cp.needs.Intersects(present)) continue;
    nodes.clear();
    cp.expression->Evaluate(resource, nodes);
    if (def.type != SearchParamType::kComposite) {
      for (const PathNode& node : nodes) converter.Convert(def, def.type, node, out);
      continue;
    }
    parts.resize(std::max(parts.size(), cp.components.size()));
    component_nodes.resize(parts.size());
    const size_t n = cp.components.size();
    for (const PathNode& focus : nodes) {
      // Nodes of every component first: most foci lack one (an Observation has one value[x]),
      // and then nothing needs converting.
      bool complete = true;
      for (size_t c = 0; c < n && complete; ++c) {
        component_nodes[c].clear();
        cp.components[c].Evaluate(resource, std::span(&focus, 1), component_nodes[c]);
        complete = !component_nodes[c].empty();
      }
      for (size_t c = 0; c < n && complete; ++c) {
        parts[c].clear();
        const SearchParamDef& cdef = *cp.component_defs[c];
        for (const PathNode& node : component_nodes[c]) {
          converter.Convert(cdef, cdef.type, node, parts[c]);
        }
        complete = !parts[c].empty();
      }
      if (complete) Combine(def, std::span(parts).first(n), 0, prefix, out);
    }
  }
  return out;
}

StatusOr<std::vector<SearchValue>> ExtractSearchValues(std::string_view resource_json,
                                                       std::string_view local_base_url) {
  KURA_ASSIGN_OR_RETURN(ParsedResource resource, ParsedResource::Parse(resource_json));
  return ExtractSearchValues(resource, local_base_url);
}

}  // namespace kura::fhir
