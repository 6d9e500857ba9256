// FHIRPath subset: a tokenizer, a precedence-climbing parser that types every sub-expression
// against the R4 element model as it goes (so navigation compiles to JSON member lookups per input
// type), and a tree-walking evaluator over a RapidJSON DOM.
#include "kura/fhir/fhirpath.h"

#include <rapidjson/writer.h>

#include <algorithm>
#include <boost/unordered/unordered_flat_map.hpp>
#include <charconv>
#include <cstddef>
#include <cstdlib>

#include "kura/fhir/internal/fhirpath_internal.h"
#include "kura/fhir/internal/r4_model.h"
#include "kura/fhir/r4_tables.h"

namespace kura::fhir {
namespace internal {
namespace {

// Parsed in place with numbers kept as their text: a string value then points just past its
// opening quote in the buffer, a number's text does not (see IsNumberText).
constexpr unsigned kParseFlags =
    rapidjson::kParseInsituFlag | rapidjson::kParseNumbersAsStringsFlag;

std::string Capitalize(std::string_view s) {
  std::string out(s);
  if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = static_cast<char>(out[0] - 32);
  return out;
}

bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }

// ---------------------------------------------------------------------------------------------
// The element model, interned: type ids, children per owner, specialization bases.

struct Child {
  std::string_view name;  // Element name without [x].
  std::string key;        // JSON member name.
  TypeId type;
};

class Model {
 public:
  static const Model& Get() {
    static const Model model;
    return model;
  }

  TypeId Id(std::string_view name) const {
    auto it = ids_.find(name);
    return it == ids_.end() ? kNoType : it->second;
  }
  std::string_view Name(TypeId id) const { return id < names_.size() ? names_[id] : ""; }
  bool IsA(TypeId type, TypeId base) const {
    if (base == kNoType) return false;
    if ((base == resource_ || base == domain_resource_) && IsResourceType(type)) return true;
    for (TypeId t = type; t != kNoType; t = t < bases_.size() ? bases_[t] : kNoType) {
      if (t == base) return true;
    }
    return false;
  }
  bool IsResourceType(TypeId id) const { return id < is_resource_.size() && is_resource_[id]; }
  // Children of `owner` named `name` (all choice alternatives); empty when none.
  std::span<const Child> Children(TypeId owner, std::string_view name) const {
    if (owner >= children_.size()) return {};
    const std::vector<Child>& all = children_[owner];
    auto lo = std::ranges::lower_bound(all, name, {}, &Child::name);
    auto hi = lo;
    while (hi != all.end() && hi->name == name) ++hi;
    return {lo, hi};
  }
  TypeId ChildByKey(TypeId owner, std::string_view key) const {
    if (owner >= children_.size()) return kNoType;
    for (const Child& c : children_[owner]) {
      if (c.key == key) return c.type;
    }
    return kNoType;
  }
  TypeId resource() const { return resource_; }
  TypeId boolean() const { return boolean_; }
  TypeId string() const { return string_; }
  TypeId decimal() const { return decimal_; }
  TypeId extension() const { return extension_; }
  TypeId reference() const { return reference_; }

 private:
  Model() {
    names_.emplace_back("");  // kNoType.
    Intern("Resource");
    Intern("DomainResource");
    for (std::string_view t : R4ResourceTypes()) Intern(t);
    is_resource_.assign(names_.size(), true);
    is_resource_[kNoType] = false;
    is_resource_[Id("Resource")] = false;
    is_resource_[Id("DomainResource")] = false;
    for (const R4Element& e : R4Elements()) {
      TypeId owner = Intern(e.owner);
      std::string_view types = e.types;
      while (!types.empty()) {
        size_t bar = types.find('|');
        std::string_view t = types.substr(0, bar);
        types = bar == std::string_view::npos ? std::string_view() : types.substr(bar + 1);
        TypeId type = Intern(t);
        if (children_.size() <= owner) children_.resize(owner + 1);
        children_[owner].push_back(
            {e.name, e.choice ? std::string(e.name) + Capitalize(t) : std::string(e.name), type});
      }
    }
    for (auto& list : children_) std::ranges::stable_sort(list, {}, &Child::name);
    bases_.assign(names_.size() + 16, kNoType);
    for (const R4TypeBase& b : R4TypeBases()) {
      TypeId t = Intern(b.type);
      TypeId base = Intern(b.base);
      if (bases_.size() <= std::max(t, base)) bases_.resize(std::max(t, base) + 1, kNoType);
      bases_[t] = base;
    }
    resource_ = Id("Resource");
    domain_resource_ = Id("DomainResource");
    boolean_ = Intern("boolean");
    string_ = Intern("string");
    decimal_ = Intern("decimal");
    integer_ = Intern("integer");
    extension_ = Intern("Extension");
    reference_ = Intern("Reference");
    bases_.resize(names_.size(), kNoType);
    is_resource_.resize(names_.size(), false);
    children_.resize(names_.size());
  }

  TypeId Intern(std::string_view name) {
    auto it = ids_.find(name);
    if (it != ids_.end()) return it->second;
    TypeId id = static_cast<TypeId>(names_.size());
    names_.push_back(name);
    ids_.emplace(name, id);
    return id;
  }

  std::vector<std::string_view> names_;  // Views of static storage.
  boost::unordered_flat_map<std::string_view, TypeId> ids_;
  std::vector<std::vector<Child>> children_;
  std::vector<TypeId> bases_;
  std::vector<bool> is_resource_;
  TypeId resource_ = kNoType, domain_resource_ = kNoType, boolean_ = kNoType, string_ = kNoType,
         decimal_ = kNoType, integer_ = kNoType, extension_ = kNoType, reference_ = kNoType;
};

}  // namespace

TypeId TypeIdOf(std::string_view name) { return Model::Get().Id(name); }
std::string_view TypeName(TypeId type) { return Model::Get().Name(type); }
bool IsA(TypeId type, TypeId base) { return Model::Get().IsA(type, base); }
TypeId ChildType(TypeId owner, std::string_view json_key) {
  return Model::Get().ChildByKey(owner, json_key);
}

std::optional<PathNode> ExtensionValue(const PathNode& extension) {
  const rapidjson::Value* v = NodeAccess::Value(extension);
  if (extension.kind() != PathNode::Kind::kElement || v == nullptr || !v->IsObject()) {
    return std::nullopt;
  }
  const Model& model = Model::Get();
  for (auto m = v->MemberBegin(); m != v->MemberEnd(); ++m) {
    std::string_view key(m->name.GetString(), m->name.GetStringLength());
    if (!key.starts_with("value") || m->value.IsNull()) continue;
    TypeId type = model.ChildByKey(model.extension(), key);
    if (type != kNoType) return NodeAccess::Element(m->value, type);
  }
  return std::nullopt;
}

ReferenceParts ParseReference(std::string_view ref) {
  ReferenceParts parts;
  if (ref.starts_with('#')) {
    parts.id = ref.substr(1);
    parts.contained = true;
    return parts;
  }
  // Split into segments from the end: [.../]Type/id[/_history/version].
  std::string_view rest = ref;
  auto pop = [&rest]() {
    size_t slash = rest.rfind('/');
    std::string_view seg = slash == std::string_view::npos ? rest : rest.substr(slash + 1);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(0, slash);
    return seg;
  };
  std::string_view last = pop();
  std::string_view version;
  if (!rest.empty()) {
    size_t slash = rest.rfind('/');
    std::string_view prev = slash == std::string_view::npos ? rest : rest.substr(slash + 1);
    if (prev == "_history") {
      version = last;
      pop();
      last = pop();
    }
  }
  std::string_view type = pop();
  if (last.empty() || !IsR4ResourceType(type)) return parts;
  parts.type = type;
  parts.id = last;
  parts.version = version;
  parts.base = rest;
  return parts;
}

std::string_view ReferenceTargetType(const rapidjson::Value& resource, std::string_view reference) {
  ReferenceParts parts = ParseReference(reference);
  if (!parts.contained) return parts.type;
  if (!resource.IsObject()) return {};
  auto contained = resource.FindMember("contained");
  if (contained == resource.MemberEnd() || !contained->value.IsArray()) return {};
  for (const rapidjson::Value& c : contained->value.GetArray()) {
    if (!c.IsObject()) continue;
    auto id = c.FindMember("id");
    auto rt = c.FindMember("resourceType");
    if (id == c.MemberEnd() || rt == c.MemberEnd() || !id->value.IsString() ||
        !rt->value.IsString()) {
      continue;
    }
    if (std::string_view(id->value.GetString(), id->value.GetStringLength()) == parts.id) {
      std::string_view type(rt->value.GetString(), rt->value.GetStringLength());
      // Return a view of static storage, not of the DOM.
      auto all = R4ResourceTypes();
      auto it = std::ranges::lower_bound(all, type);
      return it != all.end() && *it == type ? *it : std::string_view();
    }
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Programs.

enum class Op : uint8_t {
  kThis,
  kTypeRoot,
  kChild,
  kWhere,
  kExists,
  kEmpty,
  kNot,
  kFirst,
  kLast,
  kIndex,
  kOfType,
  kIs,
  kResolve,
  kExtension,
  kHasExtension,
  kUnion,
  kAnd,
  kOr,
  kXor,
  kImplies,
  kEq,
  kNe,
  kString,
  kNumber,
  kBool,
  kEmptyLiteral,
};

struct Alt {
  TypeId from;
  const std::string* key;  // Model storage.
  TypeId to;
};

// Static result type of a sub-expression: the possible types, and whether the items are
// resolve() placeholders.
struct TypeSet {
  std::vector<TypeId> types = {};
  bool resolved = false;
  void Add(TypeId t) {
    auto it = std::ranges::lower_bound(types, t);
    if (it == types.end() || *it != t) types.insert(it, t);
  }
};

struct Expr {
  Op op;
  int input = -1;  // Input sub-expression of an invocation; -1: the focus.
  int a = -1;      // Operand / criteria.
  int b = -1;
  // kChild: a path of member lookups, one list of alternatives per step (each alternative applies
  // to input nodes of its `from` type); types[0], when set, first filters the focus by type.
  std::vector<std::vector<Alt>> steps = {};
  std::vector<TypeId> types = {};  // kTypeRoot, kOfType, kIs: target types.
  std::string text = {};           // Literal text, extension URL.
  int64_t index = 0;
  bool boolean = false;
  TypeSet out = {};
};

struct Program {
  std::string expression;
  std::vector<Expr> exprs;
  int root = -1;
  std::vector<TypeId> context;
};

namespace {

// ---------------------------------------------------------------------------------------------
// Tokenizer.

enum class Tok : uint8_t { kEnd, kIdent, kDelimitedIdent, kString, kNumber, kSymbol, kDollar };

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;  // Unescaped for strings.
  size_t pos = 0;
};

Status SyntaxError(std::string_view expression, size_t pos, std::string_view what) {
  return InvalidArgumentError("FHIRPath expression not supported",
                              std::string(what) + " at offset " + std::to_string(pos) + " in \"" +
                                  std::string(expression) + "\"");
}

StatusOr<std::vector<Token>> Tokenize(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  auto ident_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  while (i < s.size()) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      ++i;
      continue;
    }
    Token t;
    t.pos = i;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
      size_t j = i;
      while (j < s.size() && ident_char(s[j])) ++j;
      t.kind = Tok::kIdent;
      t.text = std::string(s.substr(i, j - i));
      i = j;
    } else if (c == '$') {
      size_t j = i + 1;
      while (j < s.size() && ident_char(s[j])) ++j;
      t.kind = Tok::kDollar;
      t.text = std::string(s.substr(i, j - i));
      i = j;
    } else if (c >= '0' && c <= '9') {
      size_t j = i;
      while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
      if (j + 1 < s.size() && s[j] == '.' && s[j + 1] >= '0' && s[j + 1] <= '9') {
        ++j;
        while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
      }
      t.kind = Tok::kNumber;
      t.text = std::string(s.substr(i, j - i));
      i = j;
    } else if (c == '\'' || c == '`') {
      const char quote = c;
      std::string text;
      size_t j = i + 1;
      bool closed = false;
      while (j < s.size()) {
        char d = s[j++];
        if (d == quote) {
          closed = true;
          break;
        }
        if (d != '\\') {
          text.push_back(d);
          continue;
        }
        if (j >= s.size()) break;
        char e = s[j++];
        switch (e) {
          case '\'':
          case '"':
          case '`':
          case '\\':
          case '/':
            text.push_back(e);
            break;
          case 'n':
            text.push_back('\n');
            break;
          case 'r':
            text.push_back('\r');
            break;
          case 't':
            text.push_back('\t');
            break;
          case 'f':
            text.push_back('\f');
            break;
          default:
            return SyntaxError(s, j - 2, "unsupported escape");
        }
      }
      if (!closed) return SyntaxError(s, i, "unterminated literal");
      t.kind = quote == '\'' ? Tok::kString : Tok::kDelimitedIdent;
      t.text = std::move(text);
      i = j;
    } else {
      static constexpr std::string_view kTwo[] = {"!=", "!~", "<=", ">="};
      t.kind = Tok::kSymbol;
      std::string_view two = s.substr(i, 2);
      if (std::ranges::find(kTwo, two) != std::end(kTwo)) {
        t.text = std::string(two);
        i += 2;
      } else if (std::string_view("().[]{},|=~<>+-*/&%").find(c) != std::string_view::npos) {
        t.text = std::string(1, c);
        ++i;
      } else {
        return SyntaxError(s, i, "unexpected character");
      }
    }
    out.push_back(std::move(t));
  }
  Token end;
  end.pos = s.size();
  out.push_back(end);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parser + typer.

class Compiler {
 public:
  Compiler(std::string_view expression, std::vector<Token> tokens, Program& program)
      : expression_(expression), tokens_(std::move(tokens)), p_(program) {}

  StatusOr<int> Parse(const TypeSet& focus) {
    KURA_ASSIGN_OR_RETURN(int e, ParseBinary(0, focus));
    if (Peek().kind != Tok::kEnd) return Error("unexpected token");
    return e;
  }

 private:
  // Binary operator levels, loosest first. 'is'/'as' (level 5) take a type on the right.
  static int Level(const Token& t) {
    if (t.kind == Tok::kIdent) {
      if (t.text == "implies") return 0;
      if (t.text == "or" || t.text == "xor") return 1;
      if (t.text == "and") return 2;
      if (t.text == "in" || t.text == "contains") return 3;
      if (t.text == "is" || t.text == "as") return 7;
      if (t.text == "div" || t.text == "mod") return 9;
      return -1;
    }
    if (t.kind != Tok::kSymbol) return -1;
    if (t.text == "=" || t.text == "!=" || t.text == "~" || t.text == "!~") return 4;
    if (t.text == "<" || t.text == ">" || t.text == "<=" || t.text == ">=") return 5;
    if (t.text == "|") return 6;
    if (t.text == "+" || t.text == "-" || t.text == "&") return 8;
    if (t.text == "*" || t.text == "/") return 9;
    return -1;
  }

  StatusOr<int> ParseBinary(int min_level, const TypeSet& focus) {
    KURA_ASSIGN_OR_RETURN(int lhs, ParsePostfix(focus));
    for (;;) {
      const Token& op = Peek();
      int level = Level(op);
      if (level < min_level || level < 0) return lhs;
      Token t = Next();
      if (level == 7) {
        KURA_ASSIGN_OR_RETURN(TypeId type, ParseTypeSpecifier());
        KURA_ASSIGN_OR_RETURN(lhs, TypeOp(t.text == "is" ? Op::kIs : Op::kOfType, lhs, type));
        continue;
      }
      KURA_ASSIGN_OR_RETURN(int rhs, ParseBinary(level + 1, focus));
      Op kind;
      if (t.text == "and") {
        kind = Op::kAnd;
      } else if (t.text == "or") {
        kind = Op::kOr;
      } else if (t.text == "xor") {
        kind = Op::kXor;
      } else if (t.text == "implies") {
        kind = Op::kImplies;
      } else if (t.text == "=") {
        kind = Op::kEq;
      } else if (t.text == "!=") {
        kind = Op::kNe;
      } else if (t.text == "|") {
        kind = Op::kUnion;
      } else {
        return Error("operator '" + t.text + "' not supported", t.pos);
      }
      Expr e{.op = kind, .a = lhs, .b = rhs};
      if (kind == Op::kUnion) {
        e.out = p_.exprs[lhs].out;
        for (TypeId t2 : p_.exprs[rhs].out.types) e.out.Add(t2);
        if (p_.exprs[lhs].out.resolved != p_.exprs[rhs].out.resolved) {
          return Error("union of resolve() results and elements not supported", t.pos);
        }
      } else {
        e.out.Add(Model::Get().boolean());
      }
      lhs = Push(std::move(e));
    }
  }

  StatusOr<int> ParsePostfix(const TypeSet& focus) {
    KURA_ASSIGN_OR_RETURN(int e, ParseTerm(focus));
    for (;;) {
      if (IsSymbol(".")) {
        Next();
        const Token name = Next();
        if (name.kind != Tok::kIdent && name.kind != Tok::kDelimitedIdent) {
          return Error("name expected after '.'", name.pos);
        }
        if (name.kind == Tok::kIdent && IsSymbol("(")) {
          KURA_ASSIGN_OR_RETURN(e, ParseFunction(name, e));
        } else {
          KURA_ASSIGN_OR_RETURN(e, Navigate(e, name));
        }
      } else if (IsSymbol("[")) {
        size_t pos = Next().pos;
        const Token index = Next();
        if (index.kind != Tok::kNumber || index.text.find('.') != std::string::npos) {
          return Error("only integer literal indexers are supported", index.pos);
        }
        if (!IsSymbol("]")) return Error("']' expected");
        Next();
        Expr x{.op = Op::kIndex, .input = e};
        if (std::from_chars(index.text.data(), index.text.data() + index.text.size(), x.index).ec !=
            std::errc()) {
          return Error("indexer out of range", pos);
        }
        x.out = p_.exprs[e].out;
        e = Push(std::move(x));
      } else {
        return e;
      }
    }
  }

  StatusOr<int> ParseTerm(const TypeSet& focus) {
    const Token t = Next();
    switch (t.kind) {
      case Tok::kEnd:
        return Error("unexpected end of expression", t.pos);
      case Tok::kString: {
        Expr e{.op = Op::kString, .text = t.text};
        e.out.Add(Model::Get().string());
        return Push(std::move(e));
      }
      case Tok::kNumber: {
        Expr e{.op = Op::kNumber, .text = t.text};
        e.out.Add(Model::Get().decimal());
        return Push(std::move(e));
      }
      case Tok::kDollar: {
        if (t.text != "$this") return Error("only $this is supported", t.pos);
        Expr e{.op = Op::kThis};
        e.out = focus;
        return Push(std::move(e));
      }
      case Tok::kSymbol:
        if (t.text == "(") {
          KURA_ASSIGN_OR_RETURN(int e, ParseBinary(0, focus));
          if (!IsSymbol(")")) return Error("')' expected");
          Next();
          return e;
        }
        if (t.text == "{" && IsSymbol("}")) {
          Next();
          return Push(Expr{.op = Op::kEmptyLiteral});
        }
        if (t.text == "%") return Error("environment variables are not supported", t.pos);
        return Error("unexpected '" + t.text + "'", t.pos);
      case Tok::kIdent:
        if (t.text == "true" || t.text == "false") {
          Expr e{.op = Op::kBool, .boolean = t.text == "true"};
          e.out.Add(Model::Get().boolean());
          return Push(std::move(e));
        }
        if (IsSymbol("(")) {
          // A function on the focus: its input is $this.
          Expr self{.op = Op::kThis};
          self.out = focus;
          return ParseFunction(t, Push(std::move(self)));
        }
        if (IsUpper(t.text[0])) {
          TypeId type = Model::Get().Id(t.text);
          if (type != kNoType) {
            bool matches = std::ranges::any_of(focus.types,
                                               [&](TypeId f) { return Model::Get().IsA(f, type); });
            if (matches && !focus.resolved) {
              Expr e{.op = Op::kTypeRoot};
              e.types.push_back(type);
              for (TypeId f : focus.types) {
                if (Model::Get().IsA(f, type)) e.out.Add(f);
              }
              return Push(std::move(e));
            }
          }
        }
        [[fallthrough]];
      case Tok::kDelimitedIdent: {
        Expr self{.op = Op::kThis};
        self.out = focus;
        return Navigate(Push(std::move(self)), t);
      }
    }
    return Error("unexpected token", t.pos);
  }

  StatusOr<int> Navigate(int input, const Token& name) {
    const TypeSet& in = p_.exprs[input].out;
    if (in.resolved) return Error("navigation below resolve() is not supported", name.pos);
    std::vector<Alt> step;
    TypeSet out;
    const Model& model = Model::Get();
    for (TypeId from : in.types) {
      for (const Child& c : model.Children(from, name.text)) {
        step.push_back({from, &c.key, c.type});
        out.Add(c.type);
      }
    }
    if (step.empty()) return Error("unknown element '" + name.text + "'", name.pos);
    // Consecutive navigations from the focus (or a type filter of it) fuse into one path, walked
    // depth-first without intermediate collections.
    Expr& prev = p_.exprs[input];
    if (input == static_cast<int>(p_.exprs.size()) - 1) {
      if (prev.op == Op::kThis) prev.types.clear();
      if (prev.op == Op::kThis || prev.op == Op::kTypeRoot) {
        prev.op = Op::kChild;
        prev.input = -1;
      }
      if (prev.op == Op::kChild) {
        prev.steps.push_back(std::move(step));
        prev.out = std::move(out);
        return input;
      }
    }
    Expr e{.op = Op::kChild, .input = input};
    e.steps.push_back(std::move(step));
    e.out = std::move(out);
    return Push(std::move(e));
  }

  StatusOr<TypeId> ParseTypeSpecifier() {
    Token t = Next();
    if (t.kind != Tok::kIdent && t.kind != Tok::kDelimitedIdent)
      return Error("type expected", t.pos);
    std::string name = t.text;
    if ((name == "FHIR" || name == "System") && IsSymbol(".")) {
      Next();
      Token q = Next();
      if (name == "System") return Error("System types are not supported", q.pos);
      name = q.text;
    }
    TypeId type = Model::Get().Id(name);
    if (type == kNoType) return Error("unknown type '" + name + "'", t.pos);
    return type;
  }

  // ofType / as (filter) and is (test) with a target type.
  StatusOr<int> TypeOp(Op op, int input, TypeId type) {
    const Model& model = Model::Get();
    const TypeSet& in = p_.exprs[input].out;
    TypeSet kept;
    kept.resolved = in.resolved;
    if (in.resolved) {
      if (!model.IsResourceType(type) && type != model.resource()) {
        return Error("resolve() yields resources; '" + std::string(model.Name(type)) +
                     "' is not a resource type");
      }
      kept.Add(type);
    } else {
      for (TypeId t : in.types) {
        if (model.IsA(t, type)) kept.Add(t);
      }
      if (kept.types.empty()) {
        return Error("no element of the input can be a " + std::string(model.Name(type)));
      }
    }
    if (op == Op::kIs) {
      Expr e{.op = Op::kIs, .input = input};
      e.types.push_back(type);
      e.out.Add(model.boolean());
      return Push(std::move(e));
    }
    // A cast right after a navigation narrows the navigation's alternatives instead.
    Expr& prev = p_.exprs[input];
    if (prev.op == Op::kChild && input == static_cast<int>(p_.exprs.size()) - 1) {
      std::erase_if(prev.steps.back(), [&](const Alt& a) { return !model.IsA(a.to, type); });
      prev.out = kept;
      return input;
    }
    Expr e{.op = Op::kOfType, .input = input};
    e.types.push_back(type);
    e.out = kept;
    return Push(std::move(e));
  }

  StatusOr<int> ParseFunction(const Token& name, int input) {
    Next();  // '('
    const Model& model = Model::Get();
    const std::string& f = name.text;
    auto close = [&]() -> Status {
      if (!IsSymbol(")")) return Error("')' expected");
      Next();
      return Status::Ok();
    };
    auto boolean_result = [&](Expr e) {
      e.out.Add(model.boolean());
      return Push(std::move(e));
    };
    const TypeSet in = p_.exprs[input].out;
    if (f == "where" || f == "exists") {
      if (f == "exists" && IsSymbol(")")) {
        Next();
        return boolean_result(Expr{.op = Op::kExists, .input = input});
      }
      if (in.resolved) return Error(f + "() on resolve() results is not supported", name.pos);
      KURA_ASSIGN_OR_RETURN(int criteria, ParseBinary(0, in));
      KURA_RETURN_IF_ERROR(close());
      if (f == "exists")
        return boolean_result(Expr{.op = Op::kExists, .input = input, .a = criteria});
      Expr e{.op = Op::kWhere, .input = input, .a = criteria};
      e.out = in;
      return Push(std::move(e));
    }
    if (f == "empty" || f == "not" || f == "first" || f == "last" || f == "resolve") {
      KURA_RETURN_IF_ERROR(close());
      if (f == "empty") return boolean_result(Expr{.op = Op::kEmpty, .input = input});
      if (f == "not") return boolean_result(Expr{.op = Op::kNot, .input = input});
      if (f == "first" || f == "last") {
        Expr e{.op = f == "first" ? Op::kFirst : Op::kLast, .input = input};
        e.out = in;
        return Push(std::move(e));
      }
      // resolve()
      if (in.resolved) return Error("resolve() of resolve() results", name.pos);
      bool any = std::ranges::any_of(in.types, [&](TypeId t) {
        return model.IsA(t, model.reference()) || model.IsA(t, model.string()) ||
               model.IsA(t, model.Id("uri"));
      });
      if (!any) return Error("resolve() needs references", name.pos);
      Expr e{.op = Op::kResolve, .input = input};
      e.out.resolved = true;
      e.out.Add(model.resource());
      return Push(std::move(e));
    }
    if (f == "ofType" || f == "as" || f == "is") {
      KURA_ASSIGN_OR_RETURN(TypeId type, ParseTypeSpecifier());
      KURA_RETURN_IF_ERROR(close());
      return TypeOp(f == "is" ? Op::kIs : Op::kOfType, input, type);
    }
    if (f == "extension" || f == "hasExtension") {
      Token url = Next();
      if (url.kind != Tok::kString) return Error(f + "() takes a string literal", url.pos);
      KURA_RETURN_IF_ERROR(close());
      if (in.resolved) return Error(f + "() on resolve() results is not supported", name.pos);
      bool any = std::ranges::any_of(
          in.types, [&](TypeId t) { return !model.Children(t, "extension").empty(); });
      if (!any) return Error(f + "() on elements without extensions", name.pos);
      Expr e{.op = f == "extension" ? Op::kExtension : Op::kHasExtension,
             .input = input,
             .text = url.text};
      if (f == "hasExtension") return boolean_result(std::move(e));
      e.out.Add(model.extension());
      return Push(std::move(e));
    }
    return Error("function '" + f + "' is not supported", name.pos);
  }

  int Push(Expr e) {
    p_.exprs.push_back(std::move(e));
    return static_cast<int>(p_.exprs.size()) - 1;
  }
  const Token& Peek() const { return tokens_[pos_]; }
  Token Next() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }
  bool IsSymbol(std::string_view s) const {
    return Peek().kind == Tok::kSymbol && Peek().text == s;
  }
  Status Error(std::string what, size_t pos) const { return SyntaxError(expression_, pos, what); }
  Status Error(std::string what) const { return Error(std::move(what), Peek().pos); }

  std::string_view expression_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  Program& p_;
};

// ---------------------------------------------------------------------------------------------
// Evaluation.

using Nodes = std::vector<PathNode>;

// Per-thread pool of result vectors, so steady-state evaluation does not allocate.
class ScratchPool {
 public:
  Nodes* Take() {
    if (free_.empty()) {
      all_.push_back(std::make_unique<Nodes>());
      all_.back()->reserve(16);
      return all_.back().get();
    }
    Nodes* n = free_.back();
    free_.pop_back();
    n->clear();
    return n;
  }
  void Give(Nodes* n) { free_.push_back(n); }

 private:
  std::vector<std::unique_ptr<Nodes>> all_;
  std::vector<Nodes*> free_;
};

class Scratch {
 public:
  Scratch() : nodes_(Pool().Take()) {}
  ~Scratch() { Pool().Give(nodes_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  Nodes& operator*() { return *nodes_; }
  Nodes* operator->() { return nodes_; }

 private:
  static ScratchPool& Pool() {
    thread_local ScratchPool pool;
    return pool;
  }
  Nodes* nodes_;
};

PathNode Bool(bool b) {
  return NodeAccess::Make(PathNode::Kind::kBoolean, Model::Get().boolean(), nullptr, 0, b);
}

// Singleton evaluation of a collection as a boolean: empty -> unknown; one boolean -> its value;
// one other item -> true; several items -> unknown (the spec's error).
std::optional<bool> AsBool(const Nodes& c) {
  if (c.size() != 1) return std::nullopt;
  const PathNode& n = c[0];
  if (n.kind() == PathNode::Kind::kBoolean) return n.boolean();
  if (n.kind() == PathNode::Kind::kElement && NodeAccess::Value(n)->IsBool()) {
    return NodeAccess::Value(n)->GetBool();
  }
  return true;
}

std::optional<double> AsNumber(std::string_view text) {
  double d = 0;
  auto r = std::from_chars(text.data(), text.data() + text.size(), d);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size()) return std::nullopt;
  return d;
}

std::string_view StringOf(const rapidjson::Value& v) {
  return {v.GetString(), v.GetStringLength()};
}

bool Equal(const PathNode& x, const PathNode& y) {
  using K = PathNode::Kind;
  if (x.kind() != K::kElement && y.kind() == K::kElement) return Equal(y, x);
  switch (x.kind()) {
    case K::kElement: {
      const rapidjson::Value& v = *NodeAccess::Value(x);
      switch (y.kind()) {
        case K::kElement:
          return v == *NodeAccess::Value(y);
        case K::kBoolean:
          return v.IsBool() && v.GetBool() == y.boolean();
        case K::kString:
          return v.IsString() && !IsNumberText(v) && StringOf(v) == NodeAccess::Text(y);
        case K::kNumber: {
          if (!IsNumberText(v)) return false;
          auto a = AsNumber(StringOf(v));
          auto b = AsNumber(NodeAccess::Text(y));
          return a && b && *a == *b;
        }
        case K::kResolved:
          return false;
      }
      return false;
    }
    case K::kBoolean:
      return y.kind() == K::kBoolean && x.boolean() == y.boolean();
    case K::kString:
      return y.kind() == K::kString && NodeAccess::Text(x) == NodeAccess::Text(y);
    case K::kNumber: {
      if (y.kind() != K::kNumber) return false;
      auto a = AsNumber(NodeAccess::Text(x));
      auto b = AsNumber(NodeAccess::Text(y));
      return a && b && *a == *b;
    }
    case K::kResolved:
      return y.kind() == K::kResolved && NodeAccess::Type(x) == NodeAccess::Type(y) &&
             NodeAccess::Value(x) == NodeAccess::Value(y);
  }
  return false;
}

class Evaluator {
 public:
  Evaluator(const Program& program, const rapidjson::Value& root)
      : p_(program), root_(root), model_(Model::Get()) {}

  void Eval(int index, std::span<const PathNode> focus, Nodes& out) const {
    const Expr& e = p_.exprs[index];
    const Model& model = model_;
    switch (e.op) {
      case Op::kThis:
        out.insert(out.end(), focus.begin(), focus.end());
        return;
      case Op::kTypeRoot:
        for (const PathNode& n : focus) {
          if (n.kind() == PathNode::Kind::kElement && model.IsA(NodeAccess::Type(n), e.types[0])) {
            out.push_back(n);
          }
        }
        return;
      case Op::kChild:
        if (e.input < 0) {
          for (const PathNode& n : focus) {
            if (e.types.empty() || model_.IsA(NodeAccess::Type(n), e.types[0])) Walk(e, 0, n, out);
          }
        } else {
          Scratch in;
          Eval(e.input, focus, *in);
          for (const PathNode& n : *in) Walk(e, 0, n, out);
        }
        return;
      case Op::kString:
        out.push_back(NodeAccess::Make(PathNode::Kind::kString, model.string(), e.text.data(),
                                       static_cast<uint32_t>(e.text.size()), false));
        return;
      case Op::kNumber:
        out.push_back(NodeAccess::Make(PathNode::Kind::kNumber, model.decimal(), e.text.data(),
                                       static_cast<uint32_t>(e.text.size()), false));
        return;
      case Op::kBool:
        out.push_back(Bool(e.boolean));
        return;
      case Op::kEmptyLiteral:
        return;
      case Op::kUnion: {
        Scratch a, b;
        Eval(e.a, focus, *a);
        Eval(e.b, focus, *b);
        const size_t start = out.size();
        for (Nodes* side : {&*a, &*b}) {
          for (const PathNode& n : *side) {
            bool dup = std::any_of(out.begin() + static_cast<std::ptrdiff_t>(start), out.end(),
                                   [&](const PathNode& m) { return Equal(n, m); });
            if (!dup) out.push_back(n);
          }
        }
        return;
      }
      case Op::kAnd:
      case Op::kOr:
      case Op::kXor:
      case Op::kImplies: {
        Scratch a, b;
        Eval(e.a, focus, *a);
        Eval(e.b, focus, *b);
        std::optional<bool> r = Logic(e.op, AsBool(*a), AsBool(*b));
        if (r) out.push_back(Bool(*r));
        return;
      }
      case Op::kEq:
      case Op::kNe: {
        Scratch a, b;
        Eval(e.a, focus, *a);
        Eval(e.b, focus, *b);
        if (a->empty() || b->empty()) return;
        bool eq = a->size() == b->size();
        for (size_t i = 0; eq && i < a->size(); ++i) eq = Equal((*a)[i], (*b)[i]);
        out.push_back(Bool(e.op == Op::kEq ? eq : !eq));
        return;
      }
      default:
        break;
    }
    // Functions and type operators on an input collection.
    Scratch in;
    Eval(e.input, focus, *in);
    switch (e.op) {
      case Op::kWhere:
        for (const PathNode& n : *in) {
          Scratch r;
          Eval(e.a, std::span(&n, 1), *r);
          if (AsBool(*r) == true) out.push_back(n);
        }
        return;
      case Op::kExists: {
        if (e.a < 0) {
          out.push_back(Bool(!in->empty()));
          return;
        }
        bool any = false;
        for (const PathNode& n : *in) {
          Scratch r;
          Eval(e.a, std::span(&n, 1), *r);
          if (AsBool(*r) == true) {
            any = true;
            break;
          }
        }
        out.push_back(Bool(any));
        return;
      }
      case Op::kEmpty:
        out.push_back(Bool(in->empty()));
        return;
      case Op::kNot:
        if (auto b = AsBool(*in)) out.push_back(Bool(!*b));
        return;
      case Op::kFirst:
        if (!in->empty()) out.push_back(in->front());
        return;
      case Op::kLast:
        if (!in->empty()) out.push_back(in->back());
        return;
      case Op::kIndex:
        if (e.index >= 0 && static_cast<size_t>(e.index) < in->size()) {
          out.push_back((*in)[static_cast<size_t>(e.index)]);
        }
        return;
      case Op::kOfType:
        for (const PathNode& n : *in) {
          if (model.IsA(NodeAccess::Type(n), e.types[0])) out.push_back(n);
        }
        return;
      case Op::kIs:
        if (in->size() == 1) out.push_back(Bool(model.IsA(NodeAccess::Type((*in)[0]), e.types[0])));
        return;
      case Op::kResolve:
        for (const PathNode& n : *in) Resolve(n, out);
        return;
      case Op::kExtension:
      case Op::kHasExtension: {
        const size_t start = out.size();
        for (const PathNode& n : *in) Extensions(n, e.text, out);
        if (e.op == Op::kHasExtension) {
          bool any = out.size() > start;
          out.resize(start);
          out.push_back(Bool(any));
        }
        return;
      }
      default:
        return;
    }
  }

 private:
  static std::optional<bool> Logic(Op op, std::optional<bool> a, std::optional<bool> b) {
    switch (op) {
      case Op::kAnd:
        if (a == false || b == false) return false;
        if (a && b) return true;
        return std::nullopt;
      case Op::kOr:
        if (a == true || b == true) return true;
        if (a && b) return false;
        return std::nullopt;
      case Op::kXor:
        if (a && b) return *a != *b;
        return std::nullopt;
      case Op::kImplies:
        if (a == false || b == true) return true;
        if (a == true && b == false) return false;
        return std::nullopt;
      default:
        return std::nullopt;
    }
  }

  static void Walk(const Expr& e, size_t step, const PathNode& n, Nodes& out) {
    if (step == e.steps.size()) {
      out.push_back(n);
      return;
    }
    if (n.kind() != PathNode::Kind::kElement) return;
    const rapidjson::Value& v = *NodeAccess::Value(n);
    if (!v.IsObject()) return;
    const TypeId type = NodeAccess::Type(n);
    for (const Alt& alt : e.steps[step]) {
      if (alt.from != type) continue;
      auto m = v.FindMember(rapidjson::StringRef(alt.key->data(), alt.key->size()));
      if (m == v.MemberEnd()) continue;
      if (m->value.IsArray()) {
        for (const rapidjson::Value& item : m->value.GetArray()) {
          if (!item.IsNull()) Walk(e, step + 1, NodeAccess::Element(item, alt.to), out);
        }
      } else if (!m->value.IsNull()) {
        Walk(e, step + 1, NodeAccess::Element(m->value, alt.to), out);
      }
    }
  }

  void Resolve(const PathNode& n, Nodes& out) const {
    if (n.kind() != PathNode::Kind::kElement) return;
    const rapidjson::Value& v = *NodeAccess::Value(n);
    const rapidjson::Value* text = nullptr;
    if (v.IsObject()) {
      auto m = v.FindMember("reference");
      if (m != v.MemberEnd() && m->value.IsString()) text = &m->value;
    } else if (v.IsString()) {
      text = &v;
    }
    if (text == nullptr) return;
    std::string_view type = ReferenceTargetType(root_, StringOf(*text));
    TypeId id = Model::Get().Id(type);
    if (id == kNoType) return;
    out.push_back(NodeAccess::Make(PathNode::Kind::kResolved, id, &v, 0, false));
  }

  static void Extensions(const PathNode& n, std::string_view url, Nodes& out) {
    if (n.kind() != PathNode::Kind::kElement) return;
    const rapidjson::Value& v = *NodeAccess::Value(n);
    if (!v.IsObject()) return;
    auto m = v.FindMember("extension");
    if (m == v.MemberEnd() || !m->value.IsArray()) return;
    for (const rapidjson::Value& ext : m->value.GetArray()) {
      if (!ext.IsObject()) continue;
      auto u = ext.FindMember("url");
      if (u != ext.MemberEnd() && u->value.IsString() && StringOf(u->value) == url) {
        out.push_back(NodeAccess::Element(ext, Model::Get().extension()));
      }
    }
  }

  const Program& p_;
  const rapidjson::Value& root_;
  const Model& model_;
};

// JSON of an element, numbers written with their original text.
void WriteJson(const rapidjson::Value& v, rapidjson::Writer<rapidjson::StringBuffer>& w) {
  switch (v.GetType()) {
    case rapidjson::kObjectType:
      w.StartObject();
      for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
        w.Key(m->name.GetString(), m->name.GetStringLength());
        WriteJson(m->value, w);
      }
      w.EndObject();
      return;
    case rapidjson::kArrayType:
      w.StartArray();
      for (const rapidjson::Value& item : v.GetArray()) WriteJson(item, w);
      w.EndArray();
      return;
    case rapidjson::kStringType:
      if (IsNumberText(v)) {
        w.RawValue(v.GetString(), v.GetStringLength(), rapidjson::kNumberType);
      } else {
        w.String(v.GetString(), v.GetStringLength());
      }
      return;
    default:
      v.Accept(w);
      return;
  }
}

}  // namespace

}  // namespace internal

// ---------------------------------------------------------------------------------------------
// Public API.

struct ParsedResource::Impl {
  // The DOM's first memory comes from inside this object (one allocation for a typical resource);
  // larger documents grow in the allocator's own chunks.
  static constexpr size_t kInlineBytes = 8192;
  alignas(std::max_align_t) char inline_chunk[kInlineBytes];
  rapidjson::MemoryPoolAllocator<> allocator{inline_chunk, kInlineBytes};
  std::string buffer;  // Parsed in place: the DOM's strings point into it.
  rapidjson::Document doc{&allocator};
  std::string_view resource_type;
  internal::TypeId type = internal::kNoType;
};

const rapidjson::Value& internal::NodeAccess::Root(const ParsedResource& resource) {
  return resource.impl_->doc;
}

ParsedResource::ParsedResource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ParsedResource::ParsedResource(ParsedResource&&) noexcept = default;
ParsedResource& ParsedResource::operator=(ParsedResource&&) noexcept = default;
ParsedResource::~ParsedResource() = default;

StatusOr<ParsedResource> ParsedResource::Parse(std::string_view json) {
  if (json.find('\0') != std::string_view::npos) {
    return InvalidArgumentError("The resource is not a JSON object");
  }
  std::unique_ptr<Impl> impl(new Impl);  // Default-initialized: the inline chunk is not zeroed.
  impl->buffer.assign(json);
  impl->doc.ParseInsitu<internal::kParseFlags>(impl->buffer.data());
  if (impl->doc.HasParseError() || !impl->doc.IsObject()) {
    return InvalidArgumentError("The resource is not a JSON object");
  }
  auto rt = impl->doc.FindMember("resourceType");
  if (rt == impl->doc.MemberEnd() || !rt->value.IsString() || internal::IsNumberText(rt->value)) {
    return InvalidArgumentError("The resource has no resourceType");
  }
  impl->resource_type = internal::StringOf(rt->value);
  impl->type = internal::TypeIdOf(impl->resource_type);
  return ParsedResource(std::move(impl));
}

std::string_view ParsedResource::resource_type() const { return impl_->resource_type; }

PathNode ParsedResource::Root() const {
  return internal::NodeAccess::Element(impl_->doc, impl_->type);
}

std::string_view PathNode::type() const { return internal::TypeName(type_); }

bool PathNode::boolean() const {
  if (kind_ == Kind::kElement) {
    const auto* v = static_cast<const rapidjson::Value*>(value_);
    return v != nullptr && v->IsBool() && v->GetBool();
  }
  return boolean_;
}

std::string PathNode::ToJson() const {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  switch (kind_) {
    case Kind::kElement:
      internal::WriteJson(*static_cast<const rapidjson::Value*>(value_), w);
      break;
    case Kind::kBoolean:
      w.Bool(boolean_);
      break;
    case Kind::kString:
      w.String(static_cast<const char*>(value_), size_);
      break;
    case Kind::kNumber:
      w.RawValue(static_cast<const char*>(value_), size_, rapidjson::kNumberType);
      break;
    case Kind::kResolved: {
      std::string_view t = type();
      w.StartObject();
      w.Key("resourceType");
      w.String(t.data(), static_cast<rapidjson::SizeType>(t.size()));
      w.EndObject();
      break;
    }
  }
  return std::string(buffer.GetString(), buffer.GetSize());
}

FhirPath::FhirPath(std::shared_ptr<const internal::Program> program)
    : program_(std::move(program)) {}

StatusOr<FhirPath> FhirPath::Compile(std::string_view expression,
                                     std::span<const std::string_view> context_types) {
  using namespace internal;
  auto program = std::make_shared<Program>();
  program->expression = std::string(expression);
  TypeSet focus;
  for (std::string_view t : context_types) {
    TypeId id = TypeIdOf(t);
    if (id == kNoType) {
      return InvalidArgumentError("FHIRPath context type unknown", std::string(t));
    }
    focus.Add(id);
    program->context.push_back(id);
  }
  KURA_ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(program->expression));
  // The compiler keeps views of the expression for messages; tokens own their text.
  Compiler compiler(program->expression, std::move(tokens), *program);
  KURA_ASSIGN_OR_RETURN(program->root, compiler.Parse(focus));
  return FhirPath(std::move(program));
}

StatusOr<FhirPath> FhirPath::Compile(std::string_view expression, std::string_view context_type) {
  return Compile(expression, std::span<const std::string_view>(&context_type, 1));
}

void FhirPath::Evaluate(const ParsedResource& resource, std::vector<PathNode>& out) const {
  PathNode root = resource.Root();
  Evaluate(resource, std::span(&root, 1), out);
}

void FhirPath::Evaluate(const ParsedResource& resource, std::span<const PathNode> focus,
                        std::vector<PathNode>& out) const {
  internal::Evaluator(*program_, internal::NodeAccess::Root(resource))
      .Eval(program_->root, focus, out);
}

std::vector<std::string_view> FhirPath::ResultTypes() const {
  std::vector<std::string_view> names;
  for (internal::TypeId t : program_->exprs[program_->root].out.types) {
    names.push_back(internal::TypeName(t));
  }
  std::ranges::sort(names);
  return names;
}

const std::string& FhirPath::expression() const { return program_->expression; }

namespace internal {
namespace {

std::optional<std::vector<std::string_view>> FirstMembersOf(const Program& p, int index) {
  const Expr& e = p.exprs[static_cast<size_t>(index)];
  switch (e.op) {
    case Op::kChild:
      if (e.input >= 0) return FirstMembersOf(p, e.input);
      {
        std::vector<std::string_view> keys;
        for (const Alt& alt : e.steps.front()) keys.push_back(*alt.key);
        return keys;
      }
    case Op::kUnion: {
      auto a = FirstMembersOf(p, e.a);
      auto b = FirstMembersOf(p, e.b);
      if (!a || !b) return std::nullopt;
      a->insert(a->end(), b->begin(), b->end());
      return a;
    }
    case Op::kExtension: {
      const Op in = p.exprs[static_cast<size_t>(e.input)].op;
      if (in == Op::kThis || in == Op::kTypeRoot) return std::vector<std::string_view>{"extension"};
      return FirstMembersOf(p, e.input);
    }
    case Op::kWhere:
    case Op::kFirst:
    case Op::kLast:
    case Op::kIndex:
    case Op::kOfType:
    case Op::kResolve:
      return FirstMembersOf(p, e.input);
    default:
      return std::nullopt;
  }
}

}  // namespace

std::optional<std::vector<std::string_view>> ProgramAccess::FirstMembers(const FhirPath& path) {
  auto keys = FirstMembersOf(*path.program_, path.program_->root);
  if (keys) {
    std::ranges::sort(*keys);
    keys->erase(std::unique(keys->begin(), keys->end()), keys->end());
  }
  return keys;
}

}  // namespace internal

}  // namespace kura::fhir
