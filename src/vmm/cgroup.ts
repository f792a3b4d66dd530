// A control group per box, as Firecracker's jailer gives every microVM: its VMM's memory (guest RAM plus a measured
// overhead), its tasks and its CPU weight are bounded, so a VMM that allocates without end is killed by its own
// limit and not by the host's OOM killer picking anything. cgroup v2 where the host delegates it to us, v1 (memory,
// pids, cpu) where it does not; none (rlimits only) where neither can be written, and said so.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface Limits {
  memoryMib: number;
  pids: number;
  /** Relative CPU share: cgroup v2's cpu.weight (1–10000, 100 normal); v1 cpu.shares is 10.24× it. */
  cpuWeight: number;
}

export interface BoxCgroup {
  mode: 'v2' | 'v1';
  /** The cgroup.procs files a process joins through (one per hierarchy under v1). */
  procs: string[];
  /** The box's cgroup folders, for inspect and removal. */
  dirs: string[];
  limits: Limits;
}

export type CgroupSupport = { mode: 'v2' | 'v1'; base: Record<string, string> } | { mode: 'none'; why: string };

const ROOT = process.env.BOXLITE_CGROUP_ROOT ?? '/sys/fs/cgroup';
const V1 = ['memory', 'pids', 'cpu'] as const;

/** What the VMM needs beyond the guest's RAM: QEMU's own heap, TCG's translated code, device buffers, and the
 *  helpers' share. Measured (npm run bench, BENCH_ONLY=jail: the peak of memory.max_usage_in_bytes) and rounded up. */
export function vmmOverheadMib(memoryMib: number, accel: 'kvm' | 'tcg'): number {
  return (accel === 'tcg' ? 320 : 160) + Math.ceil(memoryMib / 8);
}

export function boxLimits(memoryMib: number, cpus: number, accel: 'kvm' | 'tcg'): Limits {
  // Tasks: QEMU's vCPU, I/O and worker threads (its thread pool grows to 64) with room, but no fork bomb.
  return { memoryMib: memoryMib + vmmOverheadMib(memoryMib, accel), pids: 512, cpuWeight: Math.min(10_000, 100 * cpus) };
}

/** This process's cgroup path in a hierarchy, from /proc/self/cgroup (v1: by controller; v2: the "0::" line). */
function ownPath(controller: string | null): string | undefined {
  const lines = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  for (const l of lines) {
    const [id, ctrls, p] = l.split(':');
    if (controller === null ? id === '0' && ctrls === '' : ctrls?.split(',').includes(controller)) return p;
  }
  return undefined;
}

const writable = (dir: string) => {
  try {
    fs.accessSync(dir, fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
};

/** Where boxes' cgroups can be made, or why none can. Boxes go below this process's own cgroup, so whatever limits
 *  the user (or a container) already has keep holding over them. */
export function cgroupSupport(): CgroupSupport {
  if (process.env.BOXLITE_CGROUPS === 'off') return { mode: 'none', why: 'turned off (BOXLITE_CGROUPS=off)' };
  try {
    // v2: the unified hierarchy has the controllers and our cgroup's parent lets us make siblings under it.
    const uni = fs.existsSync(path.join(ROOT, 'cgroup.controllers')) ? ROOT : path.join(ROOT, 'unified');
    const own = ownPath(null);
    if (own !== undefined && fs.existsSync(path.join(uni, 'cgroup.controllers'))) {
      const parent = path.join(uni, path.dirname(own));
      const ctrls = fs.readFileSync(path.join(parent, 'cgroup.controllers'), 'utf8').split(/\s+/);
      if (['memory', 'pids', 'cpu'].every((c) => ctrls.includes(c)) && writable(parent)) return { mode: 'v2', base: { unified: parent } };
    }
    // v1: one hierarchy per controller, each with our own cgroup below its mount.
    const base: Record<string, string> = {};
    for (const c of V1) {
      const own1 = ownPath(c);
      const dir = own1 === undefined ? '' : path.join(ROOT, c, own1);
      if (!own1 || !fs.existsSync(path.join(dir, 'cgroup.procs'))) return { mode: 'none', why: `no ${c} controller: neither cgroup v2 with memory, pids and cpu delegated nor v1's ${c} hierarchy is mounted` };
      if (!writable(dir)) return { mode: 'none', why: `cgroup v1's ${c} hierarchy is the system's and cgroup v2 is not delegated to you (a systemd user session with Delegate=yes gives it)` };
      base[c] = dir;
    }
    return { mode: 'v1', base };
  } catch (e) {
    return { mode: 'none', why: `cgroups could not be read: ${(e as Error).message}` };
  }
}

function write(dir: string, file: string, value: string | number): void {
  fs.writeFileSync(path.join(dir, file), String(value));
}

/** Makes (or resets) the box's cgroup with its limits; undefined where the host gives none. */
export function boxCgroup(boxId: string, limits: Limits, support = cgroupSupport()): BoxCgroup | undefined {
  if (support.mode === 'none') return undefined;
  const name = `boxlite-${boxId}`;
  const bytes = limits.memoryMib * 1024 * 1024;
  if (support.mode === 'v2') {
    // No process may sit in a cgroup that hands controllers down: the boxes get a parent of their own.
    const group = path.join(support.base.unified, 'boxlite.boxes');
    fs.mkdirSync(group, { recursive: true });
    write(group, 'cgroup.subtree_control', '+memory +pids +cpu');
    const dir = path.join(group, name);
    fs.mkdirSync(dir, { recursive: true });
    write(dir, 'memory.max', bytes);
    write(dir, 'memory.swap.max', 0);
    write(dir, 'pids.max', limits.pids);
    write(dir, 'cpu.weight', limits.cpuWeight);
    return { mode: 'v2', procs: [path.join(dir, 'cgroup.procs')], dirs: [dir], limits };
  }
  const dirs = V1.map((c) => path.join(support.base[c], name));
  for (const d of dirs) fs.mkdirSync(d, { recursive: true });
  const [mem, pids, cpu] = dirs;
  write(mem, 'memory.limit_in_bytes', bytes);
  try {
    write(mem, 'memory.memsw.limit_in_bytes', bytes); // no swap beyond it, where swap accounting is on
  } catch {}
  write(pids, 'pids.max', limits.pids);
  write(cpu, 'cpu.shares', Math.round(limits.cpuWeight * 10.24));
  return { mode: 'v1', procs: dirs.map((d) => path.join(d, 'cgroup.procs')), dirs, limits };
}

/** Moves a process (a helper just spawned) into the box's cgroup; a failure leaves it where it was. */
export function joinCgroup(cg: BoxCgroup | undefined, pid: number): void {
  for (const p of cg?.procs ?? []) {
    try {
      fs.writeFileSync(p, String(pid));
    } catch {}
  }
}

/** What the box's cgroup holds and has seen: its limit, peak and how often the limit was hit. */
export function cgroupUsage(dirs: string[]): { memoryMib?: number; peakMib?: number; limitMib?: number; oomKills?: number } {
  const read = (d: string, f: string) => {
    try {
      return fs.readFileSync(path.join(d, f), 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const mib = (v?: string) => (v === undefined || v === 'max' ? undefined : Math.round(Number(v) / 1048576));
  const d = dirs[0];
  if (!d) return {};
  if (read(d, 'memory.max') !== undefined) {
    const ev = read(d, 'memory.events') ?? '';
    return { memoryMib: mib(read(d, 'memory.current')), peakMib: mib(read(d, 'memory.peak')), limitMib: mib(read(d, 'memory.max')), oomKills: Number(/oom_kill (\d+)/.exec(ev)?.[1] ?? 0) };
  }
  const oc = read(d, 'memory.oom_control') ?? '';
  return { memoryMib: mib(read(d, 'memory.usage_in_bytes')), peakMib: mib(read(d, 'memory.max_usage_in_bytes')), limitMib: mib(read(d, 'memory.limit_in_bytes')), oomKills: Number(/oom_kill (\d+)/.exec(oc)?.[1] ?? 0) };
}

/** Removes the box's cgroup once nothing runs in it (a folder still busy is left for the next start to reuse). */
export function removeCgroup(dirs: string[]): void {
  for (const d of dirs) {
    try {
      fs.rmdirSync(d);
    } catch {}
  }
}

/** The box's cgroup folders, whether or not they exist now (for removal after the fact). */
export function cgroupDirsOf(boxId: string, support = cgroupSupport()): string[] {
  if (support.mode === 'none') return [];
  const name = `boxlite-${boxId}`;
  return support.mode === 'v2' ? [path.join(support.base.unified, 'boxlite.boxes', name)] : V1.map((c) => path.join(support.base[c], name));
}

const STATE = 'cgroup.json';

/** Makes the box's cgroup for a start and records it in the box's folder (for inspect, and removal by any later
 *  process, whose own cgroup may differ); undefined, with the reason recorded, where the host gives none. */
export function prepareBoxCgroup(dir: string, boxId: string, limits: Limits): BoxCgroup | undefined {
  const support = cgroupSupport();
  let cg: BoxCgroup | undefined;
  let why = support.mode === 'none' ? support.why : undefined;
  try {
    cg = boxCgroup(boxId, limits, support);
  } catch (e) {
    why = `the box's cgroup could not be made: ${(e as Error).message}`;
  }
  fs.writeFileSync(path.join(dir, STATE), JSON.stringify(cg ?? { mode: 'none', why, limits }), { mode: 0o600 });
  return cg;
}

export type CgroupState = BoxCgroup | { mode: 'none'; why: string; limits: Limits };

export function readBoxCgroup(dir: string): CgroupState | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, STATE), 'utf8')) as CgroupState;
  } catch {
    return undefined;
  }
}

/** At a box's removal: what still runs in its cgroup (its VM's supervisor winding down) is ended, and the cgroup
 *  folders go. Only the box's own processes are ever in them. */
export async function dropBoxCgroup(dir: string): Promise<void> {
  const s = readBoxCgroup(dir);
  if (!s || s.mode === 'none') return;
  const left = () => s.procs.flatMap((p) => {
    try {
      return fs.readFileSync(p, 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  });
  for (let i = 0; i < 100 && left().length; i++) {
    for (const pid of left()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  removeCgroup(s.dirs);
}
