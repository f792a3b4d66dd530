// Habits a compose user brings, through the CLI as they type it: profiles that keep boxes out of a default up,
// a watch that does not apply an edit up would fail on, `start` of a box whose dependency must be healthy first,
// and an up whose box cannot boot leaving no record behind.
import * as os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, CliProcess } from '../helpers.js';
import { ProjectFixture } from '../project-fixture.js';

let fx: ProjectFixture;
const SMALL = '    image: ./rootfs\n    memory: 192MiB\n    disk: 128MiB\n';
/** stderr's lines without the notice that boxes run under TCG on this machine. */
const lines = (s: string) => s.trimEnd().split('\n').filter((l) => l && !/software emulation/.test(l));
const names = (project: string) => fx.records(project).map((r) => r.project!.box);

/** Runs `up --watch` in dir while edit() edits the file: edit(change, seen) makes a change and waits until the
 *  watch prints what matches seen after it. The watch ends with SIGINT, cleanly, and the project is taken down. */
async function underWatch(dir: string, steps: (edit: (change: (s: string) => string, seen: RegExp, timeoutMs: number) => Promise<void>) => Promise<void>): Promise<void> {
  const w = new CliProcess(fx.home, ['up', '--watch'], { cwd: dir, env: { BOXLITE_WATCH_POLL_MS: '500' } });
  try {
    await w.waitFor(/watching boxlite\.yaml/, 150_000);
    await steps(async (change, seen, timeoutMs) => {
      const mark = w.output.length;
      fx.edit(dir, change);
      await w.waitFor(seen, timeoutMs, mark);
    });
  } finally {
    w.child.kill('SIGINT');
  }
  expect(await w.exited()).toBe(0);
  expect((await cli(fx.home, ['down', '--remove'], { cwd: dir })).code).toBe(0);
}

beforeAll(() => {
  fx = new ProjectFixture();
});

afterAll(async () => {
  await fx.cleanup();
});

describe('profiles', () => {
  it('keep a box out of a default up until asked for; a watch refuses an edit up would fail on', async () => {
    const dir = fx.dir(`name: prof\nboxes:\n  a:\n${SMALL}  tools:\n${SMALL}    profiles: [debug]\n`);
    const plan = await cli(fx.home, ['plan'], { cwd: dir });
    const planned = plan.stdout.split('reaches outside')[0]; // the approval covers the whole file, tools too
    expect(planned).toMatch(/\+\s+a: create/);
    expect(planned).not.toContain('tools');

    expect((await cli(fx.home, ['up', '--trust'], { cwd: dir })).code).toBe(0);
    expect(names('prof')).toEqual(['a']);
    const withProfile = await cli(fx.home, ['up', '--profile', 'debug'], { cwd: dir });
    expect(withProfile.code).toBe(0);
    expect(withProfile.stdout).toMatch(/\+\s+tools: create/);
    expect(names('prof')).toEqual(['a', 'tools']);

    // A box its profile keeps out is not an orphan, and is left as it is.
    const again = await cli(fx.home, ['up'], { cwd: dir });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('project prof: up to date (1 box running)');
    expect(again.stderr).not.toContain('no longer declared');
    expect((await cli(fx.home, ['plan'], { cwd: dir, env: { BOXLITE_PROFILES: 'debug' } })).code).toBe(0);

    const unknown = await cli(fx.home, ['up', '--profile', 'nope'], { cwd: dir });
    expect(unknown.code).toBe(1);
    expect(lines(unknown.stderr)[0]).toBe('boxlite: no profile "nope" in boxlite.yaml: its profiles are debug');

    // The watch checks an edit as up's plan does: an image that is not there is not applied, and says why.
    await underWatch(dir, async (edit) => {
      await edit((s) => `${s}  b:\n    image: ./missing\n`, /the edit is not applied; 'up' would fail, so the boxes stay as they are:\n  ✖ b: image \/\S+\/missing does not exist/, 60_000);
      expect(names('prof')).toEqual(['a', 'tools']);
      await edit((s) => s.replace('  b:\n    image: ./missing\n', ''), /boxlite\.yaml is valid again/, 60_000);
    });
  });
});

describe('replicas', () => {
  it('make NAME-1 … NAME-N, each reachable by name; an edit of N under watch scales them up and down', async () => {
    const web = `${SMALL}    setup: mkdir -p /www && hostname > /www/index.html\n    command: httpd -f -p 80 -h /www\n`;
    const dir = fx.dir(`name: rep\nboxes:\n  web:\n${web}    replicas: 2\n`);
    const get = (from: string, to: string) => cli(fx.home, ['exec', from, 'wget', '-q', '-O', '-', `http://${to}/`], { cwd: dir }).then((r) => r.stdout);
    const up = await cli(fx.home, ['up', '--trust'], { cwd: dir });
    expect(up.code).toBe(0);
    expect(fx.records('rep').map((r) => `${r.project!.box} ${r.state}`)).toEqual(['web-1 running', 'web-2 running']);
    expect(await get('web-1', 'web-2')).toBe('web-2\n');

    await underWatch(dir, async (edit) => {
      await edit((s) => s.replace('replicas: 2', 'replicas: 3'), /\+\s+web-3: create[\s\S]*\] applied\n/, 150_000);
      expect(names('rep')).toEqual(['web-1', 'web-2', 'web-3']);
      expect(await get('web-3', 'web-1')).toBe('web-1\n');
      expect(await get('web-1', 'web-3')).toBe('web-3\n'); // the running ones learnt the new name
      await edit((s) => s.replace('replicas: 3', 'replicas: 1'), /-\s+web-2: remove\s+\(web is scaled to 1\)[\s\S]*\] applied\n/, 150_000);
      expect(names('rep')).toEqual(['web-1']);
    });
  });
});

describe('start', () => {
  it('waits for a dependency to be healthy first, and says why not when it is not', async () => {
    const dir = fx.dir(`name: hdep\nboxes:\n  db:\n${SMALL}    setup: touch /ok\n    healthcheck: {test: cat /ok, interval: 200ms, retries: 2}\n  web:\n${SMALL}    depends_on: {db: {condition: healthy}}\n`);
    expect((await cli(fx.home, ['up', '--trust'], { cwd: dir })).code).toBe(0);
    expect((await cli(fx.home, ['exec', 'db', 'rm', '/ok'], { cwd: dir })).code).toBe(0);
    expect((await cli(fx.home, ['stop', 'web', 'db'], { cwd: dir })).code).toBe(0);

    const sick = await cli(fx.home, ['start', 'web'], { cwd: dir });
    expect(sick.code).toBe(1);
    expect(lines(sick.stderr)).toEqual([
      'boxlite: starting db first (web depends on it)',
      'boxlite: waiting for db to be healthy (web depends on it)',
      "boxlite: web not started: it depends on db, which did not become healthy (its last check said: exit status 1: cat: can't open '/ok': No such file or directory): see 'boxlite ps' and 'boxlite logs db'",
    ]);
    expect(fx.records('hdep').map((r) => `${r.project!.box} ${r.state}`)).toEqual(['db running', 'web stopped']);

    expect((await cli(fx.home, ['exec', 'db', 'touch', '/ok'], { cwd: dir })).code).toBe(0);
    const well = await cli(fx.home, ['start', 'web'], { cwd: dir });
    expect(well.code).toBe(0);
    expect(lines(well.stderr)).toEqual(['boxlite: waiting for db to be healthy (web depends on it)']);
    expect(fx.records('hdep').map((r) => `${r.project!.box} ${r.state}`)).toEqual(['db running', 'web running']);
    await cli(fx.home, ['down', '--remove'], { cwd: dir });
  });
});

describe('plan', () => {
  it("finds a secret whose variable is not set before anything is made, once the file's reach is approved", async () => {
    const dir = fx.dir(`name: sec\nboxes:\n  a:\n${SMALL}    secrets:\n      TOKEN: {env: BOXLITE_TEST_NOT_SET, hosts: [api.example.com]}\n`);
    const env = { BOXLITE_TEST_NOT_SET: '' };
    // Not approved yet: the plan names the variable as a reach to approve, and does not look it up.
    const first = await cli(fx.home, ['plan'], { cwd: dir, env });
    expect(first.code).toBe(2);
    expect(first.stdout).toContain("the host's variable BOXLITE_TEST_NOT_SET");
    const said = 'secret TOKEN comes from the environment variable BOXLITE_TEST_NOT_SET, which is not set here: set it in the environment of this command and run it again';
    const up = await cli(fx.home, ['up', '--trust'], { cwd: dir, env });
    expect(up.code).toBe(1);
    expect(lines(up.stderr)).toEqual([`✖ a: ${said}`, '✖ project sec: nothing was made (1 problem found by the plan)']);
    expect(fx.records('sec')).toEqual([]);
    const plan = await cli(fx.home, ['plan'], { cwd: dir, env });
    expect(plan.code).toBe(1);
    expect(lines(plan.stderr)).toEqual([`✖ a: ${said}`, "✖ project sec: 'up' would fail (1 problem found by the plan)"]);
  });
});

describe('a box that cannot boot', () => {
  it('is removed when its first start fails, and the error says so', async () => {
    // More memory than the host has and can swap: QEMU cannot set it up.
    const gib = Math.ceil(os.totalmem() / 2 ** 30) * 4;
    const dir = fx.dir(`name: huge\nboxes:\n  a:\n    image: ./rootfs\n    memory: ${gib}GiB\n    disk: 128MiB\n`);
    const up = await cli(fx.home, ['up', '--trust'], { cwd: dir });
    expect(up.code).toBe(1);
    const err = lines(up.stderr);
    expect(err.find((l) => l.startsWith('✖ a: create [FAILED:'))).toMatch(/ \(the box never started, so it was removed: 'boxlite up' makes it again\)\]?$/);
    expect(err.at(-1)).toBe('✖ project huge: 1 of 1 box failed (a)');
    expect(fx.records('huge')).toEqual([]);
    expect((await cli(fx.home, ['plan'], { cwd: dir })).stdout).toMatch(/\+\s+a: create/);
  });
});
