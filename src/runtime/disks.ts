// A box's own disk: always a qcow2 (its snapshots live in it), over the image's shared base, over a full ext4
// copy of a folder made for the box, or standalone (imported). Made when the box first needs it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BoxStateError, ImageError, InvalidOptionError } from '../core/errors.js';
import { buildDisk, resolveDir } from './rootfs.js';
import { checkedChain, createTop, isEmptyTop, newLayerPath, TamperedDiskError } from './layers.js';
import { renameDurable } from '../util/fs.js';
import { withRegistryLock, type RuntimeContext } from './context.js';
import { ctlDir } from '../vmm/engine.js';
import type { BoxRecord } from './types.js';

/** The box's disk is the VM's second drive, after the shared init image. */
export const ROOT_DISK = 1;

export const diskPath = (ctx: RuntimeContext, id: string) => path.join(ctx.home.boxDir(id), 'disk.qcow2');
/** A new top a running box moves onto (clone): made by boxlite where the VMM can open it but not replace it. */
const nextTop = (dir: string) => path.join(ctlDir(dir), 'disk.next.qcow2');

/** The box's disk, made if it is not there yet. Do not call holding the registry lock (a folder box's first disk
 *  takes it). */
export async function ensureDisk(ctx: RuntimeContext, rec: BoxRecord): Promise<string> {
  const dir = ctx.home.boxDir(rec.id);
  const disk = diskPath(ctx, rec.id);
  const vm = ctx.engine.status(dir);
  await recoverFreeze(dir, vm.kind === 'running' ? vm.pid : undefined); // a clone's live freeze a killed CLI left
  if (fs.existsSync(disk)) {
    try {
      await checkedChain(ctx.home, disk);
    } catch (e) {
      if (!(e instanceof TamperedDiskError)) throw e;
      throw new BoxStateError(`box ${rec.name}'s disk was changed by something other than boxlite (${e.message}); it is not used: remove the box ('boxlite rm -f ${rec.name}')`);
    }
    return disk;
  }
  const src = rec.source;
  if (src.kind === 'dir') {
    // The full copy of the folder is a layer: clones of the box read from it too, so it must outlive the box.
    // Built in the box's folder, then moved among the layers and covered by the box's top in one step under the
    // registry lock, so a layer collection never sees it unused.
    const part = path.join(dir, 'base.img.part');
    await buildDisk(resolveDir(src.path), part, rec.options.diskSizeMib); // the folder may have gone since create
    await withRegistryLock(ctx, async () => {
      const base = newLayerPath(ctx.home).replace(/\.qcow2$/, '.img');
      renameDurable(part, base);
      await createTop(base, disk, rec.options.diskSizeMib, { backingFormat: 'raw' });
    });
  } else if (src.kind === 'disk') {
    throw new BoxStateError(`box ${rec.name}: its disk (${disk}) is missing: import the box again`);
  } else {
    if (!fs.existsSync(src.base)) {
      throw new ImageError(`box ${rec.name}: the base of image ${src.reference} (${src.base}) is gone: pull or load the image again, then start the box`);
    }
    if (rec.options.diskSizeMib < src.baseSizeMib) {
      throw new InvalidOptionError(`disk size ${rec.options.diskSizeMib} MiB is smaller than the image's file system (${src.baseSizeMib} MiB): give a disk of at least ${src.baseSizeMib} MiB`);
    }
    // A thin overlay: creating it copies no image data.
    await createTop(src.base, disk, rec.options.diskSizeMib, { backingFormat: 'raw' });
  }
  return disk;
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
  const next = nextTop(dir);
  const disk = path.join(dir, 'disk.qcow2');
  if (!fs.existsSync(next)) return;
  const switched = runningPid ? openForWrite(runningPid, next) : !(await isEmptyTop(next).catch(() => true));
  if (switched && fs.existsSync(disk)) fs.renameSync(next, disk);
  else fs.rmSync(next, { force: true });
}

export { nextTop };

/** A name of its own for a top QEMU moves onto while it runs (see freeze.ts); extra links to a box's tops,
 *  dropped when its VM is not running (dropTopAliases). */
export const topAlias = (dir: string) => path.join(ctlDir(dir), `top-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}.qcow2`);

export function dropTopAliases(dir: string): void {
  let names: string[] = [];
  try {
    names = fs.readdirSync(ctlDir(dir));
  } catch {
    return;
  }
  for (const n of names) if (/^top-[0-9a-z-]+\.qcow2$/.test(n)) fs.rmSync(path.join(ctlDir(dir), n), { force: true });
}
