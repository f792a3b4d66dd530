// The egress gateway's process (see gateway.ts for what it is). Its main thread stays in the host's network
// namespace and makes every connection the policy allows; its worker (netns.ts) lives in the box's.
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { parsePolicy, PolicyMatcher, type Destination } from '../../core/egress.js';
import { peerCred } from '../peer.js';
import { HELPERS_DIR } from '../helpers.js';
import { EventWriter, denialReporter, eventsFile } from './events.js';
import type { GatewayConfig } from './gateway.js';
import { libc, originalDestination, sockaddrIn } from './libc.js';
import type { FromNetns, ToNetns } from './netns.js';
import { buildDnsQuery, buildUdp4, dnsRefusal, parseDnsAnswers, parseDnsQuery, parseUdp4, type Udp4 } from './wire.js';
import { randomInt } from 'node:crypto';
import { controlSocket, GATEWAY_MARK, type GatewaySettings } from './gateway.js';
import { LeafIssuer } from './certs.js';
import { intercept, type Interception, type LiveSecret } from './inject.js';

const MAX_CONNECTIONS = 1024;
const MAX_FLOWS = 1024;
const FLOW_IDLE_MS = 180_000;
const DNS_TIMEOUT_MS = 5_000;
/** An answer with a TTL shorter than this still opens its addresses this long: a box must have time to connect. */
const MIN_PIN_S = 2;
/** Bounds on what a guest's DNS traffic can make the gateway hold. */
const MAX_DNS_IN_FLIGHT = 256;
const MAX_PINNED_NAMES = 65536;
/** With secrets, how long a connection waits for the box to speak first before it is carried as it is. */
const SERVER_FIRST_MS = 1000;

const log = (s: string) => process.stderr.write(`${new Date().toISOString()} ${s}\n`);

function hostAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4') out.add(a.address);
  return out;
}

function resolvers(configured: string[]): string[] {
  if (configured.length) return configured;
  try {
    const found = [...fs.readFileSync('/etc/resolv.conf', 'utf8').matchAll(/^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/gm)].map((m) => m[1]);
    if (found.length) return found;
  } catch {}
  return ['127.0.0.1'];
}

async function gatewayMain(dir: string, cfg: GatewayConfig): Promise<void> {
  const report = denialReporter(new EventWriter(fs.openSync(eventsFile(dir), 'a+', 0o600)), cfg.box);
  let hosts = hostAddresses();
  let matcher = new PolicyMatcher(parsePolicy(cfg.policy), hosts);
  const upstream = resolvers(cfg.upstream);

  // Addresses the box's own DNS answers gave, per name, until their TTL runs out.
  const pins = new Map<string, Map<string, number>>();
  const namesOf = (ip: string) => {
    const names = pins.get(ip);
    if (!names) return [];
    const now = Date.now();
    for (const [n, until] of names) if (until < now) names.delete(n);
    if (!names.size) pins.delete(ip);
    return [...names.keys()];
  };
  let pinned = 0;
  let inFlight = 0;
  const sweepPins = () => {
    const now = Date.now();
    pinned = 0;
    for (const [ip, names] of pins) {
      for (const [n, until] of names) if (until < now) names.delete(n);
      if (!names.size) pins.delete(ip);
      pinned += names.size;
    }
  };
  const pin = (name: string, ip: string, ttl: number) => {
    if (pinned >= MAX_PINNED_NAMES) sweepPins();
    if (pinned >= MAX_PINNED_NAMES) return log(`more than ${MAX_PINNED_NAMES} names pinned: ${name} is not`);
    pinned++;
    const names = pins.get(ip) ?? new Map<string, number>();
    names.set(name, Date.now() + Math.max(ttl, MIN_PIN_S) * 1000);
    pins.set(ip, names);
  };
  const decide = (d: Omit<Destination, 'names'>) => matcher.decide({ ...d, names: namesOf(d.ip) });

  const worker = new Worker(new URL('./netns.js', import.meta.url), { workerData: { passt: cfg.passt } });
  const toWorker = (m: ToNetns) => worker.postMessage(m);
  const ready = await new Promise<Extract<FromNetns, { kind: 'ready' }>>((resolve, reject) => {
    worker.on('message', (m: FromNetns) => (m.kind === 'ready' ? resolve(m) : m.kind === 'failed' ? reject(new Error(m.message)) : undefined));
    worker.once('error', reject);
  });
  // passt is the box's network helper as before: listed with the others, so the VM's supervisor ends it too.
  fs.writeFileSync(path.join(dir, HELPERS_DIR, 'passt.pid'), `${ready.passtPid}\n${cfg.passt.socket}\n`, { mode: 0o600 });

  // TCP: every connection passt makes arrives here; the kernel says where it was going.
  const open = new Set<{ inner: net.Socket; d: Destination; intercepted?: boolean }>();
  const server = net.createServer({ pauseOnConnect: true }, (inner) => {
    const fd = (inner as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
    const dst = originalDestination(fd);
    if (!dst || open.size >= MAX_CONNECTIONS) return inner.resetAndDestroy();
    // The names are kept with the connection: a reload judges it by what opened it, not by pins that lapsed since.
    const d = { ip: dst.ip, port: dst.port, protocol: 'tcp' as const, names: namesOf(dst.ip) };
    const verdict = matcher.decide(d);
    if (!verdict.allowed) {
      report({ kind: 'connection', rule: verdict.rule, destination: `${dst.ip}:${dst.port}`, protocol: 'tcp' });
      return inner.resetAndDestroy();
    }
    const entry: { inner: net.Socket; d: Destination; intercepted?: boolean } = { inner, d };
    open.add(entry);
    if (live.secrets.length && live.issuer) {
      // Secrets: the first bytes say what this is (HTTPS to whom, HTTP, else); a protocol whose server speaks
      // first gets nothing from the box for a second, and is then carried as it is.
      const x: Interception = {
        issuer: live.issuer,
        secrets: live.secrets,
        onMisuse: (m) => report({ kind: 'secret', rule: `secret ${m.secret} is not for ${m.host}`, destination: `${m.host} (${dst.ip}:${dst.port})`, protocol: 'tcp' }),
      };
      const go = (first: Buffer) => {
        clearTimeout(timer);
        inner.off('data', go);
        inner.pause();
        intercept(inner, first, dst, d.names, x, () => open.delete(entry));
      };
      const timer = setTimeout(() => go(Buffer.alloc(0)), SERVER_FIRST_MS);
      entry.intercepted = true;
      inner.on('error', () => inner.destroy());
      inner.on('data', go);
      inner.on('close', () => (clearTimeout(timer), open.delete(entry)));
      inner.resume();
      return;
    }
    const outer = net.connect({ host: dst.ip, port: dst.port });
    // A failure resets the box's side; a clean end travels through the pipes, so what is in flight still arrives.
    const fail = () => {
      open.delete(entry);
      inner.destroyed || inner.resetAndDestroy();
      outer.destroy();
    };
    inner.on('error', fail).on('close', () => (open.delete(entry), outer.destroy()));
    outer.on('error', fail).on('close', () => open.delete(entry));
    inner.pipe(outer).pipe(inner);
  });
  server.on('error', (e) => log(`tcp listener: ${e.message}`));
  server.listen({ fd: ready.tcpFd });

  // Port forwards: the host port is the gateway's; each connection goes on to passt inside the namespace.
  let nextConnect = 0;
  const waiting = new Map<number, (fd: number) => void>();
  for (const f of cfg.forwards) {
    const s = net.createServer({ pauseOnConnect: true }, (client) => {
      const id = nextConnect++;
      waiting.set(id, (fd) => {
        if (fd < 0) return client.resetAndDestroy();
        const inside = new net.Socket({ fd, readable: true, writable: true });
        client.on('error', () => inside.destroy()).on('close', () => inside.destroy());
        inside.on('error', () => client.destroy());
        client.pipe(inside).pipe(client);
      });
      toWorker({ kind: 'connect', id, port: f.hostPort });
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(f.hostPort, f.hostIp, resolve);
    });
  }

  // Other datagrams: read off the namespace's wire, made again from the host, replies written back in.
  const flows = new Map<string, { sock: dgram.Socket; last: number; dst: Destination }>();
  const inject = (u: Udp4) => {
    const p = buildUdp4(u);
    libc.sendto(ready.rawFd, p, p.length, 0, sockaddrIn(u.dst, 0), 16);
  };
  const onDatagram = (u: Udp4) => {
    const key = `${u.srcPort}|${u.dst}:${u.dstPort}`;
    const verdict = decide({ ip: u.dst, port: u.dstPort, protocol: 'udp' });
    if (!verdict.allowed) return report({ kind: 'datagram', rule: verdict.rule, destination: `${u.dst}:${u.dstPort}`, protocol: 'udp' });
    let flow = flows.get(key);
    if (!flow) {
      if (flows.size >= MAX_FLOWS) {
        const [oldest, f] = flows.entries().next().value!;
        f.sock.close();
        flows.delete(oldest);
      }
      const sock = dgram.createSocket('udp4');
      // Connected: the kernel passes on only what the destination itself sends back.
      sock.connect(u.dstPort, u.dst);
      sock.on('message', (m) => inject({ src: u.dst, dst: u.src, srcPort: u.dstPort, dstPort: u.srcPort, payload: m }));
      sock.on('error', () => (sock.close(), flows.delete(key)));
      flow = { sock, last: 0, dst: { ip: u.dst, port: u.dstPort, protocol: 'udp' as const, names: namesOf(u.dst) } };
      flows.set(key, flow);
      const pending = u.payload;
      sock.once('connect', () => sock.send(pending));
    } else flow.sock.send(u.payload);
    flows.delete(key);
    flows.set(key, { ...flow, last: Date.now() }); // kept in order of last use
  };
  setInterval(() => {
    for (const [k, f] of flows) if (f.last < Date.now() - FLOW_IDLE_MS) (f.sock.close(), flows.delete(k));
    sweepPins();
    // The host's addresses change (DHCP, a VPN): they stay closed as they come.
    const now = hostAddresses();
    if ([...now].some((a) => !hosts.has(a)) || now.size !== hosts.size) (hosts = now), (matcher = new PolicyMatcher(matcher.policy, hosts));
  }, 30_000).unref();
  const wire = fs.createReadStream('', { fd: ready.packetFd, highWaterMark: 65536 });
  wire.on('data', (p) => {
    const u = parseUdp4(p as Buffer);
    if (u) onDatagram(u);
  });

  // DNS: names outside the policy get "no such name"; answers for the others open their addresses for their TTL.
  worker.on('message', (m: FromNetns) => {
    if (m.kind === 'connected') {
      waiting.get(m.id)?.(m.fd);
      waiting.delete(m.id);
      return;
    }
    if (m.kind !== 'dns') return;
    const query = Buffer.from(m.message);
    const q = parseDnsQuery(query);
    if (!q) return;
    const verdict = matcher.decideName(q.name);
    if (!verdict.allowed) {
      report({ kind: 'dns', rule: verdict.rule, destination: q.name, protocol: 'dns' });
      return toWorker({ kind: 'dns-reply', address: m.address, port: m.port, message: dnsRefusal(query, q) });
    }
    if (inFlight >= MAX_DNS_IN_FLIGHT) return; // dropped: the guest's resolver asks again
    // A query of our own making, with an ID of our own choosing, on a socket connected to the resolver: only its
    // answer to this question is taken, and nothing but the judged question goes upstream.
    const id = randomInt(0x10000);
    const sock = dgram.createSocket('udp4');
    inFlight++;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      inFlight--;
      clearTimeout(timer);
      sock.close();
    };
    const timer = setTimeout(finish, DNS_TIMEOUT_MS);
    sock.on('message', (reply) => {
      const a = parseDnsAnswers(reply);
      if (!a || a.id !== id || a.question !== q.name) return;
      finish();
      for (const ans of a.answers) pin(q.name, ans.address, ans.ttl);
      reply.writeUInt16BE(q.id, 0);
      toWorker({ kind: 'dns-reply', address: m.address, port: m.port, message: reply });
    });
    sock.on('error', finish);
    sock.connect(53, upstream[0], () => sock.send(buildDnsQuery(id, q)));
  });

  // The control socket: a new policy, one JSON line, answered once applied. Only the user who started the
  // gateway may speak to it (root, or that user): not the box's uid it runs as from here on.
  const owner = process.getuid!();
  let live: { secrets: LiveSecret[]; issuer?: LeafIssuer; caCert?: string } = { secrets: [] };
  const applyPolicy = (p: unknown) => {
    const m = p as GatewaySettings | null;
    if (!m?.policy || typeof m.policy !== 'object') throw new Error('the message holds no policy');
    matcher = new PolicyMatcher(parsePolicy(m.policy), hosts);
    const secrets = Array.isArray(m.secrets) ? m.secrets : [];
    for (const s of secrets) {
      if (typeof s?.value !== 'string' || typeof s.placeholder !== 'string' || s.placeholder.length < 16 || !Array.isArray(s.hosts)) throw new Error('a secret is malformed');
    }
    if (m.ca && m.ca.certPem !== live.caCert) live = { ...live, issuer: new LeafIssuer(m.ca, m.ca.name), caCert: m.ca.certPem };
    // Connections carrying secrets end when the secrets change: none keeps a value it may no longer send.
    if (JSON.stringify(secrets) !== JSON.stringify(live.secrets)) for (const c of open) if (c.intercepted) c.inner.resetAndDestroy();
    live = { ...live, secrets };
    // What the new policy closes is closed now, not when the connection ends.
    for (const c of open) if (!matcher.decide(c.d).allowed) c.inner.resetAndDestroy();
    for (const [k, f] of flows) if (!matcher.decide(f.dst).allowed) (f.sock.close(), flows.delete(k));
  };
  fs.rmSync(controlSocket(dir), { force: true });
  const control = net.createServer((c) => {
    try {
      if (peerCred(c).uid !== owner) return c.destroy();
    } catch {
      return c.destroy();
    }
    let buf = '';
    let answered = false;
    c.on('data', (d) => {
      if (answered) return; // one policy per connection
      buf += d;
      if (buf.length > 1 << 20) return c.destroy();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      answered = true;
      try {
        applyPolicy(JSON.parse(buf.slice(0, nl)));
        log('policy applied');
        c.end('{"ok":true}\n');
      } catch (e) {
        c.end(JSON.stringify({ error: (e as Error).message }) + '\n');
      }
    });
    c.on('error', () => c.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    control.once('error', reject);
    control.listen(controlSocket(dir), resolve);
  });
  fs.chmodSync(controlSocket(dir), 0o600);
  const quit = () => {
    try {
      process.kill(ready.passtPid, 'SIGTERM');
    } catch {}
    // Not process.exit: Node would wait for the thread blocked reading the packet socket, forever. Nothing is
    // left to flush (events are written synchronously).
    process.kill(process.pid, 'SIGKILL');
  };
  // Whatever a guest makes one connection do, the others (and the box's network) go on.
  process.on('uncaughtException', (e) => log(`error: ${e.message}`));
  process.on('SIGTERM', quit);
  process.on('SIGINT', quit);
  if (cfg.as && process.getuid?.() === 0) {
    // Everything it needs is open: from here on it holds no privilege (groups first, then gid, then uid).
    process.setgroups!([]);
    process.setgid!(cfg.as.gid);
    process.setuid!(cfg.as.uid);
  }
  process.stdout.write('ready\n');
}

if (process.argv[2] === GATEWAY_MARK) {
  gatewayMain(process.argv[3], JSON.parse(process.argv[4]) as GatewayConfig).catch((e) => {
    log(`egress gateway: ${(e as Error).message}`);
    process.exit(1);
  });
}
