// Clones on real boxes: copy-on-write copies of a stopped or running box, or of a snapshot, that diverge from
// their source and from each other; snapshots taken before a clone; bad input; and a CLI killed mid-clone.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { CLI } from '../paths.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, cli, cliKilledAt, makeRootfs, testHome } from '../helpers.js';

let home: string;
let rootfs: string;

beforeAll(async () => {
  home = testHome();
  rootfs = makeRootfs();
  expect((await cli(home, ['create', '--name', 'src', '-m', '192', '--disk', '256', rootfs])).code).toBe(0);
  expect((await cli(home, ['start', 'src'])).code).toBe(0);
  await cli(home, ['exec', 'src', 'sh', '-c', 'echo one > /root/state; head -c 5000000 /dev/urandom > /root/blob; md5sum /root/blob > /root/blob.md5; sync']);
});

afterAll(async () => {
  await cleanupHome(home);
  fs.rmSync(rootfs, { recursive: true, force: true });
});

/** The clone layers (qcow2) under the home; a folder box's base is a layer too, but not one a clone makes. */
const layers = () => (fs.existsSync(path.join(home, 'layers')) ? fs.readdirSync(path.join(home, 'layers')).filter((f) => f.endsWith('.qcow2')) : []);
/** Every file under layers/ that a box's disk reads from. */
function chainLayers(box: string): string[] {
  const rec = JSON.parse(execFileSync(process.execPath, [CLI, 'inspect', box], { env: { ...process.env, BOXLITE_HOME: home } }).toString());
  const chain = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--backing-chain', '--output=json', path.join(rec.dir, 'disk.qcow2')]).toString()) as { filename: string }[];
  return chain.map((c) => c.filename).filter((f) => f.startsWith(path.join(home, 'layers') + path.sep)).map((f) => path.basename(f)).sort();
}
const cat = async (box: string, file = '/root/state') => (await cli(home, ['exec', box, 'cat', file])).stdout;

describe('boxlite clone', () => {
  it('clones a running box: the clones start from its state, diverge, and the source keeps working', async () => {
    await cli(home, ['snapshot', 'create', 'src', 'first']);
    await cli(home, ['exec', 'src', 'sh', '-c', 'echo two > /root/state; sync']);
    const r = await cli(home, ['clone', 'src', 'c', '--count', '2']);
    expect(r.stdout).toBe('c-1\nc-2\n');
    expect(r.stderr).toMatch(/2 clones of src in \d+ ms, sharing its disk copy-on-write/);
    expect(r.code).toBe(0);
    // The source never stopped.
    expect((await cli(home, ['exec', 'src', 'sh', '-c', 'echo three > /root/state; cat /root/state'])).stdout).toBe('three\n');
    for (const c of ['c-1', 'c-2']) {
      expect((await cli(home, ['start', c])).code).toBe(0);
      expect(await cat(c)).toBe('two\n');
      expect((await cli(home, ['exec', c, 'md5sum', '-c', '/root/blob.md5'])).stdout).toBe('/root/blob: OK\n');
      await cli(home, ['exec', c, 'sh', '-c', `echo mine-${c} > /root/state`]);
    }
    expect(await cat('c-1')).toBe('mine-c-1\n');
    expect(await cat('c-2')).toBe('mine-c-2\n');
    expect(await cat('src')).toBe('three\n');
    // One shared layer, whatever the count.
    expect(layers()).toHaveLength(1);
    const info = JSON.parse((await cli(home, ['inspect', 'c-1'])).stdout);
    expect(info.source).toMatchObject({ kind: 'disk', origin: 'cloned from src' });
  });

  it('clones a snapshot; a snapshot taken before a clone is shared: restorable, and removable once no clone needs it', async () => {
    const ls = await cli(home, ['snapshot', 'ls', 'src']);
    expect(ls.stdout).toMatch(/first .* manual \(taken before a clone: shared\)/);
    const r = await cli(home, ['clone', 'src@first', 'atfirst']);
    expect(r.code, r.stderr).toBe(0);
    expect((await cli(home, ['start', 'atfirst'])).code).toBe(0);
    expect(await cat('atfirst')).toBe('one\n');

    const rm = await cli(home, ['snapshot', 'rm', 'src', 'first']);
    expect(rm.stderr).toContain('boxlite: snapshot "first" of box src was taken before the box was cloned and lives in the disk layer that boxes c-1, c-2 are made from: remove them first');
    expect(rm.code).toBe(1);

    const restore = await cli(home, ['snapshot', 'restore', 'src', 'first']);
    expect(restore.code, restore.stderr).toBe(0);
    expect(await cat('src')).toBe('one\n');
    expect(await cat('c-1')).toBe('mine-c-1\n'); // the clones are untouched

    for (const c of ['c-1', 'c-2', 'atfirst']) expect((await cli(home, ['rm', '-f', c])).code).toBe(0);
    expect((await cli(home, ['stop', 'src'])).code).toBe(0);
    expect((await cli(home, ['snapshot', 'rm', 'src', 'first'])).code).toBe(0);
    // Only what the source still reads from is left: its base and the layer of the snapshot's view it restored.
    expect(fs.readdirSync(path.join(home, 'layers')).sort()).toEqual(chainLayers('src'));
    expect(layers()).toHaveLength(1);
    expect((await cli(home, ['start', 'src'])).code).toBe(0);
    expect(await cat('src')).toBe('one\n');
  });

  it('refuses an unknown box or snapshot, a taken name and a bad count, creating nothing', async () => {
    const before = fs.readdirSync(path.join(home, 'boxes')).length;
    expect((await cli(home, ['clone', 'nosuch', 'x'])).stderr).toContain('no box named or with id "nosuch"');
    expect((await cli(home, ['clone', 'src@nope', 'x'])).stderr).toContain('box src has no snapshot named "nope"');
    expect((await cli(home, ['clone', 'src', 'src'])).stderr).toContain('a box named "src" already exists');
    expect((await cli(home, ['clone', 'src', 'bad/name'])).stderr).toContain('box name "bad/name" is invalid');
    expect((await cli(home, ['clone', 'src', 'x', '--count', '0'])).stderr).toContain('--count must be from 1 to 100');
    expect(fs.readdirSync(path.join(home, 'boxes')).length).toBe(before);
  });

  it('a CLI killed mid-clone leaves a whole clone or none, and the source working with its data', async () => {
    // Each kill lands at a named moment of a live clone: the layer linked, the guest frozen, the VM switched to its
    // new top (not yet renamed), the clone's disk made (no record yet).
    for (const [i, point] of ['clone:linked', 'clone:frozen', 'clone:switched', 'clone:top-made'].entries()) {
      await cliKilledAt(home, ['clone', 'src', `k${i}`], point);
      // The source answers (not left frozen) and keeps its data.
      const w = await cli(home, ['exec', '--timeout', '20', 'src', 'sh', '-c', `echo after-${i} > /root/state && sync && md5sum -c /root/blob.md5`]);
      expect(w.stdout, w.stderr).toBe('/root/blob: OK\n');
      const ps = JSON.parse((await cli(home, ['ps', '-a', '--json'])).stdout) as { name: string }[];
      const clone = ps.find((b) => b.name === `k${i}`);
      if (clone) {
        const st = await cli(home, ['start', `k${i}`]);
        expect(st.code, st.stderr).toBe(0);
        expect((await cli(home, ['exec', `k${i}`, 'md5sum', '-c', '/root/blob.md5'])).stdout).toBe('/root/blob: OK\n');
        await cli(home, ['rm', '-f', `k${i}`]);
      } else {
        expect((await cli(home, ['clone', 'src', `k${i}`])).code).toBe(0);
        await cli(home, ['rm', '-f', `k${i}`]);
      }
    }
    // After a restart the source still has everything it wrote.
    expect((await cli(home, ['restart', 'src'])).code).toBe(0);
    expect(await cat('src')).toBe('after-3\n');
  });
});
