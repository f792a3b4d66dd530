// Boxes that keep their memory, on a real VM: a pause saves it and ends QEMU, a start (or any exec) continues
// every process where it was; a CLI killed at each step of a pause leaves a box that continues; a memory snapshot
// brings back the processes and the disk of one instant. What the guest must not carry over a restore (its clock)
// is set again.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, cli, cliKilledAt, makeRootfs, quietRuntime, testHome, waitUntil } from '../helpers.js';
import type { Box, Runtime } from '../../src/runtime/runtime.js';

let home: string;
let rootfs: string;
let rt: Runtime;
let box: Box;
let dir: string;

const sh = async (script: string) => {
  const r = await cli(home, ['exec', 'mem', 'sh', '-c', script]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
};
/** What a continued guest still has and a booted one would not: a tmpfs file, a process, the boot's id. */
const live = () => sh('cat /dev/shm/mark; cat /proc/sys/kernel/random/boot_id; cat /tmp/sleeper.pid; kill -0 $(cat /tmp/sleeper.pid) && echo alive');
const vmRunning = () => rt.engine.status(dir).kind === 'running';
const state = async () => JSON.parse((await cli(home, ['inspect', 'mem'])).stdout).state as string;

beforeAll(async () => {
  home = testHome();
  rootfs = makeRootfs();
  rt = quietRuntime(home);
  box = await rt.create({ rootfs, name: 'mem', memoryMib: 192, ports: ['80'] });
  dir = path.join(home, 'boxes', box.id);
  await box.start();
  await sh('echo in-memory > /dev/shm/mark; mkdir -p /www && echo served > /www/index.html && httpd -p 80 -h /www; (sleep 100000 >/dev/null 2>&1 </dev/null & echo $! > /tmp/sleeper.pid)');
});

afterAll(async () => {
  rt?.close();
  if (home) await cleanupHome(home);
  if (rootfs) fs.rmSync(rootfs, { recursive: true, force: true });
});

describe('pause and resume', () => {
  let before: string;

  it('a pause saves the memory and ends the VM; resume continues every process, its forwards and its clock', async () => {
    before = await live();
    expect(before).toMatch(/^in-memory\n[0-9a-f-]{36}\n\d+\nalive\n$/);
    const p = await cli(home, ['pause', 'mem']);
    expect(p.code, p.stderr).toBe(0);
    expect(await state()).toBe('paused');
    expect(vmRunning()).toBe(false); // no CPU, no host memory held
    expect(fs.statSync(path.join(dir, 'state', 'pause.state')).size).toBeGreaterThan(1 << 20);
    expect((await cli(home, ['ps'])).stdout).toMatch(/mem\s+paused/);
    const r = await cli(home, ['resume', 'mem']);
    expect(r.code, r.stderr).toBe(0);
    expect(await state()).toBe('running');
    expect(await live()).toBe(before);
    expect(fs.existsSync(path.join(dir, 'state', 'pause.state'))).toBe(false);
    // The guest's clock is the host's again, not where it stopped.
    const guest = Number(await sh('date +%s'));
    expect(Math.abs(guest - Date.now() / 1000)).toBeLessThan(3);
    // The forward works: the network helper was started again for the continued guest.
    const port = box.info().ports!.find((x) => x.guestPort === 80)!.hostPort;
    expect(await (await fetch(`http://127.0.0.1:${port}/index.html`)).text()).toBe('served\n');
  });

  it('an exec on a paused box continues it first', async () => {
    expect((await cli(home, ['pause', 'mem'])).code).toBe(0);
    expect(await live()).toBe(before);
    expect(await state()).toBe('running');
  });

  it('a pause killed at each of its steps leaves a box that continues with its memory', async () => {
    for (const point of ['pause:marked', 'pause:saved', 'pause:recorded']) {
      await cliKilledAt(home, ['pause', 'mem'], point);
      const s = await cli(home, ['start', 'mem']);
      expect(s.code, `${point}: ${s.stderr}`).toBe(0);
      expect(await live(), point).toBe(before);
    }
  });

  it('a resume killed before the guest was told it was restored is done again by the next start', async () => {
    expect((await cli(home, ['pause', 'mem'])).code).toBe(0);
    await cliKilledAt(home, ['resume', 'mem'], 'restore:spawned');
    // QEMU loaded the state by itself and runs on; the guest was never told it is this box at this time.
    expect(vmRunning()).toBe(true);
    const abandoned = rt.engine.peerPid(dir);
    const s = await cli(home, ['start', 'mem']);
    expect(s.code, s.stderr).toBe(0);
    expect(rt.engine.peerPid(dir)).not.toBe(abandoned);
    expect(JSON.parse((await cli(home, ['inspect', 'mem'])).stdout).lastStart.kind).toBe('restore');
    expect(await live()).toBe(before);
    expect(await state()).toBe('running');
  });

  it('start --cold discards the saved memory and boots from the disk', async () => {
    expect((await cli(home, ['pause', 'mem'])).code).toBe(0);
    const s = await cli(home, ['start', '--cold', 'mem']);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stderr).toContain('box mem starts from its disk: its saved memory was discarded (--cold)');
    const after = await sh('cat /dev/shm/mark 2>/dev/null; cat /proc/sys/kernel/random/boot_id');
    expect(after).not.toContain('in-memory');
    expect(after).not.toBe(before.split('\n')[1] + '\n');
    expect(fs.existsSync(path.join(dir, 'state', 'pause.state'))).toBe(false);
  });

  it('stop forgets a pause; resume of a box that is not paused says what to do', async () => {
    expect((await cli(home, ['pause', 'mem'])).code).toBe(0);
    expect((await cli(home, ['stop', 'mem'])).code).toBe(0);
    expect(await state()).toBe('stopped');
    expect(fs.existsSync(path.join(dir, 'state', 'pause.state'))).toBe(false);
    const r = await cli(home, ['resume', 'mem']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("resume: box mem is not paused (it is stopped): use 'boxlite start'");
    expect((await cli(home, ['start', 'mem'])).code).toBe(0);
  });
});

describe('memory snapshots', () => {
  it('restoring one brings back the processes, the tmpfs and the disk of its instant', async () => {
    await sh('echo one > /dev/shm/mark; echo disk-one > /root/f; (sleep 100000 >/dev/null 2>&1 </dev/null & echo $! > /tmp/sleeper.pid); sync');
    const then = await live();
    const c = await cli(home, ['snapshot', 'create', '--memory', 'mem', 'm1']);
    expect(c.code, c.stderr).toBe(0);
    expect(await state()).toBe('running'); // the box runs on after the snapshot
    await sh('echo two > /dev/shm/mark; echo disk-two > /root/f; kill $(cat /tmp/sleeper.pid); sync');
    expect((await cli(home, ['snapshot', 'ls', 'mem'])).stdout).toMatch(/\nm1 +\S+ \S+ +yes +manual\n/);
    const r = await cli(home, ['snapshot', 'restore', 'mem', 'm1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('boxlite: mem continues from "m1", its processes as they were');
    expect(await live()).toBe(then);
    expect(await sh('cat /root/f')).toBe('disk-one\n');
    // Restored twice: the snapshot is still whole after a restore.
    await sh('echo three > /dev/shm/mark');
    expect((await cli(home, ['snapshot', 'restore', 'mem', 'm1'])).code).toBe(0);
    expect(await live()).toBe(then);
    expect((await cli(home, ['snapshot', 'rm', 'mem', 'm1'])).code).toBe(0);
    expect(fs.existsSync(path.join(dir, 'state', 'snapshot-m1.state'))).toBe(false);
  });

  it('a memory snapshot of a stopped box is refused, naming the way out', async () => {
    expect((await cli(home, ['stop', 'mem'])).code).toBe(0);
    const r = await cli(home, ['snapshot', 'create', '--memory', 'mem', 'm2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('box mem is not running: a memory snapshot needs its processes; start it first, or take a disk snapshot without --memory');
    expect((await cli(home, ['snapshot', 'ls', 'mem'])).stdout).not.toContain('m2');
  });
});

describe('fork', () => {
  it("forks continue the source's processes from one instant, apart from it and each other, with their own names and random streams", async () => {
    expect((await cli(home, ['start', 'mem'])).code).toBe(0);
    await sh('echo source-ram > /dev/shm/mark; echo source-disk > /root/f; (sleep 100000 >/dev/null 2>&1 </dev/null & echo $! > /tmp/sleeper.pid); sync');
    const then = await live();
    const f = await cli(home, ['fork', 'mem', 'fk', '--count', '2']);
    expect(f.code, f.stderr).toBe(0);
    expect(f.stdout).toBe('fk-1\nfk-2\n');
    expect(f.stderr).toMatch(/^boxlite: 2 forks of mem in \d+ ms, running$/m);
    const inFork = async (name: string, script: string) => {
      const r = await cli(home, ['exec', name, 'sh', '-c', script]);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout;
    };
    for (const name of ['fk-1', 'fk-2']) {
      // The source's RAM, processes and boot; its disk as it was.
      expect(await inFork(name, 'cat /dev/shm/mark; cat /proc/sys/kernel/random/boot_id; cat /tmp/sleeper.pid; kill -0 $(cat /tmp/sleeper.pid) && echo alive')).toBe(then);
      expect(await inFork(name, 'cat /root/f; hostname')).toBe(`source-disk\n${name}\n`);
    }
    // Writes in one never reach another, in RAM or on disk.
    await inFork('fk-1', 'echo fork-one > /dev/shm/mark; echo fork-one > /root/f; sync');
    await sh('echo source-two > /dev/shm/mark; echo source-two > /root/f; sync');
    expect(await inFork('fk-2', 'cat /dev/shm/mark /root/f')).toBe('source-ram\nsource-disk\n');
    expect(await inFork('fk-1', 'cat /dev/shm/mark /root/f')).toBe('fork-one\nfork-one\n');
    expect(await sh('cat /dev/shm/mark /root/f')).toBe('source-two\nsource-two\n');
    // Reseeded at restore: the forks' generators, identical in the saved memory, now draw different numbers.
    const draw = (name: string) => inFork(name, 'head -c 32 /dev/urandom | od -An -tx1');
    const [a, b] = [await draw('fk-1'), await draw('fk-2')];
    expect(a).toMatch(/[0-9a-f]{2}/);
    expect(a).not.toBe(b);
    expect(JSON.parse((await cli(home, ['inspect', 'fk-1'])).stdout).source.origin).toBe('forked from mem');
    // The source, its disk moved onto a new top while it ran, still pauses and continues, and so does a fork.
    for (const name of ['mem', 'fk-1']) {
      const p = await cli(home, ['pause', name]);
      expect(p.code, p.stderr).toBe(0);
      expect((await cli(home, ['resume', name])).code).toBe(0);
    }
    expect(await sh('cat /dev/shm/mark /root/f')).toBe('source-two\nsource-two\n');
    // A second live freeze of the same box (a clone): the top of the first is reopened read-only by its own name.
    expect((await cli(home, ['clone', 'mem', 'cl'])).code).toBe(0);
    await sh('echo source-three > /root/f; sync');
    expect(await sh('cat /root/f')).toBe('source-three\n');
    expect((await cli(home, ['start', 'cl'])).code).toBe(0);
    expect((await cli(home, ['exec', 'cl', 'cat', '/root/f'])).stdout).toBe('source-two\n');
    expect((await cli(home, ['rm', '-f', 'fk-1', 'fk-2', 'cl'])).code).toBe(0);
  });

  it('a box that is not running cannot be forked, and says what to do', async () => {
    expect((await cli(home, ['stop', 'mem'])).code).toBe(0);
    const r = await cli(home, ['fork', 'mem', 'nope']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("box mem is not running: a fork continues a running box's processes; start it first, or use 'boxlite clone' for its disk alone");
    expect((await cli(home, ['ps', '-a'])).stdout).not.toContain('nope');
  });
});

describe('idle pause', () => {
  it('a box idle for its time is paused; a connection to its forward wakes it and is served, an exec too', async () => {
    expect((await cli(home, ['start', 'mem'])).code).toBe(0);
    await sh('mkdir -p /www && echo served > /www/index.html && httpd -p 80 -h /www');
    const lines: string[] = [];
    const idle = rt.pauseWhenIdle({ afterMs: 3000, boxes: ['mem'], pollMs: 300, say: (l) => lines.push(l) });
    const paused = (n: number) => waitUntil(() => lines.filter((l) => l.startsWith('mem: idle for')).length >= n, `idle pause number ${n}`, 60_000);
    try {
      await paused(1);
      expect(await state()).toBe('paused');
      expect(vmRunning()).toBe(false);
      // The forward's host port is held while it sleeps: the first connection wakes the box and is served.
      const port = box.info().ports!.find((x) => x.guestPort === 80)!.hostPort;
      expect(await (await fetch(`http://127.0.0.1:${port}/index.html`)).text()).toBe('served\n');
      expect(lines).toContain(`mem: woken by a connection to 127.0.0.1:${port}`);
      expect(await state()).toBe('running');
      expect(box.info().ports!.find((x) => x.guestPort === 80)!.hostPort).toBe(port); // the same port as before
      // Idle again, then woken by an exec.
      await paused(2);
      expect(await sh('cat /www/index.html')).toBe('served\n');
      expect(await state()).toBe('running');
    } finally {
      await idle.stop();
    }
  });
});
