// Test hosts for outbound policy tests: one network namespace of the test's own holding several addresses — six
// in 198.18.0.0/15 (a benchmarking range: not private, so a policy treats them as the outside) and one private —
// each with an HTTP server that answers its own address and a UDP echo, and a DNS server whose answers the test
// changes by rewriting a file (each query reads it). Never a real outside address.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { CA_NAME, LeafIssuer, makeBoxCa } from '../src/vmm/egress/certs.js';

export const HTTPS_NAME = 'secure.egress.test';

export interface EgressHosts {
  /** Outside-looking addresses; dns is the first one. */
  ips: string[];
  privateIp: string;
  /** The host's own end of the link (an address of the host). */
  hostIp: string;
  dns: string;
  /** The CA of the HTTPS server at ips[0]:8443 (HTTPS_NAME). */
  caFile: string;
  httpPort: number;
  udpPort: number;
  /** name → [address, ttl seconds]; names not listed get NXDOMAIN. */
  setNames(names: Record<string, [string, number]>): void;
  /** What the /echo endpoints received (also answered back to the caller). */
  seen(): { host: string; url: string; headers: Record<string, string> }[];
  /** How many queries the DNS server has answered, per name. */
  queries(): Record<string, number>;
  stop(): void;
}

const SERVER = `
const http = require('node:http');
const dgram = require('node:dgram');
const fs = require('node:fs');
const https = require('node:https');
const [namesFile, countFile, seenFile, keyFile, certFile, ...ips] = process.argv.slice(2);
const counts = {};
let ready = 0;
const up = () => ++ready === ips.length * 3 + 2 && console.log('ready');
// /echo answers what arrived: the request line's URL and the headers.
const serve = (ip) => (q, r) => {
  if (!q.url.startsWith('/echo')) return r.end('host ' + ip + '\\n');
  const seen = JSON.stringify({ host: ip, url: q.url, headers: q.headers });
  fs.appendFileSync(seenFile, seen + '\\n');
  r.end(seen);
};
https.createServer({ key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile) }, serve(ips[0])).listen(8443, ips[0], up);
for (const ip of ips) {
  http.createServer(serve(ip)).listen(8080, ip, up);
  http.createServer(serve(ip)).listen(80, ip, up);
  const u = dgram.createSocket('udp4');
  u.on('message', (m, r) => u.send('echo ' + m, r.port, r.address));
  u.bind(7, ip, up);
}
const d = dgram.createSocket('udp4');
d.on('message', (q, r) => {
  let i = 12, labels = [];
  while (q[i]) { labels.push(q.subarray(i + 1, i + 1 + q[i]).toString()); i += q[i] + 1; }
  const name = labels.join('.').toLowerCase();
  const qtype = q.readUInt16BE(i + 1);
  const hit = JSON.parse(fs.readFileSync(namesFile, 'utf8'))[name];
  counts[name] = (counts[name] || 0) + 1;
  fs.writeFileSync(countFile + '.tmp', JSON.stringify(counts));
  fs.renameSync(countFile + '.tmp', countFile);
  const h = Buffer.from(q.subarray(0, 12));
  h.writeUInt16BE(0x8180 | (hit ? 0 : 3), 2);
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(hit && qtype === 1 ? 1 : 0, 6);
  h.writeUInt32BE(0, 8);
  const parts = [h, q.subarray(12, i + 5)];
  if (hit && qtype === 1) {
    const a = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, ...hit[0].split('.').map(Number)]);
    a.writeUInt32BE(hit[1], 6);
    parts.push(a);
  }
  d.send(Buffer.concat(parts), r.port, r.address);
});
d.bind(53, ips[0], up);
`;

export async function startEgressHosts(): Promise<EgressHosts> {
  if (process.getuid?.() !== 0) throw new Error('egress tests create network namespaces and need root (ip netns)');
  const id = randomBytes(3).toString('hex');
  const ns = `blt-${id}`;
  const octet = 1 + (parseInt(id, 16) % 250);
  const hostIf = `bleh${id}`;
  const nsIf = `blen${id}`;
  const hostIp = `198.18.${octet}.1`;
  const ips = [2, 3, 4, 5, 6, 7].map((i) => `198.18.${octet}.${i}`);
  const privateIp = `10.214.${octet}.2`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-egress-'));
  const namesFile = path.join(dir, 'names.json');
  const countFile = path.join(dir, 'counts.json');
  fs.writeFileSync(namesFile, '{}');
  // HTTPS at the first address as secure.egress.test, with a CA of the test's own (the file `caFile`).
  const ca = makeBoxCa('egress-test');
  const leaf = new LeafIssuer(ca, `${CA_NAME} (egress-test)`);
  const caFile = path.join(dir, 'ca.pem');
  fs.writeFileSync(caFile, ca.certPem);
  fs.writeFileSync(path.join(dir, 'key.pem'), leaf.keyPem);
  fs.writeFileSync(path.join(dir, 'cert.pem'), leaf.certFor(HTTPS_NAME));
  const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'] });
  let server: ChildProcess | undefined;
  const stop = () => {
    server?.kill('SIGKILL');
    try {
      sh(`ip link del ${hostIf} 2>/dev/null; ip netns del ${ns}`);
    } catch {}
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    sh(`ip netns add ${ns}`);
    sh(`ip link add ${hostIf} type veth peer name ${nsIf} && ip link set ${nsIf} netns ${ns}`);
    sh(`ip addr add ${hostIp}/24 dev ${hostIf} && ip addr add 10.214.${octet}.1/24 dev ${hostIf} && ip link set ${hostIf} up`);
    const addrs = [...ips.map((ip) => `ip addr add ${ip}/24 dev ${nsIf}`), `ip addr add ${privateIp}/24 dev ${nsIf}`].join(' && ');
    sh(`ip netns exec ${ns} sh -c '${addrs} && ip link set ${nsIf} up && ip link set lo up'`);
    const script = path.join(dir, 'server.cjs');
    fs.writeFileSync(script, SERVER);
    server = spawn('ip', ['netns', 'exec', ns, process.execPath, script, namesFile, countFile, path.join(dir, 'seen.jsonl'), path.join(dir, 'key.pem'), path.join(dir, 'cert.pem'), ...ips, privateIp], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      server!.stdout!.once('data', () => resolve());
      server!.once('exit', (c) => reject(new Error(`the test hosts' servers exited (${c})`)));
    });
    return {
      ips,
      privateIp,
      hostIp,
      dns: ips[0],
      caFile,
      httpPort: 8080,
      udpPort: 7,
      setNames: (names) => {
        fs.writeFileSync(namesFile + '.tmp', JSON.stringify(names));
        fs.renameSync(namesFile + '.tmp', namesFile);
      },
      seen: () => (fs.existsSync(path.join(dir, 'seen.jsonl')) ? fs.readFileSync(path.join(dir, 'seen.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : []),
      queries: () => (fs.existsSync(countFile) ? JSON.parse(fs.readFileSync(countFile, 'utf8')) : {}),
      stop,
    };
  } catch (e) {
    stop();
    throw e;
  }
}
