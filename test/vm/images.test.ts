// Images end to end: a real registry on 127.0.0.1, images the tests build, boxes booted from them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { cleanupHome, cli, makeRootfs, quietRuntime, testHome } from '../helpers.js';
import { dirLayer, dockerSaveArchive, newLayout, ociImage, tarLayer, type Entry } from '../oci.js';
import { FaultProxy, push, startRegistry, type Registry } from '../registry.js';
import { REPO } from '../paths.js';
import { Runtime } from '../../src/runtime/runtime.js';
import { DigestMismatchError, ImageNotFoundError, InvalidOptionError, RegistryAuthError, RegistryUnreachableError } from '../../src/core/errors.js';

let reg: Registry;
let home: string;
let rt: Runtime;
let busyboxLayer: Buffer;
let layeredLayout: string;

const BUSYBOX_CONFIG = { Env: ['PATH=/usr/bin:/bin', 'IMAGE_VAR=from-image'], Cmd: ['echo', 'hello from the image cmd'], WorkingDir: '/home/app' };

/** Layers that exercise what images carry: deletions, opaque folders, links, owners, setuid, devices, xattrs. */
async function layeredLayers(): Promise<{ layers: Buffer[]; compression: ('gzip' | 'zstd' | 'none')[] }> {
  const l2: Entry[] = [
    { path: 'data', type: 'directory' },
    { path: 'data/keep', data: 'kept\n', xattrs: { 'user.note': 'hello-xattr' } },
    { path: 'data/gone', data: 'deleted later\n' },
    { path: 'data/hl', type: 'link', target: 'data/keep' },
    { path: 'data/link', type: 'symlink', target: 'keep' },
    { path: 'opq', type: 'directory' },
    { path: 'opq/old1', data: 'old\n' },
    { path: 'opq/sub', type: 'directory' },
    { path: 'opq/sub/old2', data: 'old\n' },
    { path: 'owned', data: 'app file\n', uid: 1000, gid: 1000, mode: 0o640 },
    { path: 'suid', data: '#!/bin/sh\n', mode: 0o4755 },
    { path: 'ro-dir', type: 'directory', mode: 0o555 },
    { path: 'ro-dir/inside', data: 'in a read-only folder\n', mode: 0o400 },
    { path: 'devices', type: 'directory' },
    { path: 'devices/null', type: 'character-device', major: 1, minor: 3, mode: 0o666 },
    { path: 'devices/loop9', type: 'block-device', major: 7, minor: 9, mode: 0o660, gid: 6 },
    { path: 'devices/pipe', type: 'fifo', mode: 0o600 },
    { path: 'devices/gone', type: 'character-device', major: 1, minor: 5 },
  ];
  const l3: Entry[] = [
    { path: 'data/.wh.gone', data: '' },
    { path: 'devices/.wh.gone', data: '' },
    { path: 'opq', type: 'directory' },
    { path: 'opq/.wh..wh..opq', data: '' },
    { path: 'opq/new', data: 'new\n' },
    { path: 'layer3', data: 'zstd layer\n', uid: 1000, gid: 1000 },
  ];
  return { layers: [busyboxLayer, await tarLayer(l2), await tarLayer(l3)], compression: ['gzip', 'none', 'zstd'] };
}

beforeAll(async () => {
  reg = await startRegistry();
  home = testHome();
  rt = quietRuntime(home);
  busyboxLayer = dirLayer(makeRootfs());
  await push(reg, ociImage({ layers: [busyboxLayer], config: BUSYBOX_CONFIG }), 'tools/busybox:1');
  layeredLayout = ociImage({ ...(await layeredLayers()), config: { Env: ['PATH=/bin'] } });
  await push(reg, layeredLayout, 'layered:latest');
  // A two-platform image index.
  const l = newLayout();
  const amd = l.image({ layers: [busyboxLayer], config: { Env: ['PATH=/bin', 'ARCH=amd64'] } });
  const arm = l.image({ layers: [await tarLayer([{ path: 'arm', data: 'arm\n' }])], architecture: 'arm64', config: { Env: ['ARCH=arm64'] } });
  await push(reg, l.finish([amd, arm]), 'multi:1');
});

afterAll(async () => {
  rt?.close();
  await cleanupHome(home);
  await reg?.stop();
});

describe('pull and boot', () => {
  it('pulls an image from a registry and runs its Cmd in a box, with its Env and WorkingDir', async () => {
    const ref = `${reg.host}/tools/busybox:1`;
    const run = await cli(home, ['run', '--rm', ref]);
    expect(run.stderr).toMatch(/done|already stored/);
    expect(run.stdout).toBe('hello from the image cmd\n');
    expect(run.code).toBe(0);

    const box = await rt.create({ image: ref, name: 'cfg', memoryMib: 256, env: { BOX_VAR: 'from-box' } });
    await box.start();
    const r = await box.exec(['sh', '-c', 'echo $IMAGE_VAR $BOX_VAR; pwd; id -u']);
    expect(r.stdout).toBe('from-image from-box\n/home/app\n0\n');
    // exec options override the image the way docker run's do
    const o = await box.exec(['sh', '-c', 'echo $IMAGE_VAR; pwd; id -u'], { env: { IMAGE_VAR: 'overridden' }, cwd: '/tmp', user: 'app' });
    expect(o.stdout).toBe('overridden\n/tmp\n1000\n');
    // the file system was grown from the image's size to the box's disk (2 GiB by default)
    const df = await box.exec(['df', '-m', '/']);
    const total = Number(df.stdout.split('\n')[1].trim().split(/\s+/)[1]);
    expect(total).toBeGreaterThan(1800);
    await box.remove({ force: true });

    const ls = await cli(home, ['images', 'ls']);
    expect(ls.stdout).toContain(`${reg.host}/tools/busybox:1`);
  });

  it('keeps what the layers carry: whiteouts, opaque folders, hard links, owners, setuid, devices', async () => {
    const ref = `${reg.host}/layered`;
    const box = await rt.create({ image: ref, name: 'layered', memoryMib: 256 });
    await box.start();
    const r = await box.exec([
      'sh',
      '-c',
      [
        'ls /data | tr "\\n" " "; echo',
        'ls -R /opq | tr "\\n" " "; echo',
        'stat -c "%a %u:%g" /owned /layer3',
        'stat -c "%a" /suid /ro-dir',
        'cat /ro-dir/inside',
        'stat -c "%i %h" /data/keep /data/hl',
        'readlink /data/link',
        'stat -c "%F %t:%T %a %g" /devices/null /devices/loop9',
        'stat -c "%F %a" /devices/pipe',
        'ls /devices | tr "\\n" " "; echo',
        'head -c 3 /devices/null | wc -c',
      ].join('; '),
    ]);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('hl keep link ');
    expect(lines[1]).toBe('/opq: new ');
    expect(lines.slice(2, 4)).toEqual(['640 1000:1000', '644 1000:1000']);
    expect(lines.slice(4, 6)).toEqual(['4755', '555']);
    expect(lines[6]).toBe('in a read-only folder');
    const [k, h] = [lines[7].split(' '), lines[8].split(' ')];
    expect(k[0]).toBe(h[0]);
    expect(k[1]).toBe('2');
    expect(lines[9]).toBe('keep');
    expect(lines[10]).toBe('character special file 1:3 666 0');
    expect(lines[11]).toBe('block special file 7:9 660 6');
    expect(lines[12]).toBe('fifo 600');
    expect(lines[13]).toBe('loop9 null pipe ');
    expect(lines[14]).toBe('0');
    // xattrs are in the base the box runs on (busybox has no getfattr)
    const base = rt.images.existingBase(rt.images.get(ref))!;
    expect(execFileSync('debugfs', ['-R', 'ea_get /data/keep user.note', base.path], { stdio: ['ignore', 'pipe', 'ignore'] }).toString()).toContain('hello-xattr');
    await box.remove({ force: true });
  });

  it('assembles the same file system when boxlite runs as a normal user', async () => {
    const h = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-nonroot-'));
    fs.chmodSync(h, 0o755);
    fs.chownSync(h, 65534, 65534);
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-layout-'));
    fs.cpSync(layeredLayout, copy, { recursive: true });
    execFileSync('chown', ['-R', '65534:65534', copy]);
    fs.chmodSync(copy, 0o755);
    const script = `import(${JSON.stringify(path.join(REPO, 'dist/src/runtime/images/index.js'))}).then(async (m) => {
      const { Home } = await import(${JSON.stringify(path.join(REPO, 'dist/src/runtime/home.js'))});
      const images = new m.Images(new Home(${JSON.stringify(h)}));
      const rec = await images.loadLayout(${JSON.stringify(copy)});
      const base = await images.base(rec);
      console.log(base.path);
    })`;
    try {
      const out = execFileSync('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
      const stat = (p: string) => execFileSync('debugfs', ['-R', `stat ${p}`, out], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
      const ls = (p: string) => execFileSync('debugfs', ['-R', `ls -l ${p}`, out], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
      expect(stat('/owned')).toMatch(/Mode:\s+0640[\s\S]*User:\s+1000\s+Group:\s+1000/);
      expect(stat('/suid')).toMatch(/Mode:\s+04755[\s\S]*User:\s+0\s+Group:\s+0/);
      expect(stat('/ro-dir')).toMatch(/Mode:\s+0555/);
      expect(stat('/bin/busybox')).toMatch(/User:\s+0\s+Group:\s+0/);
      expect(stat('/devices/null')).toMatch(/Type: character special\s+Mode:\s+0666[\s\S]*User:\s+0\s+Group:\s+0[\s\S]*Device major\/minor number: 01:03/);
      expect(stat('/devices/loop9')).toMatch(/Type: block special\s+Mode:\s+0660[\s\S]*User:\s+0\s+Group:\s+6[\s\S]*Device major\/minor number: 07:09/);
      expect(stat('/devices/pipe')).toMatch(/Type: FIFO\s+Mode:\s+0600/);
      expect(ls('/devices')).not.toContain('gone');
      expect(ls('/opq')).not.toContain('old1');
      expect(execFileSync('debugfs', ['-R', 'ea_get /data/keep user.note', out], { stdio: ['ignore', 'pipe', 'ignore'] }).toString()).toContain('hello-xattr');
      expect(stat('/')).toMatch(/Mode:\s+0755[\s\S]*User:\s+0\s+Group:\s+0/);
    } finally {
      fs.rmSync(h, { recursive: true, force: true });
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });

  it('a second box of a cached image copies no image data', async () => {
    const ref = `${reg.host}/tools/busybox:1`;
    const a = await rt.create({ image: ref });
    const b = await rt.create({ image: ref });
    const base = rt.images.existingBase(rt.images.get(ref))!;
    for (const box of [a, b]) {
      const disk = path.join(home, 'boxes', box.id, 'disk.qcow2');
      const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', disk]).toString());
      expect(info['backing-filename']).toBe(base.path);
      expect(info['virtual-size']).toBe(2048 * 1024 * 1024);
      // an empty qcow2: header and tables only
      expect(fs.statSync(disk).blocks * 512).toBeLessThan(1024 * 1024);
    }
    expect(fs.statSync(base.path).mode & 0o222).toBe(0);
    await a.remove();
    await b.remove();
  });

  it('picks linux/amd64 from an image index, and says which platforms an index has', async () => {
    const rec = await rt.images.pull(`${reg.host}/multi:1`);
    expect(rec.platform).toBe('linux/amd64');
    expect(rec.config.env).toContain('ARCH=amd64');
    const arm = await rt.images.pull(`${reg.host}/multi:1`, { platform: 'linux/arm64' });
    expect(arm.platform).toBe('linux/arm64');
    await expect(rt.create({ image: arm.id })).rejects.toThrow(/is for linux\/arm64, but boxes run linux\/amd64/);
    await expect(rt.images.pull(`${reg.host}/multi:1`, { platform: 'linux/s390x' })).rejects.toThrow(/has no linux\/s390x variant \(it has: linux\/amd64, linux\/arm64\)/);
  });

  it('loads a docker save archive and boots it; refuses a corrupt one and keeps the store as it was', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-save-'));
    try {
      const file = await dockerSaveArchive(path.join(dir, 'img.tar'), { layers: [busyboxLayer, await tarLayer([{ path: 'etc/saved', data: 'from docker save\n' }])], tags: ['saved/app:2'], config: { Cmd: ['cat', '/etc/saved'] } });
      const load = await cli(home, ['images', 'load', file]);
      expect(load.stdout).toContain('loaded docker.io/saved/app:2');
      expect(load.code).toBe(0);
      const run = await cli(home, ['run', '--rm', '--pull', 'never', 'saved/app:2']);
      expect(run.stdout).toBe('from docker save\n');

      const before = fs.readdirSync(path.join(home, 'images', 'records')).sort();
      const data = fs.readFileSync(file);
      fs.writeFileSync(path.join(dir, 'cut.tar'), data.subarray(0, Math.floor(data.length * 0.6)));
      const cut = await cli(home, ['images', 'load', path.join(dir, 'cut.tar')]);
      expect(cut.code).toBe(1);
      expect(cut.stderr).toMatch(/image archive .*cut\.tar is not a valid image archive .*truncated or corrupt/);
      const junk = path.join(dir, 'junk.tar');
      fs.writeFileSync(junk, Buffer.alloc(4096, 7));
      const j = await cli(home, ['images', 'load', junk]);
      expect(j.code).toBe(1);
      expect(j.stderr).toMatch(/junk\.tar/);
      expect(fs.readdirSync(path.join(home, 'images', 'records')).sort()).toEqual(before);
      expect(fs.readdirSync(path.join(home, 'images', 'tmp')).filter((f) => !f.endsWith('.lock'))).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rm refuses an image a box uses unless forced; prune frees what nothing needs', async () => {
    const ref = `${reg.host}/tools/busybox:1`;
    const box = await rt.create({ image: ref, name: 'user-of-image' });
    const rm = await cli(home, ['images', 'rm', ref]);
    expect(rm.code).toBe(1);
    expect(rm.stderr).toContain('is used by box user-of-image');
    const forced = await cli(home, ['images', 'rm', '-f', ref]);
    expect(forced.code).toBe(0);
    expect(rt.images.find(ref)).toBeUndefined();
    // the box still has its base
    const src = box.info().source;
    expect(src.kind === 'image' && fs.existsSync(src.base)).toBe(true);
    const prune = await cli(home, ['images', 'prune', '-a']);
    expect(prune.code).toBe(0);
    expect(src.kind === 'image' && fs.existsSync(src.base)).toBe(true);
    await box.remove();
    const again = await cli(home, ['images', 'prune', '-a']);
    expect(again.stdout).toMatch(/freed [\d.]+ [KMG]iB \(\d+ blobs?, [1-9]\d* bases?\)/);
    expect(src.kind === 'image' && fs.existsSync(src.base)).toBe(false);
  });
});

describe('bad input and faults', () => {
  it('an unknown repository or tag names the registry and the reference', async () => {
    await expect(rt.images.pull(`${reg.host}/no/such`)).rejects.toThrow(`image ${reg.host}/no/such:latest not found: the registry ${reg.host} has no repository no/such`);
    await expect(rt.images.pull(`${reg.host}/tools/busybox:9`)).rejects.toThrow(`image ${reg.host}/tools/busybox:9 not found: the registry ${reg.host} has no tag "9" in tools/busybox (tags: 1)`);
    const r = await cli(home, ['run', `${reg.host}/tools/busybox:9`, 'true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain('has no tag "9"');
    await expect(rt.images.pull('Bad Ref')).rejects.toThrow(/image reference "Bad Ref" is invalid/);
    await expect(rt.images.pull(`${reg.host}/tools/busybox:1`)).resolves.toBeTruthy();
    await expect(rt.images.pull(`${reg.host}/tools/busybox@sha256:${'0'.repeat(64)}`)).rejects.toBeInstanceOf(ImageNotFoundError);
  });

  it('an unreachable registry says so', async () => {
    const dead = `127.0.0.1:${reg.host.split(':')[1] === '1' ? 2 : 1}`;
    const e = await rt.images.pull(`${dead}/x:1`).catch((x) => x);
    expect(e).toBeInstanceOf(RegistryUnreachableError);
    expect(e.message).toMatch(/cannot reach registry 127\.0\.0\.1:\d+ \(http:\/\/127\.0\.0\.1:\d+\) for 127\.0\.0\.1:\d+\/x:1: ECONNREFUSED/);
  });

  it('a blob whose digest does not match is rejected and leaves the store unharmed', async () => {
    const proxy = new FaultProxy(reg.host);
    await proxy.start();
    const h = testHome();
    const r2 = quietRuntime(h);
    try {
      const layout = ociImage({ layers: [await tarLayer([{ path: 'x', data: 'x'.repeat(100_000) }])] });
      await push(reg, layout, 'corrupt:1');
      const layer = JSON.parse(fs.readFileSync(path.join(layout, 'blobs/sha256', JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')).manifests[0].digest.slice(7)), 'utf8')).layers[0].digest;
      proxy.corrupt = layer;
      const e = await r2.images.pull(`${proxy.host}/corrupt:1`).catch((x) => x);
      expect(e).toBeInstanceOf(DigestMismatchError);
      expect(e.message).toContain(`layer ${layer} arrived with digest`);
      expect(e.message).toContain('the store is unchanged');
      expect(fs.existsSync(path.join(h, 'images', 'blobs', 'sha256', layer.slice(7)))).toBe(false);
      expect(fs.readdirSync(path.join(h, 'images', 'tmp')).filter((f) => !f.endsWith('.lock'))).toEqual([]);
      expect(r2.images.list()).toEqual([]);
      proxy.corrupt = undefined;
      const ok = await r2.images.pull(`${proxy.host}/corrupt:1`);
      expect(ok.layers[0].digest).toBe(layer);
    } finally {
      r2.close();
      await proxy.stop();
      await cleanupHome(h);
    }
  });

  it('a registry that dies mid-pull gives a clear error; the next pull resumes and re-downloads nothing finished', async () => {
    const big = Buffer.alloc(3 << 20);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((Math.imul(i, 2654435761) ^ i) >>> 0, i); // incompressible-ish
    const layout = ociImage({ layers: [await tarLayer([{ path: 'small', data: 'small\n' }]), await tarLayer([{ path: 'big', data: big }])], compression: ['gzip', 'none'] });
    await push(reg, layout, 'midpull:1');
    const manifest = JSON.parse(fs.readFileSync(path.join(layout, 'blobs/sha256', JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')).manifests[0].digest.slice(7)), 'utf8'));
    const [small, large] = manifest.layers.map((l: { digest: string }) => l.digest);
    const proxy = new FaultProxy(reg.host);
    await proxy.start();
    const h = testHome();
    const r2 = quietRuntime(h);
    try {
      proxy.cut = { digest: large, after: 1 << 20 };
      const e = await r2.images.pull(`${proxy.host}/midpull:1`, { concurrency: 1 }).catch((x) => x);
      expect(e).toBeInstanceOf(RegistryUnreachableError);
      expect(e.message).toMatch(/broke while downloading sha256:[a-f0-9]+ \(\d+ of \d+ bytes\): pull again and it resumes/);
      expect(r2.images.list()).toEqual([]);
      // the same address comes back: the registry restarted
      const port = proxy.port;
      const again = new FaultProxy(reg.host);
      await again.start(port);
      try {
        const rec = await r2.images.pull(`${proxy.host}/midpull:1`);
        expect(rec.layers.map((l) => l.digest)).toEqual([small, large]);
        const blobGets = again.requests.filter((q) => q.url.includes('/blobs/sha256:') && !q.url.includes(manifest.config.digest));
        expect(blobGets.map((q) => q.url.split('/blobs/')[1])).toEqual([large]);
        expect(blobGets[0].range).toMatch(/^bytes=\d+-$/);
        expect(Number(blobGets[0].range!.slice(6, -1))).toBeGreaterThan(0);
      } finally {
        await again.stop();
      }
    } finally {
      r2.close();
      await proxy.stop();
      await cleanupHome(h);
    }
  });

  it('a disk too small for the image, and a disk that fills while assembling, get clear errors', async () => {
    await push(reg, ociImage({ layers: [busyboxLayer, await tarLayer([{ path: 'fat', data: Buffer.alloc(80 << 20) }])] }), 'fat:1');
    const fat = `${reg.host}/fat:1`;
    await expect(rt.create({ image: fat, diskSizeMib: 64 })).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(rt.create({ image: fat, diskSizeMib: 64 })).rejects.toThrow(/disk size 64 MiB is smaller than image .*fat:1 \(\d+ MiB\): give a disk of at least \d+ MiB/);
    expect(rt.list()).toEqual([]);

    const ref = `${reg.host}/tools/busybox:1`;

    // A home whose bases folder is a 1 MiB tmpfs, in a mount namespace of the CLI's own.
    const h = testHome();
    try {
      const pulled = await cli(h, ['images', 'pull', '-q', ref]);
      expect(pulled.code).toBe(0);
      const bases = path.join(h, 'images', 'bases');
      fs.mkdirSync(bases, { recursive: true });
      const script = 'mount -t tmpfs -o size=1m boxlite-test "$1" || exit 9; "$2" "$3" create "$4" 2>&1; echo "exit=$?"; ls -A "$1"';
      const r = execFileSync('unshare', ['-m', 'sh', '-c', script, 'sh', bases, process.execPath, path.join(REPO, 'bin/boxlite.js'), ref], {
        env: { ...process.env, BOXLITE_HOME: h },
      }).toString();
      expect(r).toMatch(/no space left on the device holding .*bases while assembling image .*busybox:1: free some space .* nothing was kept/);
      // nothing half-built is left in the full folder (only the lock file of the assembly), and no box was recorded
      expect(r).toMatch(/exit=1\n[a-f0-9]+\.lock\n$/);
      expect(fs.existsSync(path.join(h, 'boxes')) ? fs.readdirSync(path.join(h, 'boxes')) : []).toEqual([]);
    } finally {
      await cleanupHome(h);
    }
  });
});

describe('registry authentication', () => {
  let authReg: Registry;
  beforeAll(async () => {
    authReg = await startRegistry({ users: { alice: 's3cret' } });
    await push(authReg, ociImage({ layers: [busyboxLayer], config: BUSYBOX_CONFIG }), 'private/busybox:1');
  });
  afterAll(async () => {
    await authReg?.stop();
  });

  it('follows the bearer-token flow with credentials from options, and refuses wrong or missing ones clearly', async () => {
    const ref = `${authReg.host}/private/busybox:1`;
    const h = testHome();
    try {
      const good = new Runtime({ home: h, say: () => {}, registry: { credentials: { [authReg.host]: { username: 'alice', password: 's3cret' } } } });
      const rec = await good.images.pull(ref);
      expect(rec.references).toEqual([ref]);
      good.close();
      const bad = new Runtime({ home: h, say: () => {}, registry: { credentials: { [authReg.host]: { username: 'alice', password: 'wrong' } } } });
      const e = await bad.images.pull(ref).catch((x) => x);
      expect(e).toBeInstanceOf(RegistryAuthError);
      expect(e.message).toContain(`registry ${authReg.host} refused the credentials of user "alice" to private/busybox`);
      bad.close();
      const anon = new Runtime({ home: h, say: () => {}, registry: { dockerConfig: '/nonexistent/config.json' } });
      await expect(anon.images.pull(ref)).rejects.toThrow(/refused anonymous access to private\/busybox .*log in/);
      anon.close();
    } finally {
      await cleanupHome(h);
    }
  });

  it('answers a basic challenge with credentials, and names the registry when it refuses them', async () => {
    const basicReg = await startRegistry({ users: { bob: 'hunter2' }, basic: true });
    const h = testHome();
    try {
      await push(basicReg, ociImage({ layers: [await tarLayer([{ path: 'b', data: 'b\n' }])] }), 'basic/img:1');
      const ref = `${basicReg.host}/basic/img:1`;
      const good = new Runtime({ home: h, say: () => {}, registry: { credentials: { [basicReg.host]: { username: 'bob', password: 'hunter2' } } } });
      expect((await good.images.pull(ref)).references).toEqual([ref]);
      good.close();
      const bad = new Runtime({ home: h, say: () => {}, registry: { credentials: { [basicReg.host]: { username: 'bob', password: 'nope' } } } });
      await expect(bad.images.pull(ref)).rejects.toThrow(`registry ${basicReg.host} refused the credentials of user "bob" to basic/img: check the user name and password`);
      bad.close();
      const anon = new Runtime({ home: h, say: () => {}, registry: { dockerConfig: '/nonexistent/config.json' } });
      await expect(anon.images.pull(ref)).rejects.toThrow(`registry ${basicReg.host} needs credentials for basic/img`);
      anon.close();
    } finally {
      await cleanupHome(h);
      await basicReg.stop();
    }
  });

  it('reads credentials from docker config.json (DOCKER_CONFIG)', async () => {
    const ref = `${authReg.host}/private/busybox:1`;
    const h = testHome();
    const cfgDir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-dockercfg-'));
    try {
      fs.writeFileSync(path.join(cfgDir, 'config.json'), JSON.stringify({ auths: { [authReg.host]: { auth: Buffer.from('alice:s3cret').toString('base64') } } }));
      const r = await cli(h, ['images', 'pull', ref], { env: { DOCKER_CONFIG: cfgDir } });
      expect(r.stderr).toContain(`pulled ${ref}`);
      expect(r.code).toBe(0);
      const denied = await cli(h, ['images', 'pull', `${authReg.host}/private/other:1`], { env: { DOCKER_CONFIG: '/nonexistent' } });
      expect(denied.code).toBe(1);
      expect(denied.stderr).toMatch(/refused anonymous access/);
    } finally {
      fs.rmSync(cfgDir, { recursive: true, force: true });
      await cleanupHome(h);
    }
  });
});
