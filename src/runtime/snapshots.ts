// Snapshots of a box's disk: internal qcow2 snapshots, so taking one copies no data (QEMU copies the table of the
// disk's clusters and counts references) whatever the disk holds. A running box is snapshotted consistently: the
// agent syncs and freezes the guest's file system, the VM is paused for the snapshot, then resumed and thawed.
// The qcow2 file is the source of truth for which snapshots exist; the box record keeps when each was taken.
import * as path from 'node:path';
import { run } from '../util/exec.js';
import { qmp } from '../vmm/qmp.js';
import { BoxStateError, InvalidOptionError } from './errors.js';
import { writeRecord } from './records.js';
import type { Runtime } from './runtime.js';

export interface SnapshotInfo {
  name: string;
  createdAt: string;
  /** Taken by a policy rather than by hand. */
  auto?: boolean;
}

export class SnapshotNotFoundError extends InvalidOptionError {}
export class SnapshotExistsError extends InvalidOptionError {}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
/** The box's disk is the VM's second drive (see Runtime.start). */
const DRIVE = 'disk1';

/** Names of the internal snapshots in a qcow2 file (-U: also while QEMU has it open). */
async function qcowSnapshots(disk: string): Promise<string[]> {
  const info = JSON.parse(await run('qemu-img', ['info', '-U', '--output=json', disk]));
  return (info.snapshots ?? []).map((s: { name: string }) => s.name);
}

export class Snapshots {
  constructor(private readonly rt: Runtime, private readonly id: string) {}

  private disk(): string {
    return path.join(this.rt.home.boxDir(this.id), 'disk.qcow2');
  }

  private running(): boolean {
    return this.rt.status(this.rt.record(this.id)).state === 'running';
  }

  async list(): Promise<SnapshotInfo[]> {
    const rec = this.rt.record(this.id);
    let names: string[];
    try {
      names = await qcowSnapshots(this.disk());
    } catch {
      return []; // no disk yet: a box that never started has no snapshots
    }
    return names.map((n) => rec.snapshots?.find((s) => s.name === n) ?? { name: n, createdAt: '' });
  }

  async create(name: string, opts: { auto?: boolean } = {}): Promise<SnapshotInfo> {
    if (!NAME_RE.test(name)) throw new InvalidOptionError(`snapshot name "${name}" is invalid: use letters, digits, '_', '.', '-' (up to 63, starting with a letter or digit)`);
    return this.rt.withBoxLock(this.id, async () => {
      const rec = this.rt.record(this.id);
      await this.rt.ensureDiskOf(rec);
      if ((await qcowSnapshots(this.disk())).includes(name)) {
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
      await run('qemu-img', ['snapshot', '-a', name, this.disk()]);
    });
    if (wasRunning) await this.rt.start(this.id);
    return { restarted: wasRunning };
  }

  async remove(name: string): Promise<void> {
    await this.need(name);
    await this.rt.withBoxLock(this.id, async () => {
      if (this.running()) {
        await qmp(path.join(this.rt.home.boxDir(this.id), 'qmp.sock'), 'blockdev-snapshot-delete-internal-sync', { device: DRIVE, name }, 30_000);
      } else {
        await run('qemu-img', ['snapshot', '-d', name, this.disk()]);
      }
      const now = this.rt.record(this.id);
      writeRecord(this.rt.home, { ...now, snapshots: (now.snapshots ?? []).filter((s) => s.name !== name) });
    });
  }
}
