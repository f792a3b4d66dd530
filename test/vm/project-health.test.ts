// Health in `ps` as a compose user reads it, exec -t without a terminal, plan naming the box that holds a host
// port, on one booted box (and up/down of some boxes of a project, on their own): `starting` until a
// check of this run passes, nothing for a stopped box, `unhealthy` with the last check's output; and -t fed by a
// pipe says so instead of waiting for input that never comes.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers.js';
import { ProjectFixture } from '../project-fixture.js';

let fx: ProjectFixture;
let dir: string;

// /dev/shm is a fresh tmpfs on every boot, so the check fails after each start until the file is made again. The
// hour-long interval means ps checks only when told the last check is that old (see checkedAgo).
const YAML = (port: number) => `name: clinic
boxes:
  web:
    image: ./rootfs
    memory: 192MiB
    disk: 128MiB
    ports: ["${port}:80"]
    healthcheck: {test: cat /dev/shm/ok, interval: 1h, retries: 2}
`;
let port: number;

beforeAll(async () => {
  fx = new ProjectFixture();
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen({ host: '127.0.0.1', port: 0 }, r));
  port = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  dir = fx.dir(YAML(port));
  const up = await cli(fx.home, ['up', '--trust'], { cwd: dir });
  expect(up.code, up.stdout + up.stderr).toBe(0);
});

afterAll(async () => {
  await cli(fx.home, ['down', '--remove'], { cwd: dir });
  await fx.cleanup();
});

/** Makes the box's last check look an interval old, as if that time had passed: ps then checks again. */
function checkedAgo(): void {
  const file = path.join(fx.home, 'boxes', fx.records('clinic')[0].id, 'box.json');
  const rec = JSON.parse(fs.readFileSync(file, 'utf8'));
  rec.label.health.at = new Date(Date.parse(rec.label.health.at) - 3_600_000).toISOString();
  fs.writeFileSync(file, JSON.stringify(rec, null, 2));
}

/** The PROJECT column of web's row in `ps`. */
async function project(...args: string[]): Promise<string> {
  const ps = await cli(fx.home, ['ps', ...args], { cwd: dir });
  expect(ps.code, ps.stderr).toBe(0);
  const row = ps.stdout.split('\n').find((l) => l.includes('clinic/web'));
  expect(row, ps.stdout).toBeDefined();
  return row!.slice(row!.indexOf('clinic/web')).trimEnd();
}

describe('health in ps', () => {
  it('starting before a check passed, healthy once one did, nothing when stopped, starting again after start', async () => {
    expect(await project()).toBe('clinic/web starting');
    expect((await cli(fx.home, ['exec', 'web', 'touch', '/dev/shm/ok'], { cwd: dir })).code).toBe(0);
    checkedAgo();
    expect(await project()).toBe('clinic/web healthy');

    expect((await cli(fx.home, ['stop', 'web'], { cwd: dir })).code).toBe(0);
    expect(await project('-a')).toBe('clinic/web');

    expect((await cli(fx.home, ['start', 'web'], { cwd: dir })).code).toBe(0);
    expect(await project()).toBe('clinic/web starting');
    checkedAgo();
    expect(await project()).toBe("clinic/web unhealthy (exit status 1: cat: can't open '/dev/shm/ok': No such file or directory)");
  });
});

describe('exec -t without a terminal', () => {
  it('says so at once instead of waiting', async () => {
    const t = await cli(fx.home, ['exec', '-t', 'web', 'sh', '-c', 'cat'], { cwd: dir, input: 'hi\n' });
    expect(t.code).toBe(125);
    expect(t.stderr.split('\n')[0]).toBe('boxlite: -t: stdin is not a terminal, so the command would wait for input that never comes: use -i to send stdin to it, or -it from a terminal');
    const it2 = await cli(fx.home, ['exec', '-it', 'web', 'sh', '-c', 'cat'], { cwd: dir, input: 'hi\n' });
    expect(it2.code).toBe(125);
    expect(it2.stderr.split('\n')[0]).toBe('boxlite: -t: stdin is not a terminal: drop -t and send it with -i alone');
    const i = await cli(fx.home, ['exec', '-i', 'web', 'sh', '-c', 'cat'], { cwd: dir, input: 'hi\n' });
    expect(i.code).toBe(0);
    expect(i.stdout).toBe('hi\n');
  });
});

describe('a host port another box holds', () => {
  it('plan names the box; up makes nothing', async () => {
    const other = fx.dir(`name: rival\nboxes:\n  api:\n    image: ./rootfs\n    ports: ["${port}:8080"]\n`);
    const line = `✖ api: host port ${port} is held by box clinic.web (running): stop it (boxlite stop clinic.web) or pick another host port`;
    const plan = await cli(fx.home, ['plan'], { cwd: other });
    expect(plan.code).toBe(1);
    expect(plan.stderr.trimEnd().split('\n')).toEqual([line, "✖ project rival: 'up' would fail (1 problem found by the plan)"]);
    const up = await cli(fx.home, ['up', '--trust'], { cwd: other });
    expect(up.code).toBe(1);
    expect(up.stderr.trimEnd().split('\n')).toEqual([line, '✖ project rival: nothing was made (1 problem found by the plan)']);
    expect(fx.records('rival')).toEqual([]);
  });
});

describe('up BOX…, down BOX…, start of a dependant', () => {
  it('up b makes b and what it depends on, nothing else; down a stops only a; start b starts a first', async () => {
    const box = (n: string, more = '') => `  ${n}:\n    image: ./rootfs\n    memory: 192MiB\n    disk: 128MiB\n${more}`;
    const pair = fx.dir(`name: pair\nboxes:\n${box('a')}${box('b', '    depends_on: [a]\n')}${box('c')}`);
    const wrong = await cli(fx.home, ['up', '--trust', 'zz'], { cwd: pair });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr.split('\n')[0]).toBe('boxlite: no box "zz" in boxlite.yaml: its boxes are a, b, c');

    const up = await cli(fx.home, ['up', '--trust', 'b'], { cwd: pair });
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout.split('\n')[0]).toBe('Project pair: boxlite up will');
    expect(up.stdout).toContain('✔ a: create');
    expect(up.stdout).toContain('✔ b: create');
    expect(up.stdout).not.toContain('c: create');
    expect(fx.records('pair').map((r) => [r.project!.box, r.state])).toEqual([['a', 'running'], ['b', 'running']]);

    const down = await cli(fx.home, ['down', 'a'], { cwd: pair });
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toBe('a: stopped\n');
    expect(fx.records('pair').map((r) => [r.project!.box, r.state])).toEqual([['a', 'stopped'], ['b', 'running']]);

    // start of a box whose depends_on is stopped starts that first
    expect((await cli(fx.home, ['stop', 'b'], { cwd: pair })).code).toBe(0);
    const start = await cli(fx.home, ['start', 'b'], { cwd: pair });
    expect(start.code, start.stderr).toBe(0);
    expect(start.stderr.split('\n')[0]).toBe('boxlite: starting a first (b depends on it)');
    expect(start.stdout).toBe('b\n');
    expect(fx.records('pair').map((r) => [r.project!.box, r.state])).toEqual([['a', 'running'], ['b', 'running']]);
    await cli(fx.home, ['down', '--remove'], { cwd: pair });
  });
});
