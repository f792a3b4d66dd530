// A cloned project file is not trusted with the host until the user says so: up refuses what reaches outside the
// project folder, naming each part and `boxlite trust`; a self-contained project needs nothing; and a box that
// can write its own project folder cannot widen its reach by editing boxlite.yaml under `up --watch`.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, cli, CliProcess, makeRootfs, qemuPids, quietRuntime, testHome } from '../helpers.js';

let home: string;
let dir: string;

const PROJECT = (extra = '') => `name: cloned
boxes:
  agent:
    image: ./rootfs
    memory: 192MiB
    disk: 128MiB
    volumes: ["./:/work"${extra}]
    command: sleep 100000
`;

beforeAll(() => {
  home = testHome();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-trust-'));
  makeRootfs(path.join(dir, 'rootfs'));
});

afterAll(async () => {
  await cleanupHome(home);
  fs.rmSync(dir, { recursive: true, force: true });
});

const records = () => quietRuntime(home).records.list();

describe('a cloned project file', () => {
  it('that mounts a host folder outside it is refused by up, part by part, and nothing is made', async () => {
    fs.writeFileSync(path.join(dir, 'boxlite.yaml'), PROJECT(', "/etc:/hostetc"'));
    const plan = await cli(home, ['plan'], { cwd: dir });
    expect(plan.stdout).toMatch(/reaches outside the project — up refuses until approved with 'boxlite trust' \([0-9a-f]{16}\):\n  ! agent: volumes\[1\] → host folder \/etc \(read-write\)/);
    const up = await cli(home, ['up'], { cwd: dir });
    expect(up.code).toBe(1);
    expect(up.stderr).toMatch(/^boxlite: boxlite\.yaml reaches outside its folder in ways not approved on this machine:\n  agent: volumes\[1\] → host folder \/etc \(read-write\)\nread the file, then approve: boxlite trust \(or up --trust; in CI BOXLITE_TRUST=[0-9a-f]{16}\)\n$/);
    expect(records()).toEqual([]);
    expect(qemuPids(home)).toEqual([]);
  });

  it('that keeps to its folder comes up with no approval; under --watch its box cannot add a host folder to it', async () => {
    fs.writeFileSync(path.join(dir, 'boxlite.yaml'), PROJECT());
    const w = new CliProcess(home, ['up', '--watch'], { cwd: dir, env: { BOXLITE_WATCH_POLL_MS: '500' } });
    try {
      await w.waitFor(/watching boxlite\.yaml/, 150_000);
      const mark = w.output.length;
      // The box writes its own project file (it is mounted at /work): it asks for the host's root.
      const write = await cli(home, ['exec', 'agent', 'sh', '-c', `sed -i 's#"./:/work"#"./:/work", "/:/host"#' /work/boxlite.yaml && grep -c /host /work/boxlite.yaml`], { cwd: dir });
      expect(write.stdout).toBe('1\n');
      await w.waitFor(/the edit is not applied; the boxes stay as they are:\nboxlite\.yaml reaches outside its folder in ways not approved on this machine:\n  agent: volumes\[1\] → host folder \/ \(read-write\)/, 60_000, mark);
      expect(w.output.slice(mark)).not.toMatch(/: recreate|\] applied/);
      const ls = await cli(home, ['exec', 'agent', 'sh', '-c', 'test -e /host/etc/shadow && echo reached || echo not-reached'], { cwd: dir });
      expect(ls.stdout).toBe('not-reached\n');
      const rec = records().find((r) => r.name === 'cloned.agent')!;
      expect((rec.options.binds ?? []).map((b) => b.hostPath)).toEqual([dir]);
    } finally {
      w.child.kill('SIGINT');
      await w.exited();
    }
    expect(w.output).toContain('watch ended; the boxes keep running');
    expect((await cli(home, ['down', '--remove'], { cwd: dir })).code).toBe(0);
  });
});
