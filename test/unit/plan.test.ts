// The reconciler's decision table, without VMs: (project, records, observed state) → plan.
import { describe, expect, it } from 'vitest';
import { parseProject } from '../../src/spec/load.js';
import { dependencyLevels, hashGroups, plan, renderPlan, type ObservedBox } from '../../src/reconciler/plan.js';
import type { BoxSpec, ProjectSpec as Project } from '../../src/spec/types.js';
import type { BoxState } from '../../src/runtime/types.js';
import { shouldRestart, backoffMs } from '../../src/reconciler/watch.js';
import { nextHealth } from '../../src/reconciler/health.js';

const FILE = '/srv/demo/boxlite.yaml';
const project = (yaml: string): Project => parseProject(`name: demo\n${yaml}`, FILE, { env: {} });
const BASE = 'boxes:\n  web:\n    image: debian:12\n';

/** A record that matches `spec` exactly, as apply leaves it. */
function observed(spec: BoxSpec, state: BoxState = 'running', extra: Partial<ObservedBox['label']> = {}, snapshots: ObservedBox['snapshots'] = []): ObservedBox {
  return {
    id: `id-${spec.name}`,
    name: `demo.${spec.name}`,
    state,
    createdAt: '2026-11-23T09:00:00Z',
    label: { project: 'demo', box: spec.name, file: FILE, applied: spec as never, hash: hashGroups(spec), setup: 'done', ...extra },
    snapshots,
  };
}

/** Plans `now` against records made from `before`. */
function planEdit(before: string, now: string, state: BoxState = 'running', opts: { removeOrphans?: boolean } = {}) {
  const was = project(before);
  return plan(project(now), Object.values(was.boxes).map((b) => observed(b, state)), [], opts);
}

const row = (p: ReturnType<typeof plan>) => p.boxes.map((b) => `${b.box}:${b.action}${b.changes.length ? ` ${b.changes.map((c) => `${c.field}=${c.from}→${c.to}`).join(' ')}` : ''}`);

describe('plan decision table', () => {
  // [what, before (records), now (file), observed state, expected rows]
  const table: [string, string, string, BoxState, string[]][] = [
    ['nothing changed, running', BASE, BASE, 'running', ['web:noop']],
    ['nothing changed, stopped', BASE, BASE, 'stopped', ['web:start']],
    ['nothing changed, exited', BASE, BASE, 'exited', ['web:start']],
    ['cpus change on a running box', BASE, BASE + '    cpus: 2\n', 'running', ['web:restart cpus=1→2']],
    ['memory change on a stopped box', BASE, BASE + '    memory: 1GiB\n', 'stopped', ['web:start memory=512MiB→1GiB']],
    ['a port added', BASE, BASE + '    ports: ["8080:80"]\n', 'running', ['web:restart ports=(none)→127.0.0.1:8080->80/tcp']],
    ['a command changed', BASE + '    command: a\n', BASE + '    command: b\n', 'running', ['web:restart command=["sh","-c","a"]→["sh","-c","b"]']],
    ['env changed', BASE + '    env: {A: "1", B: "2"}\n', BASE + '    env: {A: "1", B: "3", C: "4"}\n', 'running', ['web:update env.B="2"→"3" env.C=(unset)→"4"']],
    ['working_dir changed', BASE, BASE + '    working_dir: /app\n', 'running', ['web:update working_dir=""→"/app"']],
    ['healthcheck added', BASE, BASE + '    healthcheck: {test: "true"}\n', 'running', ['web:update healthcheck=(none)→["sh","-c","true"] every 30s']],
    ['restart policy changed', BASE, BASE + '    restart: always\n', 'running', ['web:update restart="no"→"always"']],
    ['network rules edited on a box that has some', BASE + '    network: {allow: [a.example.com]}\n', BASE + '    network: {allow: [a.example.com, "203.0.113.0/24:443"], deny: [b.example.com]}\n', 'running', ['web:update network rules=allow a.example.com→allow a.example.com, allow 203.0.113.0/24:443, deny b.example.com']],
    ['first network rules: the traffic changes path', BASE, BASE + '    network: {allow: [a.example.com]}\n', 'running', ['web:restart network rules=(none)→allow a.example.com']],
    ['last network rules removed', BASE + '    network: {deny: ["10.0.0.0/8"]}\n', BASE + '    network: default\n', 'running', ['web:restart network rules=deny 10.0.0.0/8→(none)']],
    ['image changed', BASE, 'boxes:\n  web:\n    image: debian:13\n', 'running', ['web:recreate image="debian:12"→"debian:13"']],
    ['setup changed', BASE + '    setup: [a]\n', BASE + '    setup: [b]\n', 'running', ['web:recreate setup=[["sh","-c","a"]]→[["sh","-c","b"]]']],
    ['disk grows', BASE, BASE + '    disk: 4GiB\n', 'running', ['web:restart disk=2GiB→4GiB']],
    ['disk shrinks', BASE + '    disk: 4GiB\n', BASE, 'running', ['web:recreate disk=4GiB→2GiB']],
    ['a box added', BASE, BASE + '  db:\n    image: postgres\n', 'running', ['db:create image=→postgres cpus=→1 memory=→512MiB disk=→2GiB', 'web:noop']],
    ['a box dropped', BASE + '  db:\n    image: postgres\n', BASE, 'running', ['web:noop', 'db:orphan']],
  ];
  it.each(table)('%s', (_what, before, now, state, want) => expect(row(planEdit(before, now, state))).toEqual(want));

  it('changed is false only when there is nothing to do (an orphan alone changes nothing)', () => {
    expect(planEdit(BASE, BASE).changed).toBe(false);
    expect(planEdit(BASE + '  db:\n    image: postgres\n', BASE).changed).toBe(false);
    expect(planEdit(BASE, BASE + '    cpus: 2\n').changed).toBe(true);
  });

  it('removes orphans only when asked', () => {
    const p = planEdit(BASE + '  db:\n    image: postgres\n', BASE, 'running', { removeOrphans: true });
    expect(row(p)).toEqual(['web:noop', 'db:remove']);
    expect(p.changed).toBe(true);
  });

  it('says a recreate loses the disk, unless before_apply keeps the old box', () => {
    const lost = planEdit(BASE, 'boxes:\n  web:\n    image: debian:13\n').boxes[0];
    expect(lost.notes.join()).toMatch(/its disk is lost/);
    const now = new Date('2026-11-23T15:30:00Z');
    const was = project(BASE + '    snapshots: {before_apply: true}\n');
    const kept = plan(project('boxes:\n  web:\n    image: debian:13\n    snapshots: {before_apply: true}\n'), [observed(was.boxes.web)], [], { now }).boxes[0];
    expect(kept.snapshot).toEqual({ name: 'before-apply-20261123-153000', why: 'before_apply' });
    expect(kept.keepAs).toBe('demo.web.pre-20261123-153000');
    expect(kept.notes.join()).toMatch(/the old box is kept, stopped, as demo.web.pre-20261123-153000/);
  });

  it('recreates a box whose setup failed or never finished', () => {
    const spec = project(BASE + '    setup: [make]\n').boxes.web;
    for (const setup of ['failed', 'pending'] as const) {
      const p = plan(project(BASE + '    setup: [make]\n'), [observed(spec, 'running', { setup, setupError: 'exit 2' })], []);
      expect(p.boxes[0].action).toBe('recreate');
      expect(p.boxes[0].notes[0]).toMatch(setup === 'failed' ? /its setup failed \(exit 2\)/ : /its setup never finished/);
    }
  });

  it('takes a snapshot when the newest automatic one is older than every, and prunes beyond keep', () => {
    const yaml = BASE + '    snapshots: {every: 30m, keep: 2}\n';
    const spec = project(yaml).boxes.web;
    const now = new Date('2026-11-23T12:00:00Z');
    const snaps = [
      { name: 'auto-1', createdAt: '2026-11-23T10:00:00Z', auto: true },
      { name: 'mine', createdAt: '2026-11-23T10:30:00Z' },
      { name: 'auto-2', createdAt: '2026-11-23T11:00:00Z', auto: true },
    ];
    const p = plan(project(yaml), [observed(spec, 'running', {}, snaps)], [], { now });
    expect(p.boxes[0]).toMatchObject({ action: 'noop', snapshot: { name: 'auto-20261123-120000' }, prune: ['auto-1'] });
    expect(p.changed).toBe(true);
    const fresh = plan(project(yaml), [observed(spec, 'running', {}, [{ name: 'auto-3', createdAt: '2026-11-23T11:45:00Z', auto: true }])], [], { now });
    expect(fresh.boxes[0].snapshot).toBeUndefined();
    expect(fresh.changed).toBe(false);
    // The clock starts when the box is made: a new box has no snapshot due yet.
    const young = plan(project(yaml), [{ ...observed(spec), createdAt: '2026-11-23T11:50:00Z' }], [], { now });
    expect(young.boxes[0].snapshot).toBeUndefined();
    const old = plan(project(yaml), [observed(spec)], [], { now });
    expect(old.boxes[0].snapshot?.why).toBe('the box is older than 30m and has no automatic snapshot');
  });

  it('creates missing volumes and restarts the box of a volume that grows', () => {
    const yaml = BASE + '    volumes: ["data:/data"]\nvolumes:\n  data: {size: 2GiB}\n';
    const spec = project(yaml).boxes.web;
    expect(plan(project(yaml), [observed(spec)], []).volumes).toEqual([{ name: 'data', action: 'create', sizeMib: 2048 }]);
    const grow = plan(project(yaml), [observed(spec)], [{ name: 'data', sizeMib: 1024 }]);
    expect(grow.volumes[0]).toMatchObject({ action: 'grow', fromMib: 1024, sizeMib: 2048 });
    expect(grow.boxes[0].action).toBe('restart');
    const shrink = plan(project(yaml), [observed(spec)], [{ name: 'data', sizeMib: 4096 }]);
    expect(shrink.volumes[0].action).toBe('noop');
    expect(renderPlan(shrink)).toMatch(/volume data: volumes only grow; it stays 4GiB/);
  });

  it('ignores boxes kept aside, except to prune them beyond keep', () => {
    const yaml = BASE + '    snapshots: {before_apply: true, keep: 1}\n';
    const spec = project(yaml).boxes.web;
    const aside = (n: number) => ({ ...observed(spec, 'stopped', { retiredAt: `2026-11-2${n}T00:00:00Z` }), id: `old-${n}`, name: `demo.web.pre-${n}` });
    const p = plan(project(yaml), [observed(spec), aside(1), aside(2)], []);
    expect(p.boxes.map((b) => `${b.box}:${b.action}:${b.id}`)).toEqual(['web:noop:id-web', 'web:remove:old-1']);
  });

  it('hashes do not depend on key order', () => {
    const a = project(BASE + '    env: {A: "1", B: "2"}\n').boxes.web;
    const b = project(BASE + '    env: {B: "2", A: "1"}\n').boxes.web;
    expect(hashGroups(a)).toEqual(hashGroups(b));
  });

  it('orders boxes by dependency', () => {
    const p = project('boxes:\n  web: {image: x, depends_on: [api]}\n  api: {image: x, depends_on: [db, cache]}\n  db: {image: x}\n  cache: {image: x}\n  tool: {image: x}\n');
    expect(dependencyLevels(p.boxes)).toEqual([['cache', 'db', 'tool'], ['api'], ['web']]);
  });

  it('renders like terraform', () => {
    const text = renderPlan(planEdit(BASE + '  old:\n    image: x\n', BASE + '    cpus: 2\n  db:\n    image: postgres\n', 'running', { removeOrphans: true }));
    expect(text).toContain('  +   db: create');
    expect(text).toContain('  ~   web: restart\n        cpus: 1 → 2');
    expect(text).toContain('  -   old: remove');
    expect(text).toMatch(/Plan: 1 to create, 1 to restart, 1 to remove\.$/);
    expect(renderPlan(planEdit(BASE, BASE))).toBe('Project demo: no changes. The boxes match the project file.');
  });
});

describe('restart policies and health', () => {
  it.each([
    ['no', false, 'crash', false],
    ['always', true, undefined, true],
    ['always', false, 'exit', true],
    ['unless-stopped', true, undefined, false],
    ['unless-stopped', false, 'exit', true],
    ['on-failure', false, 'crash', true],
    ['on-failure', false, 'killed', true],
    ['on-failure', false, 'exit', false],
    ['on-failure', true, undefined, false],
  ] as const)('%s, stopped by hand: %s, reason %s → %s', (policy, stopped, reason, want) => expect(shouldRestart(policy, { stopped, reason })).toBe(want));

  it('on-failure restarts a command by its exit status', () => {
    expect(shouldRestart('on-failure', { stopped: false, reason: 'exit-code', exitCode: 0 })).toBe(false);
    expect(shouldRestart('on-failure', { stopped: false, reason: 'exit-code', exitCode: 3 })).toBe(true);
  });

  it('backs off 1, 2, 4 … 60 s', () => expect([1, 2, 3, 7, 10].map(backoffMs)).toEqual([1000, 2000, 4000, 60_000, 60_000]));

  it('folds checks into health as docker does', () => {
    const h = { test: ['true'], intervalMs: 1000, timeoutMs: 1000, retries: 2, startPeriodMs: 5000 };
    const fail = { ok: false, output: 'no' };
    let s = nextHealth(undefined, fail, h, 0, 1000); // in the start period: not counted
    expect(s).toMatchObject({ status: 'starting', failingStreak: 0 });
    s = nextHealth(s, fail, h, 0, 6000);
    expect(s).toMatchObject({ status: 'starting', failingStreak: 1 });
    s = nextHealth(s, fail, h, 0, 7000);
    expect(s).toMatchObject({ status: 'unhealthy', failingStreak: 2, output: 'no' });
    s = nextHealth(s, { ok: true, output: '' }, h, 0, 8000);
    expect(s).toMatchObject({ status: 'healthy', failingStreak: 0, at: new Date(8000).toISOString(), since: new Date(8000).toISOString() });
    s = nextHealth(s, { ok: true, output: '' }, h, 0, 9000); // later checks move `at`, not `since`
    expect(s).toMatchObject({ status: 'healthy', at: new Date(9000).toISOString(), since: new Date(8000).toISOString() });
    expect(nextHealth(s, { ok: true, output: '' }, h, 20_000, 21_000).since).toBe(new Date(21_000).toISOString()); // a new run
  });
});
