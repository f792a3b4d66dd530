// A compose user's failed `up`, as they see it: the last line says it failed and how many boxes did, each failure
// is said once (a dependency's not nested into its dependants'), and a setup's failure quotes its command's own
// last error line.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers.js';
import { ProjectFixture } from '../project-fixture.js';

let fx: ProjectFixture;
const SMALL = '    image: ./rootfs\n    memory: 192MiB\n    disk: 128MiB\n';

beforeAll(() => {
  fx = new ProjectFixture();
});

afterAll(async () => {
  await fx.cleanup();
});

describe('a failed up', () => {
  it('ends with a line saying how many boxes failed; the failure is said once, in its own words', async () => {
    const dir = fx.dir(`name: oops\nboxes:\n  a:\n${SMALL}    setup:\n      - ls /nonexistent\n  b:\n${SMALL}    depends_on: [a]\n  c:\n${SMALL}`);
    const up = await cli(fx.home, ['up', '--trust'], { cwd: dir });
    expect(up.code).toBe(1);
    const err = up.stderr.trimEnd().split('\n');
    expect(err.at(-1)).toBe('✖ project oops: 2 of 3 boxes failed (a, b)');
    expect(err).toContain("✖ a: create [FAILED: setup command 1 (ls /nonexistent) failed with exit status 1: ls: /nonexistent: No such file or directory. The box is left running for inspection: boxlite exec a sh — the next 'boxlite up' makes it again from scratch]");
    expect(err).toContain('✖ b: create [FAILED: not started: it depends on a, which failed]');
    expect(up.stderr.split('failed with exit status 1').length - 1).toBe(1);
    expect(up.stdout).toContain('✔ c: create');
    expect(up.stdout).not.toContain('✔ project oops');
    await cli(fx.home, ['down', '--remove'], { cwd: dir });
  });

  it('a dependency that never becomes healthy: its dependant says so with the last check', async () => {
    const dir = fx.dir(`name: sick\nboxes:\n  x:\n${SMALL}    healthcheck: {test: cat /nope, interval: 200ms, retries: 2}\n  y:\n${SMALL}    depends_on: {x: {condition: healthy}}\n`);
    const up = await cli(fx.home, ['up', '--trust'], { cwd: dir });
    expect(up.code).toBe(1);
    const err = up.stderr.trimEnd().split('\n');
    expect(err.at(-1)).toBe('✖ project sick: 1 of 2 boxes failed (y)');
    expect(err).toContain("✖ y: create [FAILED: not started: it depends on x, which did not become healthy (its last check said: exit status 1: cat: can't open '/nope': No such file or directory)]");
    await cli(fx.home, ['down', '--remove'], { cwd: dir });
  });
});
