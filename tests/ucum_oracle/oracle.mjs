// Kura's UCUM conversion (src/kura/fhir/ucum.cc, through kura_ucum_tool) against ucum-lhc, the
// reference implementation of the U.S. National Library of Medicine, on:
//   - every atom of the UCUM specification alone, and every metric atom with every prefix;
//   - every unit combination ucum-lhc ships precomputed (the units LOINC uses);
//   - every UCUM code of a quantity in the official FHIR R4 examples (hl7.fhir.r4.examples);
//   - hand-written expressions that reach the grammar's corners, and codes that are not UCUM.
//
// For a code Kura converts, ucum-lhc must accept it, agree on its dimension and mole exponent,
// and convert 1 and 37.5 of it into Kura's base unit (which is itself a UCUM code) to Kura's
// base values within 1e-9. A code Kura refuses must be one ucum-lhc refuses too, or an
// arbitrary or special unit (refused by design: see src/kura/fhir/ucum.h). Anything else is a
// disagreement, and the test fails.
//
// usage: node oracle.mjs KURA_UCUM_TOOL NODE_MODULES_DIR
import {spawnSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import {createRequire} from 'node:module';

const [tool, modules] = process.argv.slice(2);
if (!tool || !modules) {
  console.error('usage: node oracle.mjs KURA_UCUM_TOOL NODE_MODULES_DIR');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(modules), 'x.js'));
const ucum = require('@lhncbc/ucum-lhc');
const utils = ucum.UcumLhcUtils.getInstance();
const UCUM_SYSTEM = 'http://unitsofmeasure.org';

// Codes by where they came from (one code may come from several places).
const sources = new Map();
function add(code, source) {
  if (typeof code !== 'string' || code.length === 0 || code.includes('\n')) return;
  if (!sources.has(code)) sources.set(code, new Set());
  sources.get(code).add(source);
}

// The specification's atoms and prefixes, and the precomputed combinations.
const defs = JSON.parse(fs.readFileSync(
    path.join(modules, '@lhncbc', 'ucum-lhc', 'data', 'ucumDefs.min.json'), 'utf8'));
const column = {};
defs.units.config.forEach((name, i) => { column[Array.isArray(name) ? name[0] : name] = i; });
const prefixes = defs.prefixes.data.map((p) => p[0]);
for (const u of defs.units.data) {
  const code = u[column.csCode_];
  if (u[column.source_] === 'UCUM') {
    add(code, 'atom');
    if (u[column.isMetric_] || u[column.isBase_]) {
      for (const p of prefixes) add(p + code, 'prefixed atom');
    }
  } else {
    add(code, 'combination');
  }
}

// UCUM codes of quantities in the R4 examples.
let exampleQuantities = 0;
function walk(node) {
  if (Array.isArray(node)) {
    node.forEach(walk);
  } else if (node && typeof node === 'object') {
    if (node.system === UCUM_SYSTEM && typeof node.code === 'string') {
      ++exampleQuantities;
      add(node.code, 'R4 examples');
    }
    Object.values(node).forEach(walk);
  }
}
const examples = path.join(modules, 'hl7.fhir.r4.examples');
for (const file of fs.readdirSync(examples)) {
  if (!file.endsWith('.json') || file === 'package.json' || file.startsWith('.')) continue;
  walk(JSON.parse(fs.readFileSync(path.join(examples, file), 'utf8')));
}

// The grammar's corners, and codes that are not UCUM.
for (const code of [
  '/min', 's-1', 'm+2', 'm.s-2', 'm/s2', '10*3/uL', '10^3/uL', '10*-3', '10*+3', 'mmol/(24.h)',
  'mL/min/{1.73_m2}', 'ug/g{Hb}', '{score}', '{cells}/uL', '10.L/min', '(8.h)', '/(min.m2)',
  'kg.m/s2', 'g/(kg.d)', 'mg/kg/d', '[in_i]2', '[ft_i].[lb_av]', 'cm[H2O]', 'mm[Hg]', 'g%',
  "[in_i'H2O]", 'kcal/(24.h)', 'mL/(kg.min)', 'U/L', 'mU/mL', 'nmol/mmol{creat}', 'mCel',
  '%{HemoglobinA1C}', '1', '2', '100', 'Cel', '[degF]', '[degRe]', 'K',
  'foo', 'mg/', '/', '(mg', 'mg)', '[lb_av', 'lb_av]', 'mg{total', 'm0', 'm-', '0', '..',
  'kfoo', 'k[lb_av]', 'Cel/s', 'Cel2', '/[degF]', '{a{b}', 'm[iU]/mL', '[pH]', 'dB',
]) {
  add(code, 'hand-written');
}

// Kura's answers.
const codes = [...sources.keys()].sort();
const run = spawnSync(tool, [], {input: codes.join('\n') + '\n', maxBuffer: 256 << 20});
if (run.status !== 0) {
  console.error(`ucum_oracle: ${tool} exited ${run.status}: ${run.stderr}`);
  process.exit(1);
}
const kura = new Map();
for (const line of run.stdout.toString('utf8').split('\n')) {
  if (line) {
    const answer = JSON.parse(line);
    kura.set(answer.code, answer);
  }
}

// Disagreements known and accepted: the codes each pattern matches, with the reason.
const accepted = [
  {pattern: /(Bd|\[diop\]|\[mesh_i\])/,
   reason: 'the reciprocal units baud (/s), diopter (/m) and mesh (/[in_i]): ucum-lhc gives them ' +
           "their inverse's dimension and a conversion function; Kura reads them as UCUM " +
           'defines them, as quotients'},
  {pattern: /^\[degRe\]$/,
   reason: 'ucum-lhc 7.1.10 converts Réaumur as (value + 273.15) × 5/4; UCUM defines ' +
           '1 °Ré as 5/4 K from the freezing point of water (0 °Ré is 0 °C)'},
  {pattern: /^k\[lb_av\]$/,
   reason: 'a prefix before a unit that is not metric: UCUM forbids it, ucum-lhc accepts it'},
  {pattern: /^0$/, reason: 'a factor of zero: every quantity would be 0, so Kura compares none'},
  {pattern: / $/,
   reason: 'a trailing space (in a unit combination ucum-lhc ships): not a UCUM code, and ' +
           "FHIR's code type forbids it; ucum-lhc trims it"},
];
const acceptedFor = (code) => accepted.find((a) => a.pattern.test(code));

const close = (a, b) => Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
const counts = {converted: 0, refusedByBoth: 0, refusedByDesign: 0};
const disagreements = [];
for (const code of codes) {
  const mine = kura.get(code);
  if (!mine) {
    disagreements.push({code, what: 'no answer from kura_ucum_tool'});
    continue;
  }
  const theirs = utils.getSpecifiedUnit(code, 'validate', false);
  const unit = theirs && theirs.status === 'valid' ? theirs.unit : null;
  if (mine.error !== undefined) {
    if (!unit) {
      ++counts.refusedByBoth;
    } else if (unit.isSpecial_ || unit.isArbitrary_) {
      ++counts.refusedByDesign;
    } else {
      disagreements.push({code, what: `Kura refuses (${mine.error}), ucum-lhc converts`});
    }
    continue;
  }
  if (!unit) {
    disagreements.push({code, what: `Kura converts, ucum-lhc refuses (${theirs && theirs.status})`});
    continue;
  }
  const dimension = unit.dim_ && unit.dim_.dimVec_ ? unit.dim_.dimVec_ : [0, 0, 0, 0, 0, 0, 0];
  const mole = unit.moleExp_ || 0;
  if (JSON.stringify(dimension) !== JSON.stringify(mine.dimension.slice(0, 7)) ||
      mole !== mine.dimension[7]) {
    disagreements.push({code, what: `dimension ${JSON.stringify(mine.dimension)} against ` +
                       `${JSON.stringify(dimension)} with mole exponent ${mole}`});
    continue;
  }
  let converted = true;
  for (const value of [1, 37.5]) {
    const answer = utils.convertUnitTo(code, value, mine.unit);
    const expected = value * mine.factor + mine.offset;
    if (answer.status !== 'succeeded' || !close(answer.toVal, expected)) {
      disagreements.push({code, what: `${value} is ${expected} ${mine.unit} for Kura, ` +
                         `${answer.toVal} for ucum-lhc (${answer.status})`});
      converted = false;
      break;
    }
  }
  if (converted) ++counts.converted;
}

const unexpected = disagreements.filter((d) => !acceptedFor(d.code));
const stale = accepted.filter((a) => !disagreements.some((d) => a.pattern.test(d.code)));
const bySource = {};
for (const set of sources.values()) for (const s of set) bySource[s] = (bySource[s] || 0) + 1;
console.log(`ucum_oracle: ${codes.length} distinct codes (${JSON.stringify(bySource)}; ` +
            `${exampleQuantities} UCUM quantities in the R4 examples)`);
console.log(`ucum_oracle: converted and equal ${counts.converted}, refused by both ` +
            `${counts.refusedByBoth}, refused by design (special or arbitrary) ` +
            `${counts.refusedByDesign}, disagreements ${disagreements.length} ` +
            `(${disagreements.length - unexpected.length} of them known and accepted)`);
const shown = new Set();
for (const d of disagreements) {
  const a = acceptedFor(d.code);
  if (!a) {
    console.log(`  FAIL: ${d.code}: ${d.what}`);
  } else if (!shown.has(a)) {
    shown.add(a);
    const codes = disagreements.filter((x) => a.pattern.test(x.code)).map((x) => x.code);
    console.log(`  accepted (${codes.length}: ${codes.slice(0, 4).join(', ')}` +
                `${codes.length > 4 ? ', ...' : ''}): ${a.reason}`);
  }
}
for (const a of stale) console.log(`  FAIL: accepted disagreement no longer occurs: ${a.pattern}`);
if (unexpected.length > 0 || stale.length > 0) process.exit(1);
if (counts.converted < 2000 || !sources.has('kg')) {
  console.log('ucum_oracle: FAIL: too few codes compared');
  process.exit(1);
}
console.log('ucum_oracle: PASS');
