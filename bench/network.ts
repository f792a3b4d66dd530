// Network figures through a box's port forward, beside the same transfer on the host's loopback in the same run:
//   upload     host → box, 64 MiB into a TCP sink in the box (busybox nc)
//   download   box → host, a 32 MiB file from busybox httpd
//   latency    a small HTTP GET (median of 30)
import * as http from 'node:http';
import * as net from 'node:net';
import * as fs from 'node:fs';
import { Runtime } from '../src/runtime/runtime.js';
import { guardPid } from '../src/vmm/netguard/guard.js';

const UP = 64 << 20;
const DOWN = 32 << 20;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** Sends `bytes` to port and waits until the peer has read them all and closed. */
function upload(port: number, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(1 << 20, 7);
    const t = performance.now();
    const s = net.connect(port, '127.0.0.1', () => {
      let left = bytes;
      const pump = () => {
        while (left > 0) {
          left -= chunk.length;
          if (!s.write(chunk)) return s.once('drain', pump);
        }
        s.end();
      };
      pump();
    });
    s.on('data', () => {});
    s.on('close', () => resolve(performance.now() - t));
    s.on('error', reject);
  });
}

function get(port: number, path = '/'): Promise<{ ms: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (d) => (bytes += d.length));
      res.on('end', () => resolve({ ms: performance.now() - t, bytes }));
    }).on('error', reject);
  });
}

const rate = (bytes: number, ms: number) => `${(bytes / (1 << 20) / (ms / 1000)).toFixed(0)} MiB/s`;

export async function networkBench(rt: Runtime, rootfs: string): Promise<[string, string][]> {
  const webPort = await freePort();
  const sinkPort = await freePort();
  const box = await rt.create({ rootfs, name: 'netbench', memoryMib: 512, ports: [`${webPort}:80`, `${sinkPort}:5001`] });
  const loopSink = net.createServer((s) => s.on('data', () => {}).on('end', () => s.end()));
  const big = Buffer.alloc(DOWN, 1);
  const loopWeb = http.createServer((q, s) => s.end(q.url === '/big' ? big : 'ok\n'));
  try {
    await box.start();
    await box.exec(['sh', '-c', `mkdir -p /www && echo ok > /www/index.html && head -c ${DOWN} /dev/zero > /www/big && httpd -p 80 -h /www`]);
    await new Promise<void>((r) => loopSink.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => loopWeb.listen(0, '127.0.0.1', r));
    const lsPort = (loopSink.address() as net.AddressInfo).port;
    const lwPort = (loopWeb.address() as net.AddressInfo).port;

    // The sink's stdin stays open (sleep), or busybox nc would half-close at once; wc prints when the transfer
    // has ended in the box, which is when the upload counts as done.
    const ups: number[] = [];
    for (let i = 0; i < 3; i++) {
      const sink = await box.spawn(['sh', '-c', 'sleep 600 | nc -l -p 5001 | wc -c']);
      const counted = new Promise<string>((resolve) => {
        let out = '';
        sink.stdout.on('data', (d) => {
          out += d;
          if (out.endsWith('\n')) resolve(out.trim());
        });
      });
      await box.exec(['sh', '-c', 'for i in $(seq 100); do netstat -ltn | grep -q ":5001 " && break; sleep 0.1; done']);
      const t = performance.now();
      await upload(sinkPort, UP);
      const n = Number(await counted);
      ups.push(performance.now() - t);
      if (n !== UP) throw new Error(`the box received ${n} of ${UP} bytes`);
      await sink.kill('SIGKILL').catch(() => {});
    }
    const loopUp = median([await upload(lsPort, UP), await upload(lsPort, UP), await upload(lsPort, UP)]);
    const downs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await get(webPort, '/big');
      if (r.bytes !== DOWN) throw new Error(`download through the forward returned ${r.bytes} bytes`);
      downs.push(r.ms);
    }
    const loopDown = median([(await get(lwPort, '/big')).ms, (await get(lwPort, '/big')).ms, (await get(lwPort, '/big')).ms]);
    const lat: number[] = [];
    const loopLat: number[] = [];
    for (let i = 0; i < 30; i++) {
      lat.push((await get(webPort)).ms);
      loopLat.push((await get(lwPort)).ms);
    }
    // The network guard every box has: what its process holds, and what of that is its own (the rest is node's
    // binary and libraries, shared by every such process on the host), once it has been quiet for a while (it
    // gives back its read buffers after 2 s of no traffic).
    await new Promise((r) => setTimeout(r, 5000));
    const gpid = guardPid(rt.home.boxDir(box.id));
    const kib = (file: string, key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(file, 'utf8'))?.[1] ?? NaN);
    const guardRss = gpid ? kib(`/proc/${gpid}/status`, 'VmRSS') : NaN;
    const guardOwn = gpid ? kib(`/proc/${gpid}/smaps_rollup`, 'Private_Clean') + kib(`/proc/${gpid}/smaps_rollup`, 'Private_Dirty') : NaN;
    return [
      ['network guard of a box after these transfers, quiet: resident, of which its own', `${(guardRss / 1024).toFixed(0)} MiB, ${(guardOwn / 1024).toFixed(0)} MiB`],
      ['TCP host → box through a forward, 64 MiB (median of 3)', `${rate(UP, median(ups))}  (host loopback: ${rate(UP, loopUp)})`],
      ['TCP box → host through a forward, 32 MiB HTTP (median of 3)', `${rate(DOWN, median(downs))}  (host loopback: ${rate(DOWN, loopDown)})`],
      ['HTTP request latency through a forward (median of 30)', `${median(lat).toFixed(1)} ms  (host loopback: ${median(loopLat).toFixed(2)} ms)`],
    ];
  } finally {
    loopSink.close();
    loopWeb.close();
    await box.remove({ force: true }).catch(() => {});
  }
}
