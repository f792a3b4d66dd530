// Box start and exec figures beside the floor of this machine, in one run:
//   floor       QEMU with the same kernel and machine, an initramfs whose init powers off at once
//   cold start  start of a created box (disk built, assets cached) → output of its first exec
//   exec        round trip of `true` in a running box (median of many)
import * as fs from 'node:fs';
import type { Runtime } from '../src/runtime/runtime.js';
import { loadAssets } from '../src/runtime/assets.js';
import { measureFloor } from '../test/floor.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (n: number) => `${n.toFixed(0)} ms`;

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export async function startBench(rt: Runtime, rootfs: string, runs: number): Promise<[string, string][]> {
  const floorTimes = await measureFloor(loadAssets(rt.home).kernel, rt.accel().accel, runs);
  const box = await rt.create({ rootfs, name: 'bench', memoryMib: 512 });
  let t = performance.now();
  await box.start();
  await box.exec(['true']);
  const firstEver = performance.now() - t; // includes building the box's disk from the directory
  await box.stop();

  const cold: number[] = [];
  let rss = 0;
  for (let i = 0; i < runs; i++) {
    t = performance.now();
    await box.start();
    const r = await box.exec(['echo', 'ready']);
    if (r.stdout !== 'ready\n') throw new Error('unexpected first exec output');
    cold.push(performance.now() - t);
    if (i === runs - 1) {
      rss = rssMiB(rt.engine.peerPid(rt.home.boxDir(box.id)));
      break;
    }
    await box.stop();
  }

  const execs: number[] = [];
  for (let i = 0; i < 5; i++) await box.exec(['true']); // warm up
  for (let i = 0; i < 50; i++) {
    t = performance.now();
    await box.exec(['true']);
    execs.push(performance.now() - t);
  }
  t = performance.now();
  await box.stop();
  const stopMs = performance.now() - t;
  await box.remove();

  const f = median(floorTimes);
  const c = median(cold);
  return [
    ['floor: QEMU + same kernel, init powers off at once (median)', ms(f)],
    ['cold start → first exec output, assets cached (median)', `${ms(c)}  (${(c / f).toFixed(2)}× floor)`],
    ['first start of a new box, incl. building its disk', ms(firstEver)],
    ['exec round trip of `true` (median of 50)', `${median(execs).toFixed(1)} ms (p90 ${[...execs].sort((a, b) => a - b)[44].toFixed(1)} ms)`],
    ['graceful stop', ms(stopMs)],
    ['QEMU resident memory of a running 512 MiB box', `${rss.toFixed(0)} MiB`],
    ['raw: floor / cold start (ms)', `${floorTimes.map((x) => x.toFixed(0)).join(' ')} / ${cold.map((x) => x.toFixed(0)).join(' ')}`],
  ];
}

/** The jail's cost: the same box started jailed and unjailed, alternately, in one run. */
export async function jailBench(home: string, rootfs: string, runs: number): Promise<[string, string][]> {
  const { Runtime } = await import('../src/runtime/runtime.js');
  const { readBoxCgroup, cgroupUsage } = await import('../src/vmm/cgroup.js');
  const result: [string, string][] = [];
  // The jail and the per-box cgroup, each on and off in the same run: jail on with limits, jail on without, off.
  const modes = ['on', 'on, limits off', 'off'] as const;
  const times: Record<string, number[]> = Object.fromEntries(modes.map((m) => [m, []]));
  const rss: Record<string, number> = {};
  let peak: { peakMib?: number; limitMib?: number } = {};
  const rts = { on: new Runtime({ home, say: () => {}, jail: true }), off: new Runtime({ home, say: () => {}, jail: false }) };
  const box = await rts.on.create({ rootfs, name: 'jail-bench', memoryMib: 512 });
  try {
    await box.start(); // builds the disk; not counted
    await box.stop();
    for (let i = 0; i < runs; i++) {
      for (const mode of modes) {
        const rt = mode === 'off' ? rts.off : rts.on;
        if (mode === 'on, limits off') process.env.BOXLITE_CGROUPS = 'off';
        else delete process.env.BOXLITE_CGROUPS;
        const t = performance.now();
        await rt.start(box.id);
        await rt.exec(box.id, ['true']);
        times[mode].push(performance.now() - t);
        const st = rt.engine.status(rt.home.boxDir(box.id));
        if (st.kind === 'running') rss[mode] = rssMiB(st.pid);
        const cg = readBoxCgroup(rt.home.boxDir(box.id));
        if (mode === 'on' && cg && cg.mode !== 'none') {
          // What the VMM peaked at once its guest has touched most of its RAM (the limit's overhead is sized by it).
          await rt.exec(box.id, ['sh', '-c', 'mkdir -p /m && mount -t tmpfs -o size=400m t /m && dd if=/dev/zero of=/m/x bs=1M count=380 2>/dev/null; rm -f /m/x; umount /m']);
          peak = cgroupUsage(cg.dirs);
        }
        await rt.stop(box.id);
      }
    }
    delete process.env.BOXLITE_CGROUPS;
    for (const mode of modes) {
      result.push([`cold start → first exec, jail ${mode} (median of ${runs})`, ms(median(times[mode]))]);
      result.push([`QEMU resident memory, jail ${mode}`, `${rss[mode]?.toFixed(0)} MiB`]);
    }
    result.push(['jail cost on start (median difference)', ms(median(times.on) - median(times.off))]);
    result.push(['cgroup limits cost on start (median difference)', ms(median(times.on) - median(times['on, limits off']))]);
    if (peak.limitMib) result.push(['VMM peak memory, 512 MiB guest with 380 MiB touched', `${peak.peakMib} MiB of its ${peak.limitMib} MiB limit`]);
  } finally {
    delete process.env.BOXLITE_CGROUPS;
    await rts.on.remove(box.id, { force: true }).catch(() => {});
    rts.on.close();
    rts.off.close();
  }
  return result;
}
