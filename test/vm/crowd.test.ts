// Many boxes at once on this small machine: a 20-box project of one image comes up every time. The first box
// boots and leaves the warm-start template; the others continue from it. A boot on a loaded host is waited for as
// long as its guest makes progress, never failed for being slow.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, cli, makeOciLayout, makeRootfs, testHome } from '../helpers.js';

const BOXES = 20;
let home: string;
let rootfs: string;
let dir: string;

beforeAll(() => {
  home = testHome();
  rootfs = makeRootfs();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-crowd-'));
  makeOciLayout(rootfs, { Cmd: ['sh'] }, path.join(dir, 'image'));
  const boxes = Array.from({ length: BOXES }, (_, i) => `  b${i}: {image: ./image, memory: 128MiB, disk: 128MiB}`);
  fs.writeFileSync(path.join(dir, 'boxlite.yaml'), ['name: crowd', 'boxes:', ...boxes].join('\n') + '\n');
});

afterAll(async () => {
  if (dir) await cli(home, ['down', '--remove'], { cwd: dir, timeoutMs: 600_000 });
  if (home) await cleanupHome(home);
  for (const d of [rootfs, dir]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

describe('a crowd of boxes', () => {
  it(`a ${BOXES}-box project comes up, every box answering`, async () => {
    const up = await cli(home, ['up', '--trust'], { cwd: dir, timeoutMs: 900_000 });
    expect(up.code, up.stderr).toBe(0);
    const ps = JSON.parse((await cli(home, ['ps', '--json'], { cwd: dir })).stdout) as { name: string; state: string }[];
    expect(ps.filter((b) => b.state === 'running')).toHaveLength(BOXES);
    const names = await Promise.all(Array.from({ length: BOXES }, (_, i) => cli(home, ['exec', `b${i}`, 'hostname'], { cwd: dir })));
    expect(names.map((r) => r.stdout.trim())).toEqual(Array.from({ length: BOXES }, (_, i) => `b${i}`));
    // One template for all of them: one box booted, the rest continued from it.
    expect(fs.readdirSync(path.join(home, 'templates')).filter((n) => n.endsWith('.json'))).toHaveLength(1);
  }, 900_000); // 20 boots' worth of work on 2 cores, beside another test file: the up alone may take minutes
});
