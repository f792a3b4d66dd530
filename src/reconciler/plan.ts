// The plan: a pure function of the project (what boxlite.yaml asks for), the records of the project's boxes and
// their observed state. No VM is touched here, so every decision below is unit-tested from tables.
//
// Like compose, each box carries a hash of the spec it was last made to match; unlike compose the hash is kept per
// field group, because the groups differ in what a change costs:
//   recreate  image, setup               a new disk: the old one is lost unless a snapshot policy keeps it
//   restart   cpus, memory, ports, network, dns, volumes, command, disk (grow)   fixed when the VM boots
//   live      env, working_dir, user, network rules, healthcheck, restart, depends_on, snapshots   read when used
//             (network rules restart the box when they are its first or its last: its traffic changes path)
import { createHash } from 'node:crypto';
import type { BoxSpec, ProjectSpec } from '../spec/types.js';
import type { BoxState, SnapshotInfo } from '../runtime/types.js';
import type { ProjectLabel } from './label.js';
import { formatPort } from '../core/network.js';
import { formatMib, formatMs } from '../core/units.js';

export const FIELD_GROUPS = {
  recreate: ['image', 'setup'],
  disk: ['diskMib'],
  restart: ['cpus', 'memoryMib', 'ports', 'network', 'dns', 'volumes', 'command'],
  live: ['env', 'workingDir', 'user', 'egress', 'secrets', 'healthcheck', 'restart', 'dependsOn', 'snapshots'],
} as const satisfies Record<string, readonly (keyof BoxSpec)[]>;
export type FieldGroup = keyof typeof FIELD_GROUPS;

/** The names used in boxlite.yaml, for messages. */
const YAML_NAMES: Record<string, string> = { memoryMib: 'memory', diskMib: 'disk', workingDir: 'working_dir', dependsOn: 'depends_on', egress: 'network rules' };

function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stable((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}

export function hashGroups(spec: BoxSpec): Record<FieldGroup, string> {
  const out = {} as Record<FieldGroup, string>;
  for (const [g, fields] of Object.entries(FIELD_GROUPS)) {
    const h = createHash('sha256');
    for (const f of fields) h.update(`${f}=${stable(spec[f])};`);
    out[g as FieldGroup] = h.digest('hex').slice(0, 16);
  }
  return out;
}

/** A box of the project as found in the home folder. */
export interface ObservedBox {
  id: string;
  /** The box's global name (project.box). */
  name: string;
  state: BoxState;
  /** When the box was made: the `every` clock of a snapshot policy starts here. */
  createdAt: string;
  label: ProjectLabel;
  snapshots: SnapshotInfo[];
}

export interface ObservedVolume {
  name: string;
  sizeMib: number;
}

export interface Change {
  field: string;
  from: string;
  to: string;
}

export type BoxAction = 'create' | 'recreate' | 'restart' | 'update' | 'start' | 'noop' | 'remove' | 'orphan';

export interface BoxPlan {
  box: string;
  action: BoxAction;
  /** Field changes (for create: the main settings). */
  changes: Change[];
  /** Why, in words, when the changes do not say it all. */
  notes: string[];
  /** The record to act on (absent for create). */
  id?: string;
  /** A snapshot to take first (policy before_apply / every), and automatic ones to prune after. */
  snapshot?: { name: string; why: string };
  prune: string[];
  /** For recreate: the old box is kept aside under this name (snapshot policy before_apply). */
  keepAs?: string;
  /** Live changes or a grown disk to apply while stopped, before the start. */
  update: boolean;
  /** The spec to apply (absent for remove/orphan). */
  spec?: BoxSpec;
}

export interface VolumePlan {
  name: string;
  action: 'create' | 'grow' | 'noop';
  sizeMib: number;
  fromMib?: number;
}

export interface Plan {
  project: string;
  boxes: BoxPlan[];
  volumes: VolumePlan[];
  /** Boxes grouped by dependency depth: every box's dependencies are in earlier levels. */
  levels: string[][];
  changed: boolean;
  /** What up would fail on, found before anything is made (Project.plan fills it: see preflight.ts). */
  problems?: { box: string; message: string }[];
}

export interface PlanOptions {
  removeOrphans?: boolean;
  now?: Date;
}

/** 20261123-153000: the time in names of automatic snapshots and of boxes kept aside. */
export const stamp = (d: Date) => d.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');

function describeValue(field: string, v: unknown): string {
  if (v === undefined || v === null) return '(none)';
  if (field === 'memoryMib' || field === 'diskMib') return formatMib(v as number);
  if (field === 'ports') return (v as BoxSpec['ports']).map(formatPort).join(', ').replace(/:\?->/g, ':auto->') || '(none)';
  if (field === 'command' || field === 'setup') return JSON.stringify(v);
  if (field === 'secrets') return (v as NonNullable<BoxSpec['secrets']>).map((s) => `${s.name} → ${s.hosts.join(',')} (from ${'env' in s.source ? `$${s.source.env}` : s.source.file})`).join(', ') || '(none)';
  if (field === 'egress') {
    const e = v as NonNullable<BoxSpec['egress']>;
    return [...e.allow.map((r) => `allow ${r}`), ...e.deny.map((r) => `deny ${r}`)].join(', ');
  }
  if (field === 'volumes') return (v as BoxSpec['volumes']).map((m) => `${m.source}:${m.target}${m.readOnly ? ':ro' : ''}`).join(', ') || '(none)';
  if (field === 'healthcheck') {
    const h = v as NonNullable<BoxSpec['healthcheck']>;
    return `${JSON.stringify(h.test)} every ${formatMs(h.intervalMs)}`;
  }
  if (typeof v === 'string') return JSON.stringify(v);
  return typeof v === 'object' ? stable(v) : String(v);
}

/** What a snapshot policy asks for now: a snapshot when the newest automatic one (or the box, if it has none)
 *  is older than `every`, and the oldest automatic ones beyond `keep` (those frozen in a shared layer stay).
 *  Used by plan (at each up) and by watch. */
export function policyDue(policy: NonNullable<BoxSpec['snapshots']>, snapshots: SnapshotInfo[], boxCreatedAt: string, now: Date): { snapshot?: { name: string; why: string }; prune: string[] } {
  const autos = snapshots.filter((s) => s.auto && !s.frozen).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  let snapshot: { name: string; why: string } | undefined;
  if (policy.everyMs) {
    const newest = autos.at(-1);
    if (!(now.getTime() - Date.parse(newest?.createdAt ?? boxCreatedAt) < policy.everyMs)) {
      snapshot = { name: `auto-${stamp(now)}`, why: newest ? `the newest automatic snapshot is older than ${formatMs(policy.everyMs)}` : `the box is older than ${formatMs(policy.everyMs)} and has no automatic snapshot` };
    }
  }
  const after = autos.length + (snapshot ? 1 : 0);
  const prune = policy.keep && after > policy.keep ? autos.slice(0, after - policy.keep).map((s) => s.name) : [];
  return { snapshot, prune };
}

/** Field-by-field differences; maps (env) are shown key by key. */
export function diffFields(from: Partial<BoxSpec>, to: BoxSpec, fields: readonly (keyof BoxSpec)[]): Change[] {
  const out: Change[] = [];
  for (const f of fields) {
    const a = from[f];
    const b = to[f];
    if (stable(a) === stable(b)) continue;
    const name = YAML_NAMES[f] ?? f;
    if (f === 'env') {
      const ea = (a ?? {}) as Record<string, string>;
      const eb = b as Record<string, string>;
      for (const k of [...new Set([...Object.keys(ea), ...Object.keys(eb)])].sort()) {
        if (ea[k] !== eb[k]) out.push({ field: `env.${k}`, from: ea[k] === undefined ? '(unset)' : JSON.stringify(ea[k]), to: eb[k] === undefined ? '(unset)' : JSON.stringify(eb[k]) });
      }
      continue;
    }
    out.push({ field: name, from: describeValue(f, a), to: describeValue(f, b) });
  }
  return out;
}

/** Dependency levels: level 0 has no dependencies, level n depends only on earlier levels. */
export function dependencyLevels(boxes: Record<string, Pick<BoxSpec, 'dependsOn'>>): string[][] {
  const depth = new Map<string, number>();
  const d = (n: string, seen: Set<string>): number => {
    if (depth.has(n)) return depth.get(n)!;
    if (seen.has(n)) throw new Error(`depends_on makes a cycle through ${n}`);
    seen.add(n);
    const deps = Object.keys(boxes[n]?.dependsOn ?? {}).filter((x) => boxes[x]);
    const v = deps.length ? Math.max(...deps.map((x) => d(x, seen))) + 1 : 0;
    depth.set(n, v);
    return v;
  };
  const levels: string[][] = [];
  for (const n of Object.keys(boxes).sort()) (levels[d(n, new Set())] ??= []).push(n);
  return levels.map((l) => l ?? []);
}

export function plan(project: ProjectSpec, observed: ObservedBox[], volumes: ObservedVolume[], opts: PlanOptions = {}): Plan {
  const now = opts.now ?? new Date();
  const boxes: BoxPlan[] = [];
  const live = observed.filter((o) => !o.label.retiredAt);
  const byBox = new Map(live.map((o) => [o.label.box, o]));

  // Volumes first: a volume that grows needs the box using it stopped, which may turn a no-op into a restart.
  const volumePlans: VolumePlan[] = Object.values(project.volumes).map((v) => {
    const have = volumes.find((o) => o.name === v.name);
    if (!have) return { name: v.name, action: 'create', sizeMib: v.sizeMib };
    if (v.sizeMib > have.sizeMib) return { name: v.name, action: 'grow', sizeMib: v.sizeMib, fromMib: have.sizeMib };
    // Volumes only grow: a smaller declared size leaves the volume as it is (the rendered plan says so).
    return { name: v.name, action: 'noop', sizeMib: v.sizeMib, ...(have.sizeMib > v.sizeMib ? { fromMib: have.sizeMib } : {}) };
  });
  const grown = new Set(volumePlans.filter((v) => v.action === 'grow').map((v) => v.name));

  for (const spec of Object.values(project.boxes).sort((a, b) => a.name.localeCompare(b.name))) {
    const o = byBox.get(spec.name);
    const policy = spec.snapshots;
    if (!o) {
      boxes.push({
        box: spec.name,
        action: 'create',
        changes: [
          { field: 'image', from: '', to: spec.image },
          { field: 'cpus', from: '', to: String(spec.cpus) },
          { field: 'memory', from: '', to: formatMib(spec.memoryMib) },
          { field: 'disk', from: '', to: formatMib(spec.diskMib) },
          ...(spec.ports.length ? [{ field: 'ports', from: '', to: describeValue('ports', spec.ports) }] : []),
          ...(spec.volumes.length ? [{ field: 'volumes', from: '', to: describeValue('volumes', spec.volumes) }] : []),
        ],
        notes: spec.setup.length ? [`then runs ${spec.setup.length} setup command${spec.setup.length > 1 ? 's' : ''}`] : [],
        prune: [],
        update: false,
        spec,
      });
      continue;
    }
    const applied = o.label.applied as unknown as BoxSpec;
    const want = hashGroups(spec);
    const had = o.label.hash;
    const notes: string[] = [];
    const running = o.state === 'running';
    let action: BoxAction = 'noop';
    let changes: Change[] = [];

    const recreateChanges = had.recreate !== want.recreate ? diffFields(applied, spec, FIELD_GROUPS.recreate) : [];
    const setupIncomplete = spec.setup.length > 0 && o.label.setup !== 'done';
    const shrink = spec.diskMib < applied.diskMib;
    if (recreateChanges.length || setupIncomplete || shrink) {
      action = 'recreate';
      changes = [...recreateChanges, ...diffFields(applied, spec, [...FIELD_GROUPS.disk, ...FIELD_GROUPS.restart, ...FIELD_GROUPS.live])];
      if (setupIncomplete && !recreateChanges.length) {
        notes.push(o.label.setup === 'failed' ? `its setup failed${o.label.setupError ? ` (${o.label.setupError})` : ''}: made again from scratch` : 'its setup never finished: made again from scratch');
      }
      if (shrink) notes.push(`disks only grow (${formatMib(applied.diskMib)} → ${formatMib(spec.diskMib)}): a smaller disk means a new box`);
    } else {
      // The first network rules, or the removal of the last, change the path the box's traffic takes: a restart.
      const gateway = (b: Partial<BoxSpec>) => !!b.egress || !!b.secrets?.length;
      const flip = gateway(applied) !== gateway(spec);
      const boundary = (f: string) => f === 'egress' || f === 'secrets';
      const restartChanges = diffFields(applied, spec, [...FIELD_GROUPS.disk, ...FIELD_GROUPS.restart, ...(flip ? (['egress', 'secrets'] as const) : [])]);
      const liveChanges = diffFields(applied, spec, FIELD_GROUPS.live.filter((f) => !(flip && boundary(f))));
      const volumeGrows = spec.volumes.filter((m) => m.type === 'volume' && grown.has(m.source)).map((m) => m.source);
      changes = [...restartChanges, ...liveChanges];
      if (restartChanges.length || volumeGrows.length) {
        action = running ? 'restart' : 'start';
        if (volumeGrows.length) notes.push(`volume ${volumeGrows.join(', ')} grows while the box is stopped`);
      } else if (liveChanges.length) action = running ? 'update' : 'start';
      else if (!running) action = 'start';
      if (!running) notes.push(o.state === 'exited' ? 'it had exited' : o.state === 'created' ? 'never started' : 'it was stopped');
    }

    // Snapshot policy: before a destructive change, and when the newest automatic snapshot is older than `every`.
    let snapshot: BoxPlan['snapshot'];
    let keepAs: string | undefined;
    if (action === 'recreate') {
      if (policy?.beforeApply) {
        snapshot = { name: `before-apply-${stamp(now)}`, why: 'before_apply' };
        keepAs = `${o.name}.pre-${stamp(now)}`;
        notes.push(`the old box is kept, stopped, as ${keepAs} (snapshot policy before_apply)`);
      } else if (!setupIncomplete || recreateChanges.length) {
        notes.push(`its disk is lost: nothing written in the box is kept (add snapshots: {before_apply: true} to keep the old box)`);
      }
    }
    let prune: string[] = [];
    if (action !== 'recreate' && policy) ({ snapshot, prune } = policyDue(policy, o.snapshots, o.createdAt, now));
    if (action === 'noop' && (snapshot || prune.length)) notes.push('snapshot policy');

    boxes.push({ box: spec.name, action, changes, notes, id: o.id, snapshot, prune, keepAs, update: changes.length > 0 && action !== 'recreate', spec });
  }

  // Boxes recorded for this project but no longer declared.
  for (const o of live) {
    if (Object.hasOwn(project.boxes, o.label.box)) continue;
    // A replica beyond its box's replicas: scaled down, as compose's scale removes containers.
    const of = (o.label.applied as { replicaOf?: string }).replicaOf;
    if (of && project.replicas && Object.hasOwn(project.replicas, of) && o.label.file === project.file) {
      boxes.push({ box: o.label.box, action: 'remove', changes: [], notes: [`${of} is scaled to ${project.replicas[of]}`], id: o.id, prune: [], update: false });
      continue;
    }
    boxes.push({
      box: o.label.box,
      action: opts.removeOrphans ? 'remove' : 'orphan',
      changes: [],
      notes: opts.removeOrphans ? ['no longer declared in the project'] : [`no longer declared: 'boxlite up --remove-orphans' removes it`],
      id: o.id,
      prune: [],
      update: false,
    });
  }
  // Boxes kept aside by before_apply beyond the policy's `keep`.
  for (const spec of Object.values(project.boxes)) {
    const keep = spec.snapshots?.keep;
    if (!keep) continue;
    const kept = observed.filter((o) => o.label.retiredAt && o.label.box === spec.name).sort((a, b) => a.label.retiredAt!.localeCompare(b.label.retiredAt!));
    const willAdd = boxes.some((b) => b.box === spec.name && b.keepAs) ? 1 : 0;
    for (const o of kept.slice(0, Math.max(0, kept.length + willAdd - keep))) {
      boxes.push({ box: o.label.box, action: 'remove', changes: [], notes: [`box ${o.name}, kept aside by before_apply, is beyond keep: ${keep}`], id: o.id, prune: [], update: false });
    }
  }

  const changed = boxes.some((b) => b.action !== 'noop' && b.action !== 'orphan') || boxes.some((b) => b.snapshot || b.prune.length) || volumePlans.some((v) => v.action !== 'noop');
  return { project: project.name, boxes, volumes: volumePlans, levels: dependencyLevels(project.boxes), changed };
}

// ---- terraform-style rendering ----------------------------------------------------------------------------------

const SYMBOL: Record<BoxAction, string> = { create: '+', recreate: '-/+', restart: '~', update: '~', start: '>', noop: ' ', remove: '-', orphan: '?' };
const VERB: Record<BoxAction, string> = {
  create: 'create',
  recreate: 'recreate',
  restart: 'restart',
  update: 'update in place',
  start: 'start',
  noop: 'no changes',
  remove: 'remove',
  orphan: 'orphan (kept)',
};

/** "2 of 3 boxes failed": how a failed up ends. */
export function failedSummary(failed: number, of: number): string {
  return `${failed} of ${of} box${of === 1 ? '' : 'es'} failed`;
}

export function renderPlan(p: Plan): string {
  const lines: string[] = [];
  for (const v of p.volumes) {
    if (v.action === 'create') lines.push(`  + volume ${v.name} (${formatMib(v.sizeMib)})`);
    else if (v.action === 'grow') lines.push(`  ~ volume ${v.name}: size ${formatMib(v.fromMib!)} → ${formatMib(v.sizeMib)}`);
    else if (v.fromMib !== undefined) lines.push(`    volume ${v.name}: volumes only grow; it stays ${formatMib(v.fromMib)}`);
  }
  for (const b of p.boxes) {
    if (b.snapshot) lines.push(`  + snapshot ${b.box}@${b.snapshot.name} (${b.snapshot.why})`);
    if (b.action === 'noop') {
      for (const n of b.prune) lines.push(`  - snapshot ${b.box}@${n} (beyond keep: ${b.spec?.snapshots?.keep})`);
      continue;
    }
    lines.push(`  ${SYMBOL[b.action].padEnd(3)} ${b.box}: ${VERB[b.action]}`);
    for (const c of b.changes) lines.push(b.action === 'create' ? `        ${c.field}: ${c.to}` : `        ${c.field}: ${c.from} → ${c.to}`);
    for (const n of b.notes) lines.push(`        (${n})`);
    for (const n of b.prune) lines.push(`  - snapshot ${b.box}@${n} (beyond keep: ${b.spec?.snapshots?.keep})`);
  }
  const count = (a: BoxAction) => p.boxes.filter((b) => b.action === a).length;
  const snaps = p.boxes.filter((b) => b.snapshot).length;
  const summary = [
    [count('create'), 'to create'],
    [count('recreate'), 'to recreate'],
    [count('restart'), 'to restart'],
    [count('update'), 'to update'],
    [count('start'), 'to start'],
    [count('remove'), 'to remove'],
    [snaps, `snapshot${snaps === 1 ? '' : 's'} to take`],
  ]
    .filter(([n]) => n)
    .map(([n, w]) => `${n} ${w}`);
  if (!p.changed) {
    return [...lines, `Project ${p.project}: no changes. The boxes match the project file.`].join('\n');
  }
  return [`Project ${p.project}: boxlite up will`, ...lines, '', `Plan: ${summary.join(', ')}.`].join('\n');
}
