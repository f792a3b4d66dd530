// npm run bench: figures of this machine, section by section. Each section prints its rows as soon as it is done;
// one that fails prints its error and the next one still runs, so a failure never loses figures already made.
//   start     see start.ts: floor, cold start, exec round trip, stop, memory
//   memory    see memory.ts: warm start, pause/resume, forks, an idle box's resident memory
//   jail      see start.ts: the same box started jailed and unjailed
//   network   see network.ts      egress   see egress.ts      state   see state.ts      project   see project.ts      images   see images.ts
//   cli       see cli.ts: --version, help, ps of 20 boxes, exec, each beside node's own start
//   output    see output.ts: 256 MiB of exec output to the host beside a TCP transfer out of the same box
// BENCH_ONLY=state,network runs only those sections; BENCH_RUNS sets the repetitions of the start section.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Runtime } from '../src/runtime/runtime.js';
import { loadAssets } from '../src/runtime/assets.js';
import { jailBench, startBench } from './start.js';
import { imageBench } from './images.js';
import { networkBench } from './network.js';
import { outputBench } from './output.js';
import { egressBench } from './egress.js';
import { stateBench } from './state.js';
import { projectBench } from './project.js';
import { memoryBench } from './memory.js';
import { cliBench } from './cli.js';
import { dirLayer, ociImage } from '../test/oci.js';

function busyboxRootfs(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-bench-'));
  for (const d of ['bin', 'etc', 'root', 'tmp']) fs.mkdirSync(path.join(dir, d));
  fs.copyFileSync('/bin/busybox', path.join(dir, 'bin/busybox'));
  fs.chmodSync(path.join(dir, 'bin/busybox'), 0o755);
  for (const a of execFileSync('/bin/busybox', ['--list']).toString().split('\n')) if (a && a !== 'busybox') fs.symlinkSync('busybox', path.join(dir, 'bin', a));
  fs.writeFileSync(path.join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  return dir;
}

async function main(): Promise<number> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-bench-home-'));
  const mainHome = path.resolve(process.env.BOXLITE_HOME ?? path.join(os.homedir(), '.boxlite'));
  fs.symlinkSync(path.join(mainHome, 'assets'), path.join(home, 'assets'));
  const rt = new Runtime({ home, say: () => {} });
  const accel = rt.accel();
  const rootfs = busyboxRootfs();
  // The same busybox tree as an image (OCI layout): image boxes share a base and warm-start templates.
  const image = ociImage({ layers: [dirLayer(rootfs)] });
  const runs = Number(process.env.BENCH_RUNS ?? 5);
  const sections: [string, () => Promise<[string, string][]>][] = [
    ['start', () => startBench(rt, rootfs, runs)],
    ['cli', () => cliBench(rt, home, rootfs)],
    ['jail', () => jailBench(home, rootfs, runs)],
    ['memory', () => memoryBench(rt, image, runs)],
    ['network', () => networkBench(rt, rootfs)],
    ['output', () => outputBench(rt, home, rootfs)],
    ['egress', () => egressBench(rt, rootfs)],
    ['state', () => stateBench(rt, rootfs)],
    ['project', () => projectBench(home, image)],
    ['images', () => imageBench(mainHome, Number(process.env.BENCH_IMAGE_RUNS ?? 3))],
  ];
  const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = only?.filter((o) => !sections.some(([n]) => n === o)) ?? [];
  if (unknown.length) {
    console.error(`bench: no section ${unknown.join(', ')}; the sections are ${sections.map(([n]) => n).join(', ')}`);
    return 1;
  }
  console.log(`boxlite bench — accelerator ${accel.accel} (${accel.reason}); ${os.cpus().length} cores; kernel ${loadAssets(rt.home).kernelVersion}; ${runs} runs each\n`);
  let failed = 0;
  try {
    for (const [name, run] of sections) {
      if (only && !only.includes(name)) continue;
      const t = performance.now();
      console.log(`== ${name}`);
      try {
        for (const [k, v] of await run()) console.log(`${k.padEnd(64)} ${v}`);
        console.log(`(${name}: ${((performance.now() - t) / 1000).toFixed(0)} s)\n`);
      } catch (e) {
        failed++;
        console.log(`${name} FAILED after ${((performance.now() - t) / 1000).toFixed(0)} s: ${(e as Error).stack ?? e}\n`);
      }
      // A failed section may leave boxes: the next one starts clean.
      for (const b of rt.list()) await rt.remove(b.id, { force: true }).catch(() => {});
    }
  } finally {
    rt.close();
    fs.rmSync(home, { recursive: true, force: true });
    fs.rmSync(rootfs, { recursive: true, force: true });
    fs.rmSync(image, { recursive: true, force: true });
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
