// Limits on every box: its VMM runs in a cgroup of its own (v1 here: memory, pids, cpu) sized to the guest's RAM
// plus the VMM's overhead. A guest using all its RAM stays well inside it; a VMM that allocates without bound
// (replayed by asking QEMU for 2 GiB it touches at once, as a VMM taken over could) is killed by its own limit,
// not by the host's OOM killer, and the box is reported crashed.
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, cli, makeRootfs, qemuPids, quietRuntime, testHome, waitUntil } from '../helpers.js';
import { qmp } from '../../src/vmm/qmp.js';
import { runDir } from '../../src/vmm/engine.js';
import type { Box, Runtime } from '../../src/runtime/runtime.js';

let home: string;
let rt: Runtime;
let box: Box;

beforeAll(async () => {
  home = testHome();
  rt = quietRuntime(home);
  box = await rt.create({ rootfs: makeRootfs(), name: 'limited', memoryMib: 192, diskSizeMib: 128 });
  await box.start();
});

afterAll(async () => {
  rt?.close();
  await cleanupHome(home);
});

const read = (f: string) => fs.readFileSync(f, 'utf8').trim();

describe('limits on every box', () => {
  let cg: { mode: string; dirs: string[]; procs: string[]; limits: { memoryMib: number; pids: number; cpuWeight: number } };

  it('put its VMM in a cgroup of its own, with memory = RAM + overhead, tasks and CPU weight, shown by inspect and doctor', async () => {
    const dir = rt.home.boxDir(box.id);
    cg = JSON.parse(fs.readFileSync(`${dir}/cgroup.json`, 'utf8'));
    expect(cg.mode).toBe('v1'); // this host: cgroup v1 controllers, the unified hierarchy has none
    expect(cg.limits).toEqual({ memoryMib: 192 + 320 + 24, pids: 512, cpuWeight: 100 });
    const [pid] = qemuPids(home);
    for (const p of cg.procs) expect(read(p).split('\n')).toContain(String(pid));
    const [mem, pids, cpu] = cg.dirs;
    expect(Number(read(`${mem}/memory.limit_in_bytes`))).toBe(536 * 1048576);
    expect(read(`${pids}/pids.max`)).toBe('512');
    expect(read(`${cpu}/cpu.shares`)).toBe('1024');
    const inspect = JSON.parse((await cli(home, ['inspect', 'limited'])).stdout);
    expect(inspect.limits).toMatchObject({ cgroup: 'v1', memoryMib: 536, pids: 512, cpuWeight: 100, usage: { limitMib: 536, oomKills: 0 } });
    expect(inspect.limits.usage.memoryMib).toBeGreaterThan(100);
    expect((await cli(home, ['doctor'])).stdout).toMatch(/ok {3}limits {7}a cgroup v1 per box: memory = its RAM \+ the VMM's overhead/);
  });

  it('leave a guest that uses all its RAM running', async () => {
    const r = await box.exec(['sh', '-c', 'mkdir -p /m && mount -t tmpfs -o size=100m t /m && dd if=/dev/zero of=/m/x bs=1M count=75 2>&1 | tail -1 && sync && echo filled']);
    expect(r.stdout).toContain('filled');
    expect(rt.status(rt.record(box.id)).state).toBe('running');
    expect(read(`${cg.dirs[0]}/memory.oom_control`)).toMatch(/oom_kill 0/);
    expect((await box.exec(['rm', '/m/x'])).exitCode).toBe(0);
  });

  it('kill a VMM that allocates without bound by its own limit, and the box is reported crashed', async () => {
    const [pid] = qemuPids(home);
    const sock = `${runDir(rt.home.boxDir(box.id))}/qmp.sock`;
    // QEMU allocates and touches 2 GiB of host memory for a backend no guest uses: the limit stops it.
    await qmp(sock, 'object-add', { 'qom-type': 'memory-backend-ram', id: 'flood', size: 2 * 1024 ** 3, prealloc: true }, 120_000, pid).catch(() => {});
    await waitUntil(() => !fs.existsSync(`/proc/${pid}`), 'the VMM to be killed', 120_000);
    expect(read(`${cg.dirs[0]}/memory.oom_control`)).toMatch(/oom_kill [1-9]/);
    expect(Number(read(`${cg.dirs[0]}/memory.max_usage_in_bytes`))).toBeLessThanOrEqual(536 * 1048576);
    await waitUntil(() => rt.status(rt.record(box.id)).state !== 'running', 'the box to be seen stopped', 30_000);
    const ps = await cli(home, ['ps', '-a']);
    expect(ps.stdout).toMatch(/limited\s+exited \((crash|killed)\)/);
    await rt.remove(box.id, { force: true });
    for (const d of cg.dirs) expect(fs.existsSync(d)).toBe(false);
  });
});
