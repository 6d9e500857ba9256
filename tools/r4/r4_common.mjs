// Helpers shared by the FHIR R4 table generators (gen_r4_tables.mjs, gen_r4_structure.mjs,
// gen_r4_search_params.mjs): package location, failure, byte order, and the C++ text they emit.
import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';

// Column limit of the generated C++ (the repository's clang-format limit).
export const LINE_LIMIT = 100;

export function fail(msg) {
  process.stderr.write(`error: ${msg}\n`);
  process.exit(1);
}

// Byte-order comparison (all names are ASCII, where UTF-16 code unit order == byte order).
export function byteCompare(a, b) {
  const ba = Buffer.from(a, 'utf8');
  const bb = Buffer.from(b, 'utf8');
  return Buffer.compare(ba, bb);
}

export function capitalise(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function resolvePackageDir(dir) {
  if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
  const nested = path.join(dir, 'package');
  if (fs.existsSync(path.join(nested, 'package.json'))) return nested;
  fail(`${dir} does not contain package.json (nor package/package.json)`);
}

export function cppString(s) {
  if (!/^[\x20-\x7e]*$/.test(s) || /["\\]/.test(s)) fail(`unexpected characters in ${s}`);
  return `"${s}"`;
}

// Word-wraps `text` into comment lines: `first` starts the first line, `rest` the others.
export function commentLines(text, first = '//', rest = first) {
  const lines = [];
  let line = first;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const prefix = lines.length === 0 ? first : rest;
    if (line.length > prefix.length && line.length + 1 + word.length > LINE_LIMIT) {
      lines.push(line);
      line = rest;
    }
    line += ` ${word}`;
  }
  lines.push(line);
  return lines;
}

// Greedy-packs `items` (C++ literals) as "a, b, c," onto lines of at most LINE_LIMIT columns.
export function packLines(items, indent = '    ') {
  const lines = [];
  let line = indent;
  for (const item of items) {
    const piece = `${item},`;
    if (line.length > indent.length && line.length + 1 + piece.length > LINE_LIMIT) {
      lines.push(line);
      line = indent;
    }
    line += (line.length > indent.length ? ' ' : '') + piece;
  }
  if (line.length > indent.length) lines.push(line);
  return lines;
}
