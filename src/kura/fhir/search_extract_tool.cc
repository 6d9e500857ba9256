// kura_search_extract_tool: prints the search parameter table and what Kura's FHIRPath evaluator
// and search value extraction make of resources, as JSON lines, for the fhirpath.js oracle test
// (tests/fhirpath_oracle) and for looking at extraction by hand.
//
//   kura_search_extract_tool --params
//       one line per parameter with an expression:
//       {"type","code","kind","expression","components":[{"param","kind","expression"}]}
//   kura_search_extract_tool --extract FILE
//       FILE holds one resource per line (compact JSON). For each resource and each parameter
//       with an expression, one line:
//       {"line":N,"type","code","nodes":[<node JSON>...],"node_types":[...],
//        "values":[<converted SearchValue>...],
//        "foci":[[[<component node JSON>...] per component] per focus]}   (composites only)
//   kura_search_extract_tool --files LIST
//       the same for resources in files (one resource per file) whose paths LIST holds one a
//       line; each output line has "file":PATH instead of "line".
//   kura_search_extract_tool --bench FILE ITERATIONS
//       times ExtractSearchValues over the resources of FILE and prints microseconds per
//       resource.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "kura/fhir/fhirpath.h"
#include "kura/fhir/json.h"
#include "kura/fhir/search_params.h"

namespace kura::fhir {
namespace {

Json ValueJson(const SearchValue& v) {
  Json j = Json::object();
  auto set = [&](const char* key, const std::string& s) {
    if (!s.empty()) j[key] = s;
  };
  set("system", v.system);
  set("code", v.code);
  set("text", v.text);
  set("reference", v.reference);
  set("target_type", v.target_type);
  set("identifier_system", v.identifier_system);
  set("identifier_value", v.identifier_value);
  set("number", v.number);
  if (v.param != nullptr && v.param->type == SearchParamType::kDate) {
    j["low"] = v.range.low;
    j["high"] = v.range.high;
  }
  if (v.param != nullptr && v.param->type == SearchParamType::kQuantity) {
    j["range_low"] = v.range_low;
    j["range_high"] = v.range_high;
  }
  if (!v.components.empty()) {
    Json parts = Json::array();
    for (const SearchValue& c : v.components) parts.push_back(ValueJson(c));
    j["components"] = parts;
  }
  return j;
}

int PrintParams() {
  for (std::string_view type : SearchableResourceTypes()) {
    for (const SearchParamDef& def : SearchParamsFor(type)) {
      if (def.expression.empty()) continue;
      Json line = {{"type", type},
                   {"code", def.code},
                   {"kind", SearchParamTypeName(def.type)},
                   {"expression", def.expression}};
      Json components = Json::array();
      for (const CompositeComponent& c : def.components) {
        const SearchParamDef* cdef = FindSearchParam(type, c.param);
        components.push_back({{"param", c.param},
                              {"kind", cdef ? SearchParamTypeName(cdef->type) : "?"},
                              {"expression", c.expression}});
      }
      line["components"] = components;
      std::cout << SerializeJson(line) << '\n';
    }
  }
  return 0;
}

Json NodesJson(const std::vector<PathNode>& nodes) {
  Json out = Json::array();
  for (const PathNode& n : nodes) out.push_back(Json::parse(n.ToJson()));
  return out;
}

// Prints the lines for one resource; `where` identifies it ({"line":N} or {"file":PATH}).
bool ExtractOne(std::string_view text, const Json& where) {
  StatusOr<ParsedResource> resource = ParsedResource::Parse(text);
  if (!resource.ok()) {
    std::cerr << SerializeJson(where) << ": " << resource.status().ToString() << '\n';
    return false;
  }
  std::string_view type = resource->resource_type();
  StatusOr<std::vector<SearchValue>> values = ExtractSearchValues(*resource);
  if (!values.ok()) {
    std::cerr << SerializeJson(where) << ": " << values.status().ToString() << '\n';
    return false;
  }
  for (const SearchParamDef& def : SearchParamsFor(type)) {
    const FhirPath* expr = SearchParamExpression(def);
    if (def.expression.empty()) continue;
    Json line = where;
    line["type"] = type;
    line["code"] = def.code;
    if (expr == nullptr) {
      line["error"] = "not compiled";
      std::cout << SerializeJson(line) << '\n';
      continue;
    }
    std::vector<PathNode> nodes;
    expr->Evaluate(*resource, nodes);
    line["nodes"] = NodesJson(nodes);
    Json types = Json::array();
    for (const PathNode& n : nodes) types.push_back(n.type());
    line["node_types"] = types;
    Json converted = Json::array();
    for (const SearchValue& v : *values) {
      if (v.param == &def) converted.push_back(ValueJson(v));
    }
    line["values"] = converted;
    if (def.type == SearchParamType::kComposite) {
      Json foci = Json::array();
      for (const PathNode& focus : nodes) {
        Json per = Json::array();
        for (size_t c = 0; c < def.components.size(); ++c) {
          std::vector<PathNode> cn;
          if (const FhirPath* ce = SearchParamComponentExpression(def, c)) {
            ce->Evaluate(*resource, std::span(&focus, 1), cn);
          }
          per.push_back(NodesJson(cn));
        }
        foci.push_back(per);
      }
      line["foci"] = foci;
    }
    std::cout << SerializeJson(line) << '\n';
  }
  return true;
}

int Extract(const char* path) {
  std::ifstream in(path);
  if (!in) {
    std::cerr << "cannot open " << path << '\n';
    return 1;
  }
  int line_no = 0;
  int failures = 0;
  for (std::string text; std::getline(in, text);) {
    ++line_no;
    if (!text.empty() && !ExtractOne(text, {{"line", line_no}})) ++failures;
  }
  return failures == 0 ? 0 : 1;
}

int ExtractFiles(const char* list) {
  std::ifstream in(list);
  if (!in) {
    std::cerr << "cannot open " << list << '\n';
    return 1;
  }
  int failures = 0;
  for (std::string path; std::getline(in, path);) {
    if (path.empty()) continue;
    std::ifstream file(path, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    if (!file || !ExtractOne(text, {{"file", path}})) ++failures;
  }
  return failures == 0 ? 0 : 1;
}

int Bench(const char* path, int iterations) {
  std::ifstream in(path);
  std::vector<std::string> resources;
  for (std::string text; std::getline(in, text);) {
    if (!text.empty()) resources.push_back(text);
  }
  if (resources.empty() || iterations <= 0) return 1;
  size_t values = 0;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) {
    for (const std::string& r : resources) {
      StatusOr<std::vector<SearchValue>> v = ExtractSearchValues(r);
      if (v.ok()) values += v->size();
    }
  }
  auto elapsed =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start);
  const double per = elapsed.count() / (static_cast<double>(resources.size()) * iterations);
  std::printf("%zu resources x %d: %.2f us per resource, %.1f values per resource\n",
              resources.size(), iterations, per,
              static_cast<double>(values) / (static_cast<double>(resources.size()) * iterations));
  return 0;
}

}  // namespace
}  // namespace kura::fhir

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "--params" && argc == 2) return kura::fhir::PrintParams();
  if (mode == "--extract" && argc == 3) return kura::fhir::Extract(argv[2]);
  if (mode == "--files" && argc == 3) return kura::fhir::ExtractFiles(argv[2]);
  if (mode == "--bench" && argc == 4) return kura::fhir::Bench(argv[2], std::atoi(argv[3]));
  std::cerr << "usage: kura_search_extract_tool --params | --extract FILE | --files LIST | "
               "--bench FILE N\n";
  return 2;
}
