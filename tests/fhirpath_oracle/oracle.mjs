#!/usr/bin/env node
// The reference side of the FHIRPath oracle test: evaluates Kura's search parameter expressions
// with fhirpath.js (the HL7-listed JavaScript FHIRPath engine, R4 model) on resources and prints
// what each yields, as JSON lines the comparer (compare.py) matches against
// kura_search_extract_tool --files.
//
// usage: node oracle.mjs <npm-cache-dir> <params.jsonl> <files.list>
//
//   <npm-cache-dir>  the directory whose node_modules holds fhirpath (package.json here, installed
//                    with npm ci)
//   <params.jsonl>   kura_search_extract_tool --params
//   <files.list>     one resource file path a line
//
// Output, one line per (file, parameter with an expression):
//   {"file","type","code","nodes":[data...],"node_types":[...],"tokens":[...],"strings":[...],
//    "foci":[[[component node data...] per component] per focus]}        (composites only)
//   or {"file","type","code","error":message} when fhirpath.js rejects the expression.
//
// Two rewrites, because fhirpath.js cannot do these offline or at all (a third, `as` on several
// items, is described at evaluate() below):
//   * `resolve() is X` -> `kuraRefType() = 'X'`: resolve() needs a server; kuraRefType() (a user
//     function below) yields the type part of a reference ("Patient/1", ".../Patient/1/_history/2"
//     -> Patient; "#id" -> the contained resource's type), which is what Kura's resolve() placeholder
//     carries. The comparison therefore checks Kura's filtering, not its reference parsing twice.
//   * `hasExtension(u)` -> `extension(u).exists()`: fhirpath.js has no hasExtension() (used by the
//     R4 QuestionnaireResponse item-subject parameter).
import fs from 'node:fs';
import {createRequire} from 'node:module';
import path from 'node:path';
import process from 'node:process';

const [cacheDir, paramsFile, filesList] = process.argv.slice(2);
if (!cacheDir || !paramsFile || !filesList) {
  process.stderr.write('usage: node oracle.mjs <npm-cache-dir> <params.jsonl> <files.list>\n');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(cacheDir), 'package.json'));
const fhirpath = require('fhirpath');
const r4 = require('fhirpath/fhir-context/r4');

// R4 resource type names, from the StructureDefinitions of the examples package.
const examplesDir = path.dirname(require.resolve('hl7.fhir.r4.examples/package.json'));
const resourceTypes = new Set();
for (const f of fs.readdirSync(examplesDir)) {
  if (!f.startsWith('StructureDefinition-')) continue;
  const sd = JSON.parse(fs.readFileSync(path.join(examplesDir, f), 'utf8'));
  if (sd.kind === 'resource' && !sd.abstract && sd.derivation === 'specialization') {
    resourceTypes.add(sd.type);
  }
}

const params = new Map();  // type -> [param]
for (const line of fs.readFileSync(paramsFile, 'utf8').split('\n')) {
  if (!line) continue;
  const p = JSON.parse(line);
  if (!params.has(p.type)) params.set(p.type, []);
  params.get(p.type).push(p);
}

function rewrite(expr) {
  return expr.replace(/resolve\(\)\s+is\s+([A-Za-z]+)/g, 'kuraRefType() = \'$1\'')
      .replace(/hasExtension\(('[^']*')\)/g, 'extension($1).exists()');
}

let current = null;  // The resource being evaluated (for contained references).

function refType(ref) {
  if (typeof ref !== 'string' || ref.length === 0) return undefined;
  if (ref.startsWith('#')) {
    const c = (current.contained ?? []).find((r) => r && r.id === ref.slice(1));
    return c && resourceTypes.has(c.resourceType) ? c.resourceType : undefined;
  }
  let segs = ref.split('/');
  if (segs.length >= 4 && segs[segs.length - 2] === '_history') segs = segs.slice(0, -2);
  if (segs.length < 2) return undefined;
  const [type, id] = segs.slice(-2);
  return id && resourceTypes.has(type) ? type : undefined;
}

const options = {
  resolveInternalTypes: false,
  userInvocationTable: {
    kuraRefType: {
      fn: (inputs) => inputs.map((i) => {
        const d = i?.data !== undefined ? i.data : i;
        return refType(typeof d === 'string' ? d : d?.reference);
      }).filter((t) => t !== undefined),
      arity: {0: []},
    },
  },
};

// Items of a result as [data, type]; primitives carrying only extensions (data null) dropped.
function items(result) {
  const out = [];
  for (const n of result) {
    if (n !== null && typeof n === 'object' && 'fhirNodeDataType' in n) {
      if (n.data === null || n.data === undefined) continue;
      out.push([n.data, n.fhirNodeDataType, n]);
    } else {
      out.push([n, typeof n === 'boolean' ? 'boolean' : typeof n, null]);
    }
  }
  return out;
}

const PRIMITIVE_TOKENS = new Set(['code', 'string', 'id', 'uri', 'url', 'canonical', 'markdown',
  'oid', 'uuid', 'System.String', 'boolean']);
const STRING_TYPES = new Set(['string', 'markdown', 'System.String']);

// An Extension's value[x] as [data, type], from the JSON member name.
function extensionValue(ext) {
  for (const [k, v] of Object.entries(ext)) {
    if (!k.startsWith('value') || k.length === 5) continue;
    const suffix = k.slice(5);
    const lower = suffix.charAt(0).toLowerCase() + suffix.slice(1);
    // Primitive FHIR types are lower-case (valueDateTime -> dateTime), complex ones not.
    const primitive = ['base64Binary', 'boolean', 'canonical', 'code', 'date', 'dateTime',
      'decimal', 'id', 'instant', 'integer', 'markdown', 'oid', 'positiveInt', 'string', 'time',
      'unsignedInt', 'uri', 'url', 'uuid'];
    return [v, primitive.includes(lower) ? lower : suffix];
  }
  return null;
}

function tokensOf(data, type) {
  if (type === 'Extension') {
    const v = extensionValue(data);
    return v ? tokensOf(v[0], v[1]) : [];
  }
  const coding = (c) => (c && typeof c.code === 'string' && c.code !== '' ?
    [`${typeof c.system === 'string' ? c.system : ''}|${c.code}`] : []);
  switch (type) {
    case 'CodeableConcept':
      return (Array.isArray(data.coding) ? data.coding : []).flatMap(coding);
    case 'Coding':
      return coding(data);
    case 'Identifier':
      return typeof data.value === 'string' && data.value !== '' ?
        [`${typeof data.system === 'string' ? data.system : ''}|${data.value}`] : [];
    case 'ContactPoint':
      return typeof data.value === 'string' && data.value !== '' ? [`|${data.value}`] : [];
    default:
      if (PRIMITIVE_TOKENS.has(type) && (typeof data === 'string' || typeof data === 'boolean')) {
        return [`|${data}`];
      }
      return [];
  }
}

function stringsOf(data, type) {
  if (type === 'Extension') {
    const v = extensionValue(data);
    return v ? stringsOf(v[0], v[1]) : [];
  }
  const parts = (keys) => keys.flatMap((k) => {
    const v = data[k];
    return (Array.isArray(v) ? v : [v]).filter((s) => typeof s === 'string' && s !== '');
  });
  if (type === 'HumanName') return parts(['family', 'given', 'prefix', 'suffix', 'text']);
  if (type === 'Address') {
    return parts(['line', 'city', 'district', 'state', 'postalCode', 'country', 'text']);
  }
  return STRING_TYPES.has(type) && typeof data === 'string' && data !== '' ? [data] : [];
}

// `X as T` on a collection of several items is an error in FHIRPath N1 (fhirpath.js raises it);
// the R4 search expressions rely on it filtering like ofType() (R5 rewrote them with ofType()),
// which is what Kura does. On that error the expression is evaluated again with
// `(X as T)` -> `X.ofType(T)`, and the line says so ("as_filtered": true).
const AS_SINGLETON = /Expected singleton on left side of 'as'/;

function asToOfType(expr) {
  return expr.replace(/\(([^()]+?)\s+as\s+([A-Za-z]+)\)/g, '$1.ofType($2)');
}

function evaluate(resource, expr, line) {
  try {
    return items(fhirpath.evaluate(resource, rewrite(expr), null, r4, options));
  } catch (e) {
    if (!AS_SINGLETON.test(String(e.message ?? e)) || asToOfType(expr) === expr) throw e;
    line.as_filtered = true;
    return items(fhirpath.evaluate(resource, rewrite(asToOfType(expr)), null, r4, options));
  }
}

const out = [];
for (const file of fs.readFileSync(filesList, 'utf8').split('\n').filter(Boolean)) {
  const resource = JSON.parse(fs.readFileSync(file, 'utf8'));
  current = resource;
  for (const p of params.get(resource.resourceType) ?? []) {
    const line = {file, type: p.type, code: p.code};
    try {
      const nodes = evaluate(resource, p.expression, line);
      line.nodes = nodes.map(([d]) => d);
      line.node_types = nodes.map(([, t]) => t);
      if (p.kind === 'token') line.tokens = nodes.flatMap(([d, t]) => tokensOf(d, t));
      if (p.kind === 'string') line.strings = nodes.flatMap(([d, t]) => stringsOf(d, t));
      if (p.kind === 'composite') {
        line.foci = nodes.map(([d, , n]) => p.components.map((c) => {
          const base = n ? n.path : p.type;
          const r = fhirpath.evaluate(d, {base, expression: rewrite(c.expression)}, null, r4,
                                      options);
          return items(r).map(([cd]) => cd);
        }));
      }
    } catch (e) {
      delete line.nodes;
      line.error = String(e.message ?? e).split('\n')[0];
    }
    out.push(JSON.stringify(line));
  }
}
process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
