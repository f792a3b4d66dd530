// The declarative front end: a 20-box project of one image brought up (the first box boots, the others start warm
// from its template), then `boxlite up` and `boxlite plan` on the unchanged project, timed as a person runs them
// (a CLI process each).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const CLI = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'bin', 'boxlite.js');

export async function projectBench(home: string, image: string, boxes = Number(process.env.BENCH_PROJECT_BOXES ?? 20)): Promise<[string, string][]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-bench-project-'));
  fs.symlinkSync(image, path.join(dir, 'image'));
  const yaml = ['name: bench', 'boxes:', ...Array.from({ length: boxes }, (_, i) => `  b${i}: {image: ./image, memory: 128MiB, disk: 128MiB}`)].join('\n') + '\n';
  fs.writeFileSync(path.join(dir, 'boxlite.yaml'), yaml);
  const run = (args: string[]) => {
    const t = performance.now();
    try {
      execFileSync(process.execPath, [CLI, ...args], { cwd: dir, env: { ...process.env, BOXLITE_HOME: home }, stdio: 'pipe' });
    } catch (e) {
      const err = e as { status: number; stderr: Buffer };
      throw new Error(`boxlite ${args.join(' ')} exited ${err.status}: ${err.stderr?.toString()}`); // plan exits 0: nothing changed
    }
    return performance.now() - t;
  };
  try {
    const first = run(['up', '--trust']);
    const again = Array.from({ length: 5 }, () => run(['up', '--trust']));
    const plans = Array.from({ length: 5 }, () => run(['plan']));
    const noop = performance.now();
    execFileSync(process.execPath, ['-e', ''], { stdio: 'ignore' });
    const nodeMs = performance.now() - noop;
    return [
      [`first up of a ${boxes}-box project (busybox image, 128 MiB each)`, `${(first / 1000).toFixed(1)} s`],
      [`second up, nothing to do (median of 5; CLI process wall time)`, `${median(again).toFixed(0)} ms (node itself: ${nodeMs.toFixed(0)} ms)`],
      [`plan, nothing to do (median of 5)`, `${median(plans).toFixed(0)} ms`],
    ];
  } finally {
    try {
      execFileSync(process.execPath, [CLI, 'down', '--remove'], { cwd: dir, env: { ...process.env, BOXLITE_HOME: home }, stdio: 'ignore' });
    } catch {}
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
