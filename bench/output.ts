// Exec output to the host, beside a TCP transfer out of the same box in the same run (issues 21 and 25):
//   tcp        a 256 MiB file from busybox httpd, through a port forward
//   exec sdk   `cat` of the same file, read from Execution.stdout
//   exec cli   `boxlite exec BOX -- cat FILE > file` (a CLI process writing to a file; its start included)
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Runtime } from '../src/runtime/runtime.js';

const SIZE = 256 << 20;
const CLI = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'bin', 'boxlite.js');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rate = (ms: number) => `${(SIZE / (1 << 20) / (ms / 1000)).toFixed(1)} MiB/s`;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function download(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    http.get({ host: '127.0.0.1', port, path: '/big', agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (d) => (bytes += d.length));
      res.on('end', () => (bytes === SIZE ? resolve(performance.now() - t) : reject(new Error(`the download returned ${bytes} bytes`))));
    }).on('error', reject);
  });
}

export async function outputBench(rt: Runtime, home: string, rootfs: string): Promise<[string, string][]> {
  const webPort = await freePort();
  const box = await rt.create({ rootfs, name: 'outbench', memoryMib: 512, ports: [`${webPort}:80`] });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-bench-out-'));
  try {
    await box.start();
    await box.exec(['sh', '-c', `mkdir -p /www && dd if=/dev/zero of=/www/big bs=1M count=${SIZE >> 20} 2>/dev/null && httpd -p 80 -h /www`]);
    const tcp: number[] = [];
    const sdk: number[] = [];
    const cli: number[] = [];
    for (let i = 0; i < 3; i++) {
      tcp.push(await download(webPort));

      let t = performance.now();
      const ex = await box.spawn(['cat', '/www/big']);
      let bytes = 0;
      ex.stdout.on('data', (d: Buffer) => (bytes += d.length));
      await ex.wait();
      sdk.push(performance.now() - t);
      if (bytes !== SIZE) throw new Error(`exec output delivered ${bytes} of ${SIZE} bytes`);

      const file = path.join(tmp, 'out');
      const fd = fs.openSync(file, 'w');
      t = performance.now();
      const child = spawn(process.execPath, [CLI, 'exec', 'outbench', '--', 'cat', '/www/big'], { env: { ...process.env, BOXLITE_HOME: home }, stdio: ['ignore', fd, 'ignore'] });
      fs.closeSync(fd);
      const [code] = await once(child, 'close');
      cli.push(performance.now() - t);
      if (code !== 0 || fs.statSync(file).size !== SIZE) throw new Error(`boxlite exec > file: exit ${code}, ${fs.statSync(file).size} bytes`);
    }
    const hwm = await box.exec(['sh', '-c', 'grep VmHWM /proc/$(pidof boxlite-agent)/status']);
    const peak = Number(/(\d+) kB/.exec(hwm.stdout)?.[1] ?? NaN) / 1024;
    return [
      ['TCP box → host through a forward, 256 MiB HTTP (median of 3)', rate(median(tcp))],
      ['exec output box → host, 256 MiB to Execution.stdout (median of 3)', `${rate(median(sdk))}  (TCP in the same run: ${rate(median(tcp))})`],
      ['boxlite exec BOX -- cat 256MiB > file (median of 3; CLI start included)', rate(median(cli))],
      ['guest agent peak resident memory after 6 such floods', `${peak.toFixed(0)} MiB`],
    ];
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
    await box.remove({ force: true }).catch(() => {});
  }
}
