// Networking on real boxes: outbound to a test host in a network namespace (by IP and by a name its DNS server
// resolves), TCP and UDP forwards from the host, isolation from the host's loopback and between boxes,
// `network: none`, counters, and the network helper dying.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { cleanupHome, cli, makeRootfs, quietRuntime, testHome, waitUntil } from '../helpers.js';
import { startTestHost, type TestHost } from '../netns.js';
import type { Box, Runtime } from '../../src/runtime/runtime.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { PortInUseError } from '../../src/runtime/ports.js';
import { GUEST_NODE } from '../../src/core/guest.js';

let home: string;
let rt: Runtime;
let rootfs: string;
let th: TestHost;
let web: Box;
let webPort: number;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

const sh = async (box: Box, script: string) => (await box.exec(['sh', '-c', script])).stdout;

// busybox has no UDP server applet here; the node runtime boxlite ships in every box serves as one.
const UDP_ECHO = `(setsid ${GUEST_NODE} -e "const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(m,r.port,r.address));s.bind(53)" </dev/null >/dev/null 2>&1 &)`;
// busybox wget's -T crashes; a plain timeout bounds connection attempts instead.
const fetchCmd = (url: string) => ['timeout', '5', 'wget', '-qO-', url];

function httpGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/', timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

function udpRoundTrip(port: number, msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => (s.close(), reject(new Error('no UDP answer'))), 5000);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m.toString());
    });
    s.send(msg, port, '127.0.0.1');
  });
}

beforeAll(async () => {
  th = await startTestHost();
  home = testHome();
  rt = quietRuntime(home);
  rootfs = makeRootfs();
  webPort = await freePort();
  web = await rt.create({ rootfs, name: 'web', memoryMib: 256, ports: [`${webPort}:80`, '53/udp', '81'], dns: [th.ip] });
  await web.start();
  await sh(web, `mkdir -p /www && echo served-by-the-box > /www/index.html && httpd -p 80 -h /www && ${UDP_ECHO}`);
  await sh(web, 'for i in $(seq 100); do netstat -lnu | grep -q ":53 " && break; sleep 0.1; done');
});

afterAll(async () => {
  rt?.close();
  if (home) await cleanupHome(home);
  th?.stop();
  if (rootfs) fs.rmSync(rootfs, { recursive: true, force: true });
});

describe('outbound', () => {
  it('reaches a host by IP and by a name its DNS server resolves', async () => {
    expect(await sh(web, `wget -qO- http://${th.ip}:${th.httpPort}/`)).toBe(`${th.token}\n`);
    expect(await sh(web, `wget -qO- http://${th.name}:${th.httpPort}/`)).toBe(`${th.token}\n`);
    expect(await sh(web, 'cat /etc/resolv.conf')).toBe(`nameserver ${th.ip}\n`);
  });

  it('gets the host resolver through the helper when no DNS server is given', async () => {
    const b = await rt.create({ rootfs, name: 'dnsdefault', memoryMib: 256 });
    try {
      await b.start();
      expect(await sh(b, 'cat /etc/resolv.conf; ip -4 addr show eth0 | grep -o "inet [0-9./]*"; ip route | head -1')).toBe('nameserver 10.0.2.2\ninet 10.0.2.15/24\ndefault via 10.0.2.2 dev eth0 \n');
      // The helper forwards DNS sent to the gateway to the host's resolver: the query is answered, not dropped.
      const r = await b.exec(['nslookup', 'boxlite-no-such-name.invalid']);
      expect(r.stdout + r.stderr).toMatch(/NXDOMAIN|can't find/);
      expect(r.stdout + r.stderr).not.toMatch(/timed out|no servers could be reached/i);
    } finally {
      await b.remove({ force: true });
    }
  });
});

describe('port forwards', () => {
  it('forwards TCP and UDP from the host, reports chosen host ports, and refuses where nothing listens', async () => {
    expect(await httpGet(webPort)).toBe('served-by-the-box\n');
    const ports = web.ports();
    expect(ports.map((p) => `${p.hostIp} ${p.guestPort}/${p.protocol}`)).toEqual(['127.0.0.1 80/tcp', '127.0.0.1 53/udp', '127.0.0.1 81/tcp']);
    const udp = ports[1].hostPort;
    const unused = ports[2].hostPort;
    expect(udp).toBeGreaterThan(0);
    expect(await udpRoundTrip(udp, 'echo me')).toBe('echo me');
    const port = await cli(home, ['port', 'web']);
    expect(port.stdout).toBe(`80/tcp -> 127.0.0.1:${webPort}\n53/udp -> 127.0.0.1:${udp}\n81/tcp -> 127.0.0.1:${unused}\n`);
    const ps = await cli(home, ['ps']);
    expect(ps.stdout).toContain(`127.0.0.1:${webPort}->80/tcp, 127.0.0.1:${udp}->53/udp, 127.0.0.1:${unused}->81/tcp`);
    // Nothing listens on the box's port 81: the connection is refused or closed without data; the box is fine.
    const got = await new Promise<string>((resolve) => {
      const s = net.connect(unused, '127.0.0.1');
      let data = '';
      s.on('data', (d) => (data += d));
      s.on('error', () => resolve(`error:${data}`));
      s.on('close', () => resolve(`closed:${data}`));
      s.setTimeout(10_000, () => s.destroy());
    });
    expect(got).toMatch(/^(error|closed):$/);
    expect(await sh(web, 'echo still fine')).toBe('still fine\n');
  });

  it('counts bytes and packets', async () => {
    const before = (await web.networkStats()).find((i) => i.name === 'eth0')!;
    expect(before.address).toBe('10.0.2.15/24');
    await sh(web, `wget -qO- http://${th.ip}:${th.httpPort}/ >/dev/null`);
    await httpGet(webPort);
    const after = (await web.networkStats()).find((i) => i.name === 'eth0')!;
    expect(after.rxBytes).toBeGreaterThan(before.rxBytes);
    expect(after.txBytes).toBeGreaterThan(before.txBytes);
    expect(after.rxPackets).toBeGreaterThan(before.rxPackets);
    expect(after.txPackets).toBeGreaterThan(before.txPackets);
    const inspect = JSON.parse((await cli(home, ['inspect', 'web'])).stdout);
    expect(inspect.networkStats[0].name).toBe('eth0');
    expect(inspect.network).toBe('ok');
  });

  it('reports a host port that is taken before anything boots, naming the port and the box', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const p = (taken.address() as net.AddressInfo).port;
    try {
      const b = await rt.create({ rootfs, name: 'clash', ports: [`${p}:80`] });
      const e = await b.start().catch((x) => x);
      expect(e).toBeInstanceOf(PortInUseError);
      expect(e.message).toBe(`box clash: host port ${p}/tcp on 127.0.0.1 is already in use (forward 127.0.0.1:${p}->80/tcp): choose another host port, or stop what uses it`);
      expect(b.info().state).toBe('created');
      expect(fs.existsSync(path.join(home, 'boxes', b.id, 'supervisor.pid'))).toBe(false); // no VM was ever started
      await b.remove();
    } finally {
      taken.close();
    }
  });

  it('rejects malformed forwards with the accepted forms', async () => {
    await expect(rt.create({ rootfs, ports: ['99999:80'] })).rejects.toThrow('port spec "99999:80": host port 99999 is out of range (1–65535)');
    await expect(rt.create({ rootfs, ports: ['web:80'] })).rejects.toThrow(/port spec "web:80": host port "web" is not a number; accepted forms: "8080:80"/);
    await expect(rt.create({ rootfs, ports: ['80/sctp'] })).rejects.toThrow('port spec "80/sctp": protocol "sctp" is not tcp or udp');
    await expect(rt.create({ rootfs, name: 'twice', ports: ['8080:80', '8080:81'] })).rejects.toThrow(/box twice: host port 8080\/tcp is forwarded twice/);
    await expect(rt.create({ rootfs, network: 'none', ports: ['80'] })).rejects.toBeInstanceOf(InvalidOptionError);
    const r = await cli(home, ['create', '-p', '1.2.3:80:80', rootfs]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('"1.2.3" is not an IPv4 address');
  });
});

describe('isolation', () => {
  it("cannot reach the host's loopback services, nor another box except through what it publishes on the host", async () => {
    const token = `host-only-${randomBytes(4).toString('hex')}`;
    const server = http.createServer((_q, s) => s.end(token));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const hostPort = (server.address() as net.AddressInfo).port;
    const other = await rt.create({ rootfs, name: 'other', memoryMib: 256 });
    try {
      await other.start();
      const tries = [`10.0.2.2:${hostPort}`, `127.0.0.1:${hostPort}`, `10.0.2.2:${webPort}`, `127.0.0.1:${webPort}`, '10.0.2.15:80'];
      for (const target of tries) {
        const r = await other.exec(fetchCmd(`http://${target}/`));
        expect(r.stdout, target).not.toContain(token);
        expect(r.stdout, target).not.toContain('served-by-the-box');
        expect(r.exitCode, target).not.toBe(0);
      }
      // the host itself does reach both
      expect(await httpGet(hostPort)).toBe(token);
      expect(await httpGet(webPort)).toBe('served-by-the-box\n');
    } finally {
      server.close();
      await other.remove({ force: true });
    }
  });

  it('network none leaves only loopback', async () => {
    const none = await rt.create({ rootfs, name: 'none', memoryMib: 256, network: 'none' });
    try {
      await none.start();
      expect(none.info().network).toBe('none');
      expect(await sh(none, 'ls /sys/class/net; ip route; echo routes-end')).toBe('lo\nroutes-end\n');
      const r = await none.exec(['timeout', '5', 'wget', '-O-', `http://${th.ip}:${th.httpPort}/`]);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(/Network is unreachable/);
      expect(await sh(none, 'ping -c1 -W1 127.0.0.1 >/dev/null && echo lo-ok')).toBe('lo-ok\n');
    } finally {
      await none.remove({ force: true });
    }
  });
});

describe('faults', () => {
  it('a dead network helper shows as degraded, and a restart brings networking back', async () => {
    const pid = Number(fs.readFileSync(path.join(home, 'boxes', web.id, 'helpers', 'passt.pid'), 'utf8').split('\n')[0]);
    process.kill(pid, 'SIGKILL');
    await waitUntil(() => !fs.existsSync(`/proc/${pid}`) || /^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8')), 'the network helper is gone');
    expect(web.info().network).toBe('degraded');
    expect((await cli(home, ['ps'])).stdout).toContain('running (network degraded)');
    expect(await sh(web, 'echo the box itself still runs')).toBe('the box itself still runs\n');
    await web.restart();
    expect(web.info().network).toBe('ok');
    await sh(web, 'mkdir -p /www && httpd -p 80 -h /www');
    expect(await httpGet(webPort)).toBe('served-by-the-box\n');
    expect(await sh(web, `wget -qO- http://${th.ip}:${th.httpPort}/`)).toBe(`${th.token}\n`);
  });
});
