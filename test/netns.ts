// A test host in a network namespace of the test's own: a veth pair from the host, an HTTP server that answers a
// token, and a DNS server that resolves one name to it. Never a real outside address.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface TestHost {
  ns: string;
  /** The namespace's address, reachable from the host through the veth pair. */
  ip: string;
  httpPort: number;
  token: string;
  /** A name the DNS server (at ip:53) resolves to ip. */
  name: string;
  stop(): void;
}

const SERVER = `
const http = require('node:http');
const dgram = require('node:dgram');
const fs = require('node:fs');
const path = require('node:path');
const [ip, port, token, name, files] = process.argv.slice(2);
// Files under /files/ and /simple/ come from the test's folder (a package index, say); anything else gets the token.
http.createServer((req, res) => {
  const url = decodeURIComponent(req.url.split('?')[0]);
  if (files && (url.startsWith('/files/') || url.startsWith('/simple/'))) {
    let f = path.join(files, path.normalize(url));
    if (f.startsWith(files) && fs.existsSync(f) && fs.statSync(f).isDirectory()) f = path.join(f, 'index.html');
    if (!f.startsWith(files) || !fs.existsSync(f)) { res.statusCode = 404; return res.end('not found\\n'); }
    res.setHeader('Content-Type', f.endsWith('.html') ? 'text/html' : 'application/octet-stream');
    return fs.createReadStream(f).pipe(res);
  }
  res.end(token + '\\n');
}).listen(Number(port), ip);
// A DNS server with one A record: enough for a resolver to look the name up.
const dns = dgram.createSocket('udp4');
dns.on('message', (q, rinfo) => {
  let i = 12, labels = [];
  while (q[i]) { labels.push(q.subarray(i + 1, i + 1 + q[i]).toString()); i += q[i] + 1; }
  const qtype = q.readUInt16BE(i + 1);
  const question = q.subarray(12, i + 5);
  const hit = labels.join('.').toLowerCase() === name;
  const header = Buffer.from(q.subarray(0, 12));
  header.writeUInt16BE(0x8180 | (hit ? 0 : 3), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(hit && qtype === 1 ? 1 : 0, 6);
  header.writeUInt16BE(0, 8);
  header.writeUInt16BE(0, 10);
  const parts = [header, question];
  if (hit && qtype === 1) parts.push(Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...ip.split('.').map(Number)]));
  dns.send(Buffer.concat(parts), rinfo.port, rinfo.address);
});
dns.bind(53, ip, () => console.log('ready'));
`;

/** files: a folder served under /files/ and /simple/ (for a package index). */
export async function startTestHost(opts: { files?: string } = {}): Promise<TestHost> {
  if (process.getuid?.() !== 0) throw new Error('network tests create network namespaces and need root (ip netns)');
  const id = randomBytes(3).toString('hex');
  const ns = `blt-${id}`;
  const octet = 100 + (parseInt(id, 16) % 150);
  const hostIf = `blh${id}`;
  const nsIf = `bln${id}`;
  const ip = `10.213.${octet}.2`;
  const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'] });
  sh(`ip netns add ${ns}`);
  let server: ChildProcess | undefined;
  const script = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-netns-')), 'server.cjs');
  const stop = () => {
    server?.kill('SIGKILL');
    try {
      sh(`ip link del ${hostIf} 2>/dev/null; ip netns del ${ns}`);
    } catch {}
    fs.rmSync(path.dirname(script), { recursive: true, force: true });
  };
  try {
    sh(`ip link add ${hostIf} type veth peer name ${nsIf} && ip link set ${nsIf} netns ${ns}`);
    sh(`ip addr add 10.213.${octet}.1/24 dev ${hostIf} && ip link set ${hostIf} up`);
    sh(`ip netns exec ${ns} sh -c 'ip addr add ${ip}/24 dev ${nsIf} && ip link set ${nsIf} up && ip link set lo up'`);
    fs.writeFileSync(script, SERVER);
    const token = `token-${randomBytes(6).toString('hex')}`;
    const name = `web-${id}.boxlite.test`;
    server = spawn('ip', ['netns', 'exec', ns, process.execPath, script, ip, '8080', token, name, ...(opts.files ? [path.resolve(opts.files)] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      server!.stdout!.once('data', () => resolve());
      server!.once('exit', (c) => reject(new Error(`the test host's servers exited (${c})`)));
    });
    return { ns, ip, httpPort: 8080, token, name, stop };
  } catch (e) {
    stop();
    throw e;
  }
}
