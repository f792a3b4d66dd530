// boxlite.yaml → ProjectSpec. Parsing keeps every node's position, so each problem is reported as file:line:col with
// its key path; the JSON Schema in schema/ decides what is valid, and the checks that a schema cannot express
// (references between boxes, units, port specs) follow with the same positions.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineCounter, parseDocument, Scalar, visit } from 'yaml';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import { createRequire } from 'node:module';
import { SpecError, type SpecProblem } from './errors.js';
import { interpolate, InterpolationError, parseDotenv } from './interpolate.js';
import { explain } from './explain.js';
import { normalize } from './normalize.js';
import type { ProjectSpec } from './types.js';

export const PROJECT_FILES = ['boxlite.yaml', 'boxlite.yml'];
const SCHEMA_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'schema', 'boxlite.schema.json');

/** The JSON Schema of boxlite.yaml (schema/boxlite.schema.json). */
export function projectSchema(): Record<string, any> {
  // From dist/src/spec or src/spec: the schema folder is at the package root either way.
  for (const p of [SCHEMA_PATH, path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'schema', 'boxlite.schema.json')]) {
    if (fs.existsSync(p)) return JSON.parse(fs.readFileSync(p, 'utf8'));
  }
  throw new Error(`the boxlite.yaml schema is missing (${SCHEMA_PATH}): reinstall boxlite`);
}

type Validator = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };
let validator: Validator | null = null;
function validate(data: unknown): ErrorObject[] {
  if (!validator) {
    // The build compiles the schema ahead (scripts/compile-schema.mjs); from the sources it is compiled here.
    const compiled = path.join(path.dirname(fileURLToPath(import.meta.url)), 'schema-validator.cjs');
    if (fs.existsSync(compiled)) validator = createRequire(import.meta.url)(compiled) as Validator;
    else {
      const ajv = new Ajv2020({ allErrors: true, verbose: true, strict: true, strictTuples: false, allowUnionTypes: true });
      ajv.addKeyword({ keyword: 'x-expected', schemaType: 'string' });
      validator = ajv.compile(projectSchema());
    }
  }
  return validator(data) ? [] : [...(validator.errors ?? [])];
}

/** Finds the project file: FILE when given, else boxlite.yaml (or .yml) in dir or the nearest folder above it. */
export function findProjectFile(opts: { file?: string; dir?: string } = {}): string {
  if (opts.file) {
    const f = path.resolve(opts.file);
    if (!fs.existsSync(f)) throw new SpecError([{ file: f, line: 1, col: 1, path: '', message: 'no such file: check the path given with -f/--file' }]);
    return f;
  }
  const start = path.resolve(opts.dir ?? process.cwd());
  for (let d = start; ; d = path.dirname(d)) {
    for (const n of PROJECT_FILES) if (fs.existsSync(path.join(d, n))) return path.join(d, n);
    if (path.dirname(d) === d) break;
  }
  throw new NoProjectError(`no boxlite.yaml in ${start} or any folder above it: create one (see examples/), or give one with -f FILE`);
}

export class NoProjectError extends SpecError {
  constructor(message: string) {
    super([]);
    this.message = message;
  }
}

export interface LoadOptions {
  /** Variables for ${VAR}; default process.env. A .env beside the file fills in what this lacks. */
  env?: Record<string, string | undefined>;
  /** Overrides the project name (-p). */
  projectName?: string;
}

export function loadProject(file: string, opts: LoadOptions = {}): ProjectSpec {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch (e) {
    throw new SpecError([{ file: abs, line: 1, col: 1, path: '', message: `cannot read the project file: ${(e as Error).message}` }]);
  }
  return parseProject(text, abs, opts);
}

/** Parses project text as if it were the file at `file` (which decides the folder, the name and the .env). */
export function parseProject(text: string, file: string, opts: LoadOptions = {}): ProjectSpec {
  const dir = path.dirname(file);
  const rel = path.relative(process.cwd(), file) || file;
  const shown = rel.startsWith('..') ? file : rel;
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const pos = (offset: number) => lc.linePos(offset);
  const problem = (offset: number, p: string, message: string): SpecProblem => ({ file: shown, ...pos(offset), path: p, message });

  if (doc.errors.length) {
    throw new SpecError(
      doc.errors.map((e) => ({
        file: shown,
        ...pos(e.pos[0]),
        path: '',
        message: e.code === 'DUPLICATE_KEY' ? `the key "${/^[^:\n]*/.exec(text.slice(e.pos[0]))![0].trim()}" appears twice in the same mapping: keep one` : yamlMessage(e.message),
      })),
    );
  }
  if (doc.contents === null) throw new SpecError([problem(0, '', 'the file is empty: declare at least one box under "boxes:"')]);

  // ${VAR} interpolation, in values only; a plain scalar that was interpolated is read again as YAML so that
  // "cpus: ${CPUS:-2}" is a number, as it would be written literally.
  const env = { ...readDotenv(dir, shown), ...(opts.env ?? process.env) };
  const warnings: string[] = [];
  const problems: SpecProblem[] = [];
  visit(doc, {
    Scalar(key, node) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('$')) return;
      const at = node.range?.[0] ?? 0;
      try {
        const value = node.value;
        const v = interpolate(value, env, (m, i) => {
          const where = pos(sourceOffset(text, node.range, value, i));
          // Each unset variable said once, at its first reference's own line:col.
          if (!warnings.some((w) => w.endsWith(`: ${m}`))) warnings.push(`${shown}:${where.line}:${where.col}: ${m}`);
        });
        node.value = node.type === Scalar.PLAIN && v !== node.value ? reparse(v) : v;
      } catch (e) {
        if (!(e instanceof InterpolationError)) throw e;
        problems.push(problem(at, '', e.message));
      }
    },
  });
  if (problems.length) throw new SpecError(problems);

  const data = doc.toJS({ maxAliasCount: 100 });
  const schemaErrors = validate(data);
  if (schemaErrors.length) throw new SpecError(explain(schemaErrors, doc, problem));

  return normalize(data, { file, dir, doc, problem, warnings, projectName: opts.projectName });
}

/** Where in the file the "$" at index i of a scalar's value is: the same occurrence of its reference in the
 *  scalar's source (quotes and folding move it), else the scalar's start. */
function sourceOffset(text: string, range: [number, number, number] | null | undefined, value: string, i: number): number {
  const start = range?.[0] ?? 0;
  const token = /^\$\{?[A-Za-z_][A-Za-z0-9_]*/.exec(value.slice(i))?.[0];
  if (!token || !range) return start;
  const nth = value.slice(0, i).split(token).length - 1;
  const source = text.slice(start, range[1]);
  let at = -1;
  for (let k = 0; k <= nth; k++) {
    at = source.indexOf(token, at + 1);
    if (at < 0) return start;
  }
  return start + at;
}

function reparse(v: string): unknown {
  if (/^-?\d+(\.\d+)?$/.test(v)) return Number(v);
  if (v === 'true' || v === 'false') return v === 'true';
  return v;
}

function yamlMessage(m: string): string {
  // The yaml library appends "at line N, column M" and a source excerpt; our prefix already says where.
  return m.replace(/ at line \d+, column \d+:?[\s\S]*$/, '').replace(/\n[\s\S]*$/, '');
}

function readDotenv(dir: string, shown: string): Record<string, string> {
  const f = path.join(dir, '.env');
  if (!fs.existsSync(f)) return {};
  try {
    return parseDotenv(fs.readFileSync(f, 'utf8'), path.join(path.dirname(shown), '.env'));
  } catch (e) {
    throw new SpecError([{ file: f, line: 1, col: 1, path: '', message: (e as Error).message }]);
  }
}
