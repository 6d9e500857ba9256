#!/usr/bin/env node
// Generates src/kura/fhir/r4_tables.cc from the official FHIR R4 definitions shipped in the npm
// package hl7.fhir.r4.examples@4.0.1 (see tools/r4/README.md).
//
// Usage: node tools/r4/gen_r4_tables.mjs <package-dir> [output.cc]
//
// <package-dir> is the unpacked package (the directory holding package.json; an `npm pack`
// tarball's top-level directory containing `package/` is accepted too). The output defaults to
// src/kura/fhir/r4_tables.cc in this repository. Node's standard library only.
//
// Tables produced:
//   * R4 resource types: StructureDefinitions with kind == "resource", derivation ==
//     "specialization" and not abstract; cross-checked against CodeSystem/resource-types.
//   * Patient compartment paths: CompartmentDefinition/patient's resource[].param[] codes resolved
//     to SearchParameters (base includes the type, code == param) whose FHIRPath expressions are
//     reduced to plain dotted element paths and validated against the StructureDefinitions.
//
// Warnings go to stderr; fatal inconsistencies exit with status 1 and write nothing.

import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import {fileURLToPath, pathToFileURL} from 'node:url';
import {LINE_LIMIT, byteCompare, capitalise, commentLines, cppString, fail, packLines,
        resolvePackageDir} from './r4_common.mjs';

const PACKAGE_NAME = 'hl7.fhir.r4.examples';
const PACKAGE_VERSION = '4.0.1';
const COMPARTMENT_URL = 'http://hl7.org/fhir/CompartmentDefinition/patient';
// How expressions that are not plain paths are handled (also written into the generated file).
const POLICY =
    'an irreducible branch is skipped with a warning; a branch filtered to a non-Patient type ' +
    '(where(resolve() is X)) is dropped; any other where() filter is removed and the path ' +
    'kept; a choice element named without a cast maps to its Reference variant; a path that is ' +
    'not a Reference element of the StructureDefinitions is skipped.';

const warnings = [];
function warn(msg) {
  warnings.push(msg);
  process.stderr.write(`warning: ${msg}\n`);
}

// ---------------------------------------------------------------------------------------------
// Package loading.

function loadPackage(dir) {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  if (manifest.name !== PACKAGE_NAME || manifest.version !== PACKAGE_VERSION) {
    fail(`expected ${PACKAGE_NAME}@${PACKAGE_VERSION}, found ${manifest.name}@${manifest.version}`);
  }
  const structureDefinitions = [];
  const searchParameters = [];
  const compartmentDefinitions = [];
  const codeSystems = [];
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort(byteCompare);
  for (const file of files) {
    if (!/^(StructureDefinition|SearchParameter|CompartmentDefinition|CodeSystem)-/.test(file)) {
      continue;
    }
    const res = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    switch (res.resourceType) {
      case 'StructureDefinition':
        structureDefinitions.push(res);
        break;
      case 'SearchParameter':
        searchParameters.push(res);
        break;
      case 'CompartmentDefinition':
        compartmentDefinitions.push(res);
        break;
      case 'CodeSystem':
        codeSystems.push(res);
        break;
    }
  }
  return {structureDefinitions, searchParameters, compartmentDefinitions, codeSystems};
}

// ---------------------------------------------------------------------------------------------
// Resource types and element model.

function resourceTypeDefinitions(pkg) {
  return pkg.structureDefinitions.filter(
      (sd) => sd.kind === 'resource' && sd.derivation === 'specialization' && !sd.abstract);
}

function collectResourceTypes(pkg) {
  const types = resourceTypeDefinitions(pkg).map((sd) => sd.type);
  const unique = [...new Set(types)].sort(byteCompare);
  if (unique.length !== types.length) fail('duplicate resource StructureDefinitions');
  // Cross-check with the ResourceType code system (which also lists the abstract bases).
  const cs = pkg.codeSystems.find((c) => c.url === 'http://hl7.org/fhir/resource-types');
  if (!cs) {
    warn('CodeSystem/resource-types not found; resource type list not cross-checked');
  } else {
    const abstractTypes = new Set(
        pkg.structureDefinitions.filter((sd) => sd.kind === 'resource' && sd.abstract)
            .map((sd) => sd.type));
    const codes = cs.concept.map((c) => c.code).filter((c) => !abstractTypes.has(c));
    if (JSON.stringify(codes.sort(byteCompare)) !== JSON.stringify(unique)) {
      fail('resource StructureDefinitions disagree with CodeSystem/resource-types');
    }
  }
  return unique;
}

// Map "Type.a.b" -> {types: [codes], contentReference} from the snapshots of the resources and
// complex data types.
function buildElementIndex(pkg) {
  const index = new Map();
  for (const sd of pkg.structureDefinitions) {
    if (sd.derivation === 'constraint') continue;  // Profiles; Resource itself has no derivation.
    if (sd.kind !== 'resource' && sd.kind !== 'complex-type') continue;
    for (const el of sd.snapshot?.element ?? []) {
      index.set(el.path, {
        types: (el.type ?? []).map((t) => t.code),
        contentReference: el.contentReference ? el.contentReference.replace(/^#/, '') : null,
      });
    }
  }
  return index;
}

// Resolves a JSON-level path ("Group.characteristic.valueReference") against the element index,
// following contentReferences and descending into data types. Returns the leaf's type codes (for a
// concrete choice name, just that type), or null when the path does not exist.
function resolveJsonPath(index, fullPath) {
  const segments = fullPath.split('.');
  let current = segments[0];  // Definition path whose children the next segment names.
  let types = null;
  for (let i = 1; i < segments.length; ++i) {
    const seg = segments[i];
    if (!index.has(`${current}.${seg}`) && types?.length === 1 && index.has(`${types[0]}.${seg}`)) {
      current = types[0];  // Into a data type, e.g. Reference.reference.
    }
    const direct = index.get(`${current}.${seg}`);
    if (direct) {
      current = direct.contentReference ?? `${current}.${seg}`;
      types = direct.contentReference ? (index.get(current)?.types ?? []) : direct.types;
      continue;
    }
    // Concrete choice name: prefix + capitalised type code, e.g. valueReference for value[x].
    const match = choiceMatch(index, current, seg);
    if (!match) return null;
    current = match.code;
    types = [match.code];
  }
  return types;
}

function choiceMatch(index, parent, seg) {
  for (let cut = seg.length - 1; cut > 0; --cut) {
    const choice = index.get(`${parent}.${seg.slice(0, cut)}[x]`);
    if (!choice) continue;
    const code = choice.types.find((t) => capitalise(t) === seg.slice(cut));
    return code ? {code} : null;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// FHIRPath reduction.

// Splits on `|` outside parentheses and string literals.
function splitUnion(expr) {
  const parts = [];
  let depth = 0;
  let quote = null;
  let start = 0;
  for (let i = 0; i < expr.length; ++i) {
    const c = expr[i];
    if (quote) {
      if (c === '\\') ++i;
      else if (c === quote) quote = null;
    } else if (c === '\'' || c === '"' || c === '`') {
      quote = c;
    } else if (c === '(') {
      ++depth;
    } else if (c === ')') {
      --depth;
    } else if (c === '|' && depth === 0) {
      parts.push(expr.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(expr.slice(start).trim());
  return parts.filter((p) => p.length > 0);
}

// Index of the '(' matching the ')' at `close`, or -1.
function matchingOpen(s, close) {
  let depth = 0;
  for (let i = close; i >= 0; --i) {
    if (s[i] === ')') ++depth;
    else if (s[i] === '(' && --depth === 0) return i;
  }
  return -1;
}

function stripOuterParens(s) {
  s = s.trim();
  while (s.startsWith('(') && s.endsWith(')') && matchingOpen(s, s.length - 1) === 0) {
    s = s.slice(1, -1).trim();
  }
  return s;
}

const PLAIN_PATH = /^[A-Z][A-Za-z0-9]*(\.[a-z][A-Za-z0-9]*)+$/;

// Index of the ')' matching the '(' at `open`, or -1 (string literals are skipped).
function matchingClose(s, open) {
  let depth = 0;
  let quote = null;
  for (let i = open; i < s.length; ++i) {
    const c = s[i];
    if (quote) {
      if (c === '\\') ++i;
      else if (c === quote) quote = null;
    } else if (c === '\'' || c === '"' || c === '`') {
      quote = c;
    } else if (c === '(') {
      ++depth;
    } else if (c === ')' && --depth === 0) {
      return i;
    }
  }
  return -1;
}

// Reduces one union branch to a plain "Type.a.b" JSON path.
// Returns {path, notes} on success, {drop: reason} when the branch can never reference a Patient,
// or {error: reason} when the expression is not reducible to a plain path.
function reduceBranch(branch, index) {
  let s = stripOuterParens(branch);
  const notes = [];
  // .where(...) filters, trailing or not: `resolve() is Patient` is implied by the compartment
  // check (the reference must point at the patient); `resolve() is X` for another X means the
  // branch can never match; any other condition is removed, widening the match.
  for (let at = s.indexOf('.where('); at >= 0; at = s.indexOf('.where(')) {
    const open = at + '.where'.length;
    const close = matchingClose(s, open);
    if (close < 0) return {error: `unbalanced parentheses: ${branch}`};
    const condition = s.slice(open + 1, close).trim();
    s = stripOuterParens(s.slice(0, at) + s.slice(close + 1));
    const isType = /^resolve\(\)\s+is\s+([A-Za-z]+)$/.exec(condition);
    if (isType) {
      if (isType[1] !== 'Patient') return {drop: `filter where(${condition}) excludes Patient`};
    } else {
      notes.push(`removed filter where(${condition})`);
    }
  }
  // Choice type casts: "X as T", "X.as(T)", "X.ofType(T)".
  let cast = null;
  const m = /^(.*?)\s+as\s+([A-Za-z]+)$/.exec(s) ?? /^(.*)\.(?:as|ofType)\(([A-Za-z]+)\)$/.exec(s);
  if (m) {
    s = stripOuterParens(m[1]);
    cast = m[2];
  }
  if (!PLAIN_PATH.test(s)) return {error: `not a plain path: ${branch}`};
  const dot = s.lastIndexOf('.');
  const parent = s.slice(0, dot);
  const name = s.slice(dot + 1);
  const parentDefinition = definitionPath(index, parent);
  const choice = parentDefinition && index.get(`${parentDefinition}.${name}[x]`);
  if (cast) {
    if (choice) {
      if (!choice.types.some((t) => capitalise(t) === capitalise(cast))) {
        return {drop: `choice ${s}[x] has no ${cast} type`};
      }
      s = `${parent}.${name}${capitalise(cast)}`;
    } else if (!index.get(`${parentDefinition}.${name}`)?.types.includes(cast)) {
      return {error: `cast to ${cast} on non-choice element: ${branch}`};
    }
  } else if (choice) {
    // A polymorphic element named without a cast: only its Reference variant can hold a
    // reference to a Patient.
    if (!choice.types.includes('Reference')) return {drop: `choice ${s}[x] has no Reference type`};
    s = `${parent}.${name}Reference`;
    notes.push(`mapped choice element ${name}[x] to ${name}Reference`);
  }
  return {path: s, notes};
}

// The element definition path ("Type.a.b") a JSON path's parent resolves to, following
// contentReferences; null when unknown.
function definitionPath(index, fullPath) {
  const segments = fullPath.split('.');
  let current = segments[0];
  for (let i = 1; i < segments.length; ++i) {
    const el = index.get(`${current}.${segments[i]}`);
    if (!el) return null;
    current = el.contentReference ?? `${current}.${segments[i]}`;
  }
  return current;
}

// ---------------------------------------------------------------------------------------------
// Patient compartment.

function findSearchParameter(pkg, type, code) {
  // The examples package also carries illustrative SearchParameters (ids "example*", e.g.
  // SearchParameter/example-reference for Condition.subject); they are not part of the spec.
  const matches = pkg.searchParameters.filter(
      (sp) => !sp.id.startsWith('example') && (sp.base ?? []).includes(type) && sp.code === code);
  if (matches.length > 1) {
    fail(`ambiguous SearchParameter ${type}.${code}: ${matches.map((sp) => sp.id).join(', ')}`);
  }
  return matches[0] ?? null;
}

function collectPatientCompartment(pkg, resourceTypes, index) {
  const cd = pkg.compartmentDefinitions.find((c) => c.url === COMPARTMENT_URL);
  if (!cd) fail(`${COMPARTMENT_URL} not found`);
  const known = new Set(resourceTypes);
  const table = new Map();
  const decisions = [];
  for (const entry of cd.resource) {
    if (!known.has(entry.code)) {
      warn(`CompartmentDefinition lists unknown resource type ${entry.code}`);
      continue;
    }
    if (!entry.param || entry.param.length === 0) continue;
    const paths = new Set();
    for (const param of entry.param) {
      const sp = findSearchParameter(pkg, entry.code, param);
      if (!sp) {
        warn(`${entry.code}: no SearchParameter with code "${param}"; param ignored`);
        decisions.push(`${entry.code}.${param}: no SearchParameter found; ignored.`);
        continue;
      }
      if (sp.type !== 'reference') {
        warn(`${entry.code}: SearchParameter ${sp.id} has type ${sp.type}, expected reference`);
      }
      const branches = splitUnion(sp.expression ?? '').filter((b) => {
        const bare = stripOuterParens(b);
        return bare.startsWith(`${entry.code}.`);
      });
      if (branches.length === 0) {
        warn(`${entry.code}: ${sp.id} has no ${entry.code} branch: ${sp.expression}`);
        decisions.push(`${entry.code}.${param}: expression has no ${entry.code} branch; ignored.`);
        continue;
      }
      for (const branch of branches) {
        const r = reduceBranch(branch, index);
        if (r.error) {
          // Decision: an irreducible branch is left out rather than approximated, so the table
          // never names an element that is not a Reference to check.
          warn(`${entry.code}.${param} (${sp.id}): ${r.error}; branch skipped`);
          decisions.push(`${entry.code}.${param}: skipped irreducible branch "${branch}".`);
          continue;
        }
        if (r.drop) {
          warn(`${entry.code}.${param} (${sp.id}): ${r.drop}; branch skipped`);
          decisions.push(`${entry.code}.${param}: skipped "${branch}" (${r.drop}).`);
          continue;
        }
        for (const note of r.notes) {
          // Decision: other where() filters are removed, which widens the match to any Patient
          // reference at that element (the reference must still point at the patient).
          warn(`${entry.code}.${param} (${sp.id}): ${note}`);
          decisions.push(`${entry.code}.${param}: ${note} in "${branch}" (path kept).`);
        }
        // Decision: a path must name a Reference element of the type's StructureDefinition;
        // anything else cannot hold a reference to a Patient and is skipped.
        const leafTypes = resolveJsonPath(index, r.path);
        if (!leafTypes || !leafTypes.includes('Reference')) {
          const why = leafTypes ? `is ${leafTypes.join('|')}, not Reference` : 'does not exist';
          warn(`${entry.code}.${param} (${sp.id}): ${r.path} ${why}; branch skipped`);
          decisions.push(`${entry.code}.${param}: skipped "${branch}" (${r.path} ${why}).`);
          continue;
        }
        paths.add(r.path.slice(entry.code.length + 1));
      }
    }
    if (paths.size > 0) table.set(entry.code, [...paths].sort(byteCompare));
  }
  const sorted = new Map([...table.entries()].sort((a, b) => byteCompare(a[0], b[0])));
  const patient = sorted.get('Patient');
  if (!patient || !patient.includes('link.other')) {
    fail('Patient compartment entry for Patient does not contain link.other');
  }
  return {table: sorted, decisions, compartmentVersion: cd.version};
}

// ---------------------------------------------------------------------------------------------
// Emission.

// "constexpr std::string_view kName[] = {...};" on one line if it fits, else packed lines.
function stringArray(name, values) {
  const items = values.map(cppString);
  const oneLine = `constexpr std::string_view ${name}[] = {${items.join(', ')}};`;
  if (oneLine.length <= LINE_LIMIT) return [oneLine];
  return [`constexpr std::string_view ${name}[] = {`, ...packLines(items), '};'];
}

// Everything after the data tables; fixed text (clang-format clean as written).
const FUNCTIONS = `
static_assert(std::ranges::is_sorted(kResourceTypes));
static_assert(std::ranges::adjacent_find(kResourceTypes) == std::ranges::end(kResourceTypes));
static_assert(std::ranges::is_sorted(kPatientCompartment, {}, &CompartmentEntry::type));
static_assert(std::ranges::adjacent_find(kPatientCompartment, {}, &CompartmentEntry::type) ==
              std::ranges::end(kPatientCompartment));

constexpr bool AllPathListsSortedAndUnique() {
  for (const CompartmentEntry& entry : kPatientCompartment) {
    if (!std::ranges::is_sorted(entry.paths)) return false;
    if (std::ranges::adjacent_find(entry.paths) != entry.paths.end()) return false;
  }
  return true;
}
static_assert(AllPathListsSortedAndUnique());

}  // namespace

std::span<const std::string_view> R4ResourceTypes() { return kResourceTypes; }

bool IsR4ResourceType(std::string_view name) {
  return std::ranges::binary_search(kResourceTypes, name);
}

std::span<const std::string_view> PatientCompartmentPaths(std::string_view resource_type) {
  const auto* it =
      std::ranges::lower_bound(kPatientCompartment, resource_type, {}, &CompartmentEntry::type);
  if (it == std::ranges::end(kPatientCompartment) || it->type != resource_type) return {};
  return it->paths;
}

}  // namespace kura::fhir`;

function emit(resourceTypes, compartment) {
  const out = [];
  out.push(`// Generated by tools/r4/gen_r4_tables.mjs from ${PACKAGE_NAME} ${PACKAGE_VERSION}; ` +
           'do not edit.');
  out.push('//');
  out.push(...commentLines(
      'Sources: StructureDefinitions (kind "resource", derivation "specialization", not ' +
      'abstract) for the resource types; CompartmentDefinition/patient and the SearchParameters ' +
      'it names for the compartment paths (FHIRPath reduced to JSON element paths: the union ' +
      'branches for the type, ".where(resolve() is Patient)" stripped, "(x as T)" mapped to the ' +
      'concrete choice name "xT"). The illustrative "example*" SearchParameters are ignored.'));
  out.push('//');
  if (compartment.decisions.length === 0) {
    out.push(...commentLines(
        'Every compartment search parameter reduced to plain paths; no branch was skipped or ' +
        'widened. Policy should one ever not: ' + POLICY));
  } else {
    out.push(...commentLines(
        `Generator decisions (policy: ${POLICY.replace(/\.$/, '')}):`));
    for (const d of compartment.decisions) out.push(...commentLines(d, '//   -', '//    '));
  }
  out.push('#include "kura/fhir/r4_tables.h"');
  out.push('');
  out.push('#include <algorithm>');
  out.push('#include <span>');
  out.push('#include <string_view>');
  out.push('');
  out.push('namespace kura::fhir {');
  out.push('namespace {');
  out.push('');
  out.push('// clang-format off');
  out.push(`// ${resourceTypes.length} resource types, byte order.`);
  out.push('constexpr std::string_view kResourceTypes[] = {');
  out.push(...packLines(resourceTypes.map(cppString)));
  out.push('};');
  out.push('');
  out.push(`// Patient compartment: ${compartment.table.size} resource types with paths, from`);
  out.push(`// ${COMPARTMENT_URL} (version ${compartment.compartmentVersion}).`);
  const names = new Map();
  for (const [type, paths] of compartment.table) {
    const name = `kPatient${type}`;
    names.set(type, name);
    out.push(...stringArray(name, paths));
  }
  out.push('');
  out.push('struct CompartmentEntry {');
  out.push('  std::string_view type;');
  out.push('  std::span<const std::string_view> paths;');
  out.push('};');
  out.push('');
  out.push('constexpr CompartmentEntry kPatientCompartment[] = {');
  for (const [type, name] of names) out.push(`    {${cppString(type)}, ${name}},`);
  out.push('};');
  out.push('// clang-format on');
  out.push(...FUNCTIONS.split('\n'));
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------

function main(argv) {
  if (argv.length < 1 || argv.length > 2 || argv[0] === '-h' || argv[0] === '--help') {
    process.stderr.write('usage: node tools/r4/gen_r4_tables.mjs <package-dir> [output.cc]\n');
    process.exit(2);
  }
  const scriptDir = path.dirname(fileURLToPath(import.meta.url));
  const output = argv[1] ?? path.resolve(scriptDir, '../../src/kura/fhir/r4_tables.cc');
  const pkg = loadPackage(resolvePackageDir(argv[0]));
  const resourceTypes = collectResourceTypes(pkg);
  const index = buildElementIndex(pkg);
  const compartment = collectPatientCompartment(pkg, resourceTypes, index);
  fs.writeFileSync(output, emit(resourceTypes, compartment));
  process.stderr.write(
      `wrote ${output}: ${resourceTypes.length} resource types, ` +
      `${compartment.table.size} patient compartment types, ${warnings.length} warning(s)\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2));
}

export {reduceBranch, splitUnion, buildElementIndex, loadPackage, resolveJsonPath};
