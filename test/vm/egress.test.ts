// Outbound policy on a real box, against test hosts in a network namespace of the test's own: allowed and denied
// by IP, CIDR, port, domain and wildcard; a DNS answer that changes; private, metadata and host addresses closed
// even when a DNS answer leads there; UDP; every denial an event (SDK, CLI, inspect); a policy edited on the
// running box; port forwards still served.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { cleanupHome, cli, makeRootfs, quietRuntime, testHome, waitUntil } from '../helpers.js';
import { Project, type WatchEvent } from '../../src/index.js';
import { startEgressHosts, type EgressHosts } from '../egress-host.js';
import type { Box, EgressEvent, Runtime } from '../../src/runtime/runtime.js';
import { GUEST_NODE } from '../../src/core/guest.js';

let home: string;
let rt: Runtime;
let rootfs: string;
let eh: EgressHosts;
let box: Box;
let port: number;
let udpPort: number;

const udpCmd = (ip: string) => `${GUEST_NODE} -e "const s=require('dgram').createSocket('udp4');s.on('message',m=>{console.log(String(m));process.exit(0)});s.send('ping',7,'${ip}');setTimeout(()=>{console.log('no answer');process.exit(0)},3000)"`;

/** The body, or "failed" (busybox wget's -T crashes; timeout bounds it instead). */
async function fetch(url: string, from: Box = box): Promise<string> {
  const r = await from.exec(['sh', '-c', `timeout 8 wget -qO- ${url} 2>&1 || echo failed`]);
  return r.stdout.trim();
}
const events = async (): Promise<EgressEvent[]> => {
  const out: EgressEvent[] = [];
  for await (const e of box.events()) out.push(e);
  return out;
};
const deniedTo = async (destination: string) => (await events()).filter((e) => e.destination === destination);

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

let zone: string;
let names: Record<string, [string, number]>;
/** Changes what the test DNS server answers for a name (the others stay). */
const answer = (name: string, ip: string, ttl: number) => eh.setNames((names = { ...names, [name]: [ip, ttl] }));
beforeAll(async () => {
  eh = await startEgressHosts();
  zone = `${eh.dns.replace(/\./g, '-')}.egress.test`;
  names = { [`api.${zone}`]: [eh.ips[0], 60], [`a.wild.${zone}`]: [eh.ips[2], 60], [`evil.wild.${zone}`]: [eh.privateIp, 60] };
  eh.setNames(names);
  home = testHome();
  rt = quietRuntime(home);
  rootfs = makeRootfs();
  port = await freePort();
  udpPort = await freePort();
  box = await rt.create({
    rootfs,
    name: 'agent',
    memoryMib: 256,
    dns: [eh.dns],
    ports: [`${port}:80`, `${udpPort}:5353/udp`],
    egress: { allow: [`api.${zone}:8080`, `*.wild.${zone}`, `${eh.ips[3]}/32:8080`, `${eh.ips[3]}:7/udp`], deny: [`${eh.ips[1]}`] },
  });
  await box.start();
  await box.exec(['sh', '-c', 'mkdir -p /www && echo served-by-the-box > /www/index.html && httpd -p 80 -h /www']);
  const echo = `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(m,r.port,r.address));s.bind(5353)`;
  await box.exec(['sh', '-c', `(setsid ${GUEST_NODE} -e "${echo}" </dev/null >/dev/null 2>&1 &); for i in $(seq 100); do netstat -lnu | grep -q ":5353 " && break; sleep 0.1; done`]);
});

afterAll(async () => {
  rt?.close();
  if (home) await cleanupHome(home);
  eh?.stop();
  if (rootfs) fs.rmSync(rootfs, { recursive: true, force: true });
});

describe('outbound policy', () => {
  it('lets through what an IP or CIDR rule names, on its port only, and denies the rest with an event', async () => {
    expect(await fetch(`http://${eh.ips[3]}:8080/`)).toBe(`host ${eh.ips[3]}`);
    expect(await fetch(`http://${eh.ips[4]}:8080/`)).toMatch(/failed|reset|refused/);
    expect(await deniedTo(`${eh.ips[4]}:8080`)).toEqual([expect.objectContaining({ kind: 'connection', protocol: 'tcp', rule: 'no allow rule matches', box: 'agent', action: 'deny' })]);
  });

  it('opens a domain only at the addresses its DNS answer gave, and wildcards only below their domain', async () => {
    expect(await fetch(`http://api.${zone}:8080/`)).toBe(`host ${eh.ips[0]}`);
    expect(await fetch(`http://a.wild.${zone}:8080/`)).toBe(`host ${eh.ips[2]}`);
    // The wildcard does not cover the domain itself, nor a name the policy does not list: no such name.
    for (const name of [`wild.${zone}`, `nothere.${zone}`]) {
      const r = await box.exec(['sh', '-c', `nslookup ${name} 2>&1; true`]);
      expect(r.stdout).toContain('NXDOMAIN');
      expect(await deniedTo(name)).toContainEqual(expect.objectContaining({ kind: 'dns', protocol: 'dns' }));
    }
    expect(eh.queries()[`nothere.${zone}`]).toBeUndefined(); // never asked upstream
  });

  it('a deny rule wins: the denied address stays closed even when a DNS answer for an allowed name leads there', async () => {
    answer(`api.${zone}`, eh.ips[1], 1);
    expect(await fetch(`http://api.${zone}:8080/`)).toMatch(/failed|reset/);
    expect(await deniedTo(`${eh.ips[1]}:8080`)).toContainEqual(expect.objectContaining({ rule: `deny ${eh.ips[1]}` }));
  });

  it('follows a changed DNS answer: the old address closes when its TTL runs out', async () => {
    answer(`api.${zone}`, eh.ips[0], 1);
    expect(await fetch(`http://api.${zone}:8080/`)).toBe(`host ${eh.ips[0]}`);
    answer(`api.${zone}`, eh.ips[2], 1);
    expect(await fetch(`http://api.${zone}:8080/`)).toBe(`host ${eh.ips[2]}`);
    // Nothing asks for the name again, so the pin of the first address lapses (TTL 1 s, held at least 2 s).
    let closed = false;
    for (let i = 0; i < 40 && !closed; i++) closed = /failed|reset/.test(await fetch(`http://${eh.ips[0]}:8080/`));
    expect(closed).toBe(true);
    expect((await deniedTo(`${eh.ips[0]}:8080`)).length).toBeGreaterThan(0);
  });

  it('keeps private, metadata and host addresses closed, also when an allowed name resolves to one', async () => {
    expect(await fetch(`http://evil.wild.${zone}:8080/`)).toMatch(/failed|reset/);
    expect(await deniedTo(`${eh.privateIp}:8080`)).toContainEqual(expect.objectContaining({ rule: expect.stringContaining('private range') }));
    expect(await fetch('http://169.254.169.254/')).toMatch(/failed|reset/);
    expect(await deniedTo('169.254.169.254:80')).toContainEqual(expect.objectContaining({ rule: expect.stringContaining('metadata') }));
    expect(await fetch(`http://${eh.hostIp}:8080/`)).toMatch(/failed|reset/);
    expect(await deniedTo(`${eh.hostIp}:8080`)).toContainEqual(expect.objectContaining({ rule: expect.stringContaining("host's own address") }));
  });

  it('carries UDP an allow rule names, and reports a denied datagram', async () => {
    expect((await box.exec(['sh', '-c', udpCmd(eh.ips[3])])).stdout.trim()).toBe('echo ping');
    expect((await box.exec(['sh', '-c', udpCmd(eh.ips[4])])).stdout.trim()).toBe('no answer');
    expect(await deniedTo(`${eh.ips[4]}:7`)).toEqual([expect.objectContaining({ kind: 'datagram', protocol: 'udp' })]);
  });

  it('answers DNS sent to any server itself, and survives malformed DNS and datagrams from the guest', async () => {
    // A query aimed at an address of the guest's choosing (nothing serves DNS there) is answered by the box's resolver.
    const before = eh.queries()[`api.${zone}`] ?? 0;
    const r = await box.exec(['sh', '-c', `nslookup api.${zone} ${eh.ips[5]} 2>&1; true`]);
    expect(r.stdout).toContain(`Address: ${eh.ips[2]}`);
    expect(eh.queries()[`api.${zone}`]).toBeGreaterThan(before); // asked upstream (A and AAAA)
    // Garbage to the resolver (a compression loop, a truncated header) and to a denied address, then a normal request.
    const junk = `const s=require('dgram').createSocket('udp4');const loop=Buffer.from([0,1,1,0,0,1,0,0,0,0,0,0,0xc0,12,0,1,0,1]);let n=0;const go=()=>{if(n++>=50)return s.close();s.send(n%2?loop:Buffer.from([1,2,3]),53,'${eh.ips[5]}',()=>s.send(Buffer.alloc(1400,n),9,'${eh.ips[4]}',go))};go()`;
    await box.exec(['sh', '-c', `${GUEST_NODE} -e "${junk}"`]);
    expect(await fetch(`http://${eh.ips[3]}:8080/`)).toBe(`host ${eh.ips[3]}`);
    expect(box.info().network).toBe('ok');
    // 50 datagrams to one denied flow make one event, not 50.
    expect((await deniedTo(`${eh.ips[4]}:9`)).length).toBe(1);
  });

  it('still serves its TCP and UDP forwards from the host', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/', timeout: 10_000 }, (res) => {
        let b = '';
        res.on('data', (d) => (b += d));
        res.on('end', () => resolve(b));
      }).on('error', reject);
    });
    expect(body).toBe('served-by-the-box\n');
    const answer = await new Promise<string>((resolve, reject) => {
      const s = dgram.createSocket('udp4');
      const timer = setTimeout(() => (s.close(), reject(new Error('no UDP answer'))), 5000);
      s.on('message', (m) => (clearTimeout(timer), s.close(), resolve(m.toString())));
      s.send('over-the-relay', udpPort, '127.0.0.1');
    });
    expect(answer).toBe('over-the-relay');
  });

  it('shows denials in `boxlite events --json`, follows new ones with -f, and counts them in inspect', async () => {
    const listed = await cli(home, ['events', '--json', 'agent']);
    expect(listed.code).toBe(0);
    const lines = listed.stdout.trim().split('\n').map((l) => JSON.parse(l) as EgressEvent);
    expect(lines.length).toBe((await events()).length);
    const inspect = JSON.parse((await cli(home, ['inspect', 'agent'])).stdout);
    expect(inspect.denied.connection).toBe(lines.filter((e) => e.kind === 'connection').length);
    expect(inspect.denied.dns).toBeGreaterThanOrEqual(2);
    expect(inspect.options.egress.allow).toContain(`*.wild.${zone}`);
    // The SDK stream, following: the next denial arrives as it happens.
    const ac = new AbortController();
    const next = (async () => {
      for await (const e of box.events({ follow: true, sinceNow: true, signal: ac.signal })) return e;
    })();
    await fetch(`http://${eh.ips[5]}:8081/`);
    const e = await next;
    ac.abort();
    expect(e).toMatchObject({ destination: `${eh.ips[5]}:8081`, kind: 'connection' });
  });

  it('applies an edited policy to the running box, without a restart', async () => {
    const pid = box.info().pid;
    expect(await fetch(`http://${eh.ips[5]}:8080/`)).toMatch(/failed|reset/);
    await rt.reconfigure(box.id, { egress: { allow: [`${eh.ips[5]}:8080`], deny: [] } });
    expect(await fetch(`http://${eh.ips[5]}:8080/`)).toBe(`host ${eh.ips[5]}`);
    expect(await fetch(`http://${eh.ips[3]}:8080/`)).toMatch(/failed|reset/); // no longer allowed
    expect(box.info().pid).toBe(pid);
    expect(box.info().network).toBe('ok');
  });
});

describe('a project box with network rules', () => {
  it('plans a rule edit as an update in place; the watch applies it live and reports denials', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-egress-project-'));
    const file = path.join(dir, 'boxlite.yaml');
    // A peer on the project's LAN, which its rules do not name: the LAN is its own NIC, outside the policy.
    const peer = `  peer:\n    image: ${rootfs}\n    memory: 192MiB\n    disk: 128MiB\n    setup: ["mkdir -p /www && echo from-the-peer > /www/index.html"]\n    command: httpd -f -p 80 -h /www\n`;
    const yaml = (allowed: string) =>
      `name: eg\nboxes:\n  app:\n    image: ${rootfs}\n    memory: 192MiB\n    disk: 128MiB\n    dns: ["${eh.dns}"]\n    network:\n      allow: ["${allowed}:8080"]\n${peer}`;
    fs.writeFileSync(file, yaml(eh.ips[3]));
    const project = Project.load({ file, runtime: rt });
    try {
      expect((await project.up({ wait: true, trust: true })).ok).toBe(true);
      const app = rt.get('eg.app');
      expect(await fetch(`http://${eh.ips[3]}:8080/`, app)).toBe(`host ${eh.ips[3]}`);
      // The peer's command (httpd) starts with it; it may not listen yet when up returns.
      let fromPeer = '';
      for (let i = 0; i < 30 && fromPeer !== 'from-the-peer'; i++) fromPeer = await fetch('http://peer/', app);
      expect(fromPeer).toBe('from-the-peer');
      const pid = app.info().pid;
      const events: WatchEvent[] = [];
      const watcher = await project.watch({ onEvent: (e) => events.push(e), pollMs: 300 });
      try {
        fs.writeFileSync(file, yaml(eh.ips[4]));
        await waitUntil(() => events.some((e) => e.type === 'applied'), 'the watch applying the edit', 120_000);
        const planned = events.find((e) => e.type === 'plan');
        expect(planned?.type === 'plan' && planned.plan?.boxes.map((b) => [b.box, b.action, b.changes.map((c) => c.field)])).toEqual([['app', 'update', ['network rules']], ['peer', 'noop', []]]);
        expect(await fetch(`http://${eh.ips[4]}:8080/`, app)).toBe(`host ${eh.ips[4]}`);
        expect(await fetch(`http://${eh.ips[3]}:8080/`, app)).toMatch(/failed|reset/);
        await waitUntil(() => events.some((e) => e.type === 'denied'), 'the watch reporting the denial', 60_000);
        expect(events.find((e) => e.type === 'denied')).toMatchObject({ box: 'app', event: { destination: `${eh.ips[3]}:8080` }, message: `app: denied connection to ${eh.ips[3]}:8080 (no allow rule matches)` });
        expect(app.info().pid).toBe(pid);
      } finally {
        await watcher.stop();
      }
    } finally {
      await project.down({ remove: true });
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 400_000);
});
