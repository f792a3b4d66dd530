// The project LAN, tried as an attacker would: another local user, unprivileged, looking for the frames two boxes
// exchange (the loopback multicast group that once carried them, the guards' sockets), and the root of one box
// writing frames in another box's name (its MAC, its address, an ARP answer claiming its address). Only the boxes
// of the project hear each other, and each only in its own name.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cleanupHome, cli, quietRuntime, testHome } from '../helpers.js';
import { debianLayout } from '../registry.js';
import { RAW_FRAMES_PY } from '../raw-frames.js';
import { projectLabel } from '../../src/reconciler/label.js';
import type { BoxRecord } from '../../src/runtime/types.js';
import { netDirOf } from '../../src/runtime/confine.js';
import { BUSYBOX } from '../../src/core/guest.js';
import type { RuntimeContext } from '../../src/runtime/context.js';

const OTHER_USER = 'boxlite-lan-snoop';
let home: string;
let dir: string;
let lan: Record<string, { address: string; mac: string; id: string }>;

const exec = (box: string, script: string) => cli(home, ['exec', box, '--', 'sh', '-c', script], { cwd: dir });

/** The multicast group this home's project would have used before LANs moved to the guards. */
function formerGroup(key: string): { address: string; port: number } {
  const h = createHash('sha256').update(key).digest();
  return { address: `239.${h[0] % 254}.${h[1]}.${1 + (h[2] % 254)}`, port: 20000 + (h.readUInt16BE(3) % 40000) };
}

// Run as the other user: joins the former group on loopback, tries every socket it can name, and counts what it
// reads until told to stop (a line on stdin); prints one JSON line.
const SNOOP = `
const dgram = require('node:dgram'), net = require('node:net'), fs = require('node:fs'), path = require('node:path');
const [group, port, ...paths] = process.argv.slice(1);
const out = { frames: 0, sockets: {} };
const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
s.on('message', () => out.frames++);
s.bind(Number(port), () => {
  s.addMembership(group, '127.0.0.1');
  let left = paths.length;
  const done = () => --left <= 0 && console.log('listening');
  if (!left) console.log('listening');
  for (const p of paths) {
    const c = net.connect(p);
    c.on('connect', () => { out.sockets[p] = 'connected'; c.on('data', () => out.frames++); done(); });
    c.on('error', (e) => { out.sockets[p] = e.code; done(); });
  }
});
process.stdin.on('data', () => { console.log(JSON.stringify(out)); process.exit(0); });
`;

beforeAll(async () => {
  try {
    execFileSync('id', ['-u', OTHER_USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--no-create-home', '--shell', '/bin/sh', OTHER_USER]);
  }
  home = testHome();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-lanproj-'));
  const box = `    image: ${debianLayout()}\n    memory: 384MiB\n    disk: 512MiB\n`;
  fs.writeFileSync(path.join(dir, 'boxlite.yaml'), `name: lanb\nboxes:\n  a:\n${box}  b:\n${box}`);
  const up = await cli(home, ['up', '--trust'], { cwd: dir });
  expect(up.code, up.stderr).toBe(0);
  const rt = quietRuntime(home);
  lan = Object.fromEntries(rt.list().map((r: BoxRecord) => [projectLabel(r)!.box, { ...r.options.lan!, id: r.id }]));
  rt.close();
});

afterAll(async () => {
  if (dir) await cli(home, ['down', '--remove'], { cwd: dir }).catch(() => {});
  if (home) await cleanupHome(home);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

it("another local user reads none of the LAN's frames and reaches none of its sockets while the boxes talk", async () => {
  const g = formerGroup(`${home}\0lanb`);
  const segment = createHash('sha256').update(`${home}\0lanb`).digest('hex').slice(0, 16);
  const sockets = [
    // Where the boxes' network guards meet.
    ...Object.values(lan).map((b) => path.join(home, 'lan', segment, `${b.id}.sock`)),
    // The VM side of each guard (QEMU's NIC sockets), in the folder the box's uid owns.
    ...Object.values(lan).map((b) => path.join(netDirOf({ home: { root: home } } as RuntimeContext, b.id), 'lan.sock')),
  ];
  const snoop = spawn('runuser', ['-u', OTHER_USER, '--', process.execPath, '-e', SNOOP, g.address, String(g.port), ...sockets], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  snoop.stdout.on('data', (d) => (out += d));
  await new Promise<void>((resolve, reject) => {
    snoop.stdout.on('data', () => out.includes('listening\n') && resolve());
    snoop.once('exit', (c) => reject(new Error(`the snooping process exited (${c}): ${out}`)));
  });
  // The boxes do talk: a reaches b by name, over the LAN.
  const ping = await exec('a', `${BUSYBOX} ping -c 5 -i 0.2 b && echo reached`);
  expect(ping.stdout, ping.stderr).toContain('5 packets received');
  expect(ping.stdout).toMatch(/reached\n$/);
  snoop.stdin.write('report\n');
  await new Promise((r) => snoop.once('exit', r));
  const seen = JSON.parse(out.trim().split('\n').pop()!) as { frames: number; sockets: Record<string, string> };
  expect(seen.frames).toBe(0);
  for (const p of sockets) expect(seen.sockets[p], p).toBe('EACCES');
});

it("a box's root cannot speak on the LAN in another box's name, nor poison its neighbours' ARP", async () => {
  // b listens for UDP and keeps a line per datagram, and what its ARP table says of a third address.
  await exec('b', `(setsid python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 9999))
while True:
    m, a = s.recvfrom(2048)
    open('/tmp/got', 'a').write(m.decode() + ' ' + a[0] + '\\n')
" </dev/null >/dev/null 2>&1 &); for i in $(seq 100); do grep -q ':270F ' /proc/net/udp && break; sleep 0.1; done`);
  const frames = (opts: string[], src: string, targets: string[]) =>
    cli(home, ['exec', 'a', '--', 'python3', '-c', RAW_FRAMES_PY, ...opts, 'lan0', src, '0.0.0.0', 'none', ...targets], { cwd: dir });
  const toB = `dmac=${lan.b.mac}`;
  // In b's name (its MAC), in a made-up box's address, and an ARP answer saying 10.89.0.77 is at a's MAC.
  expect((await frames([`smac=${lan.b.mac}`, toB], lan.a.address, [`udp:${lan.b.address}:9999:as-b-mac`])).stdout).toBe('sent 1\n');
  expect((await frames([toB], '10.89.0.77', [`udp:${lan.b.address}:9999:as-another-address`])).stdout).toBe('sent 1\n');
  expect((await frames([toB], '10.89.0.77', [`arp:${lan.b.address}`])).stdout).toBe('sent 1\n');
  // Then one in its own name: once it has arrived, the others were handled before it.
  expect((await frames([toB], lan.a.address, [`udp:${lan.b.address}:9999:own-name`])).stdout).toBe('sent 1\n');
  const got = await exec('b', 'for i in $(seq 100); do grep -q own-name /tmp/got 2>/dev/null && break; sleep 0.1; done; cat /tmp/got; ip neigh show 10.89.0.77');
  expect(got.stdout).toBe(`own-name ${lan.a.address}\n`);
  // The guard said why it dropped them.
  const log = fs.readFileSync(path.join(home, 'boxes', lan.a.id, 'netguard.log'), 'utf8');
  expect(log).toContain('LAN: dropped a source MAC that is not the box');
  expect(log).toContain('LAN: dropped an IPv4 source 10.89.0.77 that is not the box');
  expect(log).toContain("LAN: dropped an ARP sender address 10.89.0.77 that is not the box's");
});
