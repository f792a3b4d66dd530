// boxlite commit and push against the real docker-registry on 127.0.0.1: a box's disk becomes an image (its
// image's layers plus one of what it changed), skopeo reads what was pushed, and a new box of the pulled image —
// in another home — has the committed files with their owners, modes and xattrs, and not the deleted ones. A
// running box is committed as of one instant while it keeps writing; an upload cut half way resumes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import * as net from 'node:net';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, cli, quietRuntime, testHome } from '../helpers.js';
import { debianLayout, push, startRegistry, type Registry } from '../registry.js';
import type { Runtime } from '../../src/runtime/runtime.js';
import { fromYamlStream } from '../../src/k8s/output.js';
import { validateAll } from '../../src/k8s/validate.js';

const execFileP = promisify(execFile);
let reg: Registry;
let home: string;
let home2: string;
let rt: Runtime;
let rt2: Runtime;
let base: string;

beforeAll(async () => {
  reg = await startRegistry();
  home = testHome();
  home2 = testHome();
  rt = quietRuntime(home);
  rt2 = quietRuntime(home2);
  await push(reg, debianLayout(), 'base/debian:12');
  base = `${reg.host}/base/debian:12`;
});

afterAll(async () => {
  rt?.close();
  rt2?.close();
  await cleanupHome(home);
  await cleanupHome(home2);
  await reg?.stop();
});

const py = (code: string) => ['python3', '-c', code];
const skopeo = async (ref: string, ...args: string[]) => JSON.parse((await execFileP('skopeo', ['inspect', '--tls-verify=false', ...args, `docker://${ref}`])).stdout);

// What the box does to its disk: every kind of change a layer must carry.
const CHANGES = `
import os
os.makedirs('/srv/d', exist_ok=True)
with open('/srv/new.txt', 'w') as f: f.write('hello from the box\\n')
os.chown('/srv/new.txt', 1234, 5678)
os.chmod('/srv/new.txt', 0o640)
os.setxattr('/srv/new.txt', 'user.note', b'\\x00\\xffbinary')
os.chown('/srv/d', 42, 43)
os.chmod('/srv/d', 0o2750)
os.symlink('new.txt', '/srv/link')
os.link('/srv/new.txt', '/srv/hard')
os.mkfifo('/srv/fifo', 0o600)
with open('/etc/motd', 'a') as f: f.write('committed by boxlite\\n')
os.chmod('/etc/skel', 0o700)
os.remove('/etc/issue.net')
import shutil; shutil.rmtree('/usr/lib/python3.11/email')
`;

const CHECKS = `
import os, stat
s = os.stat('/srv/new.txt')
print(open('/srv/new.txt').read().strip(), s.st_uid, s.st_gid, oct(s.st_mode & 0o7777), os.getxattr('/srv/new.txt', 'user.note'))
d = os.stat('/srv/d'); print('d', d.st_uid, d.st_gid, oct(d.st_mode & 0o7777))
print('link', os.readlink('/srv/link'), 'hard', os.stat('/srv/hard').st_ino == s.st_ino, s.st_nlink, 'fifo', stat.S_ISFIFO(os.lstat('/srv/fifo').st_mode))
print('motd', open('/etc/motd').read().strip().splitlines()[-1], 'skel', oct(os.stat('/etc/skel').st_mode & 0o7777))
print('gone', os.path.exists('/etc/issue.net'), os.path.exists('/usr/lib/python3.11/email'), 'kept', os.path.exists('/usr/lib/python3.11/json'))
print('env', os.environ.get('TEAM'), os.getcwd())
`;
const EXPECTED = "hello from the box 1234 5678 0o640 b'\\x00\\xffbinary'\nd 42 43 0o2750\nlink new.txt hard True 2 fifo True\nmotd committed by boxlite skel 0o700\ngone False False kept True\nenv blue /srv\n";

describe('a stopped box', () => {
  let ref: string;
  it('commits to its image layers plus one of its changes, with its env and working folder as the config', async () => {
    const box = await rt.create({ image: base, name: 'src', memoryMib: 384, env: { TEAM: 'blue' }, workingDir: '/srv' });
    await box.start();
    const r = await box.exec(py(CHANGES));
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    await box.stop();
    ref = `${reg.host}/team/dev:1`;
    const c = await box.commit(ref, { message: 'provisioned' });
    const parent = rt.images.get(base);
    expect(c.image.layers.slice(0, -1)).toEqual(parent.layers);
    expect(c.image.layers).toHaveLength(parent.layers.length + 1);
    expect(c.deleted).toBe(2); // /etc/issue.net, and the email package once, at its top
    expect(c.image.config).toMatchObject({ workingDir: '/srv', cmd: ['bash'] });
    expect(c.image.config.env).toContain('TEAM=blue');
    expect(c.image.references).toEqual([ref]);
  });

  it('pushes with blob checks and a cross-repository mount of the base layer; skopeo reads the image', async () => {
    const r = await rt.push(ref);
    const parent = rt.images.get(base);
    expect(r.blobs.map((b) => b.how)).toEqual([...parent.layers.map(() => 'mounted'), 'uploaded', 'uploaded']);
    const info = await skopeo(ref);
    expect(info.Digest).toBe(r.digest);
    expect(info.Layers).toEqual(rt.images.get(ref).layers.map((l) => l.digest));
    expect(info.Env).toContain('TEAM=blue');
    const cfg = await skopeo(ref, '--config');
    expect(cfg.config.WorkingDir).toBe('/srv');
    expect(cfg.history.at(-1)).toMatchObject({ created_by: 'boxlite commit src', comment: 'provisioned' });
    // A second push finds everything there.
    expect((await rt.push(ref)).blobs.every((b) => b.how === 'exists')).toBe(true);
  });

  it('a new box of the pulled image, in another home, has the committed files and not the deleted ones', async () => {
    await rt2.images.pull(ref);
    const box = await rt2.create({ image: ref, name: 'copy', memoryMib: 384 });
    await box.start();
    const r = await box.exec(py(CHECKS));
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(EXPECTED);
    await box.remove({ force: true });
  });
});

describe('a running box', () => {
  it('is committed as of one instant while it keeps writing, and goes on running', async () => {
    const box = await rt.create({ image: base, name: 'live', memoryMib: 384 });
    await box.start();
    await box.exec(['sh', '-c', 'head -c 4194304 /dev/urandom > /srv/blob && md5sum /srv/blob > /srv/blob.md5']);
    // Two files replaced one after the other, for ever: any one instant has b = a or b = a - 1.
    await box.spawnDetached(['sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i > /srv/a.tmp && mv /srv/a.tmp /srv/a; echo $i > /srv/b.tmp && mv /srv/b.tmp /srv/b; sleep 0.02; done']);
    await box.exec(['sh', '-c', 'while [ ! -s /srv/b ] || [ "$(cat /srv/b)" -lt 50 ]; do sleep 0.1; done']);
    const ref = `${reg.host}/team/live:1`;
    await cli(home, ['commit', 'live', ref]).then((r) => expect(r.stderr).toMatch(/^committed box live as /));
    expect((await box.exec(['cat', '/srv/b'])).exitCode).toBe(0);
    const after = Number((await box.exec(['cat', '/srv/b'])).stdout);
    const p = await cli(home, ['push', ref]);
    expect(p.code).toBe(0);
    expect(p.stdout.trim()).toMatch(new RegExp(`^${reg.host}/team/live@sha256:[0-9a-f]{64}$`));
    await rt2.images.pull(ref);
    const copy = await rt2.create({ image: ref, name: 'live-copy', memoryMib: 384 });
    await copy.start();
    const r = await copy.exec(['sh', '-c', 'cd /srv && md5sum -c blob.md5 >/dev/null && echo md5 ok; cat a b']);
    expect(r.stdout).toMatch(/^md5 ok\n\d+\n\d+\n$/);
    const [a, b] = r.stdout.split('\n').slice(1, 3).map(Number);
    expect([a, a - 1]).toContain(b);
    expect(b).toBeLessThanOrEqual(after);
    // The source kept running and writing past the instant of the commit.
    await box.exec(['sh', '-c', `while [ "$(cat /srv/b)" -le ${after} ]; do sleep 0.1; done`]);
    await copy.remove({ force: true });
    await box.remove({ force: true });
  });
});

/** A proxy in front of the registry that breaks uploads: it drops the connection of the third chunk before any
 *  of it reaches the registry (the upload goes on at the byte the registry has), and cuts the body of the sixth
 *  half way (the registry keeps part of a chunk it never acknowledged: that blob starts over). */
async function breakingProxy(upstream: string): Promise<{ host: string; broken: string[]; close(): void }> {
  const broken: string[] = [];
  let patches = 0;
  const server = http.createServer((req, res) => {
    const [host, port] = upstream.split(':');
    const n = req.method === 'PATCH' ? ++patches : 0;
    if (n === 3) {
      broken.push('connection dropped');
      req.socket.destroy();
      return;
    }
    const up = http.request({ host, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode!, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    let seen = 0;
    req.on('data', (c: Buffer) => {
      seen += c.length;
      if (n === 6 && seen > 300_000) {
        broken.push('body cut');
        up.destroy();
        req.socket.destroy();
        return;
      }
      up.write(c);
    });
    req.on('end', () => up.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { host: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, broken, close: () => server.close() };
}

describe('an upload cut half way', () => {
  it('resumes from what the registry has', async () => {
    const box = await rt.create({ image: base, name: 'big', memoryMib: 384 });
    await box.start();
    await box.exec(['sh', '-c', 'head -c 6291456 /dev/urandom > /srv/big']);
    const proxy = await breakingProxy(reg.host);
    try {
      const ref = `${proxy.host}/team/big:1`;
      await box.commit(ref);
      const phases: string[] = [];
      const r = await rt.push(ref, { chunkSize: 1 << 20, onBlob: (b) => b.phase !== 'uploading' && phases.push(`${b.phase}${b.phase === 'resumed' ? ` at ${b.done}` : ''}`) });
      expect(proxy.broken).toEqual(['connection dropped', 'body cut']);
      expect(phases).toContain(`resumed at ${2 << 20}`);
      expect(phases).toContain('restarted');
      expect(r.blobs.at(-2)!.how).toBe('uploaded');
      const info = await skopeo(`${reg.host}/team/big:1`);
      expect(info.Layers.at(-1)).toBe(rt.images.get(ref).layers.at(-1)!.digest);
      await rt2.images.pull(`${reg.host}/team/big:1`);
      const copy = await rt2.create({ image: `${reg.host}/team/big:1`, name: 'big-copy', memoryMib: 384 });
      await copy.start();
      const want = (await box.exec(['md5sum', '/srv/big'])).stdout;
      expect((await copy.exec(['md5sum', '/srv/big'])).stdout).toBe(want);
      await copy.remove({ force: true });
    } finally {
      proxy.close();
      await box.remove({ force: true });
    }
  });
});

describe('k8s render --push', () => {
  it('commits and pushes each provisioned box and renders the pushed images, pinned by digest, setup baked in', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-push-'));
    const file = path.join(dir, 'boxlite.yaml');
    fs.writeFileSync(file, `name: shop\nboxes:\n  web:\n    image: ${base}\n    memory: 384MiB\n    setup: ["echo provisioned > /srv/setup.txt"]\n    command: [python3, -m, http.server, "8000"]\n    ports: ["8000"]\n`);
    try {
      expect((await cli(home, ['-f', file, 'k8s', 'render'])).stderr).toContain('box web, setup: a pod has no step that runs once');
      const up = await cli(home, ['-f', file, 'up']);
      expect(up.code).toBe(0);
      const r = await cli(home, ['-f', file, 'k8s', 'render', '--push', reg.host]);
      expect(r.stderr).toContain(`pushed ${reg.host}/shop/web@sha256:`);
      expect(r.code).toBe(0);
      const objs = fromYamlStream(r.stdout);
      await validateAll(objs);
      const sb = objs.find((o) => o.kind === 'Sandbox') as any;
      const image: string = sb.spec.podTemplate.spec.containers[0].image;
      expect(image).toMatch(new RegExp(`^${reg.host}/shop/web@sha256:[0-9a-f]{64}$`));
      expect(sb.spec.podTemplate.spec.initContainers).toBeUndefined();
      const cfg = await skopeo(image, '--config');
      expect(cfg.config.Cmd).toEqual(['python3', '-m', 'http.server', '8000']);
      // The layer the commit added holds what setup wrote.
      const oci = path.join(dir, 'oci');
      await execFileP('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${image}`, `oci:${oci}`]);
      const last = (await skopeo(image)).Layers.at(-1).slice(7);
      const listing = (await execFileP('tar', ['-tzf', path.join(oci, 'blobs', 'sha256', last)])).stdout.split('\n');
      expect(listing).toContain('srv/setup.txt');
      expect(listing.some((l) => l.startsWith('etc/resolv.conf') || l.startsWith('.boxlite'))).toBe(false);
    } finally {
      await cli(home, ['-f', file, 'down', '--remove']);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

it('refuses what it cannot do, naming the fix', async () => {
  const r = await cli(home, ['commit', 'nosuchbox', `${reg.host}/x:1`]);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/nosuchbox/);
  const d = await cli(home, ['push', `${reg.host}/not/stored:1`]);
  expect(d.code).toBe(1);
  expect(d.stderr).toContain("pull it with 'boxlite images pull");
  expect(fs.existsSync(home)).toBe(true);
});
