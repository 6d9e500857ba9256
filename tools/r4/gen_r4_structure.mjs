#!/usr/bin/env node
// Generates src/kura/fhir/r4_structure.cc, the element tables R4Validator checks resources
// against, from the official FHIR R4 StructureDefinitions shipped in the npm package
// hl7.fhir.r4.examples@4.0.1 (see tools/r4/README.md).
//
// Usage: node tools/r4/gen_r4_structure.mjs <package-dir> [output.cc]
//
// <package-dir> is the unpacked package (the directory holding package.json, or its parent).
// The output defaults to src/kura/fhir/r4_structure.cc in this repository. Node's standard
// library only.
//
// What is produced: one type per primitive type, complex data type (abstract Element and
// BackboneElement included), non-abstract resource, backbone element (an element with children
// of its own, named by its path, e.g. "Observation.component") and the one core data type
// profile used by element types (SimpleQuantity); plus "Resource", standing for any resource.
// Types are sorted by name; each lists its JSON element names (choice elements expanded to one
// name per type, e.g. valueQuantity, valueString) sorted by name, and its required elements.
//
// Fatal inconsistencies (wrong package, an unknown primitive type, an element type that is not
// defined, an unknown profile) exit with status 1 and write nothing.

import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import {fileURLToPath, pathToFileURL} from 'node:url';
import {LINE_LIMIT, byteCompare, capitalise, commentLines, cppString, fail, packLines,
        resolvePackageDir} from './r4_common.mjs';

const PACKAGE_NAME = 'hl7.fhir.r4.examples';
const PACKAGE_VERSION = '4.0.1';
const FHIR_TYPE_EXT = 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type';
const SD_PREFIX = 'http://hl7.org/fhir/StructureDefinition/';
const UNBOUNDED = 0xffff;
// Must match kR4MaxBaseElements in src/kura/fhir/r4_structure.h (static_assert in the output).
const HEADER_MAX_BASE = 128;

// The primitive types and their R4Primitive enumerators (src/kura/fhir/r4_structure.h).
const PRIMITIVES = new Map([
  ['base64Binary', 'kBase64Binary'], ['boolean', 'kBoolean'], ['canonical', 'kCanonical'],
  ['code', 'kCode'], ['date', 'kDate'], ['dateTime', 'kDateTime'], ['decimal', 'kDecimal'],
  ['id', 'kId'], ['instant', 'kInstant'], ['integer', 'kInteger'], ['markdown', 'kMarkdown'],
  ['oid', 'kOid'], ['positiveInt', 'kPositiveInt'], ['string', 'kString'], ['time', 'kTime'],
  ['unsignedInt', 'kUnsignedInt'], ['uri', 'kUri'], ['url', 'kUrl'], ['uuid', 'kUuid'],
  ['xhtml', 'kXhtml'],
]);

const decisions = [];

// ---------------------------------------------------------------------------------------------
// Package loading.

function loadStructureDefinitions(dir) {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  if (manifest.name !== PACKAGE_NAME || manifest.version !== PACKAGE_VERSION) {
    fail(`expected ${PACKAGE_NAME}@${PACKAGE_VERSION}, found ${manifest.name}@${manifest.version}`);
  }
  const files = fs.readdirSync(dir)
                    .filter((f) => f.startsWith('StructureDefinition-') && f.endsWith('.json'))
                    .sort(byteCompare);
  return files.map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')))
      .filter((sd) => sd.resourceType === 'StructureDefinition');
}

// ---------------------------------------------------------------------------------------------
// The type model.

class Model {
  constructor(sds) {
    this.byUrl = new Map(sds.map((sd) => [sd.url, sd]));
    this.types = new Map();  // name -> {name, kind, primitive, elements, required}
    // Element, the root of the data types, has no derivation.
    const base = sds.filter((sd) => sd.derivation === 'specialization' ||
                                    (sd.kind === 'complex-type' && !sd.baseDefinition));
    this.primitiveSds = base.filter((sd) => sd.kind === 'primitive-type');
    this.complexSds = base.filter((sd) => sd.kind === 'complex-type');
    this.resourceSds = base.filter((sd) => sd.kind === 'resource' && !sd.abstract);
    this.complexNames = new Set(this.complexSds.map((sd) => sd.type));
    this.resourceNames = new Set(this.resourceSds.map((sd) => sd.type));
  }

  build() {
    for (const sd of this.primitiveSds) {
      const primitive = PRIMITIVES.get(sd.type);
      if (!primitive) fail(`unknown primitive type ${sd.type}: extend R4Primitive`);
      this.add({name: sd.type, kind: 'kPrimitive', primitive, elements: [], required: []});
    }
    for (const name of PRIMITIVES.keys()) {
      if (!this.types.has(name)) fail(`primitive type ${name} not defined in the package`);
    }
    this.add({name: 'Resource', kind: 'kAnyResource', primitive: 'kNone', elements: [],
              required: []});
    decisions.push('"Resource" (the type of contained, Bundle.entry.resource and ' +
                   'Parameters.parameter.resource) stands for any resource, validated as its own ' +
                   'resourceType.');
    for (const sd of this.complexSds) this.buildFromSnapshot(sd, sd.type, 'kComplex');
    for (const sd of this.resourceSds) this.buildFromSnapshot(sd, sd.type, 'kResource');
  }

  add(type) {
    if (this.types.has(type.name)) fail(`duplicate type ${type.name}`);
    this.types.set(type.name, type);
  }

  // Builds the type `name` from a StructureDefinition's snapshot (and its backbone elements).
  buildFromSnapshot(sd, name, kind) {
    const elements = sd.snapshot?.element;
    if (!elements?.length) fail(`${sd.url} has no snapshot`);
    const root = elements[0].path;
    const byPath = new Map(elements.map((el) => [el.path, el]));
    const isResource = kind === 'kResource';
    const visit = (defPath, typeName, typeKind) => {
      const children = elements.filter((el) => {
        if (!el.path.startsWith(`${defPath}.`)) return false;
        return !el.path.slice(defPath.length + 1).includes('.');
      });
      const type = {name: typeName, kind: typeKind, primitive: 'kNone', elements: [], required: []};
      this.add(type);
      let ordinal = 0;
      for (const el of children) {
        if (el.max === '0') continue;  // Removed by a profile.
        const base = ordinal++;
        const jsonBase = el.path.slice(defPath.length + 1);
        const min = el.min ?? 0;
        const max = el.max === '*' ? UNBOUNDED : Number.parseInt(el.max, 10);
        if (!Number.isInteger(max) || max < 1) fail(`${el.path}: unexpected max ${el.max}`);
        let targets;  // [{json, type}]
        if (el.contentReference) {
          const ref = el.contentReference.replace(/^#/, '');
          if (!byPath.has(ref)) fail(`${el.path}: contentReference ${ref} not found`);
          // The referenced backbone element is built under its own path name.
          targets = [{json: jsonBase, type: this.backboneName(sd, ref, root, name)}];
        } else if (elements.some((c) => c.path.startsWith(`${el.path}.`))) {
          const childName = `${typeName}.${jsonBase}`;
          visit(el.path, childName, 'kBackbone');
          targets = [{json: jsonBase, type: childName}];
        } else {
          targets = this.elementTypes(el, jsonBase, isResource && defPath === root);
        }
        const choice = jsonBase.endsWith('[x]');
        for (const t of targets) {
          type.elements.push({name: t.json, type: t.type, base, min, max, choice});
        }
        if (min > 0) type.required.push({name: jsonBase, base, min});
      }
      type.elements.sort((a, b) => byteCompare(a.name, b.name));
      for (let i = 1; i < type.elements.length; ++i) {
        if (type.elements[i - 1].name === type.elements[i].name) {
          fail(`${typeName}: duplicate JSON name ${type.elements[i].name}`);
        }
      }
    };
    visit(root, name, kind);
  }

  // The type name of the backbone element at definition path `ref` (in `sd`, whose root is
  // `root` and whose type is named `name`).
  backboneName(sd, ref, root, name) {
    return name + ref.slice(root.length);
  }

  // The JSON names and types of a leaf element (choice elements expanded).
  elementTypes(el, jsonBase, isResourceRoot) {
    const types = el.type ?? [];
    if (types.length === 0) fail(`${el.path} has no type`);
    const choice = jsonBase.endsWith('[x]');
    if (!choice && types.length !== 1) fail(`${el.path}: several types without [x]`);
    return types.map((t) => {
      let code = t.code;
      if (code.startsWith('http://hl7.org/fhirpath/System.')) {
        const fhirType = (t.extension ?? []).find((e) => e.url === FHIR_TYPE_EXT)?.valueUrl;
        if (!fhirType) fail(`${el.path}: ${code} without a FHIR type`);
        code = fhirType;
        if (isResourceRoot && jsonBase === 'id') {
          code = 'id';  // Resource.id: the id type (the snapshot says string; the spec says id).
        }
      }
      if ((t.profile ?? []).length > 0) {
        if (t.profile.length !== 1) fail(`${el.path}: several profiles`);
        code = this.profileType(t.profile[0], code, el.path);
      }
      if (code === 'Resource' || PRIMITIVES.has(code) || this.complexNames.has(code) ||
          this.resourceNames.has(code) || this.profileTypes?.has(code)) {
        // A choice's JSON name uses the type code (valueQuantity, also for SimpleQuantity).
        const json = choice ? jsonBase.slice(0, -3) + capitalise(t.code) : jsonBase;
        return {json, type: code};
      }
      fail(`${el.path}: unknown type ${code}`);
    });
  }

  // A core data type profile used as an element type, built from its snapshot once.
  profileType(url, baseCode, where) {
    const sd = this.byUrl.get(url);
    if (!sd || sd.kind !== 'complex-type' || sd.derivation !== 'constraint' || sd.type !== baseCode) {
      fail(`${where}: unsupported profile ${url}`);
    }
    this.profileTypes ??= new Set();
    const name = url.slice(SD_PREFIX.length);
    if (!this.profileTypes.has(name)) {
      this.profileTypes.add(name);
      this.buildFromSnapshot(sd, name, 'kComplex');
      decisions.push(`Elements typed ${baseCode} with profile ${name} use the profile's ` +
                     'snapshot (elements with max 0 removed).');
    }
    return name;
  }
}

// ---------------------------------------------------------------------------------------------
// Emission.

const FUNCTIONS = `
constexpr bool TablesConsistent() {
  for (const R4Type& type : kTypes) {
    for (size_t i = 0; i < type.elements.size(); ++i) {
      const R4Element& e = type.elements[i];
      if (i > 0 && !(type.elements[i - 1].name < e.name)) return false;
      if (e.type >= std::size(kTypes) || e.base >= type.base_count || e.max == 0) return false;
    }
    for (const R4Required& r : type.required) {
      if (r.base >= type.base_count || r.min == 0) return false;
    }
  }
  return true;
}
static_assert(std::ranges::is_sorted(kTypes, {}, &R4Type::name));
static_assert(std::ranges::adjacent_find(kTypes, {}, &R4Type::name) == std::ranges::end(kTypes));
static_assert(TablesConsistent());

}  // namespace

std::span<const R4Type> R4Types() { return kTypes; }

const R4Type* FindR4Type(std::string_view name) {
  const auto* it = std::ranges::lower_bound(kTypes, name, {}, &R4Type::name);
  if (it == std::ranges::end(kTypes) || it->name != name) return nullptr;
  return it;
}

const R4Element* FindR4Element(const R4Type& type, std::string_view json_name) {
  const auto it = std::ranges::lower_bound(type.elements, json_name, {}, &R4Element::name);
  if (it == type.elements.end() || it->name != json_name) return nullptr;
  return &*it;
}

}  // namespace kura::fhir`;

function emit(model) {
  const names = [...model.types.keys()].sort(byteCompare);
  const index = new Map(names.map((n, i) => [n, i]));
  if (names.length >= UNBOUNDED) fail('too many types');
  for (const type of model.types.values()) {
    for (const e of type.elements) {
      if (!index.has(e.type)) fail(`${type.name}.${e.name}: type ${e.type} was not built`);
    }
  }
  let maxBase = 0;
  let elementCount = 0;
  const out = [];
  out.push(`// Generated by tools/r4/gen_r4_structure.mjs from ${PACKAGE_NAME} ${PACKAGE_VERSION}; ` +
           'do not edit.');
  out.push('//');
  out.push(...commentLines(
      'Sources: the StructureDefinitions with derivation "specialization" (primitive types, ' +
      'complex data types, non-abstract resources), their snapshots giving each type\'s ' +
      'elements (inherited ones included), cardinalities and types; backbone elements become ' +
      'types named by their path, contentReferences point at them; choice elements ("[x]") are ' +
      'expanded to one JSON name per type.'));
  out.push('//');
  out.push('// Generator decisions:');
  for (const d of decisions) out.push(...commentLines(d, '//   -', '//    '));
  out.push('#include "kura/fhir/r4_structure.h"');
  out.push('');
  out.push('#include <algorithm>');
  out.push('#include <iterator>');
  out.push('#include <span>');
  out.push('#include <string_view>');
  out.push('');
  out.push('namespace kura::fhir {');
  out.push('namespace {');
  out.push('');
  out.push('constexpr uint16_t kU = kR4Unbounded;');
  out.push('using enum R4TypeKind;');
  out.push('using enum R4Primitive;');
  out.push('');
  out.push('// clang-format off');
  out.push('// Elements: {JSON name, type index, base ordinal, min, max, choice}. Type indexes:');
  out.push(...commentLines(names.map((n, i) => `${i} ${n}`).join(', '), '//'));
  const typeLines = [];
  for (const name of names) {
    const type = model.types.get(name);
    const ident = name.replace(/\./g, '_');
    const bases = new Set(type.elements.map((e) => e.base));
    maxBase = Math.max(maxBase, bases.size);
    elementCount += type.elements.length;
    let elementsRef = '{}';
    let requiredRef = '{}';
    if (type.elements.length > 0) {
      elementsRef = `kE_${ident}`;
      out.push(`constexpr R4Element kE_${ident}[] = {`);
      for (const e of type.elements) {
        const max = e.max === UNBOUNDED ? 'kU' : String(e.max);
        out.push(`    {${cppString(e.name)}, ${index.get(e.type)}, ${e.base}, ${e.min}, ${max}, ` +
                 `${e.choice}},`);
      }
      out.push('};');
    }
    if (type.required.length > 0) {
      requiredRef = `kR_${ident}`;
      const items = type.required.map((r) => `{${cppString(r.name)}, ${r.base}, ${r.min}}`);
      const one = `constexpr R4Required kR_${ident}[] = {${items.join(', ')}};`;
      if (one.length <= LINE_LIMIT) {
        out.push(one);
      } else {
        out.push(`constexpr R4Required kR_${ident}[] = {`, ...packLines(items), '};');
      }
    }
    typeLines.push(`    {${cppString(name)}, ${type.kind}, ${type.primitive}, ${bases.size}, ` +
                   `${elementsRef}, ${requiredRef}},`);
  }
  if (maxBase > HEADER_MAX_BASE) fail(`a type has ${maxBase} elements; raise kR4MaxBaseElements`);
  out.push('');
  out.push(`// ${names.length} types, byte order of name: {name, kind, primitive, base_count, ` +
           'elements, required}.');
  out.push('constexpr R4Type kTypes[] = {');
  out.push(...typeLines);
  out.push('};');
  out.push('// clang-format on');
  out.push('');
  out.push(`static_assert(std::size(kTypes) == ${names.length});`);
  out.push(`// The largest type has ${maxBase} base elements.`);
  out.push(`static_assert(kR4MaxBaseElements >= ${maxBase});`);
  out.push(...FUNCTIONS.split('\n'));
  return {text: `${out.join('\n')}\n`, typeCount: names.length, elementCount, maxBase};
}

// ---------------------------------------------------------------------------------------------

function main(argv) {
  if (argv.length < 1 || argv.length > 2 || argv[0] === '-h' || argv[0] === '--help') {
    process.stderr.write('usage: node tools/r4/gen_r4_structure.mjs <package-dir> [output.cc]\n');
    process.exit(2);
  }
  const scriptDir = path.dirname(fileURLToPath(import.meta.url));
  const output = argv[1] ?? path.resolve(scriptDir, '../../src/kura/fhir/r4_structure.cc');
  const model = new Model(loadStructureDefinitions(resolvePackageDir(argv[0])));
  decisions.push('Resource.id is typed id (the snapshots give the FHIRPath System.String with ' +
                 'FHIR type string; the spec and its JSON schema say id); other System.String ' +
                 'elements take their structuredefinition-fhir-type (Element.id: string, ' +
                 'Extension.url: uri).');
  model.build();
  const {text, typeCount, elementCount, maxBase} = emit(model);
  fs.writeFileSync(output, text);
  process.stderr.write(`wrote ${output}: ${typeCount} types, ${elementCount} elements, ` +
                       `largest type ${maxBase} base elements\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2));
}
