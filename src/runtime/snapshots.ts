// Snapshots of a box's disk: internal qcow2 snapshots, so taking one copies no data (QEMU copies the table of the
// disk's clusters and counts references) whatever the disk holds. A running box is snapshotted consistently: the
// agent syncs and freezes the guest's file system, the VM is paused for the snapshot, then resumed and thawed.
// The qcow2 file is the source of truth for which snapshots exist; the box record keeps when each was taken.
import * as path from 'node:path';
import * as fs from 'node:fs';
import { run } from '../util/exec.js';
import { withLock } from '../util/lock.js';
import { backingChain, collectLayers, createTop, dependentsOf, layersDir, newLayerPath } from './layers.js';
import { qmp } from '../vmm/qmp.js';
import { BoxStateError, InvalidOptionError } from './errors.js';
import { writeRecord } from './records.js';
import type { Runtime } from './runtime.js';

export interface SnapshotInfo {
  name: string;
  createdAt: string;
  /** Taken by a policy rather than by hand. */
  auto?: boolean;
  /** Taken before the box was cloned: it lives in a layer the box shares with its clones. */
  frozen?: boolean;
  /** For a frozen snapshot: the layer file that holds it. */
  layer?: string;
}

export class SnapshotNotFoundError extends InvalidOptionError {}
export class SnapshotExistsError extends InvalidOptionError {}
export class SnapshotInUseError extends InvalidOptionError {}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
/** The box's disk is the VM's second drive (see Runtime.start). */
const DRIVE = 'disk1';


export class Snapshots {
  constructor(private readonly rt: Runtime, private readonly id: string) {}

  private disk(): string {
    return path.join(this.rt.home.boxDir(this.id), 'disk.qcow2');
  }

  private running(): boolean {
    return this.rt.status(this.rt.record(this.id)).state === 'running';
  }

  /** The box's own snapshots (in its top qcow2), then those frozen in layers under it (taken before a clone). */
  private async located(): Promise<{ name: string; file: string; frozen: boolean }[]> {
    let chain;
    try {
      chain = await backingChain(this.disk());
    } catch {
      return []; // no disk yet: a box that never started has no snapshots
    }
    const layers = layersDir(this.rt.home) + path.sep;
    const out = chain.flatMap((c, i) => (i === 0 || c.filename.startsWith(layers) ? c.snapshots.map((name) => ({ name, file: c.filename, frozen: i > 0 })) : []));
    // A frozen snapshot whose layer the box no longer reads from (it restored another one) is still the box's.
    for (const f of this.rt.record(this.id).snapshots ?? []) {
      if (!f.layer || out.some((o) => o.name === f.name) || !fs.existsSync(f.layer)) continue;
      const held = (await backingChain(f.layer).catch(() => []))[0]?.snapshots ?? [];
      if (held.includes(f.name)) out.push({ name: f.name, file: path.resolve(f.layer), frozen: true });
    }
    return out;
  }

  async list(): Promise<SnapshotInfo[]> {
    const rec = this.rt.record(this.id);
    return (await this.located()).map((l) => ({ ...(rec.snapshots?.find((s) => s.name === l.name) ?? { name: l.name, createdAt: '' }), ...(l.frozen ? { frozen: true } : {}) }));
  }

  async create(name: string, opts: { auto?: boolean } = {}): Promise<SnapshotInfo> {
    if (!NAME_RE.test(name)) throw new InvalidOptionError(`snapshot name "${name}" is invalid: use letters, digits, '_', '.', '-' (up to 63, starting with a letter or digit)`);
    return this.rt.withBoxLock(this.id, async () => {
      const rec = this.rt.record(this.id);
      await this.rt.ensureDiskOf(rec);
      if ((await this.located()).some((l) => l.name === name)) {
        throw new SnapshotExistsError(`box ${rec.name} already has a snapshot named "${name}": choose another name, or remove it with 'boxlite snapshot rm ${rec.name} ${name}'`);
      }
      const info: SnapshotInfo = { name, createdAt: new Date().toISOString(), ...(opts.auto ? { auto: true } : {}) };
      if (this.running()) {
        const dir = this.rt.home.boxDir(this.id);
        const qmpSock = path.join(dir, 'qmp.sock');
        const client = await this.rt.client(this.id);
        // Frozen, the file system is consistent on disk; QEMU takes the snapshot between guest requests. The VM is
        // not paused: a CLI killed half way must not leave a paused VM behind (the agent thaws by itself after 10 s).
        await client.call('guest', 'sync', { freeze: true }, 30_000);
        try {
          await qmp(qmpSock, 'blockdev-snapshot-internal-sync', { device: DRIVE, name }, 30_000);
        } finally {
          await client.call('guest', 'thaw', {}, 30_000).catch(() => {});
        }
      } else {
        await run('qemu-img', ['snapshot', '-c', name, this.disk()]);
      }
      // The record after the snapshot: if this process dies in between, list() still shows the snapshot.
      const now = this.rt.record(this.id);
      writeRecord(this.rt.home, { ...now, snapshots: [...(now.snapshots ?? []).filter((s) => s.name !== name), info] });
      return info;
    });
  }

  private async need(name: string): Promise<void> {
    const have = await this.list();
    if (!have.some((s) => s.name === name)) {
      const rec = this.rt.record(this.id);
      throw new SnapshotNotFoundError(`box ${rec.name} has no snapshot named "${name}"${have.length ? ` (it has: ${have.map((s) => s.name).join(', ')})` : ' (it has none)'}`);
    }
  }

  /** Puts the disk back as it was at the snapshot. A running box is stopped, restored and started again. */
  async restore(name: string, opts: { timeoutMs?: number } = {}): Promise<{ restarted: boolean }> {
    await this.need(name);
    const wasRunning = this.running();
    if (wasRunning) await this.rt.stop(this.id, { timeoutMs: opts.timeoutMs });
    await this.rt.withBoxLock(this.id, async () => {
      if (this.running()) throw new BoxStateError(`box ${this.rt.record(this.id).name} was started again during the restore; stop it and retry`);
      const where = (await this.located()).find((l) => l.name === name)!;
      if (!where.frozen) await run('qemu-img', ['snapshot', '-a', name, this.disk()]);
      else {
        // It lives in a layer shared with clones, which must not change: the box gets a new top over a layer
        // made of the snapshot's view (the box's own writes up to it are copied, not the image).
        await withLock(this.rt.home.registryLock, `the box registry in ${this.rt.home.root}`, async () => {
          const chain = await backingChain(this.disk());
          const i = chain.findIndex((c) => c.filename === where.file);
          const layer = newLayerPath(this.rt.home);
          await run('qemu-img', ['convert', '-U', '-l', `snapshot.name=${name}`, '-O', 'qcow2', ...(chain[i].backing ? ['-B', chain[i].backing!, '-F', chain[i + 1].format] : []), where.file, `${layer}.part`]);
          fs.renameSync(`${layer}.part`, layer);
          await createTop(layer, this.disk(), this.rt.record(this.id).options.diskSizeMib);
          await collectLayers(this.rt.home); // the top the box had is gone; layers nobody reads from go too
        });
      }
    });
    if (wasRunning) await this.rt.start(this.id);
    return { restarted: wasRunning };
  }

  async remove(name: string): Promise<void> {
    await this.need(name);
    const where = (await this.located()).find((l) => l.name === name)!;
    if (where.frozen) {
      const rec = this.rt.record(this.id);
      const others = (await dependentsOf(this.rt.home, where.file)).filter((n) => n !== rec.name);
      if (others.length) {
        throw new SnapshotInUseError(`snapshot "${name}" of box ${rec.name} was taken before the box was cloned and lives in the disk layer that ${others.length > 1 ? 'boxes' : 'box'} ${others.join(', ')} ${others.length > 1 ? 'are' : 'is'} made from: remove ${others.length > 1 ? 'them' : 'it'} first`);
      }
      if (this.running()) throw new BoxStateError(`box ${rec.name} is running and its disk reads from the layer that holds snapshot "${name}": stop it first`);
      await this.rt.withBoxLock(this.id, async () => {
        await run('qemu-img', ['snapshot', '-d', name, where.file]);
        await this.forget(name);
      });
      return;
    }
    await this.rt.withBoxLock(this.id, async () => {
      if (this.running()) {
        await qmp(path.join(this.rt.home.boxDir(this.id), 'qmp.sock'), 'blockdev-snapshot-delete-internal-sync', { device: DRIVE, name }, 30_000);
      } else {
        await run('qemu-img', ['snapshot', '-d', name, this.disk()]);
      }
      await this.forget(name);
    });
  }

  /** Drops a removed snapshot from the record, with the layer made of it for clones if no clone reads from it. */
  private async forget(name: string): Promise<void> {
    await withLock(this.rt.home.registryLock, `the box registry in ${this.rt.home.root}`, async () => {
      const now = this.rt.record(this.id);
      const { [name]: _gone, ...snapshotLayers } = now.snapshotLayers ?? {};
      writeRecord(this.rt.home, { ...now, snapshots: (now.snapshots ?? []).filter((s) => s.name !== name), snapshotLayers });
      await collectLayers(this.rt.home);
    });
  }
}
