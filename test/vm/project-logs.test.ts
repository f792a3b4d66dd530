// `boxlite logs` as a compose user expects it: a box's output in any state (stopped, crashed), the project's boxes
// interleaved by time with a name prefix, and -f following all of them.
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, CliProcess, qemuPids } from '../helpers.js';
import { ProjectFixture } from '../project-fixture.js';

let fx: ProjectFixture;
let dir: string;

// Each box prints three lines, then one more each time /tmp/go appears.
const BOX = (name: string) => `  ${name}:
    image: ./rootfs
    memory: 192MiB
    disk: 128MiB
    command: sh -c 'for i in 1 2 3; do echo ${name} line $$i; done; while true; do [ -f /tmp/go ] && rm /tmp/go && echo ${name} went; sleep 0.2; done'
`;

beforeAll(async () => {
  fx = new ProjectFixture();
  dir = fx.dir(`name: shop\nboxes:\n${BOX('web')}${BOX('db')}  quiet:\n    image: ./rootfs\n    memory: 192MiB\n    disk: 128MiB\n`);
  const up = await cli(fx.home, ['up', '--trust'], { cwd: dir });
  expect(up.code, up.stdout + up.stderr).toBe(0);
});

afterAll(async () => {
  await fx.cleanup();
});

/** Waits until a box's command has printed its first lines (they reach the host as they are printed). */
async function printed(box: string, line: string): Promise<void> {
  const p = new CliProcess(fx.home, ['logs', '-f', box], { cwd: dir });
  try {
    await p.waitFor(new RegExp(`^${line}$`, 'm'), 60_000);
  } finally {
    p.child.kill('SIGINT');
    await p.exited();
  }
}

describe('logs', () => {
  it('of a running box, of a stopped one and of one whose VM was killed', async () => {
    await printed('web', 'web line 3');
    await printed('db', 'db line 3');
    const running = await cli(fx.home, ['logs', 'web', '-n', '2'], { cwd: dir });
    expect(running.stdout).toBe('web line 2\nweb line 3\n');
    expect(running.code).toBe(0);

    expect((await cli(fx.home, ['stop', 'web'], { cwd: dir })).code).toBe(0);
    const stopped = await cli(fx.home, ['logs', 'web', '-n', '2'], { cwd: dir });
    expect(stopped.stdout).toBe('web line 2\nweb line 3\n');
    expect(stopped.stderr).toBe('');
    expect(stopped.code).toBe(0);

    const id = fx.records('shop').find((r) => r.project!.box === 'db')!.id;
    const [pid] = qemuPids(fx.home).filter((x) => fs.readFileSync(`/proc/${x}/cmdline`, 'utf8').includes(id));
    process.kill(pid, 'SIGKILL');
    const ps = await cli(fx.home, ['ps', '-a'], { cwd: dir });
    expect(ps.stdout).toMatch(/shop\.db\s+exited \(killed\)/);
    const crashed = await cli(fx.home, ['logs', 'db'], { cwd: dir });
    expect(crashed.stdout).toBe('--- boxlite: command started\ndb line 1\ndb line 2\ndb line 3\n');
    expect(crashed.code).toBe(0);
  });

  it("with no box: the project's boxes interleaved by time, each line prefixed with its box", async () => {
    const all = await cli(fx.home, ['logs'], { cwd: dir });
    expect(all.code).toBe(0);
    const lines = all.stdout.trimEnd().split('\n');
    // quiet has no command: it prints nothing here.
    expect(lines.filter((l) => l.startsWith('web | ')).map((l) => l.slice(6))).toEqual(['--- boxlite: command started', 'web line 1', 'web line 2', 'web line 3']);
    expect(lines.filter((l) => l.startsWith('db  | ')).map((l) => l.slice(6))).toEqual(['--- boxlite: command started', 'db line 1', 'db line 2', 'db line 3']);
    expect(lines).toHaveLength(8);
    const stamped = (await cli(fx.home, ['logs', '-t', 'web', 'db'], { cwd: dir })).stdout.trimEnd().split('\n');
    const times = stamped.map((l) => /^(?:web|db ) \| (\S+) /.exec(l)![1]);
    expect(times).toEqual([...times].sort());
    expect(stamped.map((l) => l.replace(/ \| \S+ /, ' | '))).toEqual(lines);
    // -n counts per box.
    expect((await cli(fx.home, ['logs', '-n', '1'], { cwd: dir })).stdout.split('\n').filter(Boolean).sort()).toEqual(['db  | db line 3', 'web | web line 3']);
  });

  it('-f follows every box of the project', async () => {
    expect((await cli(fx.home, ['start', 'web', 'db'], { cwd: dir })).code).toBe(0);
    const f = new CliProcess(fx.home, ['logs', '-f'], { cwd: dir });
    try {
      // The second start's lines, then the ones printed after logs -f began.
      await f.waitFor(/^db  \| db line 3\n[\s\S]*^db  \| db line 3$/m, 60_000);
      await f.waitFor(/^web \| web line 3\n[\s\S]*^web \| web line 3$/m, 60_000);
      const mark = f.output.length;
      expect((await cli(fx.home, ['exec', 'db', 'touch', '/tmp/go'], { cwd: dir })).code).toBe(0);
      await f.waitFor(/^db  \| db went$/m, 30_000, mark);
      expect((await cli(fx.home, ['exec', 'web', 'touch', '/tmp/go'], { cwd: dir })).code).toBe(0);
      await f.waitFor(/^web \| web went$/m, 30_000, mark);
    } finally {
      f.child.kill('SIGINT');
    }
    expect(await f.exited()).toBe(0);
    const outside = await cli(fx.home, ['logs']);
    expect(outside.stderr).toContain('boxlite: logs: name a BOX (or run it in a project folder, or with -f FILE, for all of its boxes)');
    expect(outside.code).toBe(1);
  });
});
