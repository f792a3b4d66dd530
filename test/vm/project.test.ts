// Declarative projects end to end, on real boxes (busybox root filesystems, so that boots are cheap): plan, up,
// a second up that changes nothing, edits that update in place / restart / recreate, orphans, named volumes that
// outlive their boxes, the LAN between a project's boxes, watch with drift, a killed `up` run again, two `up` at
// once, and a failing setup.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ageBox, cleanupHome, cli, cliKilledAt, CliProcess, makeRootfs, qemuPids, quietRuntime, testHome } from '../helpers.js';
import { freePort } from '../registry.js';
import { projectLabel } from '../../src/reconciler/label.js';

let home: string;
let rootfs: string;
let port: number;
const projects: string[] = [];

/** A project folder with a boxlite.yaml; ./rootfs is the shared busybox root filesystem. */
function projectDir(yaml: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-proj-'));
  fs.symlinkSync(rootfs, path.join(dir, 'rootfs'));
  fs.writeFileSync(path.join(dir, 'boxlite.yaml'), yaml);
  projects.push(dir);
  return dir;
}

/** GET, retried for a while: a command just started may not be listening yet. */
async function getText(url: string): Promise<string> {
  for (let i = 0; ; i++) {
    try {
      return await (await fetch(url)).text();
    } catch (e) {
      if (i >= 50) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

const edit = (dir: string, f: (s: string) => string) => fs.writeFileSync(path.join(dir, 'boxlite.yaml'), f(fs.readFileSync(path.join(dir, 'boxlite.yaml'), 'utf8')));

function records(project: string) {
  const rt = quietRuntime(home);
  try {
    return rt
      .list()
      .map((r) => ({ ...r, project: projectLabel(r) }))
      .filter((r) => r.project?.project === project);
  } finally {
    rt.close();
  }
}

const WEB = (p: number) => `name: demo
boxes:
  web:
    image: ./rootfs
    memory: 192MiB
    disk: 128MiB
    ports: ["${p}:80"]
    setup:
      - mkdir -p /www && echo hello-from-web > /www/index.html
    command: httpd -f -p 80 -h /www
    healthcheck:
      test: wget -q -O /dev/null http://127.0.0.1/
      interval: 500ms
      retries: 20
    restart: always
    volumes: ["data:/data"]
  worker:
    image: ./rootfs
    memory: 192MiB
    disk: 128MiB
    depends_on:
      web: {condition: healthy}
volumes:
  data: {size: 32MiB}
`;

beforeAll(async () => {
  home = testHome();
  rootfs = makeRootfs();
  port = await freePort();
});

afterAll(async () => {
  await cleanupHome(home);
  for (const d of projects) fs.rmSync(d, { recursive: true, force: true });
  fs.rmSync(rootfs, { recursive: true, force: true });
});

describe('a project', () => {
  let dir: string;

  it('plans, comes up in dependency order, and a second up changes nothing', async () => {
    dir = projectDir(WEB(port));
    const plan = await cli(home, ['plan'], { cwd: dir });
    expect(plan.stdout).toContain('  + volume data (32MiB)');
    expect(plan.stdout).toContain('  +   web: create');
    expect(plan.stdout).toMatch(/Plan: 2 to create\.$/m);
    expect(plan.code).toBe(2);
    const json = JSON.parse((await cli(home, ['plan', '--json'], { cwd: dir })).stdout);
    expect(json).toMatchObject({ project: 'demo', changed: true, levels: [['web'], ['worker']], volumes: [{ name: 'data', action: 'create', sizeMib: 32 }] });
    expect(json.boxes.map((b: { box: string; action: string }) => `${b.box}:${b.action}`)).toEqual(['web:create', 'worker:create']);

    const up = await cli(home, ['up', '--trust', '--wait'], { cwd: dir });
    expect(up.stderr).not.toMatch(/boxlite: (web|worker)/);
    expect(up.stdout).toMatch(/web: create — healthy/);
    expect(up.code).toBe(0);
    const recs = records('demo');
    expect(recs.map((r) => `${r.name} ${r.state} ${r.project!.setup}`).sort()).toEqual(['demo.web running done', 'demo.worker running done']);
    // worker waited for web to be healthy
    const web = recs.find((r) => r.project!.box === 'web')!;
    const worker = recs.find((r) => r.project!.box === 'worker')!;
    expect(Date.parse(worker.startedAt!)).toBeGreaterThan(Date.parse(web.project!.health!.since ?? web.project!.health!.at) - 1000);
    expect(web.project!.health!.status).toBe('healthy');

    const pids = qemuPids(home).sort();
    expect(pids).toHaveLength(2);
    const again = await cli(home, ['up', '--trust'], { cwd: dir });
    expect(again.stdout).toBe('project demo: up to date (2 boxes running)\n');
    expect(again.code).toBe(0);
    expect(qemuPids(home).sort()).toEqual(pids);
    const replan = await cli(home, ['plan'], { cwd: dir });
    expect(replan.stdout).toBe('Project demo: no changes. The boxes match the project file.\n');
    expect(replan.code).toBe(0);
  });

  it('serves its published port, and its boxes are reachable by name from each other', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/`);
    expect(await res.text()).toBe('hello-from-web\n');
    const r = await cli(home, ['exec', 'worker', 'sh', '-c', 'wget -q -O - http://web/; grep " web " /etc/hosts'], { cwd: dir });
    expect(r.stdout).toBe('hello-from-web\n10.89.0.2 web demo.web\n');
    expect(r.code).toBe(0);
  });

  it('works by box name inside the folder: exec, ps, logs, stop/start; config prints the project', async () => {
    const ex = await cli(home, ['exec', 'web', 'cat', '/www/index.html'], { cwd: dir });
    expect(ex.stdout).toBe('hello-from-web\n');
    const ps = await cli(home, ['ps'], { cwd: dir });
    expect(ps.stdout).toMatch(/demo\.web\s+running.*demo\/web healthy/);
    expect(ps.stdout).toMatch(/demo\.worker\s+running.*demo\/worker/);
    const logs = await cli(home, ['logs', 'web'], { cwd: dir });
    expect(logs.stdout).toMatch(/--- boxlite: command started/);
    // Elsewhere, the same box by its global name, or with -p.
    expect((await cli(home, ['exec', 'demo.web', 'hostname'])).stdout).toBe('web\n');
    expect((await cli(home, ['-p', 'demo', 'exec', 'web', 'hostname'])).stdout).toBe('web\n');
    const cfg = await cli(home, ['config'], { cwd: dir });
    const p = JSON.parse(cfg.stdout);
    expect(p.name).toBe('demo');
    expect(p.boxes.web).toMatchObject({ memoryMib: 192, diskMib: 128, restart: 'always', command: ['sh', '-c', 'httpd -f -p 80 -h /www'] });
    // A box stopped and started by hand gets its command back.
    expect((await cli(home, ['restart', 'web'], { cwd: dir })).code).toBe(0);
    expect(await getText(`http://127.0.0.1:${port}/`)).toBe('hello-from-web\n');
  });

  it('applies an env edit in place, a memory edit with a restart, and says so in the plan', async () => {
    const before = records('demo');
    edit(dir, (s) => s.replace('    restart: always\n', '    restart: always\n    env: {GREETING: hello}\n').replace(/(worker:\n    image: \.\/rootfs\n    memory: )192MiB/, '$1256MiB'));
    const plan = await cli(home, ['plan'], { cwd: dir });
    expect(plan.stdout).toContain('  ~   web: update in place\n        env.GREETING: (unset) → "hello"');
    expect(plan.stdout).toContain('  ~   worker: restart\n        memory: 192MiB → 256MiB');
    expect(plan.code).toBe(2);
    const up = await cli(home, ['up', '--trust'], { cwd: dir });
    expect(up.code).toBe(0);
    const after = records('demo');
    const web = (rs: typeof after) => rs.find((r) => r.project!.box === 'web')!;
    const worker = (rs: typeof after) => rs.find((r) => r.project!.box === 'worker')!;
    expect(web(after).startedAt).toBe(web(before).startedAt); // not restarted
    expect(worker(after).startedAt).not.toBe(worker(before).startedAt);
    expect((await cli(home, ['exec', 'web', 'sh', '-c', 'echo $GREETING'], { cwd: dir })).stdout).toBe('hello\n');
    const mem = await cli(home, ['exec', 'worker', 'sh', '-c', "awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo"], { cwd: dir });
    expect(Number(mem.stdout)).toBeGreaterThan(200);
  });

  it('recreates on a setup change, keeping the old box aside under before_apply; keep prunes the oldest', async () => {
    fs.writeFileSync('/dev/null', '');
    await cli(home, ['exec', 'web', 'sh', '-c', 'echo precious > /root/work.txt'], { cwd: dir });
    edit(dir, (s) => s.replace('      - mkdir -p /www && echo hello-from-web > /www/index.html\n', '      - mkdir -p /www && echo hello-again > /www/index.html\n').replace('    restart: always\n', '    restart: always\n    snapshots: {before_apply: true, keep: 1}\n'));
    const plan = await cli(home, ['plan'], { cwd: dir });
    expect(plan.stdout).toMatch(/  \+ snapshot web@before-apply-\d{8}-\d{6} \(before_apply\)/);
    expect(plan.stdout).toContain('  -/+ web: recreate');
    expect(plan.stdout).toMatch(/the old box is kept, stopped, as demo\.web\.pre-\d{8}-\d{6}/);
    const up = await cli(home, ['up', '--trust', '--wait'], { cwd: dir });
    expect(up.code, up.stdout + up.stderr).toBe(0);
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('hello-again\n');
    const aside = records('demo').filter((r) => r.project!.retiredAt);
    expect(aside).toHaveLength(1);
    expect(aside[0].state).toBe('stopped');
    expect(aside[0].snapshots?.[0]).toMatchObject({ auto: true });
    expect(aside[0].options.volumes ?? []).toEqual([]); // the volume went to the new box
    // The old box still holds what was written in it.
    expect((await cli(home, ['start', aside[0].name])).code).toBe(0);
    expect((await cli(home, ['exec', aside[0].name, 'cat', '/root/work.txt'])).stdout).toBe('precious\n');
    expect((await cli(home, ['stop', aside[0].name])).code).toBe(0);
    // A second recreate: keep: 1 removes the first box kept aside.
    edit(dir, (s) => s.replace('hello-again', 'hello-third'));
    expect((await cli(home, ['up', '--trust'], { cwd: dir })).code).toBe(0);
    const aside2 = records('demo').filter((r) => r.project!.retiredAt);
    expect(aside2).toHaveLength(1);
    expect(aside2[0].id).not.toBe(aside[0].id);
  });

  it('keeps boxes no longer declared until --remove-orphans', async () => {
    const withoutWorker = (s: string) => s.replace(/  worker:\n(    .*\n|      .*\n)*/, '');
    edit(dir, withoutWorker);
    const plan = await cli(home, ['plan'], { cwd: dir });
    expect(plan.stdout).toContain("  ?   worker: orphan (kept)\n        (no longer declared: 'boxlite up --remove-orphans' removes it)");
    const up = await cli(home, ['up', '--trust'], { cwd: dir });
    expect(up.stderr).toContain('boxes no longer declared in boxlite.yaml: worker (kept');
    expect(records('demo').some((r) => r.project!.box === 'worker')).toBe(true);
    expect((await cli(home, ['up', '--trust', '--remove-orphans'], { cwd: dir })).code).toBe(0);
    expect(records('demo').some((r) => r.project!.box === 'worker')).toBe(false);
  });

  it('keeps a named volume across down --remove, and removes it with --volumes', async () => {
    await cli(home, ['exec', 'web', 'sh', '-c', 'echo kept > /data/note'], { cwd: dir });
    const down = await cli(home, ['down', '--remove'], { cwd: dir });
    expect(down.code).toBe(0);
    expect(records('demo')).toEqual([]);
    expect(qemuPids(home)).toEqual([]);
    expect((await cli(home, ['volume', 'ls'])).stdout).toMatch(/demo_data\s+32 MiB/);
    expect((await cli(home, ['up', '--trust', '--wait'], { cwd: dir })).code).toBe(0);
    expect((await cli(home, ['exec', 'web', 'cat', '/data/note'], { cwd: dir })).stdout).toBe('kept\n');
    // In use: refused.
    const rm = await cli(home, ['volume', 'rm', 'demo_data']);
    expect(rm.stderr).toContain('volume demo_data is in use by box demo.web: remove that box first');
    expect(rm.code).toBe(1);
    const stop = await cli(home, ['down'], { cwd: dir });
    expect(stop.stdout).toContain('web: stopped');
    expect(records('demo').map((r) => r.state)).toEqual(['stopped']);
    expect((await cli(home, ['down', '--volumes'], { cwd: dir })).stderr).toContain('--volumes removes the named volumes, so it needs --remove');
    expect((await cli(home, ['down', '--remove', '--volumes'], { cwd: dir })).code).toBe(0);
    expect((await cli(home, ['volume', 'ls'])).stdout).not.toContain('demo_data');
  });
});

describe('watch', () => {
  it('brings back a killed box, applies edits, survives an invalid edit, and leaves the boxes running on Ctrl-C', async () => {
    const p = await freePort();
    const dir = projectDir(WEB(p).replace('name: demo', 'name: watched').replace(/  worker:\n(    .*\n|      .*\n)*/, '').replace(/volumes:\n  data: .*\n/, '').replace('    volumes: ["data:/data"]\n', ''));
    const w = new CliProcess(home, ['up', '--trust', '--watch'], { cwd: dir, env: { BOXLITE_WATCH_POLL_MS: '500' } });
    try {
      await w.waitFor(/watching boxlite\.yaml/, 150_000);
      const [pid] = qemuPids(home).filter((x) => fs.readFileSync(`/proc/${x}/cmdline`, 'utf8').includes(records('watched')[0].id));
      process.kill(pid, 'SIGKILL');
      await w.waitFor(/web: exited \(killed: the VM process was killed by SIGKILL\); restart: always → starting it \(attempt 1\)/, 30_000);
      await w.waitFor(/web: running again/, 120_000);
      expect(await getText(`http://127.0.0.1:${p}/`)).toBe('hello-from-web\n');

      let mark = w.output.length;
      fs.appendFileSync(path.join(dir, 'boxlite.yaml'), '  oops: {imgae: x}\n');
      await w.waitFor(/\[\d\d:\d\d:\d\d\] the edit is not valid; the boxes stay as they are:\n  boxlite\.yaml:\d+:\d+: boxes\.oops\.imgae: unknown key "imgae" \(did you mean "image"\?\)/, 30_000, mark);
      expect(records('watched').map((r) => r.state)).toEqual(['running']);

      mark = w.output.length;
      edit(dir, (s) => s.replace('  oops: {imgae: x}\n', '').replace('    restart: always\n', '    restart: always\n    env: {MODE: watched}\n'));
      await w.waitFor(/\[\d\d:\d\d:\d\d\] boxlite\.yaml is valid again\n[\s\S]*env\.MODE: \(unset\) → "watched"[\s\S]*applied/, 60_000, mark);
      expect((await cli(home, ['exec', 'web', 'sh', '-c', 'echo $MODE'], { cwd: dir })).stdout).toBe('watched\n');

      // A command that dies is started again (restart: always).
      mark = w.output.length;
      await cli(home, ['exec', 'web', 'killall', 'httpd'], { cwd: dir });
      await w.waitFor(/web: its command exited with status \d+; restart: always → starting it again/, 30_000, mark);
      expect(await getText(`http://127.0.0.1:${p}/`)).toBe('hello-from-web\n');
    } finally {
      w.child.kill('SIGINT');
    }
    expect(await w.exited()).toBe(0);
    expect(w.output).toContain('watch ended; the boxes keep running');
    expect(records('watched').map((r) => r.state)).toEqual(['running']);
    await cli(home, ['down', '--remove'], { cwd: dir });
  });
});

describe('safety', () => {
  const TWO = `name: sturdy
boxes:
  a:
    image: ./rootfs
    memory: 192MiB
    disk: 128MiB
    setup:
      - echo provisioned > /root/state
  b:
    image: ./rootfs
    memory: 192MiB
    disk: 128MiB
    setup:
      - echo provisioned > /root/state
`;

  /** The project's declared boxes are there once each, running and provisioned, with nothing left over. */
  function converged(project: string, boxes: string[]): void {
    const recs = records(project);
    expect(recs.map((r) => `${r.project!.box} ${r.state} ${r.project!.setup}`).sort()).toEqual(boxes.map((b) => `${b} running done`));
    const dirs = fs.readdirSync(path.join(home, 'boxes'));
    const rt = quietRuntime(home);
    try {
      expect(dirs.sort()).toEqual(rt.list().map((r) => r.id).sort()); // no leaked disks
      expect(qemuPids(home)).toHaveLength(rt.list().filter((r) => r.state === 'running').length); // no orphan VMs
    } finally {
      rt.close();
    }
  }

  // Each kill lands exactly there: the CLI kills itself at the named moment and says so.
  it.each(['up:created', 'up:booted', 'up:setup-running'])('an up killed at %s is finished by the next up', async (moment) => {
    const dir = projectDir(TWO);
    try {
      await cliKilledAt(home, ['up', '--trust'], moment, { cwd: dir });
      const again = await cli(home, ['up', '--trust'], { cwd: dir });
      expect(again.code, again.stderr).toBe(0);
      converged('sturdy', ['a', 'b']);
      expect((await cli(home, ['exec', 'a', 'cat', '/root/state'], { cwd: dir })).stdout).toBe('provisioned\n');
    } finally {
      await cli(home, ['down', '--remove'], { cwd: dir });
    }
  });

  it('two up at once: the second waits for the first, and each box exists once', async () => {
    const dir = projectDir(TWO.replace(/  b:\n(    .*\n|      .*\n)*/, ''));
    const [r1, r2] = await Promise.all([cli(home, ['up', '--trust'], { cwd: dir }), cli(home, ['up', '--trust'], { cwd: dir })]);
    expect([r1.code, r2.code]).toEqual([0, 0]);
    expect(r1.stderr + r2.stderr).toMatch(/project sturdy is being changed by another boxlite process \(pid \d+\): waiting for it to finish/);
    expect(r1.stdout + r2.stdout).toContain('project sturdy: up to date (1 box running)');
    converged('sturdy', ['a']);
    await cli(home, ['down', '--remove'], { cwd: dir });
  });

  it('a snapshot policy: up takes one when the newest is older than every, and prunes beyond keep, never manual ones', async () => {
    const dir = projectDir('name: policy\nboxes:\n  db:\n    image: ./rootfs\n    memory: 192MiB\n    disk: 128MiB\n    snapshots: {every: 10s, keep: 1}\n');
    expect((await cli(home, ['up', '--trust'], { cwd: dir })).code).toBe(0);
    const autos = () => (records('policy')[0].snapshots ?? []).filter((s) => s.auto).map((s) => s.name);
    expect(autos()).toEqual([]); // a new box: the clock starts now
    ageBox(home, 'policy.db', 10_500); // as if 10.5 s had passed: the box and its snapshots are that much older
    const plan = await cli(home, ['plan'], { cwd: dir });
    expect(plan.stdout).toMatch(/  \+ snapshot db@auto-\d{8}-\d{6} \(the box is older than 10s and has no automatic snapshot\)/);
    expect(plan.code).toBe(2);
    expect((await cli(home, ['up', '--trust'], { cwd: dir })).code).toBe(0);
    const first = autos();
    expect(first).toHaveLength(1);
    expect((await cli(home, ['snapshot', 'create', 'db', 'mine'], { cwd: dir })).code).toBe(0);
    ageBox(home, 'policy.db', 10_500);
    const plan2 = await cli(home, ['plan'], { cwd: dir });
    expect(plan2.stdout).toContain(`  - snapshot db@${first[0]} (beyond keep: 1)`);
    expect((await cli(home, ['up', '--trust'], { cwd: dir })).code).toBe(0);
    const ls = await cli(home, ['snapshot', 'ls', 'db'], { cwd: dir });
    expect(ls.stdout).toContain('mine');
    expect(ls.stdout).not.toContain(first[0]);
    expect(autos()).toHaveLength(1);
    expect(autos()[0]).not.toBe(first[0]);
    await cli(home, ['down', '--remove'], { cwd: dir });
  });

  it('the same box name in two projects makes two boxes', async () => {
    const one = projectDir('name: one\nboxes:\n  web: {image: ./rootfs, memory: 192MiB, disk: 128MiB}\n');
    const two = projectDir('name: two\nboxes:\n  web: {image: ./rootfs, memory: 192MiB, disk: 128MiB}\n');
    expect((await cli(home, ['up', '--trust'], { cwd: one })).code).toBe(0);
    expect((await cli(home, ['up', '--trust'], { cwd: two })).code).toBe(0);
    expect((await cli(home, ['exec', 'web', 'hostname'], { cwd: one })).stdout).toBe('web\n');
    expect(records('one').map((r) => r.name)).toEqual(['one.web']);
    expect(records('two').map((r) => r.name)).toEqual(['two.web']);
    // Each project's LAN is its own: the same address, different segments.
    expect(records('one')[0].options.lan!.segment).not.toBe(records('two')[0].options.lan!.segment);
    await cli(home, ['down', '--remove'], { cwd: one });
    await cli(home, ['down', '--remove'], { cwd: two });
  });

  it('a failing setup stops that box, leaves it for inspection, and the next up makes it again', async () => {
    const dir = projectDir('name: broken\nboxes:\n  app:\n    image: ./rootfs\n    memory: 192MiB\n    disk: 128MiB\n    setup:\n      - echo step one\n      - echo about to fail >&2; exit 3\n');
    const up = await cli(home, ['up', '--trust'], { cwd: dir });
    expect(up.code).toBe(1);
    expect(up.stdout).toContain('app: about to fail');
    expect(up.stderr).toContain('✖ app: create [FAILED: setup command 2 (echo about to fail >&2; exit 3) failed with exit status 3: about to fail. The box is left running for inspection: boxlite exec app sh');
    expect(up.stderr.trimEnd().split('\n').at(-1)).toBe('✖ project broken: 1 of 1 box failed (app)');
    const [rec] = records('broken');
    expect(rec.state).toBe('running');
    expect(rec.project!.setup).toBe('failed');
    expect((await cli(home, ['exec', 'app', 'echo', 'inspectable'], { cwd: dir })).stdout).toBe('inspectable\n');
    const plan = await cli(home, ['plan'], { cwd: dir });
    expect(plan.stdout).toContain('  -/+ app: recreate\n        (its setup failed (setup command 2 (echo about to fail >&2; exit 3) failed with exit status 3: about to fail): made again from scratch)');
    edit(dir, (s) => s.replace('exit 3', 'true'));
    expect((await cli(home, ['up', '--trust'], { cwd: dir })).code).toBe(0);
    expect(records('broken').map((r) => r.project!.setup)).toEqual(['done']);
    await cli(home, ['down', '--remove'], { cwd: dir });
  });
});
