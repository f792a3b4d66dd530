// boxlite.lock on a real registry: a tag moved after `lock` changes nothing until `lock --update`, which plan then
// shows as a recreate; `up --locked` refuses a box whose image the lock does not pin; a broken lock is named.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, cli, makeOciLayout, makeRootfs, testHome } from '../helpers.js';
import { push, startRegistry, type Registry } from '../registry.js';

let home: string;
let reg: Registry;
let dir: string;

/** An image whose /version says which push it was. */
async function pushVersion(v: string): Promise<void> {
  const root = makeRootfs();
  fs.writeFileSync(path.join(root, 'version'), `${v}\n`);
  await push(reg, makeOciLayout(root, { Cmd: ['sh'] }), 'tool:1');
  fs.rmSync(root, { recursive: true, force: true });
}

beforeAll(async () => {
  home = testHome();
  reg = await startRegistry();
  await pushVersion('one');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-lock-'));
  fs.writeFileSync(path.join(dir, 'boxlite.yaml'), `name: pinned\nboxes:\n  app: {image: ${reg.host}/tool:1, memory: 192MiB, disk: 256MiB}\n`);
});

afterAll(async () => {
  if (dir) await cli(home, ['down', '--remove'], { cwd: dir });
  await reg?.stop();
  if (home) await cleanupHome(home);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('boxlite.lock', () => {
  it('pins a tag: a moved tag changes nothing until lock --update, which plan shows as a recreate', async () => {
    const noLock = await cli(home, ['up', '--trust', '--locked'], { cwd: dir });
    expect(noLock.code).toBe(1);
    expect(noLock.stderr).toContain("there is no");
    expect(noLock.stderr).toContain("boxlite lock");

    const lock = await cli(home, ['lock'], { cwd: dir });
    expect(lock.code, lock.stderr).toBe(0);
    const ref = `${reg.host}/tool:1`;
    const first = JSON.parse(fs.readFileSync(path.join(dir, 'boxlite.lock'), 'utf8'));
    expect(first.version).toBe(1);
    expect(first.images[ref]).toEqual({ digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), platform: 'linux/amd64' });
    expect(lock.stdout).toContain(`${ref}: ${first.images[ref].digest} (added)`);

    expect((await cli(home, ['up', '--trust', '--locked'], { cwd: dir })).code).toBe(0);
    const version = async () => (await cli(home, ['exec', 'app', 'cat', '/version'], { cwd: dir })).stdout;
    expect(await version()).toBe('one\n');

    // The tag moves on the registry.
    await pushVersion('two');
    const plan = await cli(home, ['plan'], { cwd: dir });
    expect(plan.code, plan.stdout).toBe(0); // nothing to do: the lock still pins the first image
    expect((await cli(home, ['up', '--trust'], { cwd: dir })).code).toBe(0);
    expect(await version()).toBe('one\n');
    // lock without --update keeps what is locked.
    expect((await cli(home, ['lock'], { cwd: dir })).stdout).toContain('(kept)');

    const update = await cli(home, ['lock', '--update'], { cwd: dir });
    expect(update.stdout).toContain('(updated)');
    const second = JSON.parse(fs.readFileSync(path.join(dir, 'boxlite.lock'), 'utf8'));
    expect(second.images[ref].digest).not.toBe(first.images[ref].digest);
    const replan = await cli(home, ['plan'], { cwd: dir });
    expect(replan.code).toBe(2);
    expect(replan.stdout).toMatch(/ app: recreate/);
    expect(replan.stdout).toContain("1 to recreate");
    expect(replan.stdout).toContain(second.images[ref].digest);
    expect((await cli(home, ['up', '--trust'], { cwd: dir })).code).toBe(0);
    expect(await version()).toBe('two\n');
  });

  it('up --locked refuses a box whose image is not in the lock, naming it; a broken lock is named with its fix', async () => {
    const yaml = fs.readFileSync(path.join(dir, 'boxlite.yaml'), 'utf8');
    fs.writeFileSync(path.join(dir, 'boxlite.yaml'), `${yaml}  extra: {image: ${reg.host}/other:2}\n`);
    try {
      const r = await cli(home, ['up', '--trust', '--locked'], { cwd: dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`--locked: box extra's image ${reg.host}/other:2 is not in`);
      expect(r.stderr).toContain("run 'boxlite lock'");
    } finally {
      fs.writeFileSync(path.join(dir, 'boxlite.yaml'), yaml);
    }
    const good = fs.readFileSync(path.join(dir, 'boxlite.lock'), 'utf8');
    try {
      fs.writeFileSync(path.join(dir, 'boxlite.lock'), '{"version": 1, "images": {"x": {"digest": "latest"}}}');
      const bad = await cli(home, ['plan'], { cwd: dir });
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain('boxlite.lock: the entry for "x" has no valid digest');
      expect(bad.stderr).toContain("boxlite lock --update");
      expect(bad.stderr).not.toMatch(/\n\s+at /); // no stack trace
      // The fix it names works: --update writes the lock afresh.
      const fixed = await cli(home, ['lock', '--update'], { cwd: dir });
      expect(fixed.code, fixed.stderr).toBe(0);
      expect(fixed.stderr).toContain('writing it afresh');
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'boxlite.lock'), 'utf8')).images.x).toBeUndefined();
      // A lock made for another platform would not boot here: refused, naming the fix.
      const foreign = JSON.parse(good);
      for (const v of Object.values(foreign.images) as { platform: string }[]) v.platform = 'linux/arm64';
      fs.writeFileSync(path.join(dir, 'boxlite.lock'), JSON.stringify(foreign));
      const arm = await cli(home, ['plan'], { cwd: dir });
      expect(arm.code).toBe(1);
      expect(arm.stderr).toContain("for linux/arm64, but boxes run linux/amd64: run 'boxlite lock --update' on this host");
    } finally {
      fs.writeFileSync(path.join(dir, 'boxlite.lock'), good);
    }
  });
});
