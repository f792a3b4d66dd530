// The host boundary, tried as an attacker would. Crafted image layers (symlink chains, links to /, '..' names,
// absolute and '..' hard links, whiteouts and opaque markers below symlinks) and crafted box archives (options,
// backing files, external data files, oversize disks) must never create, change, delete or read a host file
// outside the places the user named; what is refused is refused with a message naming the entry and why, never a
// stack trace. What is contained is checked inside the image's file system itself (debugfs on the built base).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { execFileSync, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, cli, makeRootfs, quietRuntime, testHome, waitUntil } from '../helpers.js';
import { ociImage, tarLayer, type Entry } from '../oci.js';
import { freePort } from '../registry.js';
import { REPO } from '../paths.js';
import { startRelay, stopRelay } from '../../src/vmm/udp-relay.js';
import { loadAssets } from '../../src/runtime/assets.js';

let home: string;
let victim: string;
let tmp: string;
const SECRET = `boxlite-secret-${process.pid}-${Date.now()}`;

/** Everything about the victim folder that an attack could change: names, types, modes, owners, times, bytes. */
function snapshot(dir: string): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of fs.readdirSync(d).sort()) {
      const p = path.join(d, n);
      const st = fs.lstatSync(p);
      const body = st.isFile() ? createHash('sha256').update(fs.readFileSync(p)).digest('hex') : st.isSymbolicLink() ? fs.readlinkSync(p) : '';
      out.push(`${path.relative(victim, p)} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.mtimeMs} ${st.size} ${body}`);
      if (st.isDirectory()) walk(p);
    }
  };
  const st = fs.lstatSync(dir);
  out.push(`. ${st.mode.toString(8)} ${st.mtimeMs}`);
  walk(dir);
  return out.join('\n');
}

beforeAll(() => {
  home = testHome();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-hostile-'));
  // The host folder the attacks aim at: a secret, a subfolder, a file to overwrite.
  victim = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-victim-'));
  fs.writeFileSync(path.join(victim, 'secret'), SECRET);
  fs.mkdirSync(path.join(victim, 'sub'));
  fs.writeFileSync(path.join(victim, 'sub', 'keep'), 'keep');
  fs.chmodSync(victim, 0o750);
});

afterAll(async () => {
  await cleanupHome(home);
  fs.rmSync(victim, { recursive: true, force: true });
  fs.rmSync(tmp, { recursive: true, force: true });
});

const V = () => victim.slice(1); // the victim's path as a name inside an image

/** Builds an image from layers through the CLI, as a user would meet it. */
async function createFrom(name: string, layers: Entry[][]): Promise<{ code: number | null; stderr: string; base?: string }> {
  const layout = ociImage({ layers: await Promise.all(layers.map((l) => tarLayer(l))) });
  try {
    const r = await cli(home, ['create', '--name', name, '--disk', '256', layout]);
    let base: string | undefined;
    if (r.code === 0) base = JSON.parse((await cli(home, ['inspect', name])).stdout).source.base;
    return { code: r.code, stderr: r.stderr, base };
  } finally {
    fs.rmSync(layout, { recursive: true, force: true });
  }
}

/** A file in the image's file system, read with debugfs (null when it is not there). */
function inImage(base: string, file: string): string | null {
  const out = execFileSync('/usr/sbin/debugfs', ['-R', `cat ${file}`, base], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  return out === '' && !execFileSync('/usr/sbin/debugfs', ['-R', `stat ${file}`, base], { stdio: ['ignore', 'pipe', 'pipe'] }).toString().includes('Inode:') ? null : out;
}

const noStack = (stderr: string) => expect(stderr).not.toMatch(/\n\s+at [\w.<>]+ \(/);

describe('hostile image layers', () => {
  const cases: { name: string; layers: () => Entry[][]; refused?: () => RegExp; inside?: () => [string, string | null][] }[] = [
    {
      name: 'a file below an absolute symlink to a host folder lands inside the image',
      layers: () => [[{ path: 'escape', type: 'symlink', target: victim }, { path: 'escape/pwned', data: 'written' }]],
      inside: () => [[`/${V()}/pwned`, 'written']],
    },
    {
      name: 'a relative symlink climbing above the root stops at the root',
      layers: () => [[{ path: 'a/up', type: 'symlink', target: '../../../../../../../..' }, { path: `a/up/${V()}/pwned`, data: 'written' }]],
      inside: () => [[`/${V()}/pwned`, 'written']],
    },
    {
      name: 'a chain of symlinks, the last one absolute, is followed inside the root only',
      layers: () => [[{ path: 'x', type: 'symlink', target: 'y' }, { path: 'y', type: 'symlink', target: `${victim}/sub` }, { path: 'x/keep', data: 'replaced' }]],
      inside: () => [[`/${V()}/sub/keep`, 'replaced']],
    },
    {
      name: 'a symlink to / is the image root',
      layers: () => [[{ path: 'r', type: 'symlink', target: '/' }, { path: `r/${V()}/secret`, data: 'image secret' }]],
      inside: () => [[`/${V()}/secret`, 'image secret']],
    },
    {
      name: 'an absolute entry name is a name inside the image',
      layers: () => [[{ path: `${victim}/abs`, data: 'abs' }]],
      inside: () => [[`/${V()}/abs`, 'abs']],
    },
    {
      name: 'a whiteout below a symlink to a host folder removes nothing on the host',
      layers: () => [[{ path: 'w', type: 'symlink', target: victim }, { path: 'w/.wh.secret', data: '' }]],
      inside: () => [],
    },
    {
      name: 'an opaque marker below a symlink to a host folder empties nothing on the host',
      layers: () => [[{ path: 'o', type: 'symlink', target: victim }, { path: 'o/.wh..wh..opq', data: '' }]],
      inside: () => [],
    },
    {
      name: 'a later layer writes over a symlink, never through it',
      layers: () => [[{ path: 'f', type: 'symlink', target: `${victim}/secret` }], [{ path: 'f', data: 'replaced the link' }]],
      inside: () => [['/f', 'replaced the link']],
    },
    {
      name: 'a folder entry over a symlink to a host folder changes nothing on the host',
      layers: () => [[{ path: 'd', type: 'symlink', target: victim }], [{ path: 'd', type: 'directory', mode: 0o777 }, { path: 'd/new', data: 'new' }]],
      inside: () => [['/d/new', 'new']],
    },
    {
      name: "a '..' entry name is refused",
      layers: () => [[{ path: '../../escape', data: 'x' }]],
      refused: () => /entry "\.\.\/\.\.\/escape" climbs out of its root with "\.\."; the image was refused/,
    },
    {
      name: 'a hard link to an absolute host file is refused, not linked',
      layers: () => [[{ path: 'h', type: 'link', target: `${victim}/secret` }]],
      refused: () => new RegExp(`hard link h points at ${victim}/secret, which is not in the image`),
    },
    {
      name: 'a hard link through a symlink to a host folder is refused, not linked',
      layers: () => [[{ path: 's', type: 'symlink', target: victim }, { path: 'h', type: 'link', target: 's/secret' }]],
      refused: () => /hard link h points at s\/secret, which is not in the image/,
    },
    {
      name: "a '..' hard link is refused",
      layers: () => [[{ path: 'h', type: 'link', target: '../etc/passwd' }]],
      refused: () => /entry "\.\.\/etc\/passwd" climbs out of its root with "\.\."/,
    },
    {
      name: 'an xattr name carrying a second debugfs command (dump an image file onto the host) is refused',
      layers: () => [[{ path: 'f', data: 'planted', xattrs: { [`user.x\ndump /f ${victim}/pwned\n`]: 'v' } }]],
      refused: () => /entry "f" has an xattr with a malformed name "user\.x\\ndump/,
    },
    {
      name: "a whiteout of '..' is refused",
      layers: () => [[{ path: 'a/', type: 'directory' }, { path: 'a/.wh...', data: '' }]],
      refused: () => /whiteout "a\/\.wh\.\.\." names no entry/,
    },
  ];

  for (const [i, c] of cases.entries()) {
    it(c.name, async () => {
      const before = snapshot(victim);
      const r = await createFrom(`layer${i}`, c.layers());
      expect(snapshot(victim)).toBe(before); // nothing on the host changed, appeared or went
      noStack(r.stderr);
      if (c.refused) {
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(c.refused());
        return;
      }
      expect(r.code, r.stderr).toBe(0);
      // Nothing of the host's was read into the image: the secret's bytes are nowhere in it.
      expect(fs.readFileSync(r.base!).includes(Buffer.from(SECRET))).toBe(false);
      for (const [file, want] of c.inside!()) expect(inImage(r.base!, file)).toBe(want);
    });
  }
});

describe('the staging folder in /dev/shm, open to every user', () => {
  it("an assembly neither follows nor sweeps what someone else planted under a staging folder's name", async () => {
    const shm = '/dev/shm';
    const dead = 4_194_303; // above any pid this host hands out by default: a dead assembly's
    const planted = [
      { name: `boxlite-staging-${dead}-aaaaaa`, make: (p: string) => fs.symlinkSync(victim, p) },
      { name: `boxlite-staging-${dead}-bbbbbb`, make: (p: string) => (fs.mkdirSync(p), fs.writeFileSync(path.join(p, 'theirs'), 'x'), fs.chownSync(p, 65534, 65534)) },
    ];
    for (const p of planted) p.make(path.join(shm, p.name));
    const before = snapshot(victim);
    try {
      const r = await createFrom('staged', [[{ path: 'etc/hostname', data: 'staged\n' }]]);
      expect(r.code, r.stderr).toBe(0);
      expect(fs.readlinkSync(path.join(shm, planted[0].name))).toBe(victim);
      expect(fs.readFileSync(path.join(shm, planted[1].name, 'theirs'), 'utf8')).toBe('x');
      expect(snapshot(victim)).toBe(before);
    } finally {
      for (const p of planted) fs.rmSync(path.join(shm, p.name), { recursive: true, force: true });
    }
  });
});

/** A box archive as `boxlite export` writes one, with the manifest and disk given. */
async function archive(file: string, manifest: Record<string, unknown>, disk: string): Promise<string> {
  const data = fs.readFileSync(disk);
  const sum = createHash('sha256').update(data).digest('hex');
  const full = { format: 'boxlite-export/1', exportedAt: new Date().toISOString(), origin: 'test', ...manifest, parts: [{ name: 'disk.qcow2', size: data.length, sha256: sum }] };
  fs.writeFileSync(file, await tarLayer([{ path: 'disk.qcow2', data, mode: 0o600 }, { path: 'manifest.json', data: JSON.stringify(full) }]));
  return file;
}

const OPTIONS = { cpus: 1, memoryMib: 192, diskSizeMib: 128, env: {}, workingDir: '', user: '', network: 'default', ports: [], dns: [] };
const CONFIG = { env: [], entrypoint: [], cmd: [], workingDir: '', user: '' };

describe('hostile box archives', () => {
  let good: string;
  beforeAll(() => {
    good = path.join(tmp, 'good.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', good, '128M']);
  });

  it("drops what would reach beyond the box (host folders, volumes, the LAN, fixed host ports, its resolver) and says so", async () => {
    const a = await archive(path.join(tmp, 'reach.tar'), {
      name: 'reach',
      config: CONFIG,
      options: {
        ...OPTIONS,
        binds: [{ hostPath: victim, target: '/mnt', readOnly: false }],
        volumes: [{ volume: 'someones-data', target: '/data', readOnly: false }],
        lan: { mcast: '239.1.1.1:30000', address: '10.89.0.9', mac: '52:54:01:00:00:09' },
        ports: [{ hostIp: '0.0.0.0', hostPort: 22, guestPort: 22, protocol: 'tcp' }],
        // A resolver of the archive's choice would decide where a secret's host points.
        dns: ['203.0.113.53'],
      },
    }, good);
    const r = await cli(home, ['import', a]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`boxlite: import: host folders it mounted were dropped (${victim}:/mnt): give them again with -v if you trust them`);
    expect(r.stderr).toContain('boxlite: import: named volumes it mounted were dropped (someones-data): give them again with -v');
    expect(r.stderr).toContain('boxlite: import: its project LAN address was dropped');
    expect(r.stderr).toContain('boxlite: import: its fixed host ports were dropped');
    expect(r.stderr).toContain('boxlite: import: its ports published beyond this host now listen on 127.0.0.1 only');
    expect(r.stderr).toContain("boxlite: import: its DNS servers were dropped (203.0.113.53): it uses this host's resolver; give them again with 'boxlite import --dns' if you trust them");
    const rec = JSON.parse((await cli(home, ['inspect', 'reach'])).stdout);
    expect(rec.options.dns).toEqual([]);
    expect(rec.options.binds).toBeUndefined();
    expect(rec.options.volumes).toBeUndefined();
    expect(rec.options.lan).toBeUndefined();
    expect(rec.options.ports).toEqual([{ hostIp: '127.0.0.1', hostPort: 0, guestPort: 22, protocol: 'tcp' }]);
  });

  const refusals: { name: string; manifest?: Record<string, unknown>; disk?: () => string; error: () => string }[] = [
    { name: 'options create would refuse', manifest: { options: { ...OPTIONS, cpus: 4096 } }, error: () => 'has options create would refuse: cpus must be a whole number from 1 to 64' },
    { name: 'an invalid box name', manifest: { name: '../../etc' }, error: () => 'names the box invalidly (box name "../../etc" is invalid' },
    { name: 'a malformed image config', manifest: { config: { env: 'PATH=/evil' } }, error: () => 'has a malformed image config' },
    { name: 'ports that are not a list', manifest: { options: { ...OPTIONS, ports: 'all' } }, error: () => 'has a malformed ports list' },
    { name: 'binds that are not a list of objects', manifest: { options: { ...OPTIONS, binds: [null] } }, error: () => 'has a malformed binds list' },
    {
      name: 'a disk whose backing file is a host file',
      disk: () => {
        const f = path.join(tmp, 'backed.qcow2');
        execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', path.join(victim, 'secret'), f, '64M']);
        return f;
      },
      error: () => `has a backing file (${path.join(victim, 'secret')}), which would be read from the host`,
    },
    {
      name: 'a disk with an external data file',
      disk: () => {
        const f = path.join(tmp, 'datafile.qcow2');
        execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `data_file=${path.join(tmp, 'external.raw')}`, f, '64M']);
        return f;
      },
      error: () => 'keeps its data in an external file',
    },
    {
      name: 'a raw disk',
      disk: () => {
        const f = path.join(tmp, 'raw.img');
        fs.writeFileSync(f, Buffer.alloc(1 << 20));
        return f;
      },
      error: () => 'is not a readable qcow2 image',
    },
    {
      name: 'a disk larger than its box',
      disk: () => {
        const f = path.join(tmp, 'huge.qcow2');
        execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', f, '1T']);
        return f;
      },
      error: () => "is 1048576 MiB, larger than the box's disk (128 MiB)",
    },
  ];

  for (const [i, c] of refusals.entries()) {
    it(`refuses an archive with ${c.name}, importing nothing`, async () => {
      const before = snapshot(victim);
      const a = await archive(path.join(tmp, `bad${i}.tar`), { name: `bad${i}`, config: CONFIG, options: OPTIONS, ...c.manifest }, c.disk?.() ?? good);
      const r = await cli(home, ['import', a]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(c.error());
      expect(r.stderr).toContain('nothing was imported');
      noStack(r.stderr);
      expect(JSON.parse((await cli(home, ['ps', '-a', '--json'])).stdout).some((b: { name: string }) => b.name === `bad${i}`)).toBe(false);
      expect(fs.readdirSync(path.join(home, 'boxes')).filter((n) => n.startsWith('.import-'))).toEqual([]);
      expect(snapshot(victim)).toBe(before);
    });
  }
});


/** A box whose "VM" is the stand-in agent (test/stand-in-agent.mjs): the runtime talks to it as to a running box. */
async function standInBox(name: string, script: Record<string, unknown>, ports: string[] = []): Promise<{ dir: string; pid: number; stop: () => void }> {
  const rt = quietRuntime(home);
  try {
    const box = await rt.create({ rootfs: makeRootfs(path.join(tmp, `rootfs-${name}`)), name, memoryMib: 128, ports });
    const dir = path.join(home, 'boxes', box.id);
    const scriptFile = path.join(tmp, `${name}.json`);
    fs.writeFileSync(scriptFile, JSON.stringify(script));
    const child = spawn(process.execPath, [path.join(REPO, 'test', 'stand-in-agent.mjs'), dir, scriptFile, path.join(dir, 'vm', 'qmp.sock')], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d) => String(d).includes('ready') && resolve());
      child.once('exit', (c) => reject(new Error(`the stand-in agent exited (${c})`)));
    });
    await rt.records.update(box.id, (r) => ({ ...r, state: 'running', ports: r.options.ports }));
    return { dir, pid: child.pid!, stop: () => child.kill('SIGKILL') };
  } finally {
    rt.close();
  }
}

describe('a hostile guest', () => {
  const cpCases: { name: string; entries: () => Entry[]; refused?: () => string; check?: (dest: string) => void }[] = [
    {
      name: 'a file through a symlink the stream made is refused',
      entries: () => [{ path: 'top/', type: 'directory' }, { path: 'top/link', type: 'symlink', target: victim }, { path: 'top/link/pwned', data: 'x' }],
      refused: () => 'entry "top/link/pwned" goes through the symlink top/link',
    },
    {
      name: "a '..' name is refused",
      entries: () => [{ path: 'top/', type: 'directory' }, { path: 'top/../../escape', data: 'x' }],
      refused: () => 'climbs out of its root with ".."',
    },
    {
      name: 'an entry outside the folder being copied is refused',
      entries: () => [{ path: 'top/', type: 'directory' }, { path: 'other/x', data: 'x' }],
      refused: () => 'entry "other/x" is outside top, the folder being copied',
    },
    {
      name: 'a hard link to a host file is refused',
      entries: () => [{ path: 'top/', type: 'directory' }, { path: 'top/h', type: 'link', target: `${victim}/secret` }],
      refused: () => 'which does not exist',
    },
    {
      name: "a folder's mode is never applied through a symlink that later took its place",
      entries: () => [{ path: 'top/', type: 'directory' }, { path: 'top/d/', type: 'directory', mode: 0o777 }, { path: 'top/d', type: 'symlink', target: victim }],
      check: (dest) => expect(fs.readlinkSync(path.join(dest, 'top', 'd'))).toBe(victim),
    },
    {
      name: "a folder's mode is never applied through a symlink that took the place of its parent",
      entries: () => [{ path: 'top/', type: 'directory' }, { path: 'top/a/', type: 'directory' }, { path: 'top/a/sub/', type: 'directory', mode: 0o777 }, { path: 'top/a', type: 'symlink', target: victim }],
      check: (dest) => expect(fs.readlinkSync(path.join(dest, 'top', 'a'))).toBe(victim),
    },
    {
      name: 'setuid and setgid bits are dropped, devices and fifos not made, symlinks kept as they are',
      entries: () => [
        { path: 'top/', type: 'directory', mode: 0o2775 },
        { path: 'top/suid', data: '#!/bin/sh\n', mode: 0o4755 },
        { path: 'top/sgid', data: 'x', mode: 0o2644 },
        { path: 'top/tty', type: 'character-device', major: 5, minor: 0 },
        { path: 'top/fifo', type: 'fifo' },
        { path: 'top/link', type: 'symlink', target: victim },
        { path: 'top/same', type: 'link', target: 'top/sgid' },
      ],
      check: (dest) => {
        expect(fs.readdirSync(path.join(dest, 'top')).sort()).toEqual(['link', 'same', 'sgid', 'suid']);
        expect(fs.statSync(path.join(dest, 'top', 'suid')).mode & 0o7777).toBe(0o755);
        expect(fs.statSync(path.join(dest, 'top', 'sgid')).mode & 0o7777).toBe(0o644);
        expect(fs.statSync(path.join(dest, 'top')).mode & 0o7777).toBe(0o775);
        expect(fs.readlinkSync(path.join(dest, 'top', 'link'))).toBe(victim);
        expect(fs.statSync(path.join(dest, 'top', 'same')).ino).toBe(fs.statSync(path.join(dest, 'top', 'sgid')).ino);
      },
    },
  ];

  for (const [i, c] of cpCases.entries()) {
    it(`cp out: ${c.name}`, async () => {
      const tarFile = path.join(tmp, `cp${i}.tar`);
      fs.writeFileSync(tarFile, await tarLayer(c.entries()));
      const box = await standInBox(`cp${i}`, { download: tarFile });
      const dest = fs.mkdtempSync(path.join(tmp, 'dest-'));
      const before = snapshot(victim);
      try {
        const r = await cli(home, ['cp', `cp${i}:/top`, dest]);
        noStack(r.stderr);
        expect(snapshot(victim)).toBe(before);
        if (c.refused) {
          expect(r.code).toBe(1);
          expect(r.stderr).toContain(`cp: /top in box cp${i}: `);
          expect(r.stderr).toContain(c.refused());
          expect(fs.readdirSync(dest)).toEqual([]); // nothing half-copied, no staging left
        } else {
          expect(r.code, r.stderr).toBe(0);
          c.check!(dest);
        }
      } finally {
        box.stop();
      }
    });
  }

  it('the UDP relay answers only peers that sent to the published port, never the host loopback the guest names', async () => {
    const victimSock = dgram.createSocket('udp4');
    await new Promise<void>((r) => victimSock.bind(0, '127.0.0.1', () => r()));
    const got: string[] = [];
    victimSock.on('message', (m) => got.push(String(m)));
    const published = await freePort();
    const box = await standInBox('udp', { udp: [{ port: 53, peer: `0|127.0.0.1:${victimSock.address().port}`, data: 'attack' }, { port: 53, peer: 'SENDER', data: 'answer' }] }, [`127.0.0.1:${published}:53/udp`]);
    const client = dgram.createSocket('udp4');
    try {
      await startRelay(box.dir, 'udp', box.pid, [{ hostIp: '127.0.0.1', hostPort: published, guestPort: 53, protocol: 'udp' }]);
      const ask = () =>
        new Promise<string>((resolve) => {
          client.once('message', (m) => resolve(String(m)));
          client.send('question', published, '127.0.0.1');
        });
      // The guest answers each question twice: to the victim first, then to whoever asked. Two rounds: by the
      // second answer, the first attack datagram would long have arrived.
      expect(await ask()).toBe('answer');
      expect(await ask()).toBe('answer');
      expect(got).toEqual([]);
    } finally {
      stopRelay(box.dir);
      client.close();
      victimSock.close();
      box.stop();
    }
  });
});

describe('a VMM that broke out of its guest', () => {
  // What a jailed QEMU owns (its disk's header, its run folder) it can rewrite: boxlite must not believe it.
  const tampered: { name: string; make: (disk: string) => void; error: () => string }[] = [
    {
      name: 'a backing file on the host',
      make: (disk) => execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', path.join(victim, 'secret'), disk, '64M']),
      error: () => `it reads from ${path.join(victim, 'secret')}, which is not a layer or image base of ${home}`,
    },
    {
      name: 'an external data file',
      make: (disk) => execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `data_file=${path.join(tmp, 'tampered.raw')}`, disk, '64M']),
      error: () => `keeps its data in ${path.join(tmp, 'tampered.raw')}`,
    },
  ];
  for (const [i, c] of tampered.entries()) {
    it(`a disk rewritten to have ${c.name} is neither booted nor exported`, async () => {
      const rt = quietRuntime(home);
      let id: string;
      try {
        id = (await rt.create({ rootfs: makeRootfs(path.join(tmp, `rootfs-tamper${i}`)), name: `tamper${i}`, memoryMib: 128 })).id;
      } finally {
        rt.close();
      }
      c.make(path.join(home, 'boxes', id, 'disk.qcow2'));
      const before = snapshot(victim);
      for (const args of [['start', `tamper${i}`], ['export', `tamper${i}`, path.join(tmp, `tamper${i}.tar`)]]) {
        const r = await cli(home, args);
        expect(r.code, args.join(' ')).toBe(1);
        expect(r.stderr).toContain(`box tamper${i}'s disk was changed by something other than boxlite (`);
        expect(r.stderr).toContain(`${c.error()}); it is not used: remove the box ('boxlite rm -f tamper${i}')`);
        noStack(r.stderr);
      }
      expect(fs.existsSync(path.join(tmp, `tamper${i}.tar`))).toBe(false);
      expect(snapshot(victim)).toBe(before);
    });
  }

  it("sockets of its run folder pointed at another process's socket are never spoken to", async () => {
    const box = await standInBox('peer', {});
    const decoyPath = path.join(tmp, 'decoy.sock');
    let heard = 0;
    let connections = 0;
    const decoy = net.createServer((c) => {
      connections++;
      c.on('data', (d) => (heard += d.length));
    });
    await new Promise<void>((r) => decoy.listen(decoyPath, r));
    try {
      for (const f of ['agent-0.sock', 'agent-1.sock', 'agent-2.sock', 'agent-3.sock', 'qmp.sock']) {
        fs.rmSync(path.join(box.dir, 'vm', f), { force: true });
        fs.symlinkSync(decoyPath, path.join(box.dir, 'vm', f));
      }
      const exec = await cli(home, ['exec', 'peer', 'true']);
      expect(exec.code).not.toBe(0);
      expect(exec.stderr).toMatch(/agent socket .* is served by process \d+, not by the box's VM/);
      noStack(exec.stderr);
      const pause = await cli(home, ['pause', 'peer']);
      expect(pause.code).not.toBe(0);
      expect(pause.stderr).toMatch(/socket .* is served by process \d+, not by the box's VM/);
      noStack(pause.stderr);
      expect(connections).toBeGreaterThan(0); // the symlinks were followed to the decoy, and then left alone
      expect(heard).toBe(0);
    } finally {
      decoy.close();
      box.stop();
    }
  });
});

/** Fields of /proc/PID/status. */
function procStatus(pid: number): Record<string, string> {
  return Object.fromEntries(
    fs
      .readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
  );
}
const ns = (pid: number | 'self', kind: string) => fs.readlinkSync(`/proc/${pid}/ns/${kind}`);

describe('the jail', () => {
  it('runs each VMM as a uid of its own box, without privileges, seccomp-filtered, in namespaces, seeing only its box', async () => {
    const rt = quietRuntime(home);
    try {
      const box = await rt.create({ rootfs: makeRootfs(path.join(tmp, 'rootfs-jailed')), name: 'jailed', memoryMib: 192, diskSizeMib: 128, ports: ['8000', '53/udp'] });
      await box.start();
      expect((await box.exec(['echo', 'up'])).stdout).toBe('up\n');
      const st = rt.engine.status(path.join(home, 'boxes', box.id));
      expect(st.kind).toBe('running');
      const pid = (st as { pid: number }).pid;
      expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toMatch(/^qemu-system-x86_64\0/);
      const s = procStatus(pid);
      const uid = Number(s.Uid.split(/\s+/)[0]);
      expect(uid).toBe(box.info().vmmUid);
      expect(uid).toBeGreaterThanOrEqual(1_900_000_000);
      expect(s.Uid.split(/\s+/)).toEqual([String(uid), String(uid), String(uid), String(uid)]); // real, effective, saved, fs
      expect(s.Groups).toBe('');
      expect(s.CapEff).toBe('0000000000000000');
      expect(s.CapBnd).toBe('0000000000000000');
      expect(s.NoNewPrivs).toBe('1');
      expect(s.Seccomp).toBe('2');
      for (const kind of ['pid', 'ipc', 'uts', 'mnt', 'net']) expect(ns(pid, kind)).not.toBe(ns('self', kind));
      const limits = fs.readFileSync(`/proc/${pid}/limits`, 'utf8');
      expect(limits).toMatch(/Max open files\s+1024\s+1024/);
      expect(limits).toMatch(/Max processes\s+256\s+256/);
      expect(limits).toMatch(/Max core file size\s+0\s+0/);
      expect(limits).toMatch(new RegExp(`Max file size\\s+${(128 * 2 + 512) * 1024 * 1024}\\s`));
      // Its view of the file system: its run folder and disk, the assets; not its record, not the rest of the home.
      const view = `/proc/${pid}/root`;
      const dir = path.join(home, 'boxes', box.id);
      expect(fs.existsSync(`${view}${dir}/vm/qmp.sock`)).toBe(true);
      expect(fs.existsSync(`${view}${dir}/disk.qcow2`)).toBe(true);
      expect(fs.existsSync(`${view}${dir}/box.json`)).toBe(false);
      // Of the home: the box's own folder, and the layer below its disk (a folder box's base); the guest assets
      // (linked into this home from the test's shared ones) at their own paths.
      expect(fs.readdirSync(`${view}${home}`).sort()).toEqual(['boxes', 'layers']);
      expect(fs.readdirSync(`${view}${home}/boxes`)).toEqual([box.id]);
      expect(fs.existsSync(`${view}${loadAssets(rt.home).kernel}`)).toBe(true);
      expect(fs.existsSync(`${view}/etc/passwd`)).toBe(false);
      expect(fs.existsSync(`${view}${victim}`)).toBe(false);
      // Its helpers run as the same uid: the network helper and the UDP relay.
      const netSock = /addr\.path=([^,\0]+)/.exec(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'))![1];
      const helpers = execFileSync('ps', ['-o', 'uid=,args=', '-e']).toString().split('\n').filter((l) => l.includes(dir) || l.includes(netSock));
      const passt = helpers.find((l) => l.includes('/usr/bin/passt') && l.includes('--runas'));
      expect(passt?.trim().split(/\s+/)[0]).toBe(String(uid));
      const relay = helpers.find((l) => l.includes('--boxlite-udp-relay'));
      expect(relay?.trim().split(/\s+/)[0]).toBe(String(uid));
      // What the VMM may write in the box's folder is its run folder and its disk, nothing else.
      expect(fs.statSync(path.join(dir, 'vm')).uid).toBe(uid);
      expect(fs.statSync(path.join(dir, 'box.json')).uid).toBe(0);
      expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
      expect(fs.statSync(path.join(dir, 'box.json')).mode & 0o777).toBe(0o600);
      expect(fs.statSync(home).mode & 0o777).toBe(0o700);
      // A guest flooding its console cannot fill the host's disk: the log is cut at 2 MiB, the older half kept.
      const log = box.consolePath();
      const before = fs.statSync(log).size; // the boot's own lines
      void box.exec(['sh', '-c', 'head -c 2500000 /dev/zero | tr "\\0" x > /dev/console']).catch(() => {});
      // Rotated: the older half renamed into place whole, then the log emptied (two steps: wait for both).
      await waitUntil(() => fs.existsSync(`${log}.1`) && fs.statSync(log).size < 2 * 1024 * 1024, 'the console log was rotated', 120_000);
      expect(fs.statSync(`${log}.1`).size).toBeGreaterThan(2 * 1024 * 1024);
      expect(fs.statSync(`${log}.1`).size).toBeLessThanOrEqual(before + 2_500_000);
      expect(fs.statSync(log).size).toBeLessThan(2 * 1024 * 1024);
      await box.remove({ force: true });
    } finally {
      rt.close();
    }
  });

  it("a guest flooding the box's log (a command's output, kept on the host) cannot fill the host's disk", async () => {
    const rt = quietRuntime(home);
    try {
      const box = await rt.create({ rootfs: makeRootfs(path.join(tmp, 'rootfs-chatty')), name: 'chatty', memoryMib: 192, diskSizeMib: 128 });
      await box.start();
      const log = box.logPath();
      // 5 MB, as a command's output or as the guest's root writing past the agent: the log is cut at 2 MiB.
      await box.exec(['sh', '-c', 'head -c 5000000 /dev/zero | tr "\\0" x > /dev/boxlite-log']);
      await waitUntil(() => fs.existsSync(`${log}.1`) && fs.statSync(log).size < 2 * 1024 * 1024, 'the box log was rotated', 120_000);
      expect(fs.statSync(`${log}.1`).size).toBeGreaterThan(2 * 1024 * 1024);
      expect(fs.statSync(`${log}.1`).size).toBeLessThan(5_200_000);
      await box.remove({ force: true });
    } finally {
      rt.close();
    }
  });
});
