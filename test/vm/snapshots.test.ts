// Snapshots on a real box: taken while it runs (frozen, paused, resumed) and while it is stopped; restore brings
// the files back; names are checked; the CLI lists them. Then the box is exported, imported into another home
// and booted there.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cleanupHome, cli, makeRootfs, quietRuntime, testHome } from '../helpers.js';
import type { Box, Runtime } from '../../src/runtime/runtime.js';
import { SnapshotExistsError, SnapshotNotFoundError } from '../../src/core/errors.js';
import { BoxNotFoundError, InvalidOptionError } from '../../src/core/errors.js';

let home: string;
let rt: Runtime;
let rootfs: string;
let box: Box;

const sh = async (script: string) => (await box.exec(['sh', '-c', script])).stdout;

beforeAll(async () => {
  home = testHome();
  rt = quietRuntime(home);
  rootfs = makeRootfs();
  box = await rt.create({ rootfs, name: 'snap', memoryMib: 256, network: 'none' });
  await box.start();
});

afterAll(async () => {
  rt?.close();
  if (home) await cleanupHome(home);
  if (rootfs) fs.rmSync(rootfs, { recursive: true, force: true });
});

describe('snapshots', () => {
  it('a snapshot of a running box brings files back on restore, which restarts the box', async () => {
    await sh('mkdir -p /work && echo original > /work/a && head -c 1048576 /dev/urandom > /work/blob && md5sum /work/blob > /work/blob.md5');
    const s = await box.snapshots.create('before');
    expect(s.name).toBe('before');
    expect(box.info().state).toBe('running'); // resumed after the pause
    expect(await sh('echo still writable > /work/c && cat /work/c')).toBe('still writable\n');
    await sh('echo changed > /work/a; rm /work/blob; echo new > /work/b; sync');
    const r = await box.snapshots.restore('before');
    expect(r.restarted).toBe(true);
    expect(box.info().state).toBe('running');
    expect(await sh('cat /work/a; ls /work; md5sum -c /work/blob.md5')).toBe('original\na\nblob\nblob.md5\n/work/blob: OK\n');
  });

  it('snapshots a stopped box, lists through the CLI, and removes', async () => {
    await sh('echo v2 > /work/a');
    await box.stop();
    await box.snapshots.create('stopped-v2');
    await box.start();
    await sh('echo v3 > /work/a; sync');
    const ls = await cli(home, ['snapshot', 'ls', 'snap']);
    expect(ls.stdout).toMatch(/^NAME {8}CREATED {14}MEMORY  KIND\nbefore {6}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d {2}no {6}manual\nstopped-v2 {2}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d {2}no {6}manual\n$/); // aligned columns
    const restore = await cli(home, ['snapshot', 'restore', 'snap', 'stopped-v2']);
    expect(restore.code).toBe(0);
    expect(restore.stderr).toContain('snap was running: it was stopped, restored to "stopped-v2" and started again');
    expect(await sh('cat /work/a')).toBe('v2\n');
    // removing works on a running box; the others stay
    expect((await cli(home, ['snapshot', 'rm', 'snap', 'before'])).code).toBe(0);
    expect((await box.snapshots.list()).map((s) => s.name)).toEqual(['stopped-v2']);
  });

  it('refuses duplicate and unknown names, and unknown boxes, clearly', async () => {
    await expect(box.snapshots.create('stopped-v2')).rejects.toBeInstanceOf(SnapshotExistsError);
    await expect(box.snapshots.create('stopped-v2')).rejects.toThrow(`box snap already has a snapshot named "stopped-v2": choose another name, or remove it with 'boxlite snapshot rm snap stopped-v2'`);
    await expect(box.snapshots.restore('nope')).rejects.toBeInstanceOf(SnapshotNotFoundError);
    await expect(box.snapshots.restore('nope')).rejects.toThrow('box snap has no snapshot named "nope" (it has: stopped-v2)');
    await expect(box.snapshots.remove('nope')).rejects.toThrow('has no snapshot named "nope"');
    await expect(box.snapshots.create('bad name')).rejects.toBeInstanceOf(InvalidOptionError);
    expect(() => rt.get('no-such-box')).toThrow(BoxNotFoundError);
    const r = await cli(home, ['snapshot', 'create', 'no-such-box', 'x']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no-such-box');
    expect(box.info().state).toBe('running');
  });
});

describe('export and import', () => {
  it('moves a box to another home with its data; refuses truncated and tampered archives, leaving nothing', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-export-'));
    const other = testHome();
    try {
      await box.exec(['sh', '-c', 'echo exported-data > /work/exported; sync']);
      const running = await cli(home, ['export', 'snap', path.join(dir, 'x.tar')]);
      expect(running.code).toBe(1);
      expect(running.stderr).toContain("box snap is running: stop it first ('boxlite stop snap')");
      await box.stop();
      const file = path.join(dir, 'snap.tar');
      expect((await cli(home, ['export', 'snap', file])).code).toBe(0);
      expect(fs.readdirSync(dir)).toEqual(['snap.tar']);

      const imp = await cli(other, ['import', file, '--name', 'moved']);
      expect(imp.stdout).toBe('moved\n');
      const rt2 = quietRuntime(other);
      try {
        const moved = rt2.get('moved');
        expect(moved.info().options.memoryMib).toBe(256);
        await moved.start();
        expect((await moved.exec(['cat', '/work/exported'])).stdout).toBe('exported-data\n');
        await moved.remove({ force: true });
      } finally {
        rt2.close();
      }

      const data = fs.readFileSync(file);
      fs.writeFileSync(path.join(dir, 'cut.tar'), data.subarray(0, data.length >> 1));
      const cut = await cli(other, ['import', path.join(dir, 'cut.tar')]);
      expect(cut.code).toBe(1);
      expect(cut.stderr).toMatch(/box archive .*cut\.tar (is truncated or corrupt|has no manifest).*nothing was imported/);
      const bad = Buffer.from(data);
      bad[4096 + 700] ^= 0xff; // inside the disk part
      fs.writeFileSync(path.join(dir, 'bad.tar'), bad);
      const tampered = await cli(other, ['import', path.join(dir, 'bad.tar')]);
      expect(tampered.code).toBe(1);
      expect(tampered.stderr).toContain('part disk.qcow2 does not match its checksum (the archive was changed or damaged); nothing was imported');
      expect(fs.readdirSync(path.join(other, 'boxes'))).toEqual([]);
    } finally {
      await cleanupHome(other);
      fs.rmSync(dir, { recursive: true, force: true });
      if (box.info().state !== 'running') await box.start();
    }
  });
});

describe('disk growth', () => {
  it('grows a stopped box disk, and the file system follows at the next start, snapshots kept', async () => {
    const before = Number((await box.exec(['sh', '-c', "df -m / | awk 'NR==2 {print $2}'"])).stdout);
    await expect(box.resize(3072)).rejects.toThrow("box snap is running: stop it first ('boxlite stop snap'), then resize");
    await box.stop();
    await expect(box.resize(1024)).rejects.toThrow('box snap: disks only grow (it has 2048 MiB, asked for 1024 MiB)');
    const r = await cli(home, ['resize', '--disk', '3072', 'snap']);
    expect(r.code).toBe(0);
    await box.start();
    const after = Number((await box.exec(['sh', '-c', "df -m / | awk 'NR==2 {print $2}'"])).stdout);
    expect(before).toBeLessThan(2100);
    expect(after).toBeGreaterThan(2900);
    expect((await box.exec(['cat', '/work/exported'])).stdout).toBe('exported-data\n');
    expect((await box.snapshots.list()).map((s) => s.name)).toEqual(['stopped-v2']);
  });
});
