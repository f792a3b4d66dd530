// Warm start on real boxes: the first box of an image and shape boots cold and leaves a template; the next box of
// the same image and shape continues from it instead of booting, yet is a box of its own (name, disk, clock,
// random numbers); another shape keys another template; `images prune -a` removes them and what only they kept.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, cli, makeOciLayout, makeRootfs, testHome } from '../helpers.js';

let home: string;
let rootfs: string;
let layout: string;

const sh = async (box: string, script: string) => {
  const r = await cli(home, ['exec', box, 'sh', '-c', script]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
};
const idOf = async (box: string) => JSON.parse((await cli(home, ['inspect', box])).stdout).id as string;
/** The guest console since the box's last start. */
const lastBoot = async (box: string) => fs.readFileSync(path.join(home, 'boxes', await idOf(box), 'console.log'), 'utf8').split('--- boxlite: boot at').at(-1)!;
const templates = () => (fs.existsSync(path.join(home, 'templates')) ? fs.readdirSync(path.join(home, 'templates')).filter((n) => n.endsWith('.json')) : []);

beforeAll(() => {
  home = testHome();
  rootfs = makeRootfs();
  layout = makeOciLayout(rootfs, { Cmd: ['sh'] });
});

afterAll(async () => {
  if (home) await cleanupHome(home);
  for (const d of [rootfs, layout]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

describe('warm start', () => {
  it('the first box of an image and shape boots cold and leaves a template', async () => {
    expect((await cli(home, ['create', '--name', 'a1', '-m', '192', '--disk', '256', layout])).code).toBe(0);
    const s = await cli(home, ['start', 'a1']);
    expect(s.code, s.stderr).toBe(0);
    expect(await lastBoot('a1')).toContain('boxlite-init: started');
    expect(templates()).toHaveLength(1);
    await sh('a1', 'echo only-a1 > /root/mine; sync');
    // Its disk was moved onto a new top while it ran (the template keeps the old one): it still pauses and continues.
    const p = await cli(home, ['pause', 'a1']);
    expect(p.code, p.stderr).toBe(0);
    expect((await cli(home, ['resume', 'a1'])).code).toBe(0);
    expect(await sh('a1', 'cat /root/mine')).toBe('only-a1\n');
  });

  it('the next one continues from the template: no boot, yet its own name, disk, clock and random numbers', async () => {
    expect((await cli(home, ['create', '--name', 'a2', '-m', '192', '--disk', '256', layout])).code).toBe(0);
    const s = await cli(home, ['start', 'a2']);
    expect(s.code, s.stderr).toBe(0);
    // The guest did not boot: nothing of init or of the agent's start since the VM began.
    expect(await lastBoot('a2')).not.toMatch(/boxlite-init: started|boxlite-agent: ready/);
    expect(await sh('a2', 'hostname; ls /root; df -m / | tail -1')).toMatch(/^a2\n\S+\s+2[0-9]{2}\s/); // grown to 256 MiB, no a1 file
    expect(Math.abs(Number(await sh('a2', 'date +%s')) - Date.now() / 1000)).toBeLessThan(3);
    const draw = (box: string) => sh(box, 'head -c 32 /dev/urandom | od -An -tx1');
    expect(await draw('a2')).not.toBe(await draw('a1'));
    // Writes of either stay its own.
    await sh('a2', 'echo only-a2 > /root/mine; sync');
    expect(await sh('a1', 'cat /root/mine')).toBe('only-a1\n');
    expect(await sh('a2', 'cat /root/mine')).toBe('only-a2\n');
    expect(templates()).toHaveLength(1);
  });

  it('a box of another shape boots cold and leaves a template of its own; BOXLITE_WARM=off always boots cold', async () => {
    expect((await cli(home, ['create', '--name', 'b1', '-m', '224', '--disk', '256', layout])).code).toBe(0);
    expect((await cli(home, ['start', 'b1'])).code).toBe(0);
    expect(await lastBoot('b1')).toContain('boxlite-init: started');
    expect(templates()).toHaveLength(2);
    expect((await cli(home, ['create', '--name', 'c1', '-m', '192', '--disk', '256', layout])).code).toBe(0);
    expect((await cli(home, ['start', 'c1'], { env: { BOXLITE_WARM: 'off' } })).code).toBe(0);
    expect(await lastBoot('c1')).toContain('boxlite-init: started');
  });

  it('images prune -a removes the templates, with the memory and disk layers only they kept', async () => {
    expect((await cli(home, ['rm', '-f', 'a1', 'a2', 'b1', 'c1'])).code).toBe(0);
    expect(fs.readdirSync(path.join(home, 'states')).length).toBeGreaterThan(0);
    const p = await cli(home, ['images', 'prune', '-a']);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toContain('2 warm-start templates');
    expect(templates()).toEqual([]);
    expect(fs.readdirSync(path.join(home, 'states'))).toEqual([]);
    expect(fs.readdirSync(path.join(home, 'layers'))).toEqual([]);
  });
});
