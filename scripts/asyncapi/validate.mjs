#!/usr/bin/env node
// Validates an AsyncAPI document (a JSON file) with the official AsyncAPI parser
// (@asyncapi/parser, the version pinned in package.json).
//
//   node scripts/asyncapi/validate.mjs civicbus.asyncapi.json [--instances instances.json]
//
// Every diagnostic is printed as `<severity> <rule> at <path>: <message>`. Errors make
// the exit status 1; warnings, information and hints are printed but do not fail.
// Also errors:
//   * a `$ref` that leaves the document (it must be self-contained: nothing is fetched);
//   * a message example whose payload or headers do not validate against the message's
//     schemas (JSON Schema draft-07, checked with Ajv; the parser does not check them);
//   * with `--instances FILE` (a JSON array of `{ "schema": "<components.schemas key>",
//     "name": "…", "valid": true|false, "instance": … }`), an instance the schema
//     `#/components/schemas/<key>/schema` does not judge as `valid` says: this checks
//     that the draft-07 conversion of the catalogue keeps its meaning.
// Exit status 2: bad arguments, a file cannot be read, or the parser cannot be loaded.
//
// Install the dependencies first: `npm ci --prefix scripts/asyncapi`.

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import process from 'node:process';

const require = createRequire(import.meta.url);

const usage = 'usage: node scripts/asyncapi/validate.mjs <asyncapi-document.json> [--instances <instances.json>]';
const args = process.argv.slice(2);
let file;
let instancesFile;
while (args.length > 0) {
  const arg = args.shift();
  if (arg === '--instances' && args.length > 0) {
    instancesFile = args.shift();
  } else if (!arg.startsWith('-') && file === undefined) {
    file = arg;
  } else {
    console.error(usage);
    process.exit(2);
  }
}
if (file === undefined) {
  console.error(usage);
  process.exit(2);
}

let Parser;
let DiagnosticSeverity;
let Ajv;
let addFormats;
try {
  ({ Parser, DiagnosticSeverity } = require('@asyncapi/parser'));
  Ajv = require('ajv').default;
  addFormats = require('ajv-formats').default;
} catch (e) {
  console.error(`cannot load the validators (${e.message}); run \`npm ci --prefix scripts/asyncapi\``);
  process.exit(2);
}

async function readText(path) {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    console.error(`cannot read ${path}: ${e.message}`);
    process.exit(2);
  }
}

const text = await readText(file);
let instances = [];
if (instancesFile !== undefined) {
  try {
    instances = JSON.parse(await readText(instancesFile));
  } catch (e) {
    console.error(`${instancesFile} is not JSON: ${e.message}`);
    process.exit(2);
  }
}

const names = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};

// `$ref`s that point outside the document (the parser would try to fetch them).
function externalRefs(value, path, out) {
  if (Array.isArray(value)) {
    value.forEach((v, i) => externalRefs(v, [...path, String(i)], out));
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === '$ref' && typeof v === 'string' && !v.startsWith('#')) {
        out.push({ path: path.join('.'), ref: v });
      } else if (k !== 'examples' && k !== 'enum' && k !== 'const' && k !== 'default') {
        externalRefs(v, [...path, k], out);
      }
    }
  }
  return out;
}

let errors = 0;
let warnings = 0;

let raw;
try {
  raw = JSON.parse(text);
} catch {
  // Not JSON (YAML, or broken): the parser reports what is wrong.
}
if (raw !== undefined) {
  for (const { path, ref } of externalRefs(raw, [], [])) {
    console.log(`error self-contained at ${path}: $ref ${ref} points outside the document`);
    errors += 1;
  }
}

const parser = new Parser();
const { document, diagnostics } = await parser.parse(text, { source: file });

for (const d of diagnostics) {
  const severity = names[d.severity] ?? `severity-${d.severity}`;
  const at = Array.isArray(d.path) && d.path.length > 0 ? d.path.join('.') : '(document)';
  console.log(`${severity} ${d.code ?? ''} at ${at}: ${d.message}`);
  if (d.severity === DiagnosticSeverity.Error) {
    errors += 1;
  } else if (d.severity === DiagnosticSeverity.Warning) {
    warnings += 1;
  }
}

// Schemas, checked with Ajv (draft-07) against the document itself, so that `$ref`s
// resolve as the parser resolves them.
if (raw !== undefined && document !== undefined) {
  const ajv = new Ajv({ strict: false, allErrors: true, unicodeRegExp: false });
  addFormats(ajv);
  const base = 'urn:civicbus:asyncapi';
  ajv.addSchema(raw, base);
  const validators = new Map();
  const validator = (pointer) => {
    if (!validators.has(pointer)) {
      try {
        validators.set(pointer, ajv.compile({ $ref: `${base}#${pointer}` }));
      } catch (e) {
        validators.set(pointer, e);
      }
    }
    return validators.get(pointer);
  };
  const escape = (key) => key.replace(/~/g, '~0').replace(/\//g, '~1');
  const explain = (validate) => (validate.errors ?? [])
    .slice(0, 5)
    .map((e) => `${e.instancePath || '/'} ${e.message}`)
    .join('; ');
  const check = (pointer, instance, expectValid, what, code) => {
    const validate = validator(pointer);
    if (validate instanceof Error) {
      console.log(`error schema at ${pointer}: cannot be compiled: ${validate.message}`);
      errors += 1;
      return;
    }
    const valid = validate(instance);
    if (valid !== expectValid) {
      const why = valid ? 'is accepted' : `is refused: ${explain(validate)}`;
      console.log(`error ${code} at ${pointer}: ${what} ${why}`);
      errors += 1;
    }
  };
  let checked = 0;
  for (const [key, message] of Object.entries(raw.components?.messages ?? {})) {
    const at = `/components/messages/${escape(key)}`;
    const payload = message.payload && typeof message.payload.schema === 'object'
      ? `${at}/payload/schema`
      : `${at}/payload`;
    for (const [i, example] of (message.examples ?? []).entries()) {
      const name = `example ${example.name ?? i} of message ${key}`;
      if (message.payload !== undefined && example.payload !== undefined) {
        check(payload, example.payload, true, `the payload of ${name}`, 'example-invalid');
        checked += 1;
      }
      if (message.headers !== undefined && example.headers !== undefined) {
        check(`${at}/headers`, example.headers, true, `the headers of ${name}`, 'example-invalid');
        checked += 1;
      }
    }
  }
  for (const { schema, name, valid, instance } of instances) {
    const at = `/components/schemas/${escape(schema)}`;
    if (raw.components?.schemas?.[schema] === undefined) {
      console.log(`error instance at ${at}: no such schema (for ${name})`);
      errors += 1;
      continue;
    }
    const pointer = typeof raw.components.schemas[schema].schema === 'object' ? `${at}/schema` : at;
    check(
      pointer,
      instance,
      valid,
      `${valid ? 'valid' : 'invalid'} instance ${name}`,
      valid ? 'instance-refused' : 'instance-accepted',
    );
    checked += 1;
  }
  console.log(`checked ${checked} example(s) and instance(s) against their schemas`);
}

if (document === undefined && errors === 0) {
  console.log('error parser: the document could not be parsed (no diagnostic said why)');
  errors += 1;
}

if (errors > 0) {
  console.log(`${file}: INVALID, ${errors} error(s), ${warnings} warning(s)`);
  process.exit(1);
}
const version = document.version();
const counts = `${document.channels().length} channels, ${document.operations().length} operations, ${document.components().messages().length} component messages`;
console.log(`${file}: valid AsyncAPI ${version} (${counts}), ${warnings} warning(s)`);
