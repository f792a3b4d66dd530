// Named volumes: ext4 disks of their own under home/volumes/{name}/, attached to a box as an extra virtio disk
// and mounted by the guest's init. They outlive the boxes that use them; a volume belongs to one running box at a
// time (QEMU also takes a write lock on the file, so two VMs can never share one by accident).
import { runTool } from '../vmm/tool-jail.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Home } from './home.js';
import type { RecordStore } from './records.js';
import type { VolumeRecord } from './types.js';
import { readJson, writeJsonAtomic, ensureDir, renameDurable } from '../util/fs.js';
import { run } from '../util/exec.js';
import { withLock } from '../util/lock.js';
import { BoxliteError, InvalidOptionError, VolumeInUseError, VolumeNotFoundError } from '../core/errors.js';
import { MIN_VOLUME_MIB } from '../core/defaults.js';
import { checkName } from '../core/names.js';

export type { VolumeRecord } from './types.js';

export class Volumes {
  constructor(
    private readonly home: Home,
    private readonly records: RecordStore,
  ) {}

  private dir(name: string): string {
    return path.join(this.home.volumesDir, name);
  }
  diskPath(name: string): string {
    return path.join(this.dir(name), 'disk.img');
  }
  private get lock(): string {
    return path.join(ensureDir(this.home.root), 'volumes.lock');
  }

  list(): VolumeRecord[] {
    let names: string[] = [];
    try {
      names = fs.readdirSync(this.home.volumesDir);
    } catch {}
    return names
      .map((n) => this.find(n))
      .filter((v): v is VolumeRecord => !!v)
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  find(name: string): VolumeRecord | undefined {
    try {
      return readJson<VolumeRecord>(path.join(this.dir(name), 'volume.json'));
    } catch {
      return undefined; // a corrupt record: the volume is not offered (its disk is left alone)
    }
  }

  get(name: string): VolumeRecord {
    const v = this.find(name);
    if (!v) throw new VolumeNotFoundError(`no volume named "${name}": see 'boxlite volume ls', or create it with 'boxlite volume create ${name}'`);
    return v;
  }

  /** The boxes whose options mount the volume. */
  users(name: string): { id: string; name: string }[] {
    return this.records
      .list()
      .filter((r) => (r.options.volumes ?? []).some((m) => m.volume === name))
      .map((r) => ({ id: r.id, name: r.name }));
  }

  usedBy(name: string): string[] {
    return this.users(name).map((u) => u.name);
  }

  async create(name: string, sizeMib: number, opts: { project?: string } = {}): Promise<VolumeRecord> {
    checkName('volume', name);
    if (!Number.isInteger(sizeMib) || sizeMib < MIN_VOLUME_MIB) throw new InvalidOptionError(`volume size must be a whole number of MiB, at least ${MIN_VOLUME_MIB} (got ${sizeMib})`);
    return withLock(this.lock, `the volumes in ${this.home.root}`, async () => {
      if (this.find(name)) throw new InvalidOptionError(`a volume named "${name}" already exists: choose another name, or remove it with 'boxlite volume rm ${name}'`);
      const dir = ensureDir(this.dir(name), 0o700);
      const part = path.join(dir, 'disk.img.part');
      try {
        // Sparse: an empty 10 GiB volume takes a few MiB on the host. root_owner: a fresh volume mounted at a
        // folder looks like an empty folder owned by root, as docker's do.
        await run('/usr/sbin/mkfs.ext4', ['-q', '-F', '-L', `vol-${name}`.slice(0, 16), '-E', 'root_owner=0:0', '-m', '0', part, `${sizeMib}M`]);
        // A new volume is an empty folder in the box, as docker's are: no lost+found (e2fsck recreates it if needed).
        await run('/usr/sbin/debugfs', ['-w', '-R', 'rmdir lost+found', part]);
        fs.chmodSync(part, 0o600);
        renameDurable(part, this.diskPath(name));
      } catch (e) {
        fs.rmSync(dir, { recursive: true, force: true });
        throw new BoxliteError(`cannot create volume ${name}: ${(e as Error).message}`);
      }
      const rec: VolumeRecord = { name, sizeMib, createdAt: new Date().toISOString(), ...(opts.project ? { project: opts.project } : {}) };
      writeJsonAtomic(path.join(dir, 'volume.json'), rec, 0o600); // the record last: a folder without one is an interrupted create
      return rec;
    });
  }

  /** Grows a volume's disk and file system. The caller holds the operation locks of every box that mounts it and
   *  has checked none runs (Runtime.growVolume), so no start can attach it meanwhile. */
  async grow(name: string, sizeMib: number): Promise<void> {
    const v = this.get(name);
    if (sizeMib < v.sizeMib) throw new InvalidOptionError(`volume ${name}: volumes only grow (it has ${v.sizeMib} MiB, asked for ${sizeMib} MiB)`);
    if (sizeMib === v.sizeMib) return;
    await withLock(this.lock, `the volumes in ${this.home.root}`, async () => {
      const disk = this.diskPath(name);
      fs.truncateSync(disk, sizeMib * 1024 * 1024);
      // Guests wrote this file system: its checker and resizer run jailed (tool-jail.ts).
      await runTool('/usr/sbin/e2fsck', ['-f', '-p', disk], { rw: [disk] }).catch(() => {}); // resize2fs wants a freshly checked fs
      await runTool('/usr/sbin/resize2fs', [disk], { rw: [disk] });
      writeJsonAtomic(path.join(this.dir(name), 'volume.json'), { ...v, sizeMib }, 0o600);
    });
  }

  async remove(name: string): Promise<void> {
    this.get(name);
    await withLock(this.lock, `the volumes in ${this.home.root}`, async () => {
      const users = this.usedBy(name);
      if (users.length) throw new VolumeInUseError(`volume ${name} is in use by box ${users.join(', ')}: remove ${users.length > 1 ? 'those boxes' : 'that box'} first`);
      // The record first, so an interrupted remove leaves no half volume visible.
      fs.rmSync(path.join(this.dir(name), 'volume.json'), { force: true });
      fs.rmSync(this.dir(name), { recursive: true, force: true });
    });
  }

  /** Bytes the volume's disk takes on the host (it is sparse). */
  usedBytes(name: string): number {
    try {
      return fs.statSync(this.diskPath(name)).blocks * 512;
    } catch {
      return 0;
    }
  }
}
