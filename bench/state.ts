// State figures: snapshot time against how much the box has written, export/import throughput, and the
// throughput of a named volume and a host folder (virtiofs) against the box's own disk.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Runtime } from '../src/runtime/runtime.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mibps = (bytes: number, ms: number) => `${(bytes / (1 << 20) / (ms / 1000)).toFixed(0)} MiB/s`;

/** MiB/s of a command that moves `mib` MiB in the box, timed from the host (an exec costs ~80 ms under TCG). */
async function rate(rt: Runtime, id: string, cmd: string, mib: number): Promise<string> {
  const t = performance.now();
  const r = await rt.exec(id, ['sh', '-c', cmd]);
  if (r.exitCode !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  return `${(mib / ((performance.now() - t) / 1000)).toFixed(0)} MiB/s`;
}

export async function stateBench(rt: Runtime, rootfs: string): Promise<[string, string][]> {
  const rows: [string, string][] = [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-bench-state-'));
  try {
    for (const [label, mib] of [['~10 MB', 10], ['~1 GB', 1024]] as const) {
      const box = await rt.create({ rootfs, name: `state-${mib}`, memoryMib: 512, diskSizeMib: 2048 });
      await box.start();
      await box.exec(['sh', '-c', `dd if=/dev/urandom of=/root/seed bs=1M count=8 2>/dev/null; i=0; while [ $i -lt ${Math.ceil(mib / 8)} ]; do cat /root/seed > /root/data.$i; i=$((i+1)); done; sync`]);
      const running: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t = performance.now();
        await box.snapshots.create(`r${i}`);
        running.push(performance.now() - t);
      }
      // Clones of the running box: each freezes what was written since the last one (a few bytes here).
      const liveClones: number[] = [];
      for (let i = 0; i < 5; i++) {
        await box.exec(['sh', '-c', `echo ${i} > /root/marker`]);
        const t = performance.now();
        await box.clone(`state-${mib}-live-${i}`);
        liveClones.push(performance.now() - t);
      }
      await box.stop();
      const clones: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t = performance.now();
        await box.clone(`state-${mib}-c${i}`);
        clones.push(performance.now() - t);
      }
      const t10 = performance.now();
      await box.clone(Array.from({ length: 10 }, (_, i) => `state-${mib}-n${i}`));
      const ten = performance.now() - t10;
      const stopped: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t = performance.now();
        await box.snapshots.create(`s${i}`);
        stopped.push(performance.now() - t);
      }
      rows.push([`snapshot of a running box, ${label} written (median of 5)`, `${median(running).toFixed(0)} ms`]);
      rows.push([`clone of a running box, ${label} written (median of 5)`, `${median(liveClones).toFixed(0)} ms`]);
      rows.push([`clone of a stopped box, ${label} written (median of 5)`, `${median(clones).toFixed(0)} ms`]);
      rows.push([`10 clones of a stopped box in one command, ${label} written`, `${ten.toFixed(0)} ms`]);
      rows.push([`snapshot of a stopped box, ${label} written (median of 5)`, `${median(stopped).toFixed(0)} ms`]);
      if (mib === 1024) {
        const archive = path.join(tmp, 'box.tar');
        let t = performance.now();
        await rt.exportBox(box.id, archive);
        const exportMs = performance.now() - t;
        const size = fs.statSync(archive).size;
        const other = new Runtime({ home: fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-bench-import-')), say: () => {} });
        try {
          t = performance.now();
          await other.importBox(archive, { name: 'imported' });
          const importMs = performance.now() - t;
          rows.push([`export of a box with ${label} written (${(size / (1 << 20)).toFixed(0)} MiB archive)`, `${(exportMs / 1000).toFixed(1)} s, ${mibps(size, exportMs)}`]);
          rows.push([`import of that archive (checksums verified)`, `${(importMs / 1000).toFixed(1)} s, ${mibps(size, importMs)}`]);
        } finally {
          other.close();
          fs.rmSync(other.home.root, { recursive: true, force: true });
        }
      }
      for (const b of rt.list().filter((r) => r.name.startsWith(`state-${mib}-`))) await rt.remove(b.id, { force: true });
      await box.remove({ force: true });
    }

    // Throughput in the guest: its own disk, a named volume, a host folder.
    const shared = fs.mkdtempSync(path.join(tmp, 'shared-'));
    await rt.volumes.create('bench-vol', 1024);
    const box = await rt.create({ rootfs, name: 'state-io', memoryMib: 512, diskSizeMib: 1024, volumes: [{ volume: 'bench-vol', target: '/vol', readOnly: false }], binds: [{ hostPath: shared, target: '/host', readOnly: false }] });
    await box.start();
    for (const [what, dir] of [["the box's own disk", '/root'], ['a named volume', '/vol'], ['a host folder (virtiofs)', '/host']] as const) {
      const w = await rate(rt, box.id, `dd if=/dev/zero of=${dir}/io bs=1M count=256 conv=fsync 2>/dev/null`, 256);
      await rt.exec(box.id, ['sh', '-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
      const r = await rate(rt, box.id, `dd if=${dir}/io of=/dev/null bs=1M 2>/dev/null`, 256);
      await rt.exec(box.id, ['rm', '-f', `${dir}/io`]);
      rows.push([`sequential write / read of 256 MiB in the box: ${what}`, `${w} / ${r}`]);
    }
    await box.remove({ force: true });
    await rt.volumes.remove('bench-vol');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return rows;
}
