// boxlite.yaml → Project. Parsing keeps every node's position, so each problem is reported as file:line:col with
// its key path; the JSON Schema in schema/ decides what is valid, and the checks that a schema cannot express
// (references between boxes, units, port specs) follow with the same positions.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Document, isMap, isPair, isScalar, LineCounter, parseDocument, Scalar, visit, type Node } from 'yaml';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import { createRequire } from 'node:module';
import { SpecError, suggest, type SpecProblem } from './errors.js';
import { interpolate, InterpolationError, parseDotenv } from './interpolate.js';
import { parseDurationMs, parseSizeMib } from './units.js';
import { checkPorts, parseDns, parsePort } from '../runtime/network.js';
import { DEFAULTS, MIN_MEMORY_MIB } from '../runtime/defaults.js';
import { DEFAULT_VOLUME_MIB, HEALTH_DEFAULTS, type BoxSpec, type MountSpec, type Project } from './types.js';

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

export function loadProject(file: string, opts: LoadOptions = {}): Project {
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
export function parseProject(text: string, file: string, opts: LoadOptions = {}): Project {
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
        const v = interpolate(node.value, env, (m) => warnings.push(`${shown}:${pos(at).line}:${pos(at).col}: ${m}`));
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

// ---- schema errors → located, readable problems ----------------------------------------------------------------

type Problem = (offset: number, path: string, message: string) => SpecProblem;

const segments = (instancePath: string) => (instancePath ? instancePath.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~')) : []);

function showPath(segs: (string | number)[]): string {
  return segs.map((s, i) => (/^\d+$/.test(String(s)) ? `[${s}]` : i ? `.${s}` : String(s))).join('');
}

function nodeAt(doc: Document, segs: string[]): Node | undefined {
  const n = segs.length ? doc.getIn(segs.map((s) => (/^\d+$/.test(s) ? Number(s) : s)), true) : doc.contents;
  return (n ?? undefined) as Node | undefined;
}

function keyOffset(doc: Document, segs: string[], key: string): number | undefined {
  const m = nodeAt(doc, segs);
  if (!isMap(m)) return undefined;
  const pair = m.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === key);
  return (pair?.key as Node | undefined)?.range?.[0];
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `"${v}"`;
  return String(v);
}

const TYPE_WORDS: Record<string, string> = { object: 'a mapping', array: 'a list', string: 'a string', integer: 'a whole number', number: 'a number', boolean: 'true or false', null: 'nothing' };

function explain(errors: ErrorObject[], doc: Document, problem: Problem): SpecProblem[] {
  // A oneOf reports every branch's failures. When some branch got past its type check, its own errors say more
  // than the others' "wrong type"; when none did, the oneOf's own description says what was expected.
  const byPath = new Map<string, ErrorObject[]>();
  for (const e of errors) byPath.set(e.instancePath, [...(byPath.get(e.instancePath) ?? []), e]);
  const branchTypeFail = (e: ErrorObject) => e.keyword === 'type' || (e.keyword === 'pattern' && e.schemaPath.includes('oneOf'));
  const kept: ErrorObject[] = [];
  for (const e of errors) {
    if (e.keyword === 'oneOf' || e.keyword === 'anyOf') {
      const inside = errors.filter((o) => o !== e && o.schemaPath.startsWith(e.schemaPath.replace(/\/(oneOf|anyOf)$/, '/$1/')) && o.instancePath.startsWith(e.instancePath));
      const informative = inside.filter((o) => !(o.instancePath === e.instancePath && branchTypeFail(o)));
      if (informative.length === 0) kept.push(e);
      continue;
    }
    // Type failures of a oneOf branch are judged by the oneOf above.
    const parentOneOf = errors.find((o) => (o.keyword === 'oneOf' || o.keyword === 'anyOf') && e.schemaPath.startsWith(o.schemaPath + '/'));
    if (parentOneOf && e.instancePath === parentOneOf.instancePath && branchTypeFail(e)) {
      const siblings = errors.filter((o) => o !== e && o.schemaPath.startsWith(parentOneOf.schemaPath + '/') && !(o.instancePath === parentOneOf.instancePath && branchTypeFail(o)));
      if (siblings.length) continue; // another branch matched the type: its errors are reported
      continue; // no branch matched: the oneOf is reported
    }
    kept.push(e);
  }
  const out: SpecProblem[] = [];
  const seen = new Set<string>();
  for (const e of kept) {
    const segs = segments(e.instancePath);
    const node = nodeAt(doc, segs);
    const offset = node?.range?.[0] ?? 0;
    const p = showPath(segs);
    const expected = (e.parentSchema as Record<string, unknown> | undefined)?.['x-expected'] as string | undefined;
    let msg: string;
    let at = offset;
    let shownPath = p;
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = (e.params as { additionalProperty: string }).additionalProperty;
        const allowed = Object.keys(((e.parentSchema as { properties?: object }).properties ?? {}) as object);
        const guess = suggest(key, allowed);
        msg = `unknown key "${key}"${guess ? ` (did you mean "${guess}"?)` : allowed.length ? `; allowed here: ${allowed.join(', ')}` : ''}`;
        at = keyOffset(doc, segs, key) ?? offset;
        shownPath = showPath([...segs, key]);
        break;
      }
      case 'required': {
        const key = (e.params as { missingProperty: string }).missingProperty;
        // "imgae" already says "did you mean image": one problem, not two.
        const misspelt = kept.some((o) => o.keyword === 'additionalProperties' && o.instancePath === e.instancePath && suggest((o.params as { additionalProperty: string }).additionalProperty, [key]));
        if (misspelt) continue;
        msg = `missing required key "${key}"`;
        break;
      }
      case 'propertyNames':
        continue; // reported by the pattern error inside it, with the name
      case 'pattern': {
        if (e.propertyName !== undefined) {
          at = keyOffset(doc, segs, e.propertyName) ?? offset;
          shownPath = showPath([...segs, e.propertyName]);
          msg = `invalid name "${e.propertyName}": expected ${expected ?? 'a simple name'}`;
        } else {
          msg = `expected ${expected ?? `a string matching ${(e.params as { pattern: string }).pattern}`}, got ${describe(e.data)}`;
        }
        break;
      }
      case 'enum': {
        const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map(String);
        const guess = typeof e.data === 'string' ? suggest(e.data, allowed) : undefined;
        msg = `expected one of ${allowed.join(', ')}; got ${describe(e.data)}${guess ? ` (did you mean "${guess}"?)` : ''}`;
        break;
      }
      case 'type': {
        const t = (e.params as { type: string | string[] }).type;
        const words = (Array.isArray(t) ? t : String(t).split(',')).map((x) => TYPE_WORDS[x] ?? x);
        msg = `expected ${expected ?? words.join(' or ')}, got ${describe(e.data)}`;
        break;
      }
      case 'oneOf':
      case 'anyOf':
        msg = `expected ${expected ?? 'a different value'}, got ${describe(e.data)}`;
        break;
      case 'minimum':
      case 'maximum': {
        const lim = (e.params as { limit: number }).limit;
        msg = `expected a number ${e.keyword === 'minimum' ? 'of at least' : 'of at most'} ${lim}, got ${describe(e.data)}`;
        break;
      }
      case 'minProperties':
        msg = p === 'boxes' ? 'declare at least one box' : 'must not be empty';
        break;
      case 'minItems':
      case 'minLength':
        msg = 'must not be empty';
        break;
      case 'uniqueItems':
        msg = 'lists the same name twice';
        break;
      default:
        msg = e.message ?? 'is invalid';
    }
    const k = `${at}|${msg}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(problem(at, shownPath, msg));
  }
  return out.sort((a, b) => a.line - b.line || a.col - b.col);
}

// ---- normalisation and the checks a schema cannot express ---------------------------------------------------------

interface NormCtx {
  file: string;
  dir: string;
  doc: Document;
  problem: Problem;
  warnings: string[];
  projectName?: string;
}

const toArgv = (c: string | string[]) => (typeof c === 'string' ? ['sh', '-c', c] : c);

function normalize(data: any, ctx: NormCtx): Project {
  const problems: SpecProblem[] = [];
  const at = (segs: (string | number)[], message: string, key = false) => {
    const s = segs.map(String);
    const offset = key ? keyOffset(ctx.doc, s.slice(0, -1), s[s.length - 1]) : nodeAt(ctx.doc, s)?.range?.[0];
    problems.push(ctx.problem(offset ?? 0, showPath(segs), message));
  };
  const guard = <T>(segs: (string | number)[], f: () => T): T | undefined => {
    try {
      return f();
    } catch (e) {
      at(segs, (e as Error).message.replace(/^port spec /, ''));
      return undefined;
    }
  };

  let name = ctx.projectName ?? data.name;
  if (name === undefined) {
    name = path.basename(ctx.dir).toLowerCase().replace(/[^a-z0-9_-]/g, '');
    if (!/^[a-z0-9]/.test(name)) {
      at([], `cannot make a project name from the folder "${path.basename(ctx.dir)}": add "name: …" to the file`);
    }
  } else if (ctx.projectName !== undefined && !/^[a-z0-9][a-z0-9_-]{0,39}$/.test(name)) {
    throw new SpecError([{ file: ctx.file, line: 1, col: 1, path: '', message: `project name "${name}" (from -p) is invalid: use lower-case letters, digits, '-' and '_'` }]);
  }

  const volumes: Project['volumes'] = {};
  for (const [vn, v] of Object.entries<any>(data.volumes ?? {})) {
    const size = v?.size !== undefined ? guard(['volumes', vn, 'size'], () => parseSizeMib(v.size)) : DEFAULT_VOLUME_MIB;
    if (size !== undefined && size < 16) at(['volumes', vn, 'size'], `a volume needs at least 16MiB (got ${size}MiB)`);
    volumes[vn] = { name: vn, sizeMib: size ?? DEFAULT_VOLUME_MIB };
  }

  const boxes: Record<string, BoxSpec> = {};
  const names = Object.keys(data.boxes);
  for (const [bn, b] of Object.entries<any>(data.boxes)) {
    const P = (...s: (string | number)[]) => ['boxes', bn, ...s];
    const memoryMib = b.memory !== undefined ? guard(P('memory'), () => parseSizeMib(b.memory)) : DEFAULTS.memoryMib;
    if (memoryMib !== undefined && memoryMib < MIN_MEMORY_MIB) at(P('memory'), `a box needs at least ${MIN_MEMORY_MIB}MiB of memory (got ${memoryMib}MiB)`);
    const diskMib = b.disk !== undefined ? guard(P('disk'), () => parseSizeMib(b.disk)) : DEFAULTS.diskSizeMib;
    if (diskMib !== undefined && diskMib < 64) at(P('disk'), `a disk needs at least 64MiB (got ${diskMib}MiB)`);

    const env: Record<string, string> = {};
    if (Array.isArray(b.env)) {
      for (const kv of b.env as string[]) env[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
    } else for (const [k, v] of Object.entries(b.env ?? {})) env[k] = String(v);

    const ports = ((b.ports ?? []) as (string | number)[]).map((p, i) => guard(P('ports', i), () => parsePort(String(p)))).filter((p) => p !== undefined);
    if (b.network === 'none' && ports.length) at(P('ports'), 'a box with network "none" cannot publish ports: remove them or the network setting');
    guard(P('ports'), () => checkPorts(ports, bn));
    const dns = guard(P('dns'), () => parseDns(b.dns ?? [])) ?? [];

    const mounts: MountSpec[] = [];
    ((b.volumes ?? []) as any[]).forEach((m, i) => {
      let source: string, target: string, readOnly: boolean;
      if (typeof m === 'string') {
        const parts = m.split(':');
        [source, target] = parts;
        readOnly = parts[2] === 'ro';
      } else ({ source, target } = m), (readOnly = !!m.read_only);
      if (mounts.some((o) => o.target === target)) return at(P('volumes', i), `two mounts at ${target}`);
      if (/^(\.|\/|~)/.test(source)) {
        const abs = path.resolve(ctx.dir, source.replace(/^~(?=\/|$)/, process.env.HOME ?? '~'));
        if (!fs.existsSync(abs)) return at(P('volumes', i), `host path ${abs} does not exist: create it, or fix the path (relative paths start from ${ctx.dir})`);
        mounts.push({ type: 'bind', source: abs, target, readOnly });
      } else {
        if (!volumes[source]) {
          const guess = suggest(source, Object.keys(volumes));
          return at(P('volumes', i), `no volume named "${source}" under the top-level "volumes:"${guess ? ` (did you mean "${guess}"?)` : ': declare it there'}`);
        }
        mounts.push({ type: 'volume', source, target, readOnly });
      }
    });

    const dependsOn: Record<string, 'started' | 'healthy'> = {};
    const deps = Array.isArray(b.depends_on) ? Object.fromEntries((b.depends_on as string[]).map((d) => [d, { condition: 'started' }])) : (b.depends_on ?? {});
    for (const [d, c] of Object.entries<any>(deps)) {
      const seg = Array.isArray(b.depends_on) ? P('depends_on', (b.depends_on as string[]).indexOf(d)) : P('depends_on', d);
      if (d === bn) at(seg, `box ${bn} cannot depend on itself`, !Array.isArray(b.depends_on));
      else if (!data.boxes[d]) {
        const guess = suggest(d, names.filter((n) => n !== bn));
        at(seg, `no box named "${d}" in this project${guess ? ` (did you mean "${guess}"?)` : ''}`, !Array.isArray(b.depends_on));
      } else if (c.condition === 'healthy' && !data.boxes[d].healthcheck) {
        at(seg, `box ${d} has no healthcheck, so it can never be healthy: give it one, or use condition: started`, !Array.isArray(b.depends_on));
      } else dependsOn[d] = c.condition;
    }

    let healthcheck: BoxSpec['healthcheck'];
    if (b.healthcheck) {
      const h = b.healthcheck;
      const test = typeof h.test === 'string' ? ['sh', '-c', h.test] : h.test[0] === 'CMD-SHELL' ? ['sh', '-c', h.test.slice(1).join(' ')] : h.test.slice(1);
      const d = (k: string, def: number) => (h[k] !== undefined ? (guard(P('healthcheck', k), () => parseDurationMs(h[k])) ?? def) : def);
      healthcheck = { test, intervalMs: d('interval', HEALTH_DEFAULTS.intervalMs), timeoutMs: d('timeout', HEALTH_DEFAULTS.timeoutMs), retries: h.retries ?? HEALTH_DEFAULTS.retries, startPeriodMs: d('start_period', HEALTH_DEFAULTS.startPeriodMs) };
      if (healthcheck.intervalMs < 100) at(P('healthcheck', 'interval'), 'expected an interval of at least 100ms');
      if (healthcheck.timeoutMs < 100) at(P('healthcheck', 'timeout'), 'expected a timeout of at least 100ms');
    }

    let snapshots: BoxSpec['snapshots'];
    if (b.snapshots) {
      const everyMs = b.snapshots.every !== undefined ? guard(P('snapshots', 'every'), () => parseDurationMs(b.snapshots.every)) : undefined;
      if (everyMs !== undefined && everyMs < 10_000) at(P('snapshots', 'every'), `expected at least 10s between automatic snapshots, got ${b.snapshots.every}`);
      snapshots = { beforeApply: !!b.snapshots.before_apply, everyMs, keep: b.snapshots.keep };
    }

    const image = /^(\.\.?(\/|$)|\/|~)/.test(b.image) ? path.resolve(ctx.dir, b.image) : b.image;
    boxes[bn] = {
      name: bn,
      image,
      cpus: b.cpus ?? DEFAULTS.cpus,
      memoryMib: memoryMib ?? DEFAULTS.memoryMib,
      diskMib: diskMib ?? DEFAULTS.diskSizeMib,
      env,
      workingDir: b.working_dir ?? '',
      user: b.user ?? '',
      network: b.network ?? 'default',
      dns,
      volumes: mounts,
      ports,
      setup: b.setup === undefined ? [] : typeof b.setup === 'string' ? [toArgv(b.setup)] : (b.setup as (string | string[])[]).map(toArgv),
      command: b.command !== undefined ? toArgv(b.command) : undefined,
      healthcheck,
      restart: b.restart ?? 'no',
      dependsOn,
      snapshots,
    };
  }

  // Host ports are one namespace for the whole project.
  const hostPorts = new Map<string, string>();
  for (const [bn, b] of Object.entries(boxes)) {
    b.ports.forEach((p, i) => {
      if (!p.hostPort) return;
      const k = `${p.hostIp === '0.0.0.0' ? '*' : p.hostIp}:${p.hostPort}/${p.protocol}`;
      const other = hostPorts.get(`${p.hostIp}:${p.hostPort}/${p.protocol}`) ?? hostPorts.get(`*:${p.hostPort}/${p.protocol}`) ?? (p.hostIp === '0.0.0.0' ? [...hostPorts].find(([key]) => key.endsWith(`:${p.hostPort}/${p.protocol}`))?.[1] : undefined);
      if (other && other !== bn) at(['boxes', bn, 'ports', i], `host port ${p.hostPort}/${p.protocol} is already published by box ${other}: give one of them another host port`);
      hostPorts.set(k, bn);
    });
  }

  // depends_on must not loop.
  const cycle = findCycle(Object.fromEntries(Object.entries(boxes).map(([n, b]) => [n, Object.keys(b.dependsOn)])));
  if (cycle) at(['boxes', cycle[0], 'depends_on'], `depends_on makes a cycle: ${cycle.join(' → ')}`);

  // Named volumes are disks: one box writes to one at a time.
  const writers = new Map<string, string>();
  for (const [bn, b] of Object.entries(boxes)) {
    b.volumes.forEach((m, i) => {
      if (m.type !== 'volume') return;
      const w = writers.get(m.source);
      if (w && w !== bn) at(['boxes', bn, 'volumes', i], `volume ${m.source} is already mounted by box ${w}: a named volume is a disk and belongs to one box at a time`);
      writers.set(m.source, bn);
    });
  }

  if (problems.length) throw new SpecError(problems.sort((a, b) => a.line - b.line || a.col - b.col));
  return { name, file: ctx.file, dir: ctx.dir, boxes, volumes, warnings: ctx.warnings };
}

/** The first cycle found in a dependency graph, as a path that returns to its start. */
export function findCycle(graph: Record<string, string[]>): string[] | null {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visitNode = (n: string): string[] | null => {
    if (state.get(n) === 'done') return null;
    if (state.get(n) === 'visiting') return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, 'visiting');
    stack.push(n);
    for (const d of graph[n] ?? []) {
      const c = visitNode(d);
      if (c) return c;
    }
    stack.pop();
    state.set(n, 'done');
    return null;
  };
  for (const n of Object.keys(graph)) {
    const c = visitNode(n);
    if (c) return c;
  }
  return null;
}


