// boxlite clone SRC[@SNAPSHOT] NEW [--count N]: boxes that share SRC's disk copy-on-write (see layers.ts); boxlite
// fork SRC NEW: the same, with SRC's memory of that instant, which each new box continues from at its first start.
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
import { BoxExistsError, BoxStateError, InvalidOptionError, SnapshotNotFoundError } from '../core/errors.js';
import { lanSegment } from '../core/network.js';
import { checkName } from '../core/names.js';
import { backingChain, createTop, layerFromSnapshot } from './layers.js';
import { diskPath, ensureDisk } from './disks.js';
import { isRunning } from './status.js';
import { freeze } from './freeze.js';
import { withBoxLock, withRegistryLock, type RuntimeContext } from './context.js';
import { deviceShape } from './memory.js';
import { newStatePath } from './states.js';
import type { BoxRecord, SavedState } from './types.js';

export interface CloneOptions {
  snapshot?: string;
  /** A fork: the running source's memory is saved at the instant its disk is frozen, and each new box continues
   *  from it at its first start. */
  memory?: boolean;
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

/** Why a box cannot be forked, or null. Its forks must have the devices it has, and what a device reaches cannot
 *  be had twice: a host folder (virtiofs maps guest memory, which a saved state cannot carry), a named volume
 *  (one running box each). */
function whyNoFork(ctx: RuntimeContext, rec: BoxRecord): string | null {
  if (!isRunning(ctx, rec.id)) return `box ${rec.name} is not running: a fork continues a running box's processes; start it first, or use 'boxlite clone' for its disk alone`;
  if (rec.options.binds?.length) return `box ${rec.name} shares host folders, whose state cannot be saved (virtiofs): use 'boxlite clone' for its disk alone`;
  if (rec.options.volumes?.length) return `box ${rec.name} mounts named volumes, which belong to one running box each: use 'boxlite clone' for its disk alone`;
  return null;
}

export async function cloneBox(ctx: RuntimeContext, srcId: string, names: string[], opts: CloneOptions = {}): Promise<BoxRecord[]> {
  for (const n of names) checkName('box', n);
  const what = opts.memory ? 'forks' : 'clones';
  if (new Set(names).size !== names.length) throw new InvalidOptionError(`the names of the ${what} repeat: ${names.join(', ')}`);
  if (opts.memory && opts.snapshot) throw new InvalidOptionError('a fork is made of a running box, not of a snapshot: restore the memory snapshot, then fork');
  return withBoxLock(ctx, srcId, async () => {
    await ensureDisk(ctx, ctx.records.get(srcId));
    return withRegistryLock(ctx, async () => {
      const taken = ctx.records.list().filter((r) => names.includes(r.name));
      if (taken.length) throw new BoxExistsError(`a box named "${taken[0].name}" already exists (id ${taken[0].id}): choose another name`);
      let rec = ctx.records.get(srcId);
      const why = opts.memory ? whyNoFork(ctx, rec) : null;
      if (why) throw new BoxStateError(why);
      const state = opts.memory ? newStatePath(ctx) : undefined;
      let layer: string;
      try {
        layer = opts.snapshot ? await snapshotLayer(ctx, rec, opts.snapshot) : await freeze(ctx, rec, state);
      } catch (e) {
        if (state) fs.rmSync(`${state}.part`, { force: true });
        throw e;
      }
      rec = ctx.records.get(srcId);
      const restoreFrom: SavedState | undefined = state ? { file: state, shape: deviceShape(ctx, rec) } : undefined;
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
        // A fork keeps a LAN NIC (its memory has one), alone on a group of its own.
        const { volumes: _v, lan, hostname: _h, ...options } = rec.options;
        const clone: BoxRecord = {
          id,
          name,
          createdAt: new Date().toISOString(),
          source: { kind: 'disk', origin: `${opts.memory ? 'forked' : 'cloned'} from ${rec.name}${opts.snapshot ? `@${opts.snapshot}` : ''}`, config: rec.source.config },
          options: { ...options, ports: (options.ports ?? []).map((p) => ({ ...p, hostPort: 0 })), ...(restoreFrom && lan ? { lan: { ...lan, segment: lanSegment(`${ctx.home.root}\0fork\0${id}`) } } : {}) },
          state: 'created',
          fsSizeMib: rec.fsSizeMib ?? (rec.source.kind === 'dir' ? rec.options.diskSizeMib : undefined),
          ...(restoreFrom ? { restoreFrom } : {}),
        };
        failpoint('clone:top-made');
        ctx.records.create(clone); // last: until here the clone does not exist
        made.push(clone);
      }
      return made;
    });
  });
}
