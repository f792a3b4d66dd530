// Outbound through a box's egress gateway against the same box shape without a policy, in one run: an HTTP server
// on the host's own outside address, fetched from inside each box by the node runtime every box carries.
//   latency    a small GET on a new connection each time (median of 30): the gateway decides and connects per request
//   download   32 MiB (median of 3)
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import { Runtime } from '../src/runtime/runtime.js';
import { GUEST_NODE } from '../src/core/guest.js';

const DOWN = 32 << 20;
const CLIENT = (host: string, port: number) => `
const http = require('http');
const get = (path) => new Promise((res, rej) => {
  const t = process.hrtime.bigint();
  http.get({ host: '${host}', port: ${port}, path, agent: false }, (r) => {
    let n = 0;
    r.on('data', (d) => (n += d.length));
    r.on('end', () => res([Number(process.hrtime.bigint() - t) / 1e6, n]));
  }).on('error', rej);
});
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
(async () => {
  await get('/');
  const lat = [];
  for (let i = 0; i < 30; i++) lat.push((await get('/'))[0]);
  const down = [];
  for (let i = 0; i < 3; i++) {
    const [ms, n] = await get('/big');
    if (n !== ${DOWN}) throw new Error('got ' + n + ' bytes');
    down.push(ms);
  }
  console.log(JSON.stringify({ lat: median(lat), down: median(down) }));
})().catch((e) => { console.error(e.message); process.exit(1); });
`;

function outsideAddress(): string {
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  throw new Error('this host has no IPv4 address outside loopback for the boxes to reach');
}

export async function egressBench(rt: Runtime, rootfs: string): Promise<[string, string][]> {
  const host = outsideAddress();
  const big = Buffer.alloc(DOWN, 1);
  const server = http.createServer((q, s) => s.end(q.url === '/big' ? big : 'ok\n'));
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as net.AddressInfo).port;
  const run = async (name: string, egress?: { allow: string[]; deny: string[] }) => {
    const box = await rt.create({ rootfs, name, memoryMib: 512, egress });
    try {
      await box.start();
      const r = await box.exec(['sh', '-c', `${GUEST_NODE} -e "$0"`, CLIENT(host, port)]);
      if (r.exitCode !== 0) throw new Error(`the client in box ${name} failed: ${r.stderr.trim()}`);
      return JSON.parse(r.stdout) as { lat: number; down: number };
    } finally {
      await box.remove({ force: true }).catch(() => {});
    }
  };
  try {
    const off = await run('egress-off');
    const on = await run('egress-on', { allow: [`${host}:${port}`], deny: [] });
    const rate = (ms: number) => `${(DOWN / (1 << 20) / (ms / 1000)).toFixed(0)} MiB/s`;
    return [
      ['HTTP GET from a box, new connection each (median of 30): policy on / off', `${on.lat.toFixed(1)} ms / ${off.lat.toFixed(1)} ms`],
      ['32 MiB HTTP download into a box (median of 3): policy on / off', `${rate(on.down)} / ${rate(off.down)}`],
    ];
  } finally {
    server.close();
  }
}
