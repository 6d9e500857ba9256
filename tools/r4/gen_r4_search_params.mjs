#!/usr/bin/env node
// Generates src/kura/fhir/r4_search_params.cc from the official FHIR R4 definitions shipped in the
// npm package hl7.fhir.r4.examples@4.0.1 (see tools/r4/README.md).
//
// Usage: node tools/r4/gen_r4_search_params.mjs <package-dir> [output.cc]
//
// Tables produced:
//   * Search parameters of the searchable resource types (SEARCHABLE_TYPES below): every
//     SearchParameter whose base names the type, Resource or (for DomainResources) DomainResource,
//     the illustrative "example*" ones excluded. Shared definitions have their FHIRPath union
//     reduced to the branches rooted at the type; the common Resource.* expressions are re-rooted
//     at the type ("Resource.id" -> "Patient.id"). Composite components are resolved from their
//     definition URL to the component parameter's code. Reference targets are the definition's
//     targets, narrowed to X when every kept branch filters with where(resolve() is X).
//   * The element model the FHIRPath compiler types paths with (src/kura/fhir/internal/r4_model.h):
//     every element of the searchable resource types and of the complex data types reachable
//     from them (snapshot element definitions, choice elements marked, backbone elements typed by
//     their own path, contentReferences followed), and the specialization bases of the data types
//     (Age -> Quantity, code -> string, ...).
//
// Warnings go to stderr and into the generated header comment; fatal inconsistencies exit with
// status 1 and write nothing. Node's standard library only.

import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import {fileURLToPath, pathToFileURL} from 'node:url';

import {loadPackage, splitUnion} from './gen_r4_tables.mjs';
import {LINE_LIMIT, byteCompare, capitalise, commentLines, cppString, fail, packLines,
        resolvePackageDir} from './r4_common.mjs';

const PACKAGE_NAME = 'hl7.fhir.r4.examples';
const PACKAGE_VERSION = '4.0.1';

// The resource types whose search Kura supports (the search feature's list).
const SEARCHABLE_TYPES = [
  'Patient', 'Observation', 'Condition', 'AllergyIntolerance', 'MedicationRequest',
  'MedicationStatement', 'Medication', 'Immunization', 'Procedure', 'DiagnosticReport',
  'DocumentReference', 'Binary', 'Encounter', 'CarePlan', 'Goal', 'FamilyMemberHistory',
  'ServiceRequest', 'Questionnaire', 'QuestionnaireResponse', 'Device', 'Practitioner',
  'PractitionerRole', 'Organization', 'RelatedPerson', 'Consent', 'Provenance', 'AuditEvent',
];

const SYSTEM_TYPE_PREFIX = 'http://hl7.org/fhirpath/System.';
const FHIR_TYPE_EXTENSION = 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type';

// Which element types a value of each search parameter type can come from (used to check
// composite components against their parameter's type).
const COMPATIBLE_TYPES = {
  number: ['decimal', 'integer', 'positiveInt', 'unsignedInt'],
  date: ['date', 'dateTime', 'instant', 'Period', 'Timing'],
  string: ['string', 'markdown', 'HumanName', 'Address'],
  token: ['CodeableConcept', 'Coding', 'Identifier', 'ContactPoint', 'code', 'boolean', 'string',
          'id', 'uri'],
  reference: ['Reference', 'canonical', 'uri', 'url'],
  quantity: ['Quantity', 'Age', 'Duration', 'Distance', 'Count', 'Money', 'Range', 'SampledData'],
  uri: ['uri', 'url', 'canonical', 'oid', 'uuid'],
};

const warnings = [];
const decisions = [];
function warn(msg) {
  warnings.push(msg);
  process.stderr.write(`warning: ${msg}\n`);
}
function decide(msg) {
  decisions.push(msg);
  process.stderr.write(`decision: ${msg}\n`);
}

// ---------------------------------------------------------------------------------------------
// Element model.

// Type code of one ElementDefinition.type entry: FHIRPath System types (Resource.id,
// Extension.url, Element.id) carry the FHIR type in an extension.
function typeCode(t) {
  if (!t.code.startsWith(SYSTEM_TYPE_PREFIX)) return t.code;
  const ext = (t.extension ?? []).find((e) => e.url === FHIR_TYPE_EXTENSION);
  if (ext) return ext.valueUrl ?? ext.valueUri;
  return t.code.slice(SYSTEM_TYPE_PREFIX.length).toLowerCase();
}

function definitionsByType(pkg) {
  const byType = new Map();
  for (const sd of pkg.structureDefinitions) {
    if (sd.derivation === 'constraint') continue;
    if (!['resource', 'complex-type', 'primitive-type'].includes(sd.kind)) continue;
    byType.set(sd.type, sd);
  }
  return byType;
}

// Elements of the searchable types and of every complex type reachable from them.
// Returns {elements: [{owner, name, choice, types}], bases: [[type, base]], typeNames: Set}.
function buildModel(pkg, byType) {
  const elements = new Map();  // `${owner}.${name}` -> entry
  const queue = [...SEARCHABLE_TYPES];
  const seen = new Set(queue);
  const complexSeen = new Set();
  while (queue.length > 0) {
    const type = queue.shift();
    const sd = byType.get(type);
    if (!sd) fail(`no StructureDefinition for ${type}`);
    if (sd.kind === 'primitive-type') continue;
    complexSeen.add(type);
    const els = sd.snapshot?.element ?? [];
    const paths = new Set(els.map((e) => e.path));
    const hasChildren = (p) => els.some((e) => e.path.startsWith(`${p}.`));
    for (const el of els) {
      const dot = el.path.lastIndexOf('.');
      if (dot < 0) continue;  // The type itself.
      const owner = el.path.slice(0, dot);
      if (!paths.has(owner) && owner !== type) fail(`orphan element ${el.path}`);
      let name = el.path.slice(dot + 1);
      const choice = name.endsWith('[x]');
      if (choice) name = name.slice(0, -3);
      let types;
      if (el.contentReference) {
        types = [el.contentReference.replace(/^#/, '')];
      } else if (hasChildren(el.path)) {
        types = [el.path];  // Backbone element: typed by its own path.
      } else {
        types = [...new Set((el.type ?? []).map(typeCode))];
      }
      if (types.length === 0) fail(`element ${el.path} has no type`);
      if (!choice && types.length > 1) fail(`non-choice element ${el.path} has several types`);
      elements.set(`${owner}.${name}`, {owner, name, choice, types});
      for (const t of types) {
        // Backbone paths and "Resource" (contained resources) are not data types to descend into.
        if (t.includes('.') || t === 'Resource' || seen.has(t)) continue;
        seen.add(t);
        queue.push(t);
      }
    }
  }
  const list = [...elements.values()].sort(
      (a, b) => byteCompare(a.owner, b.owner) || byteCompare(a.name, b.name));
  // Specialization bases of the reachable data types (Element/BackboneElement/Resource bases
  // carry nothing a search expression casts to).
  const bases = [];
  for (const type of [...seen].sort(byteCompare)) {
    const sd = byType.get(type);
    const base = (sd?.baseDefinition ?? '').replace('http://hl7.org/fhir/StructureDefinition/', '');
    if (!base || ['Element', 'BackboneElement', 'Resource', 'DomainResource'].includes(base)) {
      continue;
    }
    bases.push([type, base]);
  }
  return {elements: list, bases, typeNames: new Set([...byType.keys()])};
}

function elementIndex(model) {
  const index = new Map();
  for (const e of model.elements) index.set(`${e.owner}.${e.name}`, e);
  return index;
}

// Leaf types of a simple relative path ("value.as(Quantity)", "code") from `owner`; null when the
// expression is not such a path.
function simplePathTypes(index, owner, expr) {
  const m = /^([a-zA-Z][A-Za-z0-9.]*?)(?:\.as\(([A-Za-z]+)\))?$/.exec(expr.trim());
  if (!m) return null;
  let types = [owner];
  for (const seg of m[1].split('.')) {
    const next = [];
    for (const t of types) {
      const el = index.get(`${t}.${seg}`);
      if (el) next.push(...el.types);
    }
    if (next.length === 0) return null;
    types = next;
  }
  if (m[2]) types = types.filter((t) => t === m[2]);
  return types;
}

// ---------------------------------------------------------------------------------------------
// Search parameters.

function rootOf(branch) {
  return /^\(*\s*([A-Za-z][A-Za-z0-9]*)/.exec(branch)?.[1] ?? null;
}

// Casts (`as T`, `.as(T)`, `.ofType(T)`, `is T`) to names that are not FHIR types but are once
// the first letter is lower-cased (the R4 definitions say `value.as(DateTime)` meaning the FHIR
// dateTime; FHIRPath resolves "DateTime" to System.DateTime, which no FHIR element is).
function fixCastCase(expr, typeNames, where) {
  return expr.replace(/\b(as|is|ofType)(\s*\(\s*|\s+)([A-Za-z][A-Za-z0-9]*)/g, (all, op, sep, t) => {
    if (typeNames.has(t)) return all;
    const lower = t.charAt(0).toLowerCase() + t.slice(1);
    if (typeNames.has(lower)) {
      decide(`${where}: cast to "${t}" (not a FHIR type) read as "${lower}".`);
      return `${op}${sep}${lower}`;
    }
    fail(`${where}: unknown type ${t} in ${expr}`);
    return all;
  });
}

function collectParams(pkg, byType, model) {
  const index = elementIndex(model);
  const usable = pkg.searchParameters.filter((sp) => !sp.id.startsWith('example'));
  const byUrl = new Map(usable.map((sp) => [sp.url, sp]));
  const result = new Map();
  for (const type of [...SEARCHABLE_TYPES].sort(byteCompare)) {
    const sd = byType.get(type);
    const domain = sd.baseDefinition === 'http://hl7.org/fhir/StructureDefinition/DomainResource';
    const bases = new Set([type, 'Resource', ...(domain ? ['DomainResource'] : [])]);
    const params = [];
    for (const sp of usable) {
      if (!(sp.base ?? []).some((b) => bases.has(b))) continue;
      const where = `${type}.${sp.code} (${sp.id})`;
      let expression = '';
      const filters = new Set();
      if (sp.expression) {
        const kept = [];
        for (const branch of splitUnion(sp.expression)) {
          const root = rootOf(branch);
          if (root === type) {
            kept.push(branch);
          } else if (root === 'Resource' || root === 'DomainResource') {
            kept.push(branch.replace(root, type));
          } else {
            continue;
          }
          const f = /\.where\(resolve\(\) is ([A-Za-z]+)\)$/.exec(branch);
          filters.add(f ? f[1] : null);
        }
        if (kept.length === 0) {
          warn(`${where}: no branch rooted at ${type} in "${sp.expression}"; not indexed`);
          decide(`${where}: no ${type} branch in the expression; kept without expression.`);
        }
        expression = fixCastCase(kept.join(' | '), model.typeNames, where);
      }
      let targets = [...(sp.target ?? [])].sort(byteCompare);
      if (filters.size === 1 && !filters.has(null)) {
        const only = [...filters][0];
        if (targets.includes(only) && targets.length > 1) targets = [only];
      }
      let components = [];
      if (sp.type === 'composite') {
        components = (sp.component ?? []).map((c) => {
          const def = byUrl.get(c.definition);
          if (!def) fail(`${where}: component ${c.definition} not found`);
          if (!(def.base ?? []).some((b) => bases.has(b))) {
            fail(`${where}: component ${def.id} is not a ${type} parameter`);
          }
          return {param: def.code, type: def.type,
                  expression: fixCastCase(c.expression, model.typeNames, where)};
        });
        components = checkComponents(index, type, expression, components, where);
      }
      params.push({code: sp.code, type: sp.type, expression, targets, components, url: sp.url});
    }
    params.sort((a, b) => byteCompare(a.code, b.code));
    for (let i = 1; i < params.length; ++i) {
      if (params[i].code === params[i - 1].code) {
        fail(`${type}: two search parameters named ${params[i].code}`);
      }
    }
    result.set(type, params);
  }
  return result;
}

// Checks each component's expression yields values its parameter's type can index; when a
// two-component composite has them crossed (R4's DocumentReference-relationship gives the
// reference component "code" and the token component "target") the expressions are swapped.
function checkComponents(index, type, expression, components, where) {
  const foci = splitUnion(expression).map((b) => b.trim().replace(/^\(+|\)+$/g, ''));
  const fits = (c, expr) => foci.every((focus) => {
    const owner = focus.includes('.') ? focus : type;
    if (owner !== type && !index.has(owner)) return true;  // Not a plain path: not checked.
    const ownerType = owner === type ? type : index.get(owner).types[0];
    return splitUnion(expr).every((b) => {
      const types = simplePathTypes(index, ownerType, b);
      return types === null || types.length === 0 ||
             types.some((t) => COMPATIBLE_TYPES[c.type]?.includes(t));
    });
  });
  const bad = components.filter((c) => !fits(c, c.expression));
  if (bad.length === 0) return components;
  if (components.length === 2 && bad.length === 2 && fits(components[0], components[1].expression) &&
      fits(components[1], components[0].expression)) {
    decide(`${where}: component expressions "${components[0].expression}" and ` +
           `"${components[1].expression}" are crossed in the definition; swapped.`);
    return [{...components[0], expression: components[1].expression},
            {...components[1], expression: components[0].expression}];
  }
  for (const c of bad) warn(`${where}: component ${c.param} "${c.expression}" does not fit ${c.type}`);
  return components;
}

// ---------------------------------------------------------------------------------------------
// Emission.

// A string literal no wider than `width`, split into adjacent literals after " | " or spaces.
function cppStringLines(s, indent, width = LINE_LIMIT) {
  const room = width - indent.length - 3;  // Quotes and a trailing comma.
  if (s.length <= room) return [`${indent}${cppString(s)}`];
  const pieces = [];
  let rest = s;
  while (rest.length > room) {
    let cut = rest.lastIndexOf(' | ', room - 3);
    if (cut > 0) {
      cut += 3;
    } else {
      cut = Math.max(rest.lastIndexOf(' ', room - 1), rest.lastIndexOf('|', room - 1)) + 1;
    }
    if (cut <= 0) cut = room;
    pieces.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  pieces.push(rest);
  return pieces.map((p) => `${indent}${cppString(p)}`);
}

const TYPE_ENUM = {
  number: 'kNumber', date: 'kDate', string: 'kString', token: 'kToken', reference: 'kReference',
  composite: 'kComposite', quantity: 'kQuantity', uri: 'kUri', special: 'kSpecial',
};

const FUNCTIONS = `
static_assert(std::ranges::is_sorted(kSearchableTypes));
static_assert(std::ranges::is_sorted(kSearchParams, {}, &TypeParams::type));
static_assert(std::ranges::is_sorted(kElements, {}, [](const internal::R4Element& e) {
  return std::pair(e.owner, e.name);
}));

constexpr bool AllParamListsSortedAndUnique() {
  for (const TypeParams& entry : kSearchParams) {
    if (!std::ranges::is_sorted(entry.params, {}, &SearchParamDef::code)) return false;
    if (std::ranges::adjacent_find(entry.params, {}, &SearchParamDef::code) != entry.params.end()) {
      return false;
    }
  }
  return true;
}
static_assert(AllParamListsSortedAndUnique());

}  // namespace

std::span<const std::string_view> SearchableResourceTypes() { return kSearchableTypes; }

bool IsSearchableResourceType(std::string_view resource_type) {
  return std::ranges::binary_search(kSearchableTypes, resource_type);
}

std::span<const SearchParamDef> SearchParamsFor(std::string_view resource_type) {
  const auto* it = std::ranges::lower_bound(kSearchParams, resource_type, {}, &TypeParams::type);
  if (it == std::ranges::end(kSearchParams) || it->type != resource_type) return {};
  return it->params;
}

namespace internal {

std::span<const R4Element> R4Elements() { return kElements; }
std::span<const R4TypeBase> R4TypeBases() { return kTypeBases; }

}  // namespace internal
}  // namespace kura::fhir`;

function emit(params, model) {
  const out = [];
  out.push(`// Generated by tools/r4/gen_r4_search_params.mjs from ${PACKAGE_NAME} ` +
           `${PACKAGE_VERSION}; do not edit.`);
  out.push('//');
  out.push(...commentLines(
      'Sources: the SearchParameters whose base names a searchable type, Resource or ' +
      'DomainResource (the illustrative "example*" ones excluded), their FHIRPath reduced to the ' +
      'union branches rooted at the type (Resource.x re-rooted at the type); composite ' +
      'components resolved to the component parameter codes; reference targets narrowed to X ' +
      'when every kept branch ends in where(resolve() is X). Parameters without an expression ' +
      '(_text, _content, _query, _filter and extension parameters defined without one) are ' +
      'listed with an empty expression and not indexed. The element model: the snapshot ' +
      'elements of the searchable types and of the data types reachable from them.'));
  out.push('//');
  if (decisions.length === 0 && warnings.length === 0) {
    out.push('// Generator decisions: none.');
  } else {
    out.push('// Generator decisions:');
    for (const d of [...decisions, ...warnings.map((w) => `warning: ${w}`)]) {
      out.push(...commentLines(d, '//   -', '//    '));
    }
  }
  out.push('#include <algorithm>');
  out.push('#include <span>');
  out.push('#include <string_view>');
  out.push('#include <utility>');
  out.push('');
  out.push('#include "kura/fhir/internal/r4_model.h"');
  out.push('#include "kura/fhir/search_params.h"');
  out.push('');
  out.push('namespace kura::fhir {');
  out.push('namespace {');
  out.push('');
  out.push('// clang-format off');
  const types = [...params.keys()];
  out.push(`// ${types.length} searchable resource types, byte order.`);
  out.push('constexpr std::string_view kSearchableTypes[] = {');
  out.push(...packLines(types.map(cppString)));
  out.push('};');
  out.push('');
  // Target lists, shared by content.
  const targetNames = new Map();
  out.push('// Reference targets.');
  for (const list of params.values()) {
    for (const p of list) {
      if (p.targets.length === 0) continue;
      const key = p.targets.join(',');
      if (targetNames.has(key)) continue;
      const name = `kTargets${targetNames.size}`;
      targetNames.set(key, name);
      const items = p.targets.map(cppString);
      const oneLine = `constexpr std::string_view ${name}[] = {${items.join(', ')}};`;
      if (oneLine.length <= LINE_LIMIT) {
        out.push(oneLine);
      } else {
        out.push(`constexpr std::string_view ${name}[] = {`, ...packLines(items), '};');
      }
    }
  }
  out.push('');
  out.push('// Composite components.');
  const componentNames = new Map();
  for (const [type, list] of params) {
    for (const p of list) {
      if (p.components.length === 0) continue;
      const name = `kComponents${type}${p.code.split('-').map(capitalise).join('')}`;
      componentNames.set(`${type}.${p.code}`, name);
      out.push(`constexpr CompositeComponent ${name}[] = {`);
      for (const c of p.components) {
        out.push(`    {${cppString(c.param)}, ${cppString(c.expression)}},`);
      }
      out.push('};');
    }
  }
  let total = 0;
  for (const [type, list] of params) {
    out.push('');
    out.push(`// ${type}: ${list.length} parameters.`);
    out.push(`constexpr SearchParamDef kParams${type}[] = {`);
    for (const p of list) {
      ++total;
      const targets = p.targets.length ? targetNames.get(p.targets.join(',')) : '{}';
      const components = p.components.length ? componentNames.get(`${type}.${p.code}`) : '{}';
      const head = `    {${cppString(p.code)}, SearchParamType::${TYPE_ENUM[p.type]},`;
      const tail = `${targets}, ${components}, ${cppString(p.url)}},`;
      const oneLine = `${head} ${cppString(p.expression)}, ${tail}`;
      if (oneLine.length <= LINE_LIMIT) {
        out.push(oneLine);
        continue;
      }
      const first = `${head} ${cppString(p.expression)},`;
      if (first.length <= LINE_LIMIT) {
        out.push(first);
      } else {
        out.push(head);
        out.push(...cppStringLines(p.expression, '     ').map((l, i, a) =>
            i === a.length - 1 ? `${l},` : l));
      }
      if (`     ${tail}`.length <= LINE_LIMIT) {
        out.push(`     ${tail}`);
      } else {
        out.push(`     ${targets}, ${components},`, `     ${cppString(p.url)}},`);
      }
    }
    out.push('};');
  }
  out.push('');
  out.push('struct TypeParams {');
  out.push('  std::string_view type;');
  out.push('  std::span<const SearchParamDef> params;');
  out.push('};');
  out.push('');
  out.push(`// ${total} parameters in all.`);
  out.push('constexpr TypeParams kSearchParams[] = {');
  for (const type of types) out.push(`    {${cppString(type)}, kParams${type}},`);
  out.push('};');
  out.push('');
  out.push(`// Element model: ${model.elements.length} elements (owner, name, choice, types).`);
  out.push('constexpr internal::R4Element kElements[] = {');
  for (const e of model.elements) {
    const line = `    {${cppString(e.owner)}, ${cppString(e.name)}, ${e.choice}, ` +
                 `${cppString(e.types.join('|'))}},`;
    if (line.length <= LINE_LIMIT) {
      out.push(line);
    } else {
      out.push(`    {${cppString(e.owner)}, ${cppString(e.name)}, ${e.choice},`);
      out.push(...cppStringLines(e.types.join('|'), '     ', LINE_LIMIT - 1).map((l, i, a) =>
          i === a.length - 1 ? `${l}},` : l));
    }
  }
  out.push('};');
  out.push('');
  out.push('// Specialization bases of the data types.');
  out.push('constexpr internal::R4TypeBase kTypeBases[] = {');
  out.push(...packLines(model.bases.map(([t, b]) => `{${cppString(t)}, ${cppString(b)}}`)));
  out.push('};');
  out.push('// clang-format on');
  out.push(...FUNCTIONS.split('\n'));
  return {text: `${out.join('\n')}\n`, total};
}

// ---------------------------------------------------------------------------------------------

function main(argv) {
  if (argv.length < 1 || argv.length > 2 || argv[0] === '-h' || argv[0] === '--help') {
    process.stderr.write('usage: node tools/r4/gen_r4_search_params.mjs <package-dir> [output.cc]\n');
    process.exit(2);
  }
  const scriptDir = path.dirname(fileURLToPath(import.meta.url));
  const output = argv[1] ?? path.resolve(scriptDir, '../../src/kura/fhir/r4_search_params.cc');
  const dir = resolvePackageDir(argv[0]);
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  if (manifest.name !== PACKAGE_NAME || manifest.version !== PACKAGE_VERSION) {
    fail(`expected ${PACKAGE_NAME}@${PACKAGE_VERSION}, found ${manifest.name}@${manifest.version}`);
  }
  const pkg = loadPackage(dir);
  const byType = definitionsByType(pkg);
  for (const t of SEARCHABLE_TYPES) {
    if (byType.get(t)?.kind !== 'resource') fail(`${t} is not an R4 resource type`);
  }
  const model = buildModel(pkg, byType);
  const params = collectParams(pkg, byType, model);
  const {text, total} = emit(params, model);
  fs.writeFileSync(output, text);
  process.stderr.write(
      `wrote ${output}: ${params.size} types, ${total} parameters, ${model.elements.length} ` +
      `model elements, ${decisions.length} decision(s), ${warnings.length} warning(s)\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2));
}
