// Parsing of FHIR search parameters; see search_query.h.
#include "kura/fhir/search_query.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "kura/fhir/r4_tables.h"
#include "kura/fhir/resource.h"

namespace kura::fhir {
namespace {

Status Invalid(std::string_view name, std::string message) {
  std::string full = "search parameter '" + std::string(name) + "': " + message;
  return InvalidArgumentError(full).WithDetail({"invalid", full, std::string(name)});
}

int ToInt(std::string_view s) {
  int v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// Splits on unescaped `sep`, unescaping "\," "\$" "\|" and "\\".
std::vector<std::string> SplitEscaped(std::string_view text, char sep) {
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\\' && i + 1 < text.size() &&
        (text[i + 1] == ',' || text[i + 1] == '$' || text[i + 1] == '|' || text[i + 1] == '\\')) {
      // Keep the escape for separators a later split still has to honour.
      if (text[i + 1] != sep && (text[i + 1] == '$' || text[i + 1] == '|')) parts.back() += '\\';
      parts.back() += text[++i];
    } else if (c == sep) {
      parts.emplace_back();
    } else {
      parts.back() += c;
    }
  }
  return parts;
}

std::optional<SearchPrefix> PrefixOf(std::string_view two) {
  static constexpr std::pair<std::string_view, SearchPrefix> kPrefixes[] = {
      {"eq", SearchPrefix::kEq}, {"ne", SearchPrefix::kNe}, {"gt", SearchPrefix::kGt},
      {"lt", SearchPrefix::kLt}, {"ge", SearchPrefix::kGe}, {"le", SearchPrefix::kLe},
      {"sa", SearchPrefix::kSa}, {"eb", SearchPrefix::kEb}, {"ap", SearchPrefix::kAp}};
  for (const auto& [name, prefix] : kPrefixes) {
    if (two == name) return prefix;
  }
  return std::nullopt;
}

// Removes a comparison prefix from `text` (number, date and quantity values).
SearchPrefix TakePrefix(std::string& text) {
  if (text.size() > 2 && std::islower(static_cast<unsigned char>(text[0])) &&
      std::islower(static_cast<unsigned char>(text[1]))) {
    if (std::optional<SearchPrefix> p = PrefixOf(std::string_view(text).substr(0, 2))) {
      text.erase(0, 2);
      return *p;
    }
  }
  return SearchPrefix::kEq;
}

// A FHIR decimal (JSON number syntax) and the interval its precision implies: 100 is
// [99.5, 100.5), 1.50 is [1.495, 1.505), 1e2 is [50, 150).
bool ParseDecimal(std::string_view text, SearchArgument& out) {
  if (text.empty() || text.size() > 64) return false;
  size_t i = 0;
  if (text[i] == '-' || text[i] == '+') ++i;
  size_t int_digits = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i, ++int_digits;
  int decimals = 0;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i, ++decimals;
    if (decimals == 0) return false;
  }
  if (int_digits == 0) return false;
  int exponent = 0;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    size_t start = i;
    if (i < text.size() && (text[i] == '-' || text[i] == '+')) ++i;
    size_t digits_at = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    if (i == digits_at || i - start > 4) return false;
    exponent = ToInt(text.substr(text[start] == '+' ? start + 1 : start, i - start));
  }
  if (i != text.size()) return false;
  std::string copy(text);
  char* end = nullptr;
  double value = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || !std::isfinite(value)) return false;
  const double half_step = 0.5 * std::pow(10.0, exponent - decimals);
  out.number = std::string(text);
  out.number_value = value;
  out.number_low = value - half_step;
  out.number_high = value + half_step;
  return true;
}

Status ParseArgument(std::string_view name, const SearchParamDef& param, std::string_view type,
                     std::string text, SearchModifier modifier, const std::string& type_modifier,
                     SearchArgument& out);

Status ParseComposite(std::string_view name, const SearchParamDef& param, std::string_view type,
                      const std::string& text, SearchArgument& out) {
  std::vector<std::string> parts = SplitEscaped(text, '$');
  if (parts.size() != param.components.size()) {
    return Invalid(name, "a composite value needs " + std::to_string(param.components.size()) +
                             " parts separated by '$'");
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    const SearchParamDef* component = FindSearchParam(type, param.components[i].param);
    if (component == nullptr || component->type == SearchParamType::kComposite) {
      return Invalid(name, "this composite parameter is not supported");
    }
    SearchArgument part;
    KURA_RETURN_IF_ERROR(
        ParseArgument(name, *component, type, parts[i], SearchModifier::kNone, "", part));
    out.components.push_back(std::move(part));
  }
  return Status();
}

Status ParseArgument(std::string_view name, const SearchParamDef& param, std::string_view type,
                     std::string text, SearchModifier modifier, const std::string& type_modifier,
                     SearchArgument& out) {
  switch (param.type) {
    case SearchParamType::kNumber: {
      out.prefix = TakePrefix(text);
      if (!ParseDecimal(text, out)) return Invalid(name, "the value must be a decimal number");
      return Status();
    }
    case SearchParamType::kDate: {
      out.prefix = TakePrefix(text);
      std::optional<InstantRange> range = FhirDateRange(text);
      if (!range) {
        return Invalid(name, "the value must be a FHIR date or dateTime, e.g. 2020-03-04");
      }
      out.dates = *range;
      return Status();
    }
    case SearchParamType::kQuantity: {
      out.prefix = TakePrefix(text);
      std::vector<std::string> parts = SplitEscaped(text, '|');
      if (parts.size() != 1 && parts.size() != 3) {
        return Invalid(name, "the value must be number or number|system|code");
      }
      if (!ParseDecimal(parts[0], out)) {
        return Invalid(name, "the value must start with a decimal number");
      }
      if (parts.size() == 3) {
        out.system = parts[1];
        out.code = parts[2];
      }
      return Status();
    }
    case SearchParamType::kToken: {
      std::vector<std::string> parts = SplitEscaped(text, '|');
      if (parts.size() > 2) return Invalid(name, "the value must be code, system|code or |code");
      if (parts.size() == 2) {
        out.system = parts[0];
        out.code = parts[1];
        if (out.system->empty() && out.code.empty()) {
          return Invalid(name, "the value must name a system or a code");
        }
      } else {
        out.code = parts[0];
        if (out.code.empty()) return Invalid(name, "the value is empty");
      }
      return Status();
    }
    case SearchParamType::kReference: {
      if (modifier == SearchModifier::kIdentifier) {
        std::vector<std::string> parts = SplitEscaped(text, '|');
        if (parts.size() > 2 || parts.back().empty()) {
          return Invalid(name, "the value must be an identifier: system|value or value");
        }
        if (parts.size() == 2) out.system = parts[0];
        out.code = parts.back();
        return Status();
      }
      if (text.empty()) return Invalid(name, "the value is empty");
      out.text = text;
      if (text.find("://") != std::string::npos || text.starts_with("urn:")) return Status();
      std::string_view ref(text);
      if (auto history = ref.find("/_history/"); history != std::string_view::npos) {
        ref = ref.substr(0, history);
      }
      auto slash = ref.find('/');
      if (slash == std::string_view::npos) {
        out.reference_id = std::string(ref);
        out.reference_type = type_modifier;
      } else {
        out.reference_type = std::string(ref.substr(0, slash));
        out.reference_id = std::string(ref.substr(slash + 1));
        if (!IsR4ResourceType(out.reference_type)) {
          return Invalid(name, "the value must be [Type/]id or an absolute URL");
        }
        if (!type_modifier.empty() && type_modifier != out.reference_type) {
          return Invalid(name, "the type in the value differs from the :type modifier");
        }
      }
      if (!IsValidId(out.reference_id)) {
        return Invalid(name, "the value must be [Type/]id or an absolute URL");
      }
      return Status();
    }
    case SearchParamType::kString:
    case SearchParamType::kUri:
      if (text.empty()) return Invalid(name, "the value is empty");
      out.text = std::move(text);
      return Status();
    case SearchParamType::kComposite:
      return ParseComposite(name, param, type, text, out);
    case SearchParamType::kSpecial:
      break;
  }
  return Invalid(name, "this parameter type is not supported");
}

std::optional<SearchModifier> ModifierOf(std::string_view text) {
  static constexpr std::pair<std::string_view, SearchModifier> kModifiers[] = {
      {"exact", SearchModifier::kExact},           {"contains", SearchModifier::kContains},
      {"missing", SearchModifier::kMissing},       {"not", SearchModifier::kNot},
      {"identifier", SearchModifier::kIdentifier}, {"text", SearchModifier::kText},
      {"below", SearchModifier::kBelow},           {"above", SearchModifier::kAbove}};
  for (const auto& [name, modifier] : kModifiers) {
    if (text == name) return modifier;
  }
  return std::nullopt;
}

// Which modifiers a parameter type takes (beyond :missing, which all take).
bool ModifierAllowed(SearchParamType type, SearchModifier modifier) {
  switch (modifier) {
    case SearchModifier::kNone:
    case SearchModifier::kMissing:
      return true;
    case SearchModifier::kExact:
    case SearchModifier::kContains:
      return type == SearchParamType::kString;
    case SearchModifier::kNot:
      return type == SearchParamType::kToken;
    case SearchModifier::kIdentifier:
    case SearchModifier::kType:
      return type == SearchParamType::kReference;
    default:
      return false;
  }
}

class Parser {
 public:
  Parser(std::string_view type, bool strict, const SearchLimits& limits)
      : strict_(strict), limits_(limits) {
    request_.type = std::string(type);
    request_.count = limits.default_count;
  }

  Status Add(const std::string& name, const std::string& value) {
    if (name.empty()) return Ignore(name, "an empty parameter name");
    // Format and presentation parameters the API layer handles.
    if (name == "_format" || name == "_pretty") return Status();
    if (name == "_page") {
      request_.page = value;
      return Status();
    }
    if (name.starts_with("_") && name.find(':') == std::string::npos &&
        name.find('.') == std::string::npos) {
      if (std::optional<Status> handled = AddResultParameter(name, value)) return *handled;
    }
    return AddTerm(name, value);
  }

  StatusOr<SearchRequest> Finish() {
    std::sort(request_.canonical_params.begin(), request_.canonical_params.end());
    return std::move(request_);
  }

 private:
  Status Ignore(const std::string& name, std::string_view why) {
    if (strict_) {
      return Invalid(name, std::string(why) + " (refused under Prefer: handling=strict)");
    }
    request_.ignored.push_back(name.substr(0, 64));
    return Status();
  }

  Status CountValues(size_t n) {
    values_ += n;
    if (values_ > limits_.max_values) {
      return InvalidArgumentError("too many search parameters or values")
          .WithDetail({"too-costly", "too many search parameters or values", ""});
    }
    return Status();
  }

  void Keep(const std::string& name, const std::string& value) {
    request_.canonical_params.emplace_back(name, value);
  }

  std::optional<Status> AddResultParameter(const std::string& name, const std::string& value) {
    if (name == "_count") {
      int64_t count = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), count);
      if (ec != std::errc() || end != value.data() + value.size() || count < 0) {
        return Invalid(name, "must be a non-negative integer");
      }
      request_.count = std::min(count, limits_.max_count);
      Keep(name, std::to_string(request_.count));
      return Status();
    }
    if (name == "_sort") {
      for (const std::string& key : SplitEscaped(value, ',')) {
        bool descending = key.starts_with('-');
        std::string code = descending ? key.substr(1) : key;
        const SearchParamDef* param = FindSearchParam(request_.type, code);
        if (param == nullptr || param->expression.empty() ||
            param->type == SearchParamType::kComposite) {
          return Invalid(name, "cannot sort by an unknown or composite parameter");
        }
        request_.sort.push_back({param, descending});
      }
      Keep(name, value);
      return Status();
    }
    if (name == "_include" || name == "_revinclude") {
      std::vector<std::string> parts = SplitEscaped(value, ':');
      if (parts.size() < 2 || parts.size() > 3) {
        return Invalid(name, "must be SourceType:parameter[:TargetType]");
      }
      SearchInclude include;
      include.source_type = parts[0];
      include.param = FindSearchParam(parts[0], parts[1]);
      if (include.param == nullptr || include.param->type != SearchParamType::kReference) {
        return Invalid(name, "must name a reference parameter of a searchable type");
      }
      if (parts.size() == 3) {
        include.target_type = parts[2];
        if (!IsR4ResourceType(include.target_type)) return Invalid(name, "unknown target type");
      }
      if (name == "_include" && include.source_type != request_.type) {
        return Invalid(name, "must start with the searched type");
      }
      (name == "_include" ? request_.includes : request_.revincludes).push_back(include);
      Keep(name, value);
      return Status();
    }
    if (name == "_total") {
      if (value == "none") {
        request_.total = SearchRequest::Total::kNone;
      } else if (value == "estimate") {
        request_.total = SearchRequest::Total::kEstimate;
      } else if (value == "accurate") {
        request_.total = SearchRequest::Total::kAccurate;
      } else {
        return Invalid(name, "must be none, estimate or accurate");
      }
      Keep(name, value);
      return Status();
    }
    if (name == "_summary") {
      if (value == "count") {
        request_.summary_count = true;
      } else if (value != "false") {
        return Invalid(name, "only count and false are supported");
      }
      Keep(name, value);
      return Status();
    }
    if (name == "_elements") {
      for (const std::string& element : SplitEscaped(value, ',')) {
        if (element.empty() || element.find_first_of(".[") != std::string::npos) {
          return Invalid(name, "must list top-level element names");
        }
        request_.elements.push_back(element);
      }
      Keep(name, value);
      return Status();
    }
    if (name == "_id") {
      for (std::string& id : SplitEscaped(value, ',')) {
        if (!IsValidId(id)) return Invalid(name, "must be resource ids");
        request_.ids.push_back(std::move(id));
      }
      KURA_RETURN_IF_ERROR(CountValues(request_.ids.size()));
      Keep(name, value);
      return Status();
    }
    return std::nullopt;
  }

  Status AddTerm(const std::string& name, const std::string& value) {
    std::string base = name;
    std::string modifier_text;
    std::string chain_rest;
    if (auto dot = base.find('.'); dot != std::string::npos) {
      chain_rest = base.substr(dot + 1);
      base.resize(dot);
    }
    if (auto colon = base.find(':'); colon != std::string::npos) {
      modifier_text = base.substr(colon + 1);
      base.resize(colon);
    }
    const SearchParamDef* param = FindSearchParam(request_.type, base);
    if (param == nullptr) return Ignore(name, "an unknown parameter");
    if (param->expression.empty() || param->type == SearchParamType::kSpecial) {
      return Ignore(name, "a parameter this server does not support");
    }
    SearchTerm term;
    term.param = param;
    if (!modifier_text.empty()) {
      if (std::optional<SearchModifier> m = ModifierOf(modifier_text)) {
        term.modifier = *m;
      } else if (param->type == SearchParamType::kReference && IsR4ResourceType(modifier_text)) {
        term.modifier = SearchModifier::kType;
        term.type_modifier = modifier_text;
      } else {
        return Invalid(name, "unknown modifier");
      }
      if (!ModifierAllowed(param->type, term.modifier)) {
        return Invalid(name, "this modifier is not supported for this parameter");
      }
    }
    if (!chain_rest.empty()) return AddChain(name, value, std::move(term), chain_rest);
    if (term.modifier == SearchModifier::kMissing) {
      if (value != "true" && value != "false") return Invalid(name, "must be true or false");
      term.missing = value == "true";
      KURA_RETURN_IF_ERROR(CountValues(1));
      request_.terms.push_back(std::move(term));
      Keep(name, value);
      return Status();
    }
    std::vector<std::string> alternatives = SplitEscaped(value, ',');
    KURA_RETURN_IF_ERROR(CountValues(alternatives.size()));
    for (std::string& text : alternatives) {
      SearchArgument argument;
      KURA_RETURN_IF_ERROR(ParseArgument(name, *param, request_.type, std::move(text),
                                         term.modifier, term.type_modifier, argument));
      term.any_of.push_back(std::move(argument));
    }
    request_.terms.push_back(std::move(term));
    Keep(name, value);
    return Status();
  }

  // subject:Patient.name=x, or subject.name=x when the reference has one target type.
  Status AddChain(const std::string& name, const std::string& value, SearchTerm term,
                  const std::string& rest) {
    if (term.param->type != SearchParamType::kReference) {
      return Invalid(name, "only reference parameters can be chained");
    }
    if (rest.find('.') != std::string::npos) {
      return Invalid(name, "chains are supported one level deep");
    }
    std::string target = term.type_modifier;
    if (term.modifier != SearchModifier::kNone && term.modifier != SearchModifier::kType) {
      return Invalid(name, "a chained parameter takes only a type modifier");
    }
    if (target.empty()) {
      if (term.param->targets.size() != 1) {
        return Invalid(name, "name the target type, e.g. subject:Patient.name");
      }
      target = std::string(term.param->targets.front());
    }
    if (!IsSearchableResourceType(target)) {
      return Invalid(name, "the chained type is not searchable");
    }
    Parser inner(target, true, limits_);
    inner.values_ = values_;
    KURA_RETURN_IF_ERROR(inner.AddTerm(rest, value));
    values_ = inner.values_;
    if (inner.request_.terms.size() != 1) {
      return Invalid(name, "the chained parameter must be a search parameter of the target type");
    }
    term.modifier = SearchModifier::kNone;
    term.chained_type = target;
    term.chained = std::make_shared<SearchTerm>(std::move(inner.request_.terms.front()));
    request_.terms.push_back(std::move(term));
    Keep(name, value);
    return Status();
  }

  SearchRequest request_;
  bool strict_;
  const SearchLimits& limits_;
  size_t values_ = 0;
};

}  // namespace

StatusOr<SearchRequest> ParseSearchRequest(
    std::string_view type, const std::vector<std::pair<std::string, std::string>>& params,
    bool strict, const SearchLimits& limits) {
  if (!IsSearchableResourceType(type)) {
    return InvalidArgumentError("search is not supported for this resource type")
        .WithDetail(
            {"not-supported", "search is not supported for this resource type", std::string(type)});
  }
  Parser parser(type, strict, limits);
  for (const auto& [name, value] : params) KURA_RETURN_IF_ERROR(parser.Add(name, value));
  return parser.Finish();
}

}  // namespace kura::fhir
