// Boxes that keep their memory, beside a cold start in the same run:
//   cold start     first box of an image (it leaves the warm-start template), to its first exec output
//   warm start     a new box of the same image and shape, to its first exec output
//   pause/resume   the time to pause, the saved state's size, and resume → first exec output
//   fork           one fork of a running box, and ten, each started, to the first exec output of every fork
//   idle box       QEMU's resident memory beyond the guest's RAM, of a box left idle (booted cold, warm-started)
import * as fs from 'node:fs';
import type { Runtime } from '../src/runtime/runtime.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const s = (n: number) => `${(n / 1000).toFixed(2)} s`;

/** Resident memory of a VM process: in all, and in the mapping of the guest's RAM (memoryMib exactly). */
function residentMiB(pid: number, memoryMib: number): { total: number; guest: number } {
  let total = 0;
  let guest = 0;
  let size = 0;
  for (const l of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    let m = /^Size:\s+(\d+) kB/.exec(l);
    if (m) size = Number(m[1]);
    m = /^Rss:\s+(\d+) kB/.exec(l);
    if (m) {
      total += Number(m[1]);
      if (size === memoryMib * 1024) guest += Number(m[1]);
    }
  }
  return { total: total / 1024, guest: guest / 1024 };
}

const residentRow = (m: { total: number; guest: number }) => `${m.total.toFixed(0)} MiB, of which guest RAM ${m.guest.toFixed(0)} MiB, overhead ${(m.total - m.guest).toFixed(0)} MiB`;

export async function memoryBench(rt: Runtime, image: string, runs: number): Promise<[string, string][]> {
  const memoryMib = 192;
  const timed = async (f: () => Promise<unknown>) => {
    const t = performance.now();
    await f();
    return performance.now() - t;
  };
  const firstExec = async (name: string) => {
    const r = await rt.exec(rt.get(name).id, ['echo', 'ready']);
    if (r.stdout !== 'ready\n') throw new Error(`unexpected first exec output of ${name}`);
  };
  // Cold: the first box of the image and shape (it also leaves the template, which is part of what it costs).
  const cold = await timed(async () => {
    const b = await rt.create({ image, name: 'm-cold', memoryMib });
    await b.start();
    await firstExec('m-cold');
  });
  const warm: number[] = [];
  for (let i = 0; i < runs; i++) {
    warm.push(
      await timed(async () => {
        const b = await rt.create({ image, name: `m-warm${i}`, memoryMib });
        await b.start();
        await firstExec(`m-warm${i}`);
      }),
    );
  }
  for (let i = 0; i < runs; i++) await rt.get(`m-warm${i}`).remove({ force: true });

  const box = rt.get('m-cold');
  const pauses: number[] = [];
  const resumes: number[] = [];
  let stateMiB = 0;
  for (let i = 0; i < runs; i++) {
    pauses.push(await timed(() => box.pause()));
    stateMiB = fs.statSync(`${rt.home.boxDir(box.id)}/state/pause.state`).size / (1 << 20);
    resumes.push(
      await timed(async () => {
        await box.resume();
        await firstExec('m-cold');
      }),
    );
  }

  const fork1 = await timed(async () => {
    await box.fork('m-fork');
    await firstExec('m-fork');
  });
  await rt.get('m-fork').remove({ force: true });
  const names = Array.from({ length: 10 }, (_, i) => `m-f${i}`);
  const fork10 = await timed(async () => {
    await box.fork(names);
    await Promise.all(names.map((n) => firstExec(n)));
  });
  for (const n of names) await rt.get(n).remove({ force: true });

  // Idle: a box left alone after its start (the guest has reported what it freed), booted cold from its disk and
  // warm-started from the template; both idle at once.
  await box.stop();
  await box.start();
  await firstExec('m-cold');
  const warmBox = await rt.create({ image, name: 'm-idle-warm', memoryMib });
  await warmBox.start();
  await firstExec('m-idle-warm');
  await new Promise((r) => setTimeout(r, 10_000));
  const idle = residentMiB(rt.engine.peerPid(rt.home.boxDir(box.id)), memoryMib);
  const idleWarm = residentMiB(rt.engine.peerPid(rt.home.boxDir(warmBox.id)), memoryMib);
  await box.remove({ force: true });
  await warmBox.remove({ force: true });

  const c = cold;
  const w = median(warm);
  const r = median(resumes);
  return [
    [`cold start of an image box (${memoryMib} MiB) → first exec, leaving the template`, s(c)],
    [`warm start of a new box of that image and shape → first exec (median of ${runs})`, `${s(w)}  (${((w / c) * 100).toFixed(0)}% of cold)`],
    [`pause (median of ${runs})`, s(median(pauses))],
    ['saved state of a pause', `${stateMiB.toFixed(0)} MiB`],
    [`resume → first exec (median of ${runs})`, `${s(r)}  (${((r / c) * 100).toFixed(0)}% of cold)`],
    ['fork of a running box, started → first exec', s(fork1)],
    ['10 forks of a running box, started → first exec of each', `${s(fork10)}  (${((fork10 / c) * 100).toFixed(0)}% of one cold start)`],
    [`idle box booted cold: QEMU resident memory (guest RAM ${memoryMib} MiB)`, residentRow(idle)],
    ['idle box warm-started: QEMU resident memory', residentRow(idleWarm)],
  ];
}
