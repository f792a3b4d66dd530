// Normalisation of a valid boxlite.yaml into a ProjectSpec, with the checks a schema cannot express: units, port
// specs, references between boxes and volumes, host paths, and project-wide rules (host ports, dependency
// cycles, one writer per volume). Every problem keeps its file:line:col.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Document } from 'yaml';
import { SpecError, suggest, type SpecProblem } from './errors.js';
import { keyOffset, nodeAt, showPath, type Problem } from './explain.js';
import { parseDurationMs, parseSizeMib } from '../core/units.js';
import { checkPorts, parseDns, parsePort } from '../core/network.js';
import { hasPolicy, parseRule, parseSecrets } from '../core/egress.js';
import { DEFAULT_VOLUME_MIB, DEFAULTS, MIN_DISK_MIB, MIN_MEMORY_MIB, MIN_VOLUME_MIB } from '../core/defaults.js';
import { expandReplicas } from './replicas.js';
import { HEALTH_DEFAULTS, type BoxSpec, type MountSpec, type ProjectSpec } from './types.js';

export interface NormCtx {
  file: string;
  dir: string;
  doc: Document;
  problem: Problem;
  warnings: string[];
  projectName?: string;
}

const toArgv = (c: string | string[]) => (typeof c === 'string' ? ['sh', '-c', c] : c);

export function normalize(data: any, ctx: NormCtx): ProjectSpec {
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

  const volumes: ProjectSpec['volumes'] = {};
  for (const [vn, v] of Object.entries<any>(data.volumes ?? {})) {
    const size = v?.size !== undefined ? guard(['volumes', vn, 'size'], () => parseSizeMib(v.size)) : DEFAULT_VOLUME_MIB;
    if (size !== undefined && size < MIN_VOLUME_MIB) at(['volumes', vn, 'size'], `a volume needs at least ${MIN_VOLUME_MIB}MiB (got ${size}MiB)`);
    volumes[vn] = { name: vn, sizeMib: size ?? DEFAULT_VOLUME_MIB };
  }

  const boxes: Record<string, BoxSpec> = {};
  const names = Object.keys(data.boxes);
  for (const [bn, b] of Object.entries<any>(data.boxes)) {
    const P = (...s: (string | number)[]) => ['boxes', bn, ...s];
    const memoryMib = b.memory !== undefined ? guard(P('memory'), () => parseSizeMib(b.memory)) : DEFAULTS.memoryMib;
    if (memoryMib !== undefined && memoryMib < MIN_MEMORY_MIB) at(P('memory'), `a box needs at least ${MIN_MEMORY_MIB}MiB of memory (got ${memoryMib}MiB)`);
    const diskMib = b.disk !== undefined ? guard(P('disk'), () => parseSizeMib(b.disk)) : DEFAULTS.diskSizeMib;
    if (diskMib !== undefined && diskMib < MIN_DISK_MIB) at(P('disk'), `a disk needs at least ${MIN_DISK_MIB}MiB (got ${diskMib}MiB)`);

    const env: Record<string, string> = {};
    if (Array.isArray(b.env)) {
      for (const kv of b.env as string[]) env[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
    } else for (const [k, v] of Object.entries(b.env ?? {})) env[k] = String(v);

    const ports = ((b.ports ?? []) as (string | number)[]).map((p, i) => guard(P('ports', i), () => parsePort(String(p)))).filter((p) => p !== undefined);
    // network: default | none, or {mode, allow, deny}
    const netObj = b.network && typeof b.network === 'object' ? b.network : undefined;
    const mode: 'default' | 'none' = (netObj ? netObj.mode : b.network) ?? 'default';
    const rules = (kind: 'allow' | 'deny') => ((netObj?.[kind] ?? []) as unknown[]).map((r, i) => guard(P('network', kind, i), () => parseRule(String(r)).text)).filter((r) => r !== undefined);
    const egress = { allow: rules('allow'), deny: rules('deny') };
    const secrets: NonNullable<BoxSpec['secrets']> = [];
    for (const [sn, sv] of Object.entries<any>(b.secrets ?? {})) {
      const source = sv.env !== undefined ? { env: String(sv.env) } : sv.file !== undefined ? { file: path.resolve(ctx.dir, String(sv.file)) } : {};
      const both = sv.env !== undefined && sv.file !== undefined ? { file: String(sv.file) } : {};
      const ok = guard(P('secrets', sn), () => parseSecrets([{ name: sn, hosts: sv.hosts, ...source, ...both }], () => 'x'.repeat(16)));
      if (ok) secrets.push({ name: sn, hosts: ok[0].hosts, source: source as { env: string } | { file: string } });
    }
    if (mode === 'none' && secrets.length) at(P('secrets'), 'a box with network mode "none" sends no requests, so it takes no secrets: remove them or the mode');
    if (mode === 'none' && hasPolicy(egress)) at(P('network'), 'a box with network mode "none" reaches nothing, so it takes no allow or deny rules: remove them or the mode');
    if (mode === 'none' && ports.length) at(P('ports'), 'a box with network "none" cannot publish ports: remove them or the network setting');
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

    const pauseAfterMs = b.pause_after !== undefined ? guard(P('pause_after'), () => parseDurationMs(b.pause_after)) : undefined;
    if (pauseAfterMs !== undefined && pauseAfterMs < 10_000) at(P('pause_after'), `expected at least 10s of idleness before a pause, got ${b.pause_after}`);
    if (pauseAfterMs !== undefined && mounts.some((m) => m.type === 'bind')) {
      at(P('pause_after'), `box ${bn} mounts host folders, whose state cannot be saved (virtiofs), so it cannot be paused: drop pause_after or the host folders`);
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
      network: mode,
      ...(hasPolicy(egress) ? { egress } : {}),
      ...(secrets.length ? { secrets } : {}),
      dns,
      volumes: mounts,
      ports,
      setup: b.setup === undefined ? [] : typeof b.setup === 'string' ? [toArgv(b.setup)] : (b.setup as (string | string[])[]).map(toArgv),
      command: b.command !== undefined ? toArgv(b.command) : undefined,
      healthcheck,
      restart: b.restart ?? 'no',
      dependsOn,
      ...(b.profiles?.length ? { profiles: [...b.profiles] } : {}),
      snapshots,
      ...(pauseAfterMs !== undefined ? { pauseAfterMs } : {}),
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

  const replicas = Object.fromEntries(Object.entries<any>(data.boxes).filter(([, b]) => b.replicas !== undefined).map(([bn, b]) => [bn, b.replicas as number]));
  const expanded = expandReplicas(boxes, replicas, at);

  if (problems.length) throw new SpecError(problems.sort((a, b) => a.line - b.line || a.col - b.col));
  return { name, file: ctx.file, dir: ctx.dir, boxes: expanded, volumes, warnings: ctx.warnings, ...(Object.keys(replicas).length ? { replicas } : {}) };
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
