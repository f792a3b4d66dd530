// Freezing a box's disk into a layer others can share (clones, forks, warm-start templates), live when the box
// runs: its file system is frozen by the agent while the VM moves onto a new top (and, with its memory, until
// that is saved too). A killed CLI leaves disk.next.qcow2, which the box's next start settles (disks.ts
// recoverFreeze).
import * as fs from 'node:fs';
import { renameDurable } from '../util/fs.js';
import { failpoint } from '../util/failpoint.js';
import { BoxStateError } from '../core/errors.js';
import { runDir } from '../vmm/engine.js';
import { backingChain, createTop, isEmptyTop, isLayer, newLayerPath } from './layers.js';
import { diskPath, nextTop, ROOT_DISK, topAlias } from './disks.js';
import { agentClient } from './channel.js';
import { isRunning } from './status.js';
import { prepareForSave } from './memory.js';
import type { RuntimeContext } from './context.js';
import type { BoxRecord } from './types.js';

/** Runs fn with the running box's file system synced and frozen; the agent thaws by itself after 10 s, so a
 *  process killed half way never leaves the box frozen. */
export async function withFrozenFs<T>(ctx: RuntimeContext, id: string, fn: () => Promise<T>): Promise<T> {
  const client = await agentClient(ctx, id);
  await client.call('guest', 'sync', { freeze: true }, 30_000);
  try {
    return await fn();
  } finally {
    await client.call('guest', 'thaw', {}, 30_000).catch(() => {});
  }
}

/** A frozen layer is read by the boxes made from it and written by nobody: its file was the box's disk, owned by the
 *  box's VMM uid, which would otherwise keep the right to open it for writing under every clone. It now belongs to
 *  the home's owner, readable only. (A descriptor the VMM opened before the freeze cannot be taken back; QEMU
 *  itself reopens the file read-only when it becomes a backing file.) */
function sealLayer(layer: string): void {
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  if (uid !== undefined && gid !== undefined) fs.chownSync(layer, uid, gid);
  fs.chmodSync(layer, 0o644);
}

/** Freezes a box's current disk into a layer and returns it (the box goes on over it). With memory (a file), the
 *  running box's memory is saved there at the same instant. Call holding the box's and the registry's locks. */
export async function freeze(ctx: RuntimeContext, rec: BoxRecord, memory?: string, opts: { warmExec?: boolean } = {}): Promise<string> {
  const dir = ctx.home.boxDir(rec.id);
  const disk = diskPath(ctx, rec.id);
  const chain = await backingChain(disk);
  // Nothing written since the last freeze: share that layer instead of stacking an empty one. (Not for a fork:
  // the guest may write between this look and the instant its memory is saved.)
  if (!memory && chain[1] && isLayer(ctx.home, chain[1].filename) && chain[1].format === 'qcow2' && chain[0].snapshots.length === 0 && (await isEmptyTop(disk))) return chain[1].filename;
  if (memory && !isRunning(ctx, rec.id)) throw new BoxStateError(`box ${rec.name} is not running: its memory cannot be saved`);
  const layer = newLayerPath(ctx.home);
  fs.linkSync(disk, layer); // same file, two names, until the box has moved onto its new top
  failpoint('clone:linked');
  if (!isRunning(ctx, rec.id)) {
    await createTop(layer, disk, rec.options.diskSizeMib);
  } else {
    const next = nextTop(dir);
    await createTop(layer, next, rec.options.diskSizeMib, { unsafe: true });
    // Its VMM runs as the owner of its run folder (its own uid, when jailed by root).
    const owner = fs.statSync(runDir(dir));
    fs.chownSync(next, owner.uid, owner.gid);
    // QEMU opens the new top under a name of its own that outlives this freeze: when a later freeze makes this top
    // a backing file, QEMU reopens it read-only by that name, and disk.next.qcow2 will be another file by then.
    const alias = topAlias(dir);
    fs.linkSync(next, alias);
    if (memory) {
      await prepareForSave(ctx, rec.id, { warm: opts.warmExec });
      // One instant for the disk and the memory: the file system stays frozen from before the disk moves onto its
      // new top until the memory is saved, so the guest writes nothing in between (a restore thaws it). The move
      // is not made with the CPUs stopped: QEMU 7.2 then cannot take its disk back after the save.
      await withFrozenFs(ctx, rec.id, async () => {
        await ctx.engine.switchDiskTop(dir, ROOT_DISK, alias);
        await ctx.engine.saveState(dir, `${memory}.part`, { resume: true });
      });
      renameDurable(`${memory}.part`, memory);
      failpoint('fork:saved');
    } else {
      await withFrozenFs(ctx, rec.id, async () => {
        failpoint('clone:frozen');
        await ctx.engine.switchDiskTop(dir, ROOT_DISK, alias);
        failpoint('clone:switched');
      });
    }
    fs.renameSync(next, disk); // the old name goes; its file lives on as the layer
  }
  sealLayer(layer);
  // Snapshots taken so far now live in the layer.
  await ctx.records.update(rec.id, (r) => ({ ...r, snapshots: (r.snapshots ?? []).map((s) => (chain[0].snapshots.includes(s.name) ? { ...s, frozen: true, layer } : s)) }));
  return layer;
}
