#!/usr/bin/env node
// Generates src/kura/fhir/ucum_units.cc, the UCUM prefixes and unit atoms Kura converts quantities
// with, from the definitions shipped in the npm package @lhncbc/ucum-lhc
// (see tools/ucum/README.md).
//
// Usage: node tools/ucum/gen_ucum_units.mjs <package-dir> [output.cc]
//
// <package-dir> is the unpacked package (the directory holding package.json and
// data/ucumDefs.min.json). The output defaults to src/kura/fhir/ucum_units.cc in this repository.
// Node's standard library only.
//
// Only the atoms of the UCUM specification itself are taken (source "UCUM"); the package's
// precomputed LOINC unit combinations are expressions of those atoms, which Kura parses.
// Each atom keeps its magnitude and dimension in UCUM's seven base units (m, s, g, rad, K, C, cd),
// the exponent of the mole it contains, and whether it takes prefixes, is arbitrary (an
// international unit: comparable only with itself) or is special (a non-ratio scale: degrees
// Celsius, Fahrenheit and Réaumur are converted, the logarithmic and other special units are
// marked as such and never converted).

import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import {fileURLToPath} from 'node:url';
import {LINE_LIMIT, byteCompare, cppString, fail, resolvePackageDir} from '../r4/r4_common.mjs';

const PACKAGE_NAME = '@lhncbc/ucum-lhc';
const PACKAGE_VERSION = '7.1.10';
// The special units converted by an offset: the C++ enum names of their scales.
const OFFSET_SCALES = {Cel: 'kCelsius', degF: 'kFahrenheit', degRe: 'kReaumur'};
// Avogadro's number as UCUM defines the mole (the package's magnitudes count moles as numbers).
const AVOGADRO = 6.0221367e23;

function columns(config) {
  const index = {};
  config.forEach((name, i) => { index[Array.isArray(name) ? name[0] : name] = i; });
  return index;
}

function number(value, what) {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    fail(`${what}: magnitude ${value} is not a positive finite number`);
  }
  // Shortest text that reads back as the same double.
  const text = String(value);
  return /[.e]/.test(text) ? text : `${text}.0`;
}

function main() {
  const [dirArg, outArg] = process.argv.slice(2);
  if (!dirArg) fail('usage: gen_ucum_units.mjs <package-dir> [output.cc]');
  const dir = resolvePackageDir(dirArg);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  if (pkg.name !== PACKAGE_NAME || pkg.version !== PACKAGE_VERSION) {
    fail(`expected ${PACKAGE_NAME}@${PACKAGE_VERSION}, found ${pkg.name}@${pkg.version}`);
  }
  const defs = JSON.parse(fs.readFileSync(path.join(dir, 'data', 'ucumDefs.min.json'), 'utf8'));

  const pc = columns(defs.prefixes.config);
  const prefixes = defs.prefixes.data
      .map((p) => ({code: p[pc.code_], value: p[pc.value_]}))
      .sort((a, b) => byteCompare(a.code, b.code));
  if (prefixes.length !== 24) fail(`expected 24 prefixes, found ${prefixes.length}`);

  const uc = columns(defs.units.config);
  const atoms = [];
  for (const u of defs.units.data) {
    if (u[uc.source_] !== 'UCUM') continue;
    const code = u[uc.csCode_];
    const dim = u[uc.dim_];
    const vector = Array.isArray(dim) ? dim : dim && dim.dimVec_;
    if (!Array.isArray(vector) || vector.length !== 7 || !vector.every(Number.isInteger)) {
      fail(`${code}: dimension ${JSON.stringify(dim)} is not seven integers`);
    }
    let scale = 'kRatio';
    let magnitude = u[uc.magnitude_];
    let base = vector.slice();
    if (u[uc.isSpecial_]) {
      scale = OFFSET_SCALES[u[uc.cnv_]] || 'kOtherSpecial';
    } else if (u[uc.cnv_] === 'inv') {
      // The package models the reciprocal units ([diop] = /m, [mesh_i] = /[in_i], Bd = /s) as
      // their inverse with a conversion function; UCUM defines them as plain quotients.
      magnitude = 1 / magnitude;
      base = base.map((d) => -d);
    } else if (u[uc.cnv_] !== null) {
      fail(`${code}: unknown conversion ${u[uc.cnv_]}`);
    }
    // The mole and the equivalent become dimensions of their own, their magnitude counted in
    // moles instead of numbers: amounts of substance compare only with amounts of substance, and
    // equivalents (which need a charge to become moles) only with equivalents.
    const mole = u[uc.moleExp_] || 0;
    const equivalent = code === 'eq' ? 1 : 0;
    magnitude /= AVOGADRO ** (mole + equivalent);
    atoms.push({
      code,
      magnitude: number(magnitude, code),
      dim: [...base, mole, equivalent],
      // The package marks its seven base units as not metric; UCUM makes every base unit metric.
      metric: Boolean(u[uc.isMetric_] || u[uc.isBase_]),
      arbitrary: Boolean(u[uc.isArbitrary_]),
      scale,
    });
  }
  atoms.sort((a, b) => byteCompare(a.code, b.code));
  for (let i = 1; i < atoms.length; ++i) {
    if (atoms[i].code === atoms[i - 1].code) fail(`duplicate atom ${atoms[i].code}`);
  }
  // The parser ends an atom at these characters and reads trailing digits as its exponent, so no
  // atom may contain them outside square brackets, nor end in a digit there.
  for (const a of atoms) {
    const outside = a.code.replace(/\[[^\]]*\]/g, '');
    if (/[./(){}]/.test(outside) || /[0-9]$/.test(outside) || !/^[\x21-\x7e]+$/.test(a.code)) {
      fail(`atom ${a.code} cannot be told apart from its exponent or neighbours`);
    }
  }
  const scales = Object.values(OFFSET_SCALES);
  for (const s of scales) {
    if (!atoms.some((a) => a.scale === s)) fail(`no atom has scale ${s}`);
  }

  const lines = [];
  lines.push(`// Generated by tools/ucum/gen_ucum_units.mjs from ${PACKAGE_NAME} ${PACKAGE_VERSION}; ` +
             'do not edit.');
  lines.push('//');
  lines.push('// The UCUM prefixes and the atoms of the UCUM specification (source "UCUM" in the');
  lines.push("// package's data/ucumDefs.min.json), each with its magnitude and dimension in UCUM's");
  lines.push('// base units m, s, g, rad, K, C, cd plus the mole and the equivalent, and its kind.');
  lines.push('// UCUM table and codes: copyright Regenstrief Institute, Inc. and The UCUM');
  lines.push('// Organization (https://ucum.org/license).');
  lines.push('#include "kura/fhir/internal/ucum_model.h"');
  lines.push('');
  lines.push('namespace kura::fhir::internal {');
  lines.push('namespace {');
  lines.push('');
  lines.push('// clang-format off');
  lines.push(`// ${prefixes.length} prefixes, byte order.`);
  lines.push('constexpr UcumPrefix kPrefixes[] = {');
  for (const p of prefixes) {
    lines.push(`    {${cppString(p.code)}, ${number(p.value, p.code)}},`);
  }
  lines.push('};');
  lines.push('');
  lines.push(`// ${atoms.length} atoms, byte order: code, magnitude, dimension (m, s, g, rad, K, C, ` +
             'cd, mol,');
  lines.push('// eq), metric, arbitrary, scale.');
  lines.push('constexpr UcumAtom kAtoms[] = {');
  for (const a of atoms) {
    const head = `    {${cppString(a.code)}, ${a.magnitude}, {${a.dim.join(', ')}}, ` +
                 `${a.metric}, ${a.arbitrary},`;
    const tail = `UcumScale::${a.scale}},`;
    if (head.length + 1 + tail.length <= LINE_LIMIT) {
      lines.push(`${head} ${tail}`);
    } else {
      lines.push(head, `     ${tail}`);
    }
  }
  lines.push('};');
  lines.push('// clang-format on');
  lines.push('');
  lines.push('}  // namespace');
  lines.push('');
  lines.push('std::span<const UcumPrefix> UcumPrefixes() { return kPrefixes; }');
  lines.push('std::span<const UcumAtom> UcumAtoms() { return kAtoms; }');
  lines.push('');
  lines.push('}  // namespace kura::fhir::internal');
  lines.push('');

  const here = path.dirname(fileURLToPath(import.meta.url));
  const out = outArg || path.join(here, '..', '..', 'src', 'kura', 'fhir', 'ucum_units.cc');
  fs.writeFileSync(out, lines.join('\n'));
  process.stderr.write(`wrote ${out}: ${prefixes.length} prefixes, ${atoms.length} atoms\n`);
}

main();
