// boxlite clone SRC[@SNAPSHOT] NEW [--count N]: boxes that share SRC's disk copy-on-write (see layers.ts).
//   SRC          its current disk is frozen into a layer (live, if it runs: the guest's file system is frozen and
//                QEMU moves onto a new qcow2 with blockdev-snapshot-sync), and each clone gets a qcow2 over it.
//                A source that has written nothing since its last freeze shares that layer again.
//   SRC@SNAP     the snapshot's view is made into a layer once (the box's own writes up to it are copied, never
//                the image), kept for later clones of the same snapshot.
// Order matters for a killed CLI: a layer is a hard link until the source has moved onto its new qcow2, and each
// clone's record is written last, so an interruption leaves either no clone or a whole one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { run } from '../util/exec.js';
import { ensureDir } from '../util/fs.js';
import { withLock } from '../util/lock.js';
import { qmp } from '../vmm/qmp.js';
import { listRecords, writeRecord, type BoxRecord } from './records.js';
import { BoxExistsError, InvalidOptionError } from './errors.js';
import { SnapshotNotFoundError } from './snapshots.js';
import { backingChain, createTop, isEmptyTop, newLayerPath } from './layers.js';
import type { Runtime } from './runtime.js';

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
const DRIVE = 'disk1';

export interface CloneOptions {
  snapshot?: string;
}

/** Freezes a box's current disk into a layer and returns it (the box goes on over it). */
async function freeze(rt: Runtime, rec: BoxRecord): Promise<string> {
  const dir = rt.home.boxDir(rec.id);
  const disk = path.join(dir, 'disk.qcow2');
  const chain = await backingChain(disk);
  // Nothing written since the last freeze: share that layer instead of stacking an empty one.
  if (chain[1] && chain[1].filename.startsWith(path.join(rt.home.root, 'layers') + path.sep) && chain[0].snapshots.length === 0 && (await isEmptyTop(disk))) {
    return chain[1].filename;
  }
  const layer = newLayerPath(rt.home);
  fs.linkSync(disk, layer); // same file, two names, until the box has moved onto its new top
  const running = rt.status(rec).state === 'running';
  if (!running) {
    await createTop(layer, disk, rec.options.diskSizeMib);
  } else {
    const next = path.join(dir, 'disk.next.qcow2');
    await createTop(layer, next, rec.options.diskSizeMib, true);
    const client = await rt.client(rec.id);
    await client.call('guest', 'sync', { freeze: true }, 30_000);
    try {
      await qmp(path.join(dir, 'qmp.sock'), 'blockdev-snapshot-sync', { device: DRIVE, 'snapshot-file': next, format: 'qcow2', mode: 'existing' }, 30_000);
    } finally {
      await client.call('guest', 'thaw', {}, 30_000).catch(() => {});
    }
    fs.renameSync(next, disk); // the old name goes; its file lives on as the layer
  }
  // Snapshots taken so far now live in the layer.
  const now = rt.record(rec.id);
  writeRecord(rt.home, { ...now, snapshots: (now.snapshots ?? []).map((s) => (chain[0].snapshots.includes(s.name) ? { ...s, frozen: true, layer } : s)) });
  return layer;
}

/** The layer holding a snapshot's view, made once per snapshot. */
async function snapshotLayer(rt: Runtime, rec: BoxRecord, name: string): Promise<string> {
  const cached = rec.snapshotLayers?.[name];
  if (cached && fs.existsSync(cached)) return cached;
  const chain = await backingChain(path.join(rt.home.boxDir(rec.id), 'disk.qcow2'));
  const holder = chain.find((c) => c.snapshots.includes(name));
  if (!holder) {
    const all = chain.flatMap((c) => c.snapshots);
    throw new SnapshotNotFoundError(`box ${rec.name} has no snapshot named "${name}"${all.length ? ` (it has: ${all.join(', ')})` : ' (it has none)'}`);
  }
  const layer = newLayerPath(rt.home);
  const part = `${layer}.part`;
  // Only what the box wrote above its base is copied: the output is an overlay of the same base.
  await run('qemu-img', ['convert', '-U', '-l', `snapshot.name=${name}`, '-O', 'qcow2', ...(holder.backing ? ['-B', holder.backing, '-F', chain[chain.indexOf(holder) + 1].format] : []), holder.filename, part]);
  fs.renameSync(part, layer);
  writeRecord(rt.home, { ...rt.record(rec.id), snapshotLayers: { ...(rt.record(rec.id).snapshotLayers ?? {}), [name]: layer } });
  return layer;
}

export async function cloneBox(rt: Runtime, ref: string, names: string[], opts: CloneOptions = {}): Promise<BoxRecord[]> {
  const src = rt.get(ref);
  for (const n of names) {
    if (!NAME_RE.test(n)) throw new InvalidOptionError(`box name "${n}" is invalid: use letters, digits, '_', '.', '-' (up to 63, starting with a letter or digit)`);
  }
  if (new Set(names).size !== names.length) throw new InvalidOptionError(`the names of the clones repeat: ${names.join(', ')}`);
  return rt.withBoxLock(src.id, () =>
    withLock(rt.home.registryLock, `the box registry in ${rt.home.root}`, async () => {
      const taken = listRecords(rt.home).filter((r) => names.includes(r.name));
      if (taken.length) throw new BoxExistsError(`a box named "${taken[0].name}" already exists (id ${taken[0].id}): choose another name`);
      let rec = rt.record(src.id);
      await rt.ensureDiskOf(rec);
      const layer = opts.snapshot ? await snapshotLayer(rt, rec, opts.snapshot) : await freeze(rt, rec);
      rec = rt.record(src.id);
      const made: BoxRecord[] = [];
      for (const name of names) {
        const id = randomBytes(6).toString('hex');
        const dir = ensureDir(rt.home.boxDir(id));
        try {
          await createTop(layer, path.join(dir, 'disk.qcow2'), rec.options.diskSizeMib);
        } catch (e) {
          fs.rmSync(dir, { recursive: true, force: true });
          throw e;
        }
        // What cannot be shared is left out: named volumes (one box each), fixed host ports (chosen at start
        // instead), the project LAN and label (a clone is a box of its own).
        const { volumes: _v, lan: _l, hostname: _h, ...options } = rec.options;
        const clone: BoxRecord = {
          id,
          name,
          createdAt: new Date().toISOString(),
          source: { kind: 'disk', origin: `cloned from ${rec.name}${opts.snapshot ? `@${opts.snapshot}` : ''}`, config: rec.source.config },
          options: { ...options, ports: (options.ports ?? []).map((p) => ({ ...p, hostPort: 0 })) },
          state: 'created',
          fsSizeMib: rec.fsSizeMib ?? (rec.source.kind === 'dir' ? rec.options.diskSizeMib : undefined),
        };
        writeRecord(rt.home, clone); // last: until here the clone does not exist
        made.push(clone);
      }
      return made;
    }),
  );
}

/** Whether a running QEMU (pid) has the file open for writing: the active layer of its disk is. */
function openForWrite(pid: number, file: string): boolean {
  const ino = fs.statSync(file).ino;
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const flags = parseInt(/flags:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))![1], 8);
      if ((flags & 3) === 2 && fs.statSync(`/proc/${pid}/fd/${fd}`).ino === ino) return true;
    } catch {} // closed meanwhile
  }
  return false;
}

/** Finishes or undoes a live freeze that a killed CLI left with disk.next.qcow2 in place. If QEMU moved onto it
 *  (it writes there now — or, with the VM gone, it holds data), it becomes the disk; otherwise it goes, and the
 *  layer link made for it is collected as unused. */
export async function recoverFreeze(dir: string, runningPid?: number): Promise<void> {
  const next = path.join(dir, 'disk.next.qcow2');
  const disk = path.join(dir, 'disk.qcow2');
  if (!fs.existsSync(next)) return;
  const switched = runningPid ? openForWrite(runningPid, next) : !(await isEmptyTop(next).catch(() => true));
  if (switched && fs.existsSync(disk)) fs.renameSync(next, disk);
  else fs.rmSync(next, { force: true });
}
