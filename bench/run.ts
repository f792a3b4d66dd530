// npm run bench: box start and exec figures beside the floor of this machine, in one run.
//   floor       QEMU with the same kernel and machine, an initramfs whose init powers off at once
//   cold start  start of a created box (disk built, assets cached) → output of its first exec
//   exec        round trip of `true` in a running box (median of many)
//   network     see network.ts (BENCH_ONLY=network)
//   images      see images.ts (BENCH_ONLY=images runs only those)
//   state       see state.ts (BENCH_ONLY=state): snapshots, export/import, volume throughput
//   project     see project.ts (BENCH_ONLY=project): a 20-box project, and up/plan when nothing changed
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Runtime } from '../src/runtime/runtime.js';
import { loadAssets } from '../src/runtime/assets.js';
import { cpioNewc, S_IFDIR, S_IFREG, S_IFCHR } from '../src/runtime/cpio.js';
import { qemuBinary } from '../src/vmm/qemu.js';
import { tcgKernelArgs } from '../src/vmm/accel.js';
import { imageBench } from './images.js';
import { networkBench } from './network.js';
import { stateBench } from './state.js';
import { projectBench } from './project.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (n: number) => `${n.toFixed(0)} ms`;

function busyboxRootfs(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-bench-'));
  for (const d of ['bin', 'etc', 'root', 'tmp']) fs.mkdirSync(path.join(dir, d));
  fs.copyFileSync('/bin/busybox', path.join(dir, 'bin/busybox'));
  fs.chmodSync(path.join(dir, 'bin/busybox'), 0o755);
  for (const a of execFileSync('/bin/busybox', ['--list']).toString().split('\n')) if (a && a !== 'busybox') fs.symlinkSync('busybox', path.join(dir, 'bin', a));
  fs.writeFileSync(path.join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  return dir;
}

async function floor(kernel: string, accel: 'kvm' | 'tcg', runs: number): Promise<number[]> {
  const initrd = path.join(os.tmpdir(), `boxlite-floor-${process.pid}.cpio`);
  fs.writeFileSync(
    initrd,
    cpioNewc([
      { name: 'bin', mode: S_IFDIR | 0o755 },
      { name: 'dev', mode: S_IFDIR | 0o755 },
      { name: 'dev/console', mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 },
      { name: 'bin/busybox', mode: S_IFREG | 0o755, data: fs.readFileSync('/bin/busybox') },
      { name: 'init', mode: S_IFREG | 0o755, data: Buffer.from('#!/bin/busybox sh\n/bin/busybox poweroff -f\n') },
    ]),
  );
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const p = spawn(qemuBinary(), [
        '-M', 'microvm,acpi=on,pcie=off,rtc=on',
        ...(accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max']),
        '-m', '512', '-smp', '1', '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
        '-kernel', kernel, '-initrd', initrd, '-serial', 'null',
        '-append', ['console=ttyS0 quiet loglevel=3 panic=-1', ...(accel === 'tcg' ? tcgKernelArgs() : [])].join(' '),
      ], { stdio: 'ignore' });
      p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`floor VM exited ${code}`))));
    });
    times.push(performance.now() - t0);
  }
  fs.rmSync(initrd);
  return times;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function main() {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-bench-home-'));
  const mainHome = path.resolve(process.env.BOXLITE_HOME ?? path.join(os.homedir(), '.boxlite'));
  fs.symlinkSync(path.join(mainHome, 'assets'), path.join(home, 'assets'));
  const rt = new Runtime({ home, say: () => {} });
  const accel = rt.accel();
  const assets = loadAssets(rt.home);
  const rootfs = busyboxRootfs();
  const runs = Number(process.env.BENCH_RUNS ?? 5);
  console.log(`boxlite bench — accelerator ${accel.accel} (${accel.reason}); ${os.cpus().length} cores; kernel ${assets.kernelVersion}; ${runs} runs each\n`);
  try {
    if (process.env.BENCH_ONLY === 'network') {
      for (const [k, v] of await networkBench(rt, rootfs)) console.log(`${k.padEnd(64)} ${v}`);
      return;
    }
    if (process.env.BENCH_ONLY === 'state') {
      for (const [k, v] of await stateBench(rt, rootfs)) console.log(`${k.padEnd(64)} ${v}`);
      return;
    }
    if (process.env.BENCH_ONLY === 'project') {
      for (const [k, v] of await projectBench(home, rootfs)) console.log(`${k.padEnd(64)} ${v}`);
      return;
    }
    if (process.env.BENCH_ONLY === 'images') {
      for (const [k, v] of await imageBench(mainHome, Number(process.env.BENCH_IMAGE_RUNS ?? 3))) console.log(`${k.padEnd(64)} ${v}`);
      return;
    }
    const floorTimes = await floor(assets.kernel, accel.accel, runs);

    const box = await rt.create({ rootfs, name: 'bench', memoryMib: 512 });
    let t = performance.now();
    await box.start();
    await box.exec(['true']);
    const firstEver = performance.now() - t; // includes building the box's disk from the directory
    await box.stop();

    const cold: number[] = [];
    let rss = 0;
    for (let i = 0; i < runs; i++) {
      t = performance.now();
      await box.start();
      const r = await box.exec(['echo', 'ready']);
      if (r.stdout !== 'ready\n') throw new Error('unexpected first exec output');
      cold.push(performance.now() - t);
      if (i === runs - 1) {
        rss = rssMiB(Number(fs.readFileSync(path.join(home, 'boxes', box.id, 'qemu.pid'), 'utf8')));
        break;
      }
      await box.stop();
    }

    const execs: number[] = [];
    for (let i = 0; i < 5; i++) await box.exec(['true']); // warm up
    for (let i = 0; i < 50; i++) {
      t = performance.now();
      await box.exec(['true']);
      execs.push(performance.now() - t);
    }
    t = performance.now();
    await box.stop();
    const stopMs = performance.now() - t;

    const f = median(floorTimes);
    const c = median(cold);
    const rows: [string, string][] = [
      ['floor: QEMU + same kernel, init powers off at once (median)', ms(f)],
      ['cold start → first exec output, assets cached (median)', `${ms(c)}  (${(c / f).toFixed(2)}× floor)`],
      ['first start of a new box, incl. building its disk', ms(firstEver)],
      ['exec round trip of `true` (median of 50)', `${median(execs).toFixed(1)} ms (p90 ${[...execs].sort((a, b) => a - b)[44].toFixed(1)} ms)`],
      ['graceful stop', ms(stopMs)],
      ['QEMU resident memory of a running 512 MiB box', `${rss.toFixed(0)} MiB`],
    ];
    rows.push(...(await networkBench(rt, rootfs)));
    rows.push(...(await stateBench(rt, rootfs)));
    rows.push(...(await projectBench(home, rootfs)));
    rows.push(...(await imageBench(mainHome, Number(process.env.BENCH_IMAGE_RUNS ?? 3))));
    for (const [k, v] of rows) console.log(`${k.padEnd(64)} ${v}`);
    console.log(`\nraw: floor ${floorTimes.map((x) => x.toFixed(0)).join(' ')}; cold ${cold.map((x) => x.toFixed(0)).join(' ')}`);
  } finally {
    for (const b of rt.list()) await rt.remove(b.id, { force: true }).catch(() => {});
    rt.close();
    fs.rmSync(home, { recursive: true, force: true });
    fs.rmSync(rootfs, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
