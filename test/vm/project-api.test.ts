// A program drives a project through the API the CLI uses: load, plan, up, watch with typed events, down.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, makeRootfs, quietRuntime, testHome, waitUntil } from '../helpers.js';
import { Project, SpecError, type Runtime, type WatchEvent } from '../../src/index.js';

let home: string;
let dir: string;
let rt: Runtime;

const yaml = (mode: string) => `name: api\nboxes:\n  app:\n    image: ./rootfs\n    memory: 192MiB\n    disk: 128MiB\n    env: {MODE: ${mode}}\n`;

beforeAll(() => {
  home = testHome();
  rt = quietRuntime(home);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-api-'));
  makeRootfs(path.join(dir, 'rootfs'));
  fs.writeFileSync(path.join(dir, 'boxlite.yaml'), yaml('one'));
});

afterAll(async () => {
  rt?.close();
  if (home) await cleanupHome(home);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('the project API', () => {
  it('load, plan, up, an edit seen by watch as typed events, down', async () => {
    const project = Project.load({ file: path.join(dir, 'boxlite.yaml'), runtime: rt });
    expect(project.name).toBe('api');
    const plan = await project.plan();
    expect(plan.changed).toBe(true);
    expect(plan.boxes.map((b) => [b.box, b.action])).toEqual([['app', 'create']]);

    const up = await project.up({ wait: true, trust: true });
    expect(up.ok, JSON.stringify(up.errors)).toBe(true);
    expect((await project.plan()).changed).toBe(false);
    const box = rt.get('api.app');
    expect((await box.exec(['sh', '-c', 'echo $MODE'])).stdout).toBe('one\n');

    const events: WatchEvent[] = [];
    const watcher = await project.watch({ onEvent: (e) => events.push(e), pollMs: 500 });
    try {
      expect(events[0]).toMatchObject({ type: 'watching', file: path.join(dir, 'boxlite.yaml') });
      fs.writeFileSync(path.join(dir, 'boxlite.yaml'), yaml('two'));
      await waitUntil(() => events.some((e) => e.type === 'applied'), 'the watch applying the edit', 120_000);
      const planned = events.find((e) => e.type === 'plan');
      expect(planned?.type === 'plan' && planned.plan?.boxes.map((b) => [b.box, b.action])).toEqual([['app', 'update']]);
      expect(events.find((e) => e.type === 'applied')).toMatchObject({ ok: true, errors: [] });
      expect((await box.exec(['sh', '-c', 'echo $MODE'])).stdout).toBe('two\n');
      // An invalid edit is an event too; the boxes stay as they are.
      fs.writeFileSync(path.join(dir, 'boxlite.yaml'), `${yaml('three')}    cpus: many\n`);
      await waitUntil(() => events.some((e) => e.type === 'invalid-edit'), 'the watch refusing the edit', 60_000);
      expect(events.find((e) => e.type === 'invalid-edit')!.message).toMatch(/boxlite\.yaml:\d+:\d+/);
    } finally {
      await watcher.stop();
    }
    expect(() => Project.load({ file: path.join(dir, 'boxlite.yaml'), runtime: rt })).toThrow(SpecError);
    fs.writeFileSync(path.join(dir, 'boxlite.yaml'), yaml('two'));

    const down = await Project.load({ file: path.join(dir, 'boxlite.yaml'), runtime: rt }).down({ remove: true });
    expect(down.boxes.map((b) => b.action)).toEqual(['removed']);
    expect(rt.list()).toEqual([]);
  });
});
