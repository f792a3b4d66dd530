// One image must never hand its files to another. An image's config claims what its layers hold (rootfs.diff_ids);
// whoever made the image wrote that claim. These tests forge it: two images whose configs claim the same diff_ids
// but whose layers differ, run in both orders; a layer whose content is not what its config says; blobs whose bytes
// are not the digest they are named by, in an OCI layout folder, an OCI archive, a docker save archive and a
// registry. Nothing may cross from one image to another, a refusal names the layer and the cause, and a refused
// image leaves no base, no partial file and no staging folder behind.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, cli, makeRootfs, testHome } from '../helpers.js';
import { dirLayer, dockerSaveArchive, ociImage, tarLayer } from '../oci.js';
import { push, startRegistry, type Registry } from '../registry.js';
import { sha256 } from '../../src/util/fs.js';

let tmp: string;
let busybox: Buffer;
let genuineLayer: Buffer;
let forgedLayer: Buffer;
let genuine: string;
let forged: string;
let liar: string;
const homes: string[] = [];
const layouts: string[] = [];

/** An OCI layout removed after the tests. */
const layout = (spec: Parameters<typeof ociImage>[0]) => {
  const d = ociImage(spec);
  layouts.push(d);
  return d;
};

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const short = (d: string) => `${d.slice(0, 19)}…`;
const re = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const noStack = (stderr: string) => expect(stderr).not.toMatch(/\n\s+at [\w.<>]+ \(/);

/** The refusal a layer whose content is not its claimed diff_id must get. */
const mismatch = (n: number, layerBlob: string, claimed: string, actual: string) =>
  new RegExp(`layer ${n} \\(${re(short(layerBlob))}\\) does not match the diff_id its config claims \\(${re(short(claimed))}\\): its content is ${re(short(actual))}; the image is corrupt or forged`);

function newHome(): string {
  const h = testHome();
  homes.push(h);
  return h;
}

/** What an image left in the store's bases folder (lock files are the only thing a refusal may leave). */
const bases = (home: string) => (fs.existsSync(path.join(home, 'images/bases')) ? fs.readdirSync(path.join(home, 'images/bases')).filter((f) => !f.endsWith('.lock')).sort() : []);

const records = (home: string) => (fs.existsSync(path.join(home, 'images/records')) ? fs.readdirSync(path.join(home, 'images/records')) : []);

/** A file in a base's file system, read with debugfs. */
const inBase = (base: string, file: string) => execFileSync('/usr/sbin/debugfs', ['-R', `cat ${file}`, base], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

const baseOf = async (home: string, name: string) => JSON.parse((await cli(home, ['inspect', name])).stdout).source.base as string;

const PROBE = ['sh', '-c', 'cat /etc/who; test -e /etc/planted && echo PLANTED; true'];

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-trust-'));
  busybox = dirLayer(makeRootfs());
  genuineLayer = await tarLayer([{ path: 'etc/who', data: 'genuine\n' }]);
  forgedLayer = await tarLayer([{ path: 'etc/who', data: 'forged\n' }, { path: 'etc/planted', data: 'planted by the forged image\n' }]);
  genuine = layout({ layers: [busybox, genuineLayer], config: { Env: ['PATH=/bin', 'WHO=genuine'] } });
  // The forged image claims the genuine one's diff_ids for layers that hold something else.
  forged = layout({ layers: [busybox, forgedLayer], config: { Env: ['PATH=/bin', 'WHO=forged'] }, diffIds: [sha(busybox), sha(genuineLayer)] });
  // And the other way round: the genuine image's very layers, with a config that claims they hold something else.
  liar = layout({ layers: [busybox, genuineLayer], config: { Env: ['PATH=/bin', 'WHO=liar'] }, diffIds: [sha(busybox), sha(forgedLayer)] });
});

afterAll(async () => {
  for (const h of homes) await cleanupHome(h);
  fs.rmSync(tmp, { recursive: true, force: true });
  for (const d of layouts) fs.rmSync(d, { recursive: true, force: true });
});

/** The forged image's layer 2, as the refusal must name it; and the lying one's. */
const forgedRefusal = () => mismatch(2, sha(gzipSync(forgedLayer)), sha(genuineLayer), sha(forgedLayer));
const liarRefusal = () => mismatch(2, sha(gzipSync(genuineLayer)), sha(forgedLayer), sha(genuineLayer));

describe('two images whose configs claim the same diff_ids', () => {
  it('a forged image run first is refused, and the genuine one run next gets its own files', async () => {
    const home = newHome();
    const f = await cli(home, ['run', '--rm', forged, ...PROBE]);
    const l = await cli(home, ['create', liar]);
    expect(l.code).toBe(1);
    expect(l.stderr).toMatch(liarRefusal());
    const g = await cli(home, ['run', '--rm', genuine, ...PROBE]);
    // The poisoning itself: the genuine image's box must hold the genuine image's files, whatever ran before it.
    expect(g.stdout).toBe('genuine\n');
    expect(g.code, g.stderr).toBe(0);
    expect(f.stdout).toBe('');
    expect(f.code).not.toBe(0);
    expect(f.stderr).toMatch(forgedRefusal());
    noStack(f.stderr);
    // The forged image is refused again: nothing of the first attempt was recorded for it to reuse.
    const built = bases(home);
    const again = await cli(home, ['run', '--rm', forged, ...PROBE]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(forgedRefusal());
    expect(bases(home)).toEqual(built); // no base, no partial file, no metadata of the forged image
    expect(built.filter((f) => f.endsWith('.ext4'))).toHaveLength(1);
  });

  it('a genuine image run first lends its base to no forged image claiming its diff_ids', async () => {
    const home = newHome();
    const g = await cli(home, ['run', '--rm', genuine, ...PROBE]);
    expect(g.code, g.stderr).toBe(0);
    expect(g.stdout).toBe('genuine\n');
    const built = bases(home);

    const f = await cli(home, ['run', '--rm', forged, ...PROBE]);
    expect(f.stdout).toBe('');
    expect(f.code).not.toBe(0);
    expect(f.stderr).toMatch(forgedRefusal());
    noStack(f.stderr);
    expect(bases(home)).toEqual(built);
    // The genuine layers' base exists, but a config claiming they hold something else does not get it.
    const l = await cli(home, ['create', liar]);
    expect(l.code).toBe(1);
    expect(l.stderr).toMatch(liarRefusal());
    expect(l.stderr).toContain('no box was made from it');
    const g2 = await cli(home, ['run', '--rm', genuine, ...PROBE]);
    expect(g2.stdout).toBe('genuine\n');
  });

  it('a base an older boxlite built and keyed by claimed diff_ids is not reused', async () => {
    const home = newHome();
    // What an earlier version left: a base keyed only by the config's diff_ids, here built from forged files.
    const oldKey = sha256('ext4-1', sha(busybox), sha(genuineLayer)).slice(0, 32);
    const root = makeRootfs();
    fs.writeFileSync(path.join(root, 'etc/who'), 'poisoned\n');
    const dir = path.join(home, 'images/bases');
    fs.mkdirSync(dir, { recursive: true });
    const poisoned = path.join(dir, `${oldKey}.ext4`);
    execFileSync('/usr/sbin/mkfs.ext4', ['-q', '-F', '-L', 'boxlite-root', '-d', root, poisoned, '64M']);
    fs.writeFileSync(path.join(dir, `${oldKey}.json`), JSON.stringify({ sizeMib: 64, image: 'sha256:x', builtAt: new Date().toISOString(), format: 'ext4-1' }));
    fs.rmSync(root, { recursive: true, force: true });

    const c = await cli(home, ['create', '--name', 'g', genuine]);
    expect(c.code, c.stderr).toBe(0);
    const base = await baseOf(home, 'g');
    expect(base).not.toBe(poisoned);
    expect(inBase(base, '/etc/who')).toBe('genuine\n');
  });
});

describe('a layer whose content is not what its config claims', () => {
  it('is refused naming the layer, its claim and its content, and nothing is kept', async () => {
    const home = newHome();
    const third = await tarLayer([{ path: 'etc/third', data: 'third\n' }]);
    const claim = sha(Buffer.from('something else entirely'));
    const img = layout({ layers: [busybox, genuineLayer, third], compression: ['gzip', 'none', 'zstd'], diffIds: [sha(busybox), sha(genuineLayer), claim] });
    const staging = fs.mkdtempSync(path.join(tmp, 'staging-'));
    const zstdBlob = JSON.parse(fs.readFileSync(path.join(img, 'blobs/sha256', JSON.parse(fs.readFileSync(path.join(img, 'index.json'), 'utf8')).manifests[0].digest.slice(7)), 'utf8')).layers[2].digest;
    for (let i = 0; i < 2; i++) {
      const r = await cli(home, ['create', '--name', `bad${i}`, img], { env: { BOXLITE_STAGING_DIR: staging } });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(mismatch(3, zstdBlob, claim, sha(third)));
      noStack(r.stderr);
      expect(bases(home)).toEqual([]);
      expect(fs.readdirSync(staging)).toEqual([]);
      expect((await cli(home, ['ps', '-a'])).stdout).not.toMatch(/bad\d/); // and no box was recorded
    }
  });

  it('a config listing fewer diff_ids than the image has layers is refused', async () => {
    const home = newHome();
    const img = layout({ layers: [busybox, genuineLayer], diffIds: [sha(busybox)] });
    const r = await cli(home, ['create', img]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/its config lists 1 diff_id for 2 layers/);
    expect(bases(home)).toEqual([]);
  });

  it('is refused the same way when the image comes from a registry', async () => {
    const home = newHome();
    const reg: Registry = await startRegistry();
    try {
      await push(reg, forged, 'forged/app:1');
      const ref = `${reg.host}/forged/app:1`;
      expect((await cli(home, ['images', 'pull', ref])).code).toBe(0);
      const r = await cli(home, ['create', ref]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(forgedRefusal());
      expect(bases(home)).toEqual([]);
    } finally {
      await reg.stop();
    }
  });

  it('in a docker save archive with gzip layers, is refused when a box is made from it', async () => {
    const home = newHome();
    const file = await dockerSaveArchive(path.join(tmp, 'gz.tar'), { layers: [busybox, forgedLayer], gzip: true, tags: ['forged/gz:1'], diffIds: [sha(busybox), sha(genuineLayer)] });
    const load = await cli(home, ['images', 'load', file]);
    expect(load.code, load.stderr).toBe(0);
    const r = await cli(home, ['create', 'forged/gz:1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(forgedRefusal());
    expect(bases(home)).toEqual([]);
  });
});

describe('a blob whose bytes are not the digest it is named by', () => {
  const blobOf = (dir: string, role: 'manifest' | 'config' | 'layer') => {
    const b = (d: string) => path.join(dir, 'blobs/sha256', d.slice(7));
    const m = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')).manifests[0].digest;
    if (role === 'manifest') return { digest: m, file: b(m) };
    const doc = JSON.parse(fs.readFileSync(b(m), 'utf8'));
    const d = role === 'config' ? doc.config.digest : doc.layers[1].digest;
    return { digest: d, file: b(d) };
  };
  /** The store's records and blobs: a refused image changes neither. */
  const store = (home: string) => ['records', 'blobs/sha256'].map((d) => (fs.existsSync(path.join(home, 'images', d)) ? fs.readdirSync(path.join(home, 'images', d)).sort().join(',') : '')).join(' | ');

  for (const role of ['layer', 'config', 'manifest'] as const) {
    it(`in an OCI layout folder (its ${role}) is refused, and the store is unchanged`, async () => {
      const home = newHome();
      const img = layout({ layers: [busybox, genuineLayer] });
      const { digest, file } = blobOf(img, role);
      const body = fs.readFileSync(file);
      fs.writeFileSync(file, role === 'layer' ? gzipSync(forgedLayer) : Buffer.concat([body, Buffer.from(' ')])); // still valid JSON
      const before = store(home);
      const r = await cli(home, ['create', img]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(role === 'layer' ? new RegExp(`blob ${digest} has digest sha256:[0-9a-f]{64}; the image was not loaded`) : new RegExp(`the ${role} blob ${digest} does not match its digest`));
      noStack(r.stderr);
      expect(store(home).split(' | ')[0]).toBe(before.split(' | ')[0]);
      expect(fs.existsSync(path.join(home, 'images/blobs/sha256', digest.slice(7)))).toBe(false);
      expect(bases(home)).toEqual([]);
    });
  }

  it('in an OCI archive (images load) is refused', async () => {
    const home = newHome();
    const img = layout({ layers: [busybox, genuineLayer] });
    const { digest, file } = blobOf(img, 'layer');
    fs.writeFileSync(file, gzipSync(forgedLayer));
    const archive = path.join(tmp, 'oci.tar');
    execFileSync('tar', ['-C', img, '-cf', archive, '.']);
    const r = await cli(home, ['images', 'load', archive]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`blob ${digest} has digest sha256:[0-9a-f]{64}; the image was not loaded`));
    expect(records(home)).toEqual([]);
  });

  it('in a docker save archive: a plain layer that is not its diff_id, and files named by a digest they do not have', async () => {
    const home = newHome();
    const cases = [
      { name: 'plain', spec: { tamper: { layer: { index: 1, data: forgedLayer } } }, refused: mismatch(2, sha(forgedLayer), sha(genuineLayer), sha(forgedLayer)) },
      { name: 'named-layer', spec: { blobNames: true, gzip: true, tamper: { layer: { index: 1, data: gzipSync(forgedLayer) } } }, refused: new RegExp(`blobs/sha256/${sha(gzipSync(genuineLayer)).slice(7)} does not match the digest it is named by: its content is sha256:[0-9a-f]{64}; the image was not loaded`) },
      { name: 'named-config', spec: { blobNames: true, tamper: { config: Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['evil'] }, rootfs: { type: 'layers', diff_ids: [sha(busybox), sha(genuineLayer)] } })) } }, refused: /blobs\/sha256\/[0-9a-f]{64} does not match the digest it is named by: its content is sha256:[0-9a-f]{64}; the image was not loaded/ },
    ];
    for (const c of cases) {
      const file = await dockerSaveArchive(path.join(tmp, `${c.name}.tar`), { layers: [busybox, genuineLayer], tags: [`saved/${c.name}:1`], ...c.spec });
      const r = await cli(home, ['images', 'load', file]);
      expect(r.code, `${c.name}: ${r.stdout}`).toBe(1);
      expect(r.stderr).toMatch(c.refused);
      noStack(r.stderr);
    }
    expect(records(home)).toEqual([]);
  });
});
