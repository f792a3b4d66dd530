// boxlite.yaml → ProjectSpec. Parsing keeps every node's position, so each problem is reported as file:line:col with
// its key path; the JSON Schema in schema/ decides what is valid, and the checks that a schema cannot express
// (references between boxes, units, port specs) follow with the same positions.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ErrorObject } from 'ajv/dist/2020.js';
import { createRequire } from 'node:module';
import { SpecError, type SpecProblem } from './errors.js';
import { interpolate, InterpolationError, parseDotenv } from './interpolate.js';
import { explain } from './explain.js';
import { normalize } from './normalize.js';
import { yamlLib } from './yaml-lib.js';
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
      // Only from the sources (tests): the built CLI never loads ajv's compiler.
      const { Ajv2020 } = createRequire(import.meta.url)('ajv/dist/2020.js') as typeof import('ajv/dist/2020.js');
      const ajv = new Ajv2020({ allErrors: true, verbose: true, strict: true, strictTuples: false, allowUnionTypes: true });
      ajv.addKeyword({ keyword: 'x-expected', schemaType: 'string' });
      validator = ajv.compile(projectSchema());
    }
  }
  return validator(data) ? [] : [...(validator.errors ?? [])];
}

/** Why a project file found by walking up is not this user's to trust (another user owns it or its folder), or
 *  null. git's rule (CVE-2022-24765): a file another user planted above the working folder must not decide what
 *  boxlite does. sudo keeps the invoking user's files usable. */
export function foreignOwner(file: string): string | null {
  const me = process.getuid?.();
  if (me === undefined) return null;
  const ok = new Set([me, ...(me === 0 && process.env.SUDO_UID ? [Number(process.env.SUDO_UID)] : [])]);
  const st = fs.lstatSync(file, { throwIfNoEntry: false });
  if (st && !ok.has(st.uid)) return `it belongs to ${userName(st.uid)}`;
  // A folder another user owns lets them swap the file, unless it is sticky (as /tmp is).
  const dir = fs.statSync(path.dirname(file), { throwIfNoEntry: false });
  if (dir && !ok.has(dir.uid) && !(dir.mode & 0o1000)) return `its folder belongs to ${userName(dir.uid)}`;
  return null;
}

function userName(uid: number): string {
  try {
    const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.split(':')[2] === String(uid));
    if (line) return `user ${line.split(':')[0]} (uid ${uid})`;
  } catch {}
  return `uid ${uid}`;
}

/** Finds the project file: FILE when given, else boxlite.yaml (or .yml) in dir or the nearest folder above it that
 *  is this user's; one another user owns is named (onSkip) and passed over. */
export function findProjectFile(opts: { file?: string; dir?: string; onSkip?: (message: string) => void } = {}): string {
  if (opts.file) {
    const f = path.resolve(opts.file);
    if (!fs.existsSync(f)) throw new SpecError([{ file: f, line: 1, col: 1, path: '', message: 'no such file: check the path given with -f/--file' }]);
    return f;
  }
  const start = path.resolve(opts.dir ?? process.cwd());
  const skipped: string[] = [];
  for (let d = start; ; d = path.dirname(d)) {
    for (const n of PROJECT_FILES) {
      const f = path.join(d, n);
      if (!fs.existsSync(f)) continue;
      const foreign = foreignOwner(f);
      if (!foreign) return f;
      const note = `${f} is not used: ${foreign}, not to you; give it with -f if you trust it, or take it over (chown)`;
      skipped.push(note);
      (opts.onSkip ?? ((m) => process.stderr.write(`boxlite: ${m}\n`)))(note);
    }
    if (path.dirname(d) === d) break;
  }
  throw new NoProjectError(`no boxlite.yaml of yours in ${start} or any folder above it${skipped.length ? ` (${skipped.length} passed over, named above)` : ''}: create one (see examples/), or give one with -f FILE`);
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
  const { LineCounter, parseDocument, Scalar, visit } = yamlLib();
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
  const host = opts.env ?? process.env;
  const env = { ...readDotenv(dir, shown), ...host };
  const warnings: string[] = [];
  const problems: SpecProblem[] = [];
  // Which of the host's variables the file reads, and where: a cloned file must not read them unapproved.
  const hostVariables: HostVariable[] = [];
  visit(doc, {
    Scalar(key, node, ancestors) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('$')) return;
      const at = node.range?.[0] ?? 0;
      const reads = new Proxy(env, {
        get(t, name) {
          if (typeof name === 'string' && host[name] !== undefined && !hostVariables.some((v) => v.name === name && v.at === at)) hostVariables.push({ name, at, ...where(ancestors, node) });
          return t[name as string];
        },
      });
      try {
        const value = node.value;
        const v = interpolate(value, reads, (m, i) => {
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

  const spec = normalize(data, { file, dir, doc, problem, warnings, projectName: opts.projectName });
  return hostVariables.length ? { ...spec, hostVariables: hostVariables.map(({ at: _at, ...v }) => v) } : spec;
}

type HostVariable = NonNullable<ProjectSpec['hostVariables']>[number] & { at: number };

/** The box and field a scalar sits under, from its ancestors: boxes.web.env.KEY → web, env.KEY. */
function where(ancestors: readonly unknown[], node: unknown): { box: string; field: string } {
  const { isPair, isScalar, isSeq } = yamlLib();
  const keys: string[] = [];
  const chain = [...ancestors, node];
  for (let i = 0; i < ancestors.length; i++) {
    const a = ancestors[i];
    if (isPair(a)) keys.push(String(isScalar(a.key) ? a.key.value : a.key));
    else if (isSeq(a)) keys.push(`[${a.items.indexOf(chain[i + 1] as never)}]`);
  }
  const box = keys[0] === 'boxes' && keys.length > 1 ? keys[1] : '';
  const field = (box ? keys.slice(2) : keys).join('.').replace(/\.\[/g, '[');
  return { box, field: field || '(top level)' };
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
