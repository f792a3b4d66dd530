// Schema errors → located, readable problems: ajv's errors for boxlite.yaml turned into file:line:col, the key path
// as written, and a message that says what was expected (with "did you mean" for near misses).
import type { Document, Node } from 'yaml';
import { yamlLib } from './yaml-lib.js';
import type { ErrorObject } from 'ajv/dist/2020.js';
import { suggest, type SpecProblem } from './errors.js';

export type Problem = (offset: number, path: string, message: string) => SpecProblem;

export const segments = (instancePath: string) => (instancePath ? instancePath.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~')) : []);

export function showPath(segs: (string | number)[]): string {
  return segs.map((s, i) => (/^\d+$/.test(String(s)) ? `[${s}]` : i ? `.${s}` : String(s))).join('');
}

export function nodeAt(doc: Document, segs: string[]): Node | undefined {
  const n = segs.length ? doc.getIn(segs.map((s) => (/^\d+$/.test(s) ? Number(s) : s)), true) : doc.contents;
  return (n ?? undefined) as Node | undefined;
}

export function keyOffset(doc: Document, segs: string[], key: string): number | undefined {
  const m = nodeAt(doc, segs);
  const { isMap, isPair, isScalar } = yamlLib();
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

/** Compose's names for what boxlite names otherwise (or has no need of), told as compose users write them. */
const COMPOSE: Record<string, { top?: boolean; anywhere?: boolean; to?: string; hint: string }> = {
  services: { top: true, to: 'boxes', hint: '(did you mean "boxes"? compose\'s services are boxes here)' },
  environment: { to: 'env', hint: '(did you mean "env"? compose\'s environment is env here, a mapping or a list of NAME=value)' },
  expose: { hint: "(compose's expose is not needed: a project's boxes reach each other on any port by name over the project LAN; publish to the host with ports)" },
  mem_limit: { to: 'memory', hint: '(did you mean "memory"? as in memory: 512MiB)' },
  build: { hint: '(boxlite does not build images: give image a registry reference, an OCI layout or a root filesystem folder)' },
  networks: { anywhere: true, hint: "(compose's networks are not needed: a project's boxes share the project LAN and reach each other by name)" },
  container_name: { hint: "(a box is named by its key under boxes; its box name is PROJECT.KEY)" },
};

function composeHint(key: string, top: boolean): string | undefined {
  const c = COMPOSE[key];
  return c && (c.anywhere || !!c.top === top) ? c.hint : undefined;
}

export function explain(errors: ErrorObject[], doc: Document, problem: Problem): SpecProblem[] {
  // A oneOf reports every branch's failures. When some branch got past its type check, its own errors say more
  // than the others' "wrong type"; when none did, the oneOf's own description says what was expected.
  const byPath = new Map<string, ErrorObject[]>();
  for (const e of errors) byPath.set(e.instancePath, [...(byPath.get(e.instancePath) ?? []), e]);
  // A branch that failed its type check fails everything else there too (an enum, say): that says nothing more.
  const branch = (e: ErrorObject) => /^(.*\/(?:oneOf|anyOf)\/\d+)\//.exec(e.schemaPath)?.[1];
  const typeFailed = new Set(errors.filter((e) => e.keyword === 'type' && branch(e)).map((e) => `${branch(e)}|${e.instancePath}`));
  const branchTypeFail = (e: ErrorObject) =>
    e.keyword === 'type' || (e.keyword === 'pattern' && e.schemaPath.includes('oneOf')) || typeFailed.has(`${branch(e)}|${e.instancePath}`);
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
        const compose = composeHint(key, segs.length === 0);
        msg = compose
          ? `unknown key "${key}" ${compose}`
          : `unknown key "${key}"${guess ? ` (did you mean "${guess}"?)` : allowed.length ? `; allowed here: ${allowed.join(', ')}` : ''}`;
        at = keyOffset(doc, segs, key) ?? offset;
        shownPath = showPath([...segs, key]);
        break;
      }
      case 'required': {
        const key = (e.params as { missingProperty: string }).missingProperty;
        // "imgae" already says "did you mean image": one problem, not two.
        const misspelt = kept.some((o) => {
          const written = (o.params as { additionalProperty: string }).additionalProperty;
          return o.keyword === 'additionalProperties' && o.instancePath === e.instancePath && (suggest(written, [key]) || COMPOSE[written]?.to === key);
        });
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

