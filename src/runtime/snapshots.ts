// Snapshots of a box's disk: internal qcow2 snapshots, so taking one copies no data (QEMU copies the table of the
// disk's clusters and counts references) whatever the disk holds. A running box is snapshotted consistently: the
// agent syncs and freezes the guest's file system, the engine takes the snapshot between guest requests, and the
// agent thaws. The qcow2 file is the source of truth for which snapshots exist; the record keeps when each was
// taken.
import { runTool } from '../vmm/tool-jail.js';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { run } from '../util/exec.js';
import { failpoint } from '../util/failpoint.js';
import { BoxStateError, SnapshotExistsError, SnapshotInUseError, SnapshotNotFoundError } from '../core/errors.js';
import { checkName } from '../core/names.js';
import { backingChain, collectLayers, createTop, dependentsOf, diskToolFiles, isLayer, layerFromSnapshot } from './layers.js';
import { diskPath, ensureDisk, ROOT_DISK } from './disks.js';
import { withFrozenFs } from './freeze.js';
import { isRunning } from './status.js';
import { startBox } from './boot.js';
import { stopBox } from './lifecycle.js';
import { withBoxLock, withRegistryLock, type RuntimeContext } from './context.js';
import { deviceShape, prepareForSave, stateDir, stateMismatch } from './memory.js';
import { ensureDir, renameDurable } from '../util/fs.js';
import type { SavedState, SnapshotInfo } from './types.js';

export type { SnapshotInfo } from './types.js';
export { withFrozenFs } from './freeze.js';

export class Snapshots {
  constructor(private readonly ctx: RuntimeContext, private readonly id: string) {}

  private get disk(): string {
    return diskPath(this.ctx, this.id);
  }

  private running(): boolean {
    return isRunning(this.ctx, this.id);
  }

  /** The box's own snapshots (in its top qcow2), then those frozen in layers under it (taken before a clone). */
  private async located(): Promise<{ name: string; file: string; frozen: boolean }[]> {
    let chain;
    try {
      chain = await backingChain(this.disk);
    } catch {
      return []; // no disk yet: a box that never started has no snapshots
    }
    const out = chain.flatMap((c, i) => (i === 0 || isLayer(this.ctx.home, c.filename) ? c.snapshots.map((name) => ({ name, file: c.filename, frozen: i > 0 })) : []));
    // A frozen snapshot whose layer the box no longer reads from (it restored another one) is still the box's.
    for (const f of this.ctx.records.get(this.id).snapshots ?? []) {
      if (!f.layer || out.some((o) => o.name === f.name) || !fs.existsSync(f.layer)) continue;
      const held = (await backingChain(f.layer).catch(() => []))[0]?.snapshots ?? [];
      if (held.includes(f.name)) out.push({ name: f.name, file: path.resolve(f.layer), frozen: true });
    }
    return out;
  }

  async list(): Promise<SnapshotInfo[]> {
    const rec = this.ctx.records.get(this.id);
    return (await this.located()).map((l) => ({ ...(rec.snapshots?.find((s) => s.name === l.name) ?? { name: l.name, createdAt: '' }), ...(l.frozen ? { frozen: true } : {}) }));
  }

  async create(name: string, opts: { auto?: boolean; memory?: boolean } = {}): Promise<SnapshotInfo> {
    checkName('snapshot', name);
    return withBoxLock(this.ctx, this.id, async () => {
      const rec = this.ctx.records.get(this.id);
      await ensureDisk(this.ctx, rec);
      if ((await this.located()).some((l) => l.name === name)) {
        throw new SnapshotExistsError(`box ${rec.name} already has a snapshot named "${name}": choose another name, or remove it with 'boxlite snapshot rm ${rec.name} ${name}'`);
      }
      const info: SnapshotInfo = { name, createdAt: new Date().toISOString(), ...(opts.auto ? { auto: true } : {}) };
      if (opts.memory) {
        info.memory = await this.saveWithMemory(name);
      } else if (this.running()) {
        // Frozen, the file system is consistent on disk; the VM is not paused, so a process killed half way
        // leaves no paused VM behind.
        await withFrozenFs(this.ctx, this.id, async () => {
          failpoint('snapshot:frozen');
          await this.ctx.engine.snapshotDisk(this.ctx.home.boxDir(this.id), ROOT_DISK, name);
          failpoint('snapshot:taken');
        });
      } else {
        await runTool('qemu-img', ['snapshot', '-c', name, this.disk], diskToolFiles(this.ctx.home, this.disk));
      }
      // The record after the snapshot: if this process dies in between, list() still shows the snapshot.
      await this.ctx.records.update(this.id, (r) => ({ ...r, snapshots: [...(r.snapshots ?? []).filter((s) => s.name !== name), info] }));
      failpoint('snapshot:recorded');
      return info;
    });
  }

  /** The disk snapshot and the memory at one instant (the CPUs stopped for both), then the box runs on. */
  private async saveWithMemory(name: string): Promise<SavedState> {
    const rec = this.ctx.records.get(this.id);
    if (!this.running()) throw new BoxStateError(`box ${rec.name} is not running: a memory snapshot needs its processes; start it first, or take a disk snapshot without --memory`);
    if (rec.options.binds?.length) throw new BoxStateError(`box ${rec.name} shares host folders, whose state cannot be saved (virtiofs): take a disk snapshot without --memory`);
    const file = path.join(ensureDir(stateDir(this.ctx, this.id), 0o700), `snapshot-${name}.state`);
    await prepareForSave(this.ctx, this.id);
    try {
      await this.ctx.engine.saveState(this.ctx.home.boxDir(this.id), `${file}.part`, { snapshotDisk: { disk: ROOT_DISK, name }, resume: true });
    } catch (e) {
      fs.rmSync(`${file}.part`, { force: true });
      throw new BoxStateError(`box ${rec.name}: the memory snapshot failed (${(e as Error).message}); the box keeps running`);
    }
    renameDurable(`${file}.part`, file);
    return { file, shape: deviceShape(this.ctx, rec) };
  }

  private async need(name: string): Promise<void> {
    const have = await this.list();
    if (!have.some((s) => s.name === name)) {
      const rec = this.ctx.records.get(this.id);
      throw new SnapshotNotFoundError(`box ${rec.name} has no snapshot named "${name}"${have.length ? ` (it has: ${have.map((s) => s.name).join(', ')})` : ' (it has none)'}`);
    }
  }

  /** Puts the disk back as it was at the snapshot. A running box is stopped, restored and started again. A memory
   *  snapshot brings back its processes too: the box then runs, continued from that instant. */
  async restore(name: string, opts: { timeoutMs?: number } = {}): Promise<{ restarted: boolean; memory: boolean }> {
    await this.need(name);
    const memory = (await this.list()).find((s) => s.name === name)?.memory;
    if (memory) {
      const bad = stateMismatch(this.ctx, this.ctx.records.get(this.id), memory, false);
      if (bad) throw new BoxStateError(`snapshot "${name}" of box ${this.ctx.records.get(this.id).name} cannot be restored with its memory: ${bad}`);
    }
    if (this.ctx.hooks.beforeRestore) await this.ctx.hooks.beforeRestore(this.id, name);
    const wasRunning = this.running();
    // Its memory is replaced: nothing is gained by shutting the guest down cleanly.
    if (wasRunning) await stopBox(this.ctx, this.id, { timeoutMs: memory ? 0 : opts.timeoutMs });
    if (this.ctx.records.get(this.id).state === 'paused') await stopBox(this.ctx, this.id); // its saved memory goes with the old disk
    await withBoxLock(this.ctx, this.id, async () => {
      if (this.running()) throw new BoxStateError(`box ${this.ctx.records.get(this.id).name} was started again during the restore; stop it and retry`);
      const where = (await this.located()).find((l) => l.name === name)!;
      if (!where.frozen) await runTool('qemu-img', ['snapshot', '-a', name, this.disk], diskToolFiles(this.ctx.home, this.disk));
      else {
        // It lives in a layer shared with clones, which must not change: the box gets a new top over a layer
        // made of the snapshot's view (the box's own writes up to it are copied, not the image).
        await withRegistryLock(this.ctx, async () => {
          const chain = await backingChain(this.disk);
          const layer = await layerFromSnapshot(this.ctx.home, chain, chain.findIndex((c) => c.filename === where.file), name);
          await createTop(layer, this.disk, this.ctx.records.get(this.id).options.diskSizeMib);
          await collectLayers(this.ctx.home, this.ctx.records); // the top the box had is gone; layers nobody reads from go too
        });
      }
    });
    if (memory) {
      await this.ctx.records.update(this.id, (r) => ({ ...r, restoreFrom: memory }));
      await startBox(this.ctx, this.id);
      return { restarted: true, memory: true };
    }
    if (wasRunning) await startBox(this.ctx, this.id);
    return { restarted: wasRunning, memory: false };
  }

  async remove(name: string): Promise<void> {
    await this.need(name);
    const where = (await this.located()).find((l) => l.name === name)!;
    const rec = this.ctx.records.get(this.id);
    if (where.frozen) {
      const others = (await dependentsOf(this.ctx.home, this.ctx.records, where.file)).filter((n) => n !== rec.name);
      if (others.length) {
        throw new SnapshotInUseError(`snapshot "${name}" of box ${rec.name} was taken before the box was cloned and lives in the disk layer that ${others.length > 1 ? 'boxes' : 'box'} ${others.join(', ')} ${others.length > 1 ? 'are' : 'is'} made from: remove ${others.length > 1 ? 'them' : 'it'} first`);
      }
      if (this.running()) throw new BoxStateError(`box ${rec.name} is running and its disk reads from the layer that holds snapshot "${name}": stop it first`);
    }
    await withBoxLock(this.ctx, this.id, async () => {
      if (where.frozen) await run('qemu-img', ['snapshot', '-d', name, where.file]);
      else if (this.running()) await this.ctx.engine.deleteDiskSnapshot(this.ctx.home.boxDir(this.id), ROOT_DISK, name);
      else await runTool('qemu-img', ['snapshot', '-d', name, this.disk], diskToolFiles(this.ctx.home, this.disk));
      await this.forget(name);
      fs.rmSync(path.join(stateDir(this.ctx, this.id), `snapshot-${name}.state`), { force: true });
    });
  }

  /** Drops a removed snapshot from the record, with the layer made of it for clones if no clone reads from it. */
  private async forget(name: string): Promise<void> {
    await withRegistryLock(this.ctx, async () => {
      await this.ctx.records.update(this.id, (r) => {
        const { [name]: _gone, ...snapshotLayers } = r.snapshotLayers ?? {};
        return { ...r, snapshots: (r.snapshots ?? []).filter((s) => s.name !== name), snapshotLayers };
      });
      await collectLayers(this.ctx.home, this.ctx.records);
    });
  }
}
