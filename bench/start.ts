// Box start and exec figures beside the floor of this machine, in one run:
//   floor       QEMU with the same kernel and machine, an initramfs whose init powers off at once
//   cold start  start of a created box (disk built, assets cached) → output of its first exec
//   exec        round trip of `true` in a running box (median of many)
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Runtime } from '../src/runtime/runtime.js';
import { loadAssets } from '../src/runtime/assets.js';
import { measureFloor } from '../test/floor.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (n: number) => `${n.toFixed(0)} ms`;

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export async function startBench(rt: Runtime, rootfs: string, runs: number): Promise<[string, string][]> {
  const floorTimes = await measureFloor(loadAssets(rt.home).kernel, rt.accel().accel, runs);
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
      rss = rssMiB(Number(fs.readFileSync(path.join(rt.home.boxDir(box.id), 'qemu.pid'), 'utf8')));
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
  await box.remove();

  const f = median(floorTimes);
  const c = median(cold);
  return [
    ['floor: QEMU + same kernel, init powers off at once (median)', ms(f)],
    ['cold start → first exec output, assets cached (median)', `${ms(c)}  (${(c / f).toFixed(2)}× floor)`],
    ['first start of a new box, incl. building its disk', ms(firstEver)],
    ['exec round trip of `true` (median of 50)', `${median(execs).toFixed(1)} ms (p90 ${[...execs].sort((a, b) => a - b)[44].toFixed(1)} ms)`],
    ['graceful stop', ms(stopMs)],
    ['QEMU resident memory of a running 512 MiB box', `${rss.toFixed(0)} MiB`],
    ['raw: floor / cold start (ms)', `${floorTimes.map((x) => x.toFixed(0)).join(' ')} / ${cold.map((x) => x.toFixed(0)).join(' ')}`],
  ];
}
