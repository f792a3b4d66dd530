// boxlite clone SRC[@SNAPSHOT] NEW [--count N]: boxes that share SRC's disk copy-on-write (see layers.ts).
//   SRC          its current disk is frozen into a layer (live, if it runs: the guest's file system is frozen and
//                the VM moves onto a new qcow2), and each clone gets a qcow2 over it. A source that has written
//                nothing since its last freeze shares that layer again.
//   SRC@SNAP     the snapshot's view is made into a layer once (the box's own writes up to it are copied, never
//                the image), kept for later clones of the same snapshot.
// Order matters for a killed CLI: a layer is a hard link until the source has moved onto its new qcow2, and each
// clone's record is written last, so an interruption leaves either no clone or a whole one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ensureDir } from '../util/fs.js';
import { failpoint } from '../util/failpoint.js';
import { BoxExistsError, InvalidOptionError, SnapshotNotFoundError } from '../core/errors.js';
import { checkName } from '../core/names.js';
import { backingChain, createTop, isEmptyTop, isLayer, layerFromSnapshot, newLayerPath } from './layers.js';
import { diskPath, ensureDisk, nextTop, ROOT_DISK } from './disks.js';
import { isRunning } from './status.js';
import { withFrozenFs } from './snapshots.js';
import { withBoxLock, withRegistryLock, type RuntimeContext } from './context.js';
import { runDir } from '../vmm/engine.js';
import type { BoxRecord } from './types.js';

export interface CloneOptions {
  snapshot?: string;
}

/** Freezes a box's current disk into a layer and returns it (the box goes on over it). */
async function freeze(ctx: RuntimeContext, rec: BoxRecord): Promise<string> {
  const dir = ctx.home.boxDir(rec.id);
  const disk = diskPath(ctx, rec.id);
  const chain = await backingChain(disk);
  // Nothing written since the last freeze: share that layer instead of stacking an empty one.
  if (chain[1] && isLayer(ctx.home, chain[1].filename) && chain[1].format === 'qcow2' && chain[0].snapshots.length === 0 && (await isEmptyTop(disk))) return chain[1].filename;
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
    await withFrozenFs(ctx, rec.id, async () => {
      failpoint('clone:frozen');
      await ctx.engine.switchDiskTop(dir, ROOT_DISK, next);
      failpoint('clone:switched');
    });
    fs.renameSync(next, disk); // the old name goes; its file lives on as the layer
  }
  // Snapshots taken so far now live in the layer.
  await ctx.records.update(rec.id, (r) => ({ ...r, snapshots: (r.snapshots ?? []).map((s) => (chain[0].snapshots.includes(s.name) ? { ...s, frozen: true, layer } : s)) }));
  return layer;
}

/** The layer holding a snapshot's view, made once per snapshot. */
async function snapshotLayer(ctx: RuntimeContext, rec: BoxRecord, name: string): Promise<string> {
  const cached = rec.snapshotLayers?.[name];
  if (cached && fs.existsSync(cached)) return cached;
  const chain = await backingChain(diskPath(ctx, rec.id));
  const i = chain.findIndex((c) => c.snapshots.includes(name));
  if (i < 0) {
    const all = chain.flatMap((c) => c.snapshots);
    throw new SnapshotNotFoundError(`box ${rec.name} has no snapshot named "${name}"${all.length ? ` (it has: ${all.join(', ')})` : ' (it has none)'}`);
  }
  const layer = await layerFromSnapshot(ctx.home, chain, i, name);
  await ctx.records.update(rec.id, (r) => ({ ...r, snapshotLayers: { ...(r.snapshotLayers ?? {}), [name]: layer } }));
  return layer;
}

export async function cloneBox(ctx: RuntimeContext, srcId: string, names: string[], opts: CloneOptions = {}): Promise<BoxRecord[]> {
  for (const n of names) checkName('box', n);
  if (new Set(names).size !== names.length) throw new InvalidOptionError(`the names of the clones repeat: ${names.join(', ')}`);
  return withBoxLock(ctx, srcId, async () => {
    await ensureDisk(ctx, ctx.records.get(srcId));
    return withRegistryLock(ctx, async () => {
      const taken = ctx.records.list().filter((r) => names.includes(r.name));
      if (taken.length) throw new BoxExistsError(`a box named "${taken[0].name}" already exists (id ${taken[0].id}): choose another name`);
      let rec = ctx.records.get(srcId);
      const layer = opts.snapshot ? await snapshotLayer(ctx, rec, opts.snapshot) : await freeze(ctx, rec);
      rec = ctx.records.get(srcId);
      const made: BoxRecord[] = [];
      for (const name of names) {
        const id = randomBytes(6).toString('hex');
        const dir = ensureDir(ctx.home.boxDir(id), 0o700);
        try {
          await createTop(layer, path.join(dir, 'disk.qcow2'), rec.options.diskSizeMib);
        } catch (e) {
          fs.rmSync(dir, { recursive: true, force: true });
          throw e;
        }
        // What cannot be shared is left out: named volumes (one box each), fixed host ports (chosen at start
        // instead), the project LAN and the maker's label (a clone is a box of its own).
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
        failpoint('clone:top-made');
        ctx.records.create(clone); // last: until here the clone does not exist
        made.push(clone);
      }
      return made;
    });
  });
}
