// R4Validator: each top-level member is re-parsed with RapidJSON into one memory pool (seeded from
// the stack, so a typical resource allocates nothing else), then one recursive walk checks every
// object against its type's element table. Paths are a chain of stack frames, turned into text
// only for an error.
#include "kura/fhir/validator.h"

#include <rapidjson/document.h>

#include <bitset>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kura/fhir/r4_structure.h"
#include "kura/fhir/r4_tables.h"

namespace kura::fhir {
namespace {

using Allocator = rapidjson::MemoryPoolAllocator<>;
using Value = rapidjson::GenericValue<rapidjson::UTF8<>, Allocator>;
using Document = rapidjson::GenericDocument<rapidjson::UTF8<>, Allocator, Allocator>;
using Member = rapidjson::GenericMember<rapidjson::UTF8<>, Allocator>;

constexpr std::string_view kMessage = "The resource does not conform to the FHIR R4 definitions";

// ---------------------------------------------------------------------------------------------
// Primitive formats (the regular expressions of the R4 primitive StructureDefinitions, by hand).

constexpr bool IsDigit(char c) { return c >= '0' && c <= '9'; }
// Whitespace as the R4 regular expressions mean \s.
constexpr bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsDigit(c)) return false;
  }
  return true;
}

// `s` is all digits (checked by the caller).
int Number(std::string_view s) {
  int n = 0;
  for (char c : s) n = n * 10 + (c - '0');
  return n;
}

bool IsLeapYear(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeapYear(y) ? 29 : kDays[m - 1];
}

// YYYY, YYYY-MM or YYYY-MM-DD (`full`: only the last), year 0001..9999, a real calendar date.
bool IsDate(std::string_view s, bool full) {
  if (s.size() != 4 && s.size() != 7 && s.size() != 10) return false;
  if (full && s.size() != 10) return false;
  std::string_view year = s.substr(0, 4);
  if (!AllDigits(year) || year == "0000") return false;
  if (s.size() == 4) return true;
  if (s[4] != '-' || !AllDigits(s.substr(5, 2))) return false;
  const int month = Number(s.substr(5, 2));
  if (month < 1 || month > 12) return false;
  if (s.size() == 7) return true;
  if (s[7] != '-' || !AllDigits(s.substr(8, 2))) return false;
  const int day = Number(s.substr(8, 2));
  return day >= 1 && day <= DaysInMonth(Number(year), month);
}

// hh:mm:ss(.f+)?, hours 00-23, seconds up to 60 (leap second).
bool IsTime(std::string_view s) {
  if (s.size() < 8 || s[2] != ':' || s[5] != ':') return false;
  std::string_view hh = s.substr(0, 2), mm = s.substr(3, 2), ss = s.substr(6, 2);
  if (!AllDigits(hh) || !AllDigits(mm) || !AllDigits(ss)) return false;
  if (Number(hh) > 23 || Number(mm) > 59 || Number(ss) > 60) return false;
  if (s.size() == 8) return true;
  return s[8] == '.' && AllDigits(s.substr(9));
}

// Z or (+|-)hh:mm with hh:mm up to 13:59, or 14:00.
bool IsZone(std::string_view s) {
  if (s == "Z") return true;
  if (s.size() != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':') return false;
  std::string_view hh = s.substr(1, 2), mm = s.substr(4, 2);
  if (!AllDigits(hh) || !AllDigits(mm)) return false;
  const int h = Number(hh), m = Number(mm);
  return (h <= 13 && m <= 59) || (h == 14 && m == 0);
}

// dateTime (a partial date, or a full date with time and zone) or, with `instant`, only the
// latter.
bool IsDateTime(std::string_view s, bool instant) {
  if (s.size() <= 10) return !instant && IsDate(s, false);
  if (!IsDate(s.substr(0, 10), true) || s[10] != 'T') return false;
  std::string_view rest = s.substr(11);
  size_t zone;
  if (rest.ends_with('Z')) {
    zone = rest.size() - 1;
  } else if (rest.size() >= 6) {
    zone = rest.size() - 6;
  } else {
    return false;
  }
  return IsTime(rest.substr(0, zone)) && IsZone(rest.substr(zone));
}

// [^\s]+(\s[^\s]+)*
bool IsCode(std::string_view s) {
  if (s.empty() || IsSpace(s.front()) || IsSpace(s.back())) return false;
  for (size_t i = 1; i < s.size(); ++i) {
    if (IsSpace(s[i]) && IsSpace(s[i - 1])) return false;
  }
  return true;
}

// \S+ (uri, url, canonical).
bool IsUri(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (IsSpace(c)) return false;
  }
  return true;
}

// urn:oid:[0-2](\.(0|[1-9][0-9]*))+
bool IsOid(std::string_view s) {
  constexpr std::string_view kPrefix = "urn:oid:";
  if (!s.starts_with(kPrefix)) return false;
  s.remove_prefix(kPrefix.size());
  if (s.size() < 3 || s[0] < '0' || s[0] > '2') return false;
  size_t i = 1;
  while (i < s.size()) {
    if (s[i] != '.') return false;
    size_t start = ++i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    if (i == start || (s[start] == '0' && i - start > 1)) return false;
  }
  return true;
}

// urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}
bool IsUuid(std::string_view s) {
  constexpr std::string_view kPrefix = "urn:uuid:";
  if (!s.starts_with(kPrefix)) return false;
  s.remove_prefix(kPrefix.size());
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!IsDigit(c) && (c < 'a' || c > 'f')) {
      return false;
    }
  }
  return true;
}

// Base64: whole 4-character groups of the base64 alphabet, '=' padding (at most 2) only at the
// end; whitespace between characters is ignored.
bool IsBase64(std::string_view s) {
  size_t count = 0;
  size_t padding = 0;
  for (char c : s) {
    if (IsSpace(c)) continue;
    if (c == '=') {
      ++padding;
    } else if (IsDigit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '+' ||
               c == '/') {
      if (padding > 0) return false;
    } else {
      return false;
    }
    ++count;
  }
  return count > 0 && count % 4 == 0 && padding <= 2;
}

// A <div> root element in the XHTML namespace (the txt-1 root; the content is not checked).
bool IsXhtmlDiv(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  if (!s.starts_with("<div") || s.size() < 5 || !(IsSpace(s[4]) || s[4] == '>')) return false;
  if (!s.ends_with("</div>")) return false;
  std::string_view open = s.substr(0, s.find('>'));
  return open.find("xmlns=\"http://www.w3.org/1999/xhtml\"") != open.npos ||
         open.find("xmlns='http://www.w3.org/1999/xhtml'") != open.npos;
}

// No C0 control characters except tab, CR and LF (the R4 string rule, for every string-based
// primitive).
bool HasControlCharacters(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 && c != '\t' && c != '\n' && c != '\r') return true;
  }
  return false;
}

constexpr size_t kMaxStringCharacters = 1024 * 1024;

size_t Utf8Length(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// Reference.reference: #id, urn:uuid:, urn:oid:, an absolute URL or Type/id[/_history/vid].
bool IsReference(std::string_view s) {
  if (s.empty()) return false;
  if (s[0] == '#') return s.size() == 1 || IsValidId(s.substr(1));
  if (s.starts_with("urn:uuid:")) return IsUuid(s);
  if (s.starts_with("urn:oid:")) return IsOid(s);
  if (!IsUri(s)) return false;
  // scheme ":" (RFC 3986): ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
  auto alpha = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); };
  if (alpha(s[0])) {
    size_t i = 1;
    while (i < s.size() &&
           (alpha(s[i]) || IsDigit(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')) {
      ++i;
    }
    if (i < s.size() && s[i] == ':') return true;
  }
  std::string_view parts[5];
  size_t n = 0;
  while (n < 5) {
    const size_t slash = s.find('/');
    parts[n++] = s.substr(0, slash);
    if (slash == s.npos) break;
    s.remove_prefix(slash + 1);
    if (n == 5) return false;
  }
  if (n != 2 && n != 4) return false;
  if (!IsR4ResourceType(parts[0]) || !IsValidId(parts[1])) return false;
  return n == 2 || (parts[2] == "_history" && IsValidId(parts[3]));
}

// ---------------------------------------------------------------------------------------------
// The walk.

// One step of an element path; a chain of these lives on the walk's stack frames.
struct Step {
  const Step* parent;
  std::string_view name;  // Empty for an array index step.
  int64_t index;          // -1 unless an array index step.
};

std::string PathText(const Step& at) {
  const Step* chain[128];
  size_t n = 0;
  std::vector<const Step*> deep;  // Only for pathological depths.
  for (const Step* s = &at; s != nullptr; s = s->parent) {
    if (n < std::size(chain)) {
      chain[n++] = s;
    } else {
      deep.push_back(s);
    }
  }
  std::string out;
  auto append = [&out](const Step* s) {
    if (s->index >= 0) {
      out += '[';
      out += std::to_string(s->index);
      out += ']';
    } else {
      if (!out.empty()) out += '.';
      out += s->name;
    }
  };
  for (auto it = deep.rbegin(); it != deep.rend(); ++it) append(*it);
  for (size_t i = n; i > 0; --i) append(chain[i - 1]);
  return out;
}

// A top-level member (or meta, rebuilt as an object).
struct TopMember {
  std::string_view key;
  const Value* value;
};

std::string_view KeyOf(const TopMember& m) { return m.key; }
const Value& ValueOf(const TopMember& m) { return *m.value; }
std::string_view KeyOf(const Member& m) { return {m.name.GetString(), m.name.GetStringLength()}; }
const Value& ValueOf(const Member& m) { return m.value; }

// Stands for a member whose text could not be re-parsed (already reported). Never modified.
Value& Broken() {
  static Value broken;
  return broken;
}

template <typename Members>
const Value* FindMember(const Members& members, std::string_view key) {
  for (const auto& m : members) {
    if (KeyOf(m) == key) return &ValueOf(m);
  }
  return nullptr;
}

// The `_name` member beside `name`.
template <typename Members>
const Value* FindExtensionMember(const Members& members, std::string_view name) {
  for (const auto& m : members) {
    std::string_view key = KeyOf(m);
    if (key.size() == name.size() + 1 && key[0] == '_' && key.substr(1) == name) {
      return &ValueOf(m);
    }
  }
  return nullptr;
}

struct KnownTypes {
  std::span<const R4Type> all = R4Types();
  const R4Type* element = FindR4Type("Element");
  const R4Type* extension = FindR4Type("Extension");
  const R4Type* reference = FindR4Type("Reference");
};

const KnownTypes& Known() {
  static const KnownTypes known;
  return known;
}

class Walker {
 public:
  explicit Walker(size_t max_details) : max_details_(max_details < 1 ? 1 : max_details) {}

  bool full() const { return full_; }
  std::vector<StatusDetail>& details() { return details_; }

  void Error(const Step& at, std::string_view issue, std::string diagnostics) {
    if (full_) return;
    details_.push_back({std::string(issue), std::move(diagnostics), PathText(at)});
    if (details_.size() >= max_details_) full_ = true;
  }

  // Checks the members of an object of `type` (a resource's members without resourceType, which
  // the caller checked).
  template <typename Members>
  void Object(const R4Type& type, const Members& members, const Step& at) {
    std::bitset<kR4MaxBaseElements> present;
    const bool resource = type.kind == R4TypeKind::kResource;
    bool empty = true;
    for (const auto& m : members) {
      if (full_) return;
      empty = false;
      const std::string_view key = KeyOf(m);
      const Value& value = ValueOf(m);
      if (resource && key == "resourceType") continue;
      const bool underscore = !key.empty() && key[0] == '_';
      const std::string_view name = underscore ? key.substr(1) : key;
      const Step step{&at, key, -1};
      const R4Element* element = FindR4Element(type, name);
      if (element == nullptr) {
        Error(step, "structure", UnknownElement(type));
        continue;
      }
      if (&value == &Broken()) {
        present.set(element->base);
        continue;
      }
      const R4Type& element_type = known_.all[element->type];
      if (underscore && element_type.kind != R4TypeKind::kPrimitive) {
        Error(step, "structure",
              "a '_' member is allowed only beside an element of primitive type");
        continue;
      }
      if (element->choice && present[element->base] &&
          ChoiceConflict(type, members, name, *element)) {
        Error(step, "invalid", "only one type of a choice element ([x]) may be present");
        continue;
      }
      present.set(element->base);
      if (resource && key == "contained" && in_contained_) {
        Error(step, "invalid", "a contained resource must not contain resources (dom-2)");
        continue;
      }
      if (underscore) {
        PrimitiveExtension(*element, value, FindMember(members, name), step);
      } else {
        const Value* extension = element_type.kind == R4TypeKind::kPrimitive
                                     ? FindExtensionMember(members, name)
                                     : nullptr;
        ElementValue(*element, element_type, value, extension, step);
      }
    }
    if (full_) return;
    if (empty && !resource) {
      Error(at, "structure", "must not be empty: an element needs a value or children");
      return;
    }
    for (const R4Required& r : type.required) {
      if (!present[r.base]) {
        Error(Step{&at, r.name, -1}, "required",
              r.min == 1 ? "is required (minimum cardinality 1)"
                         : "is required (minimum cardinality " + std::to_string(r.min) + ")");
      }
    }
    if (&type == known_.extension) ExtensionRule(members, at);
    if (&type == known_.reference) ReferenceRule(members, at);
  }

  // A resource nested in another (contained, Bundle.entry.resource, Parameters...resource).
  void NestedResource(const Value& value, const Step& at, bool contained) {
    if (!value.IsObject()) {
      Error(at, "structure", "must be a JSON object (a resource)");
      return;
    }
    const auto rt = value.FindMember("resourceType");
    if (rt == value.MemberEnd()) {
      Error(Step{&at, "resourceType", -1}, "required", "is required in a resource");
      return;
    }
    if (!rt->value.IsString()) {
      Error(Step{&at, "resourceType", -1}, "structure", "must be a JSON string");
      return;
    }
    const R4Type* type = FindR4Type({rt->value.GetString(), rt->value.GetStringLength()});
    if (type == nullptr || type->kind != R4TypeKind::kResource) {
      Error(Step{&at, "resourceType", -1}, "value", "must be a FHIR R4 resource type");
      return;
    }
    const bool outer = in_contained_;
    in_contained_ = contained;
    Object(*type, value.GetObject(), at);
    in_contained_ = outer;
  }

 private:
  static std::string UnknownElement(const R4Type& type) {
    std::string out = "is not an element of ";
    out += type.name;
    return out;
  }

  template <typename Members>
  bool ChoiceConflict(const R4Type& type, const Members& members, std::string_view name,
                      const R4Element& element) {
    for (const auto& m : members) {
      std::string_view other = KeyOf(m);
      if (!other.empty() && other[0] == '_') other.remove_prefix(1);
      if (other == name) continue;
      const R4Element* e = FindR4Element(type, other);
      if (e != nullptr && e->base == element.base) return true;
    }
    return false;
  }

  void ElementValue(const R4Element& element, const R4Type& type, const Value& value,
                    const Value* extension, const Step& at) {
    if (!element.is_array()) {
      if (value.IsArray()) {
        Error(at, "structure", "must be a single value, not an array (maximum cardinality 1)");
      } else if (value.IsNull()) {
        Error(at, "structure", "must not be null");
      } else {
        Single(type, value, at, false);
      }
      return;
    }
    if (!value.IsArray()) {
      Error(at, "structure", "must be a JSON array (the element repeats)");
      return;
    }
    if (!Cardinality(element, value.Size(), at)) return;
    const bool contained = element.name == "contained";
    for (rapidjson::SizeType i = 0; i < value.Size() && !full_; ++i) {
      const Step item{&at, {}, i};
      const Value& v = value[i];
      if (v.IsNull()) {
        const bool has_extension = type.kind == R4TypeKind::kPrimitive && extension != nullptr &&
                                   extension->IsArray() && i < extension->Size() &&
                                   (*extension)[i].IsObject();
        if (!has_extension) {
          Error(item, "structure",
                "null is allowed only in a primitive array whose '_' array has an extension at "
                "the same position");
        }
        continue;
      }
      Single(type, v, item, contained);
    }
  }

  // Array length against the element's cardinality; false when the items are not worth checking.
  bool Cardinality(const R4Element& element, rapidjson::SizeType size, const Step& at) {
    if (size == 0) {
      Error(at, "structure", "must not be an empty array: leave the element out");
      return false;
    }
    if (element.max != kR4Unbounded && size > element.max) {
      Error(at, "structure",
            "has more items than its maximum cardinality " + std::to_string(element.max));
    }
    if (size < element.min) {
      Error(at, "required",
            "has fewer items than its minimum cardinality " + std::to_string(element.min));
    }
    return true;
  }

  void Single(const R4Type& type, const Value& value, const Step& at, bool contained) {
    switch (type.kind) {
      case R4TypeKind::kPrimitive:
        Primitive(type.primitive, value, at);
        return;
      case R4TypeKind::kComplex:
      case R4TypeKind::kBackbone:
        if (!value.IsObject()) {
          Error(at, "structure", "must be a JSON object");
        } else {
          Object(type, value.GetObject(), at);
        }
        return;
      case R4TypeKind::kResource:
      case R4TypeKind::kAnyResource:
        NestedResource(value, at, contained);
        return;
    }
  }

  // `_name`: the extensions of a primitive (array) element.
  void PrimitiveExtension(const R4Element& element, const Value& value, const Value* primitive,
                          const Step& at) {
    const R4Type& element_type = *known_.element;
    if (!element.is_array()) {
      if (!value.IsObject()) {
        Error(at, "structure", "must be a JSON object (id, extension)");
      } else {
        Object(element_type, value.GetObject(), at);
      }
      return;
    }
    if (!value.IsArray()) {
      Error(at, "structure", "must be a JSON array, like the primitive array it extends");
      return;
    }
    const bool aligned = primitive != nullptr && primitive->IsArray();
    if (aligned && primitive->Size() != value.Size()) {
      Error(at, "structure", "must have as many items as the primitive array it extends");
      return;
    }
    if (primitive == nullptr && !Cardinality(element, value.Size(), at)) return;
    if (value.Empty()) {
      Error(at, "structure", "must not be an empty array: leave the element out");
      return;
    }
    for (rapidjson::SizeType i = 0; i < value.Size() && !full_; ++i) {
      const Step item{&at, {}, i};
      const Value& v = value[i];
      if (v.IsNull()) {
        if (aligned && (*primitive)[i].IsNull()) {
          Error(item, "structure", "a value and its extensions must not both be null");
        } else if (!aligned) {
          Error(item, "structure",
                "null is allowed only where the primitive array it extends has a value");
        }
        continue;
      }
      if (!v.IsObject()) {
        Error(item, "structure", "must be a JSON object (id, extension) or null");
        continue;
      }
      Object(element_type, v.GetObject(), item);
    }
  }

  void Primitive(R4Primitive kind, const Value& value, const Step& at) {
    switch (kind) {
      case R4Primitive::kNone:
        return;
      case R4Primitive::kBoolean:
        if (!value.IsBool()) Error(at, "structure", "must be a JSON boolean (true or false)");
        return;
      case R4Primitive::kDecimal:
        if (!value.IsNumber()) Error(at, "structure", "must be a JSON number (a decimal)");
        return;
      case R4Primitive::kInteger:
      case R4Primitive::kPositiveInt:
      case R4Primitive::kUnsignedInt:
        Integer(kind, value, at);
        return;
      default:
        break;
    }
    if (!value.IsString()) {
      Error(at, "structure", "must be a JSON string");
      return;
    }
    const std::string_view s(value.GetString(), value.GetStringLength());
    if (s.empty()) {
      Error(at, "value", "must not be an empty string: leave the element out");
      return;
    }
    if (HasControlCharacters(s)) {
      Error(at, "value",
            "must not contain control characters other than tab, carriage return and line feed");
      return;
    }
    switch (kind) {
      case R4Primitive::kString:
      case R4Primitive::kMarkdown:
        if (s.size() > kMaxStringCharacters && Utf8Length(s) > kMaxStringCharacters) {
          Error(at, "value", "must not be longer than 1 MiB characters");
        }
        return;
      case R4Primitive::kCode:
        if (!IsCode(s)) {
          Error(at, "value",
                "must be a code: no leading or trailing whitespace and no runs of whitespace");
        }
        return;
      case R4Primitive::kId:
        if (!IsValidId(s)) {
          Error(at, "value", "must be an id: 1 to 64 characters A-Z, a-z, 0-9, '-' or '.'");
        }
        return;
      case R4Primitive::kUri:
      case R4Primitive::kUrl:
      case R4Primitive::kCanonical:
        if (!IsUri(s)) Error(at, "value", "must be a URI without whitespace");
        return;
      case R4Primitive::kOid:
        if (!IsOid(s)) {
          Error(at, "value", "must be an OID URI: urn:oid: followed by dotted numbers");
        }
        return;
      case R4Primitive::kUuid:
        if (!IsUuid(s)) {
          Error(at, "value", "must be a UUID URI: urn:uuid: followed by a lowercase UUID");
        }
        return;
      case R4Primitive::kBase64Binary:
        if (!IsBase64(s)) {
          Error(at, "value",
                "must be base64: whole groups of 4 characters A-Z, a-z, 0-9, '+' or '/', '=' "
                "padding only at the end");
        }
        return;
      case R4Primitive::kDate:
        if (!IsDate(s, false)) {
          Error(at, "value", "must be a valid date (YYYY, YYYY-MM or YYYY-MM-DD)");
        }
        return;
      case R4Primitive::kDateTime:
        if (!IsDateTime(s, false)) {
          Error(at, "value",
                "must be a valid dateTime (YYYY, YYYY-MM, YYYY-MM-DD or "
                "YYYY-MM-DDThh:mm:ss[.fraction] with a time zone Z or +hh:mm/-hh:mm)");
        }
        return;
      case R4Primitive::kInstant:
        if (!IsDateTime(s, true)) {
          Error(at, "value",
                "must be a valid instant (YYYY-MM-DDThh:mm:ss[.fraction] with a time zone Z or "
                "+hh:mm/-hh:mm)");
        }
        return;
      case R4Primitive::kTime:
        if (!IsTime(s)) Error(at, "value", "must be a valid time (hh:mm:ss[.fraction])");
        return;
      case R4Primitive::kXhtml:
        if (!IsXhtmlDiv(s)) {
          Error(at, "value", "must be XHTML with a <div> root element in the XHTML namespace");
        }
        return;
      default:
        return;
    }
  }

  void Integer(R4Primitive kind, const Value& value, const Step& at) {
    if (!value.IsNumber()) {
      Error(at, "structure", "must be a JSON number (an integer)");
      return;
    }
    if (!value.IsInt()) {
      Error(at, "value",
            "must be a whole number without fraction or exponent, from -2147483648 to "
            "2147483647");
      return;
    }
    const int n = value.GetInt();
    if (kind == R4Primitive::kPositiveInt && n < 1) {
      Error(at, "value", "must be a positive integer (1 or more)");
    } else if (kind == R4Primitive::kUnsignedInt && n < 0) {
      Error(at, "value", "must be a non-negative integer (0 or more)");
    }
  }

  // ext-1: an extension has a value[x] or nested extensions, never both.
  template <typename Members>
  void ExtensionRule(const Members& members, const Step& at) {
    bool value = false;
    bool extension = false;
    for (const auto& m : members) {
      std::string_view key = KeyOf(m);
      extension = extension || key == "extension";
      if (!key.empty() && key[0] == '_') key.remove_prefix(1);
      const R4Element* element = FindR4Element(*known_.extension, key);
      value = value || (element != nullptr && element->choice);
    }
    if (value && extension) {
      Error(at, "invalid",
            "an extension must have either a value[x] or nested extensions, not both (ext-1)");
    } else if (!value && !extension) {
      Error(at, "invalid", "an extension must have a value[x] or nested extensions (ext-1)");
    }
  }

  template <typename Members>
  void ReferenceRule(const Members& members, const Step& at) {
    const Value* reference = FindMember(members, "reference");
    if (reference == nullptr || !reference->IsString() || reference->GetStringLength() == 0) {
      return;  // Absent, or already reported as a bad string.
    }
    if (!IsReference({reference->GetString(), reference->GetStringLength()})) {
      Error(Step{&at, "reference", -1}, "value",
            "must be a reference: Type/id or Type/id/_history/version with an R4 resource type "
            "and valid ids, an absolute URL, urn:uuid:, urn:oid: or #id of a contained "
            "resource");
    }
  }

  const KnownTypes& known_ = Known();
  std::vector<StatusDetail> details_;
  size_t max_details_;
  bool full_ = false;
  bool in_contained_ = false;
};

}  // namespace

Status R4Validator::Validate(const ResourceDocument& resource) const {
  Walker walker(options_.max_details);
  const JsonMember* rt = resource.Find("resourceType");
  const R4Type* type = nullptr;
  if (rt != nullptr && rt->string_value) type = FindR4Type(*rt->string_value);
  if (type == nullptr || type->kind != R4TypeKind::kResource) {
    walker.Error(Step{nullptr, "resourceType", -1}, "structure",
                 "resourceType must be a FHIR R4 resource type");
    return InvalidArgumentError(std::string(kMessage)).WithDetail(walker.details().front());
  }
  const Step root{nullptr, type->name, -1};

  // Values live in `pool`; the parser's stack in `stack_pool`. Both start on this stack.
  alignas(8) char value_buffer[8192];
  alignas(8) char stack_buffer[1024];
  Allocator pool(value_buffer, sizeof(value_buffer));
  Allocator stack_pool(stack_buffer, sizeof(stack_buffer));
  Document doc(&pool, sizeof(stack_buffer), &stack_pool);

  std::vector<TopMember> members;
  members.reserve(resource.members.size() + 1);
  auto parse = [&](const JsonMember& m, const Step& parent) -> Value* {
    // In-situ parsing leaves strings in the copied text instead of copying each one again.
    auto* text = static_cast<char*>(pool.Malloc(m.json.size() + 1));
    std::memcpy(text, m.json.data(), m.json.size());
    text[m.json.size()] = '\0';
    doc.ParseInsitu<rapidjson::kParseIterativeFlag>(text);
    if (doc.HasParseError()) {
      walker.Error(Step{&parent, m.key, -1}, "value",
                   doc.GetParseError() == rapidjson::kParseErrorNumberTooBig
                       ? "number is out of range"
                       : "is not valid JSON");
      return &Broken();
    }
    auto* value = new (pool.Malloc(sizeof(Value))) Value();
    value->Swap(doc);
    return value;
  };
  for (const JsonMember& m : resource.members) {
    if (m.key == "meta") {  // Only here when it is not an object; BasicValidator's words.
      walker.Error(Step{&root, "meta", -1}, "structure", "meta must be an object");
      members.push_back({m.key, &Broken()});
      continue;
    }
    members.push_back({m.key, parse(m, root)});
  }
  Value meta(rapidjson::kObjectType);
  if (resource.meta) {
    const Step meta_step{&root, "meta", -1};
    for (const JsonMember& m : *resource.meta) {
      Value* value = parse(m, meta_step);
      if (value == &Broken()) continue;
      meta.AddMember(rapidjson::StringRef(m.key.data(), m.key.size()), *value, pool);
    }
    members.push_back({"meta", &meta});
  }
  walker.Object(*type, std::span<const TopMember>(members), root);
  if (walker.details().empty()) return Status::Ok();
  Status status = InvalidArgumentError(std::string(kMessage));
  for (StatusDetail& d : walker.details()) status = std::move(status).WithDetail(std::move(d));
  return status;
}

}  // namespace kura::fhir
