// The CLI's own cost, each command as a separate process beside `node -e ''` in the same run (medians of 15):
//   --version, help; ps of 20 boxes; exec BOX true (node + the SDK's exec round trip is its floor).
// Targets (issue: a CLI that answers like docker's): --version ≤ node + 30 ms, ps of 20 ≤ node + 80 ms,
// exec BOX true ≤ node + the SDK's round trip + 80 ms.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import type { Runtime } from '../src/runtime/runtime.js';

const CLI = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../bin/boxlite.js');
const RUNS = 15;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function timed(args: string[], env: NodeJS.ProcessEnv): number {
  const xs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    execFileSync(process.execPath, args, { env, stdio: 'ignore' });
    xs.push(performance.now() - t);
  }
  return median(xs);
}

export async function cliBench(rt: Runtime, home: string, rootfs: string): Promise<[string, string][]> {
  const env = { ...process.env, BOXLITE_HOME: home };
  const node = timed(['-e', ''], env);
  const version = timed([CLI, '--version'], env);
  const help = timed([CLI, 'help'], env);
  const boxes = [];
  for (let i = 0; i < 20; i++) boxes.push(await rt.create({ rootfs, name: `cli-${i}`, memoryMib: 192 }));
  const ps = timed([CLI, 'ps', '-a'], env);
  const box = boxes[0];
  await box.start();
  for (let i = 0; i < 5; i++) await box.exec(['true']);
  const sdk: number[] = [];
  for (let i = 0; i < 30; i++) {
    const t = performance.now();
    await box.exec(['true']);
    sdk.push(performance.now() - t);
  }
  const rtt = median(sdk);
  const exec = timed([CLI, 'exec', 'cli-0', 'true'], env);
  const over = (x: number, floor: number) => `${x.toFixed(0)} ms (node + ${(x - floor).toFixed(0)} ms)`;
  return [
    ["node -e '' (the floor of every row below)", `${node.toFixed(0)} ms`],
    ['boxlite --version', `${over(version, node)}; target node + 30 ms`],
    ['boxlite help', over(help, node)],
    ['boxlite ps -a, 20 boxes', `${over(ps, node)}; target node + 80 ms`],
    ['SDK exec round trip of `true` (median of 30)', `${rtt.toFixed(1)} ms`],
    ['boxlite exec BOX true', `${over(exec, node)} = node + SDK round trip + ${(exec - node - rtt).toFixed(0)} ms; target + 80 ms`],
  ];
}
