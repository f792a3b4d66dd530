// Named volumes: ext4 disks of their own under home/volumes/{name}/, attached to a box as an extra virtio disk
// and mounted by the guest's init. They outlive the boxes that use them; a volume belongs to one running box at a
// time (QEMU also takes a write lock on the file, so two VMs can never share one by accident).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Home } from './home.js';
import { listRecords } from './records.js';
import { readJson, writeJsonAtomic, ensureDir } from '../util/fs.js';
import { run } from '../util/exec.js';
import { withLock } from '../util/lock.js';
import { BoxliteError, InvalidOptionError } from './errors.js';

export class VolumeNotFoundError extends BoxliteError {}
export class VolumeInUseError extends BoxliteError {}

export interface VolumeRecord {
  name: string;
  sizeMib: number;
  createdAt: string;
  /** Set for a volume declared by a project. */
  project?: string;
}

/** A mount of a named volume into a box. */
export interface VolumeMount {
  volume: string;
  target: string;
  readOnly: boolean;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,79}$/;
export const MIN_VOLUME_MIB = 16;

export class Volumes {
  constructor(private readonly home: Home) {}

  private get root(): string {
    return path.join(this.home.root, 'volumes');
  }
  private dir(name: string): string {
    return path.join(this.root, name);
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
      names = fs.readdirSync(this.root);
    } catch {}
    return names
      .map((n) => readJson<VolumeRecord>(path.join(this.dir(n), 'volume.json')))
      .filter((v): v is VolumeRecord => !!v)
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  find(name: string): VolumeRecord | undefined {
    return readJson<VolumeRecord>(path.join(this.dir(name), 'volume.json'));
  }

  get(name: string): VolumeRecord {
    const v = this.find(name);
    if (!v) throw new VolumeNotFoundError(`no volume named "${name}": see 'boxlite volume ls', or create it with 'boxlite volume create ${name}'`);
    return v;
  }

  /** The boxes (by name) whose options mount the volume. */
  usedBy(name: string): string[] {
    return listRecords(this.home)
      .filter((r) => (r.options.volumes ?? []).some((m) => m.volume === name))
      .map((r) => r.name);
  }

  async create(name: string, sizeMib: number, opts: { project?: string } = {}): Promise<VolumeRecord> {
    if (!NAME_RE.test(name)) throw new InvalidOptionError(`volume name "${name}" is invalid: use letters, digits, '_', '.', '-' (up to 80, starting with a letter or digit)`);
    if (!Number.isInteger(sizeMib) || sizeMib < MIN_VOLUME_MIB) throw new InvalidOptionError(`volume size must be a whole number of MiB, at least ${MIN_VOLUME_MIB} (got ${sizeMib})`);
    return withLock(this.lock, `the volumes in ${this.home.root}`, async () => {
      if (this.find(name)) throw new InvalidOptionError(`a volume named "${name}" already exists: choose another name, or remove it with 'boxlite volume rm ${name}'`);
      const dir = ensureDir(this.dir(name));
      const part = path.join(dir, 'disk.img.part');
      try {
        // Sparse: an empty 10 GiB volume takes a few MiB on the host. root_owner: a fresh volume mounted at a
        // folder looks like an empty folder owned by root, as docker's do.
        await run('/usr/sbin/mkfs.ext4', ['-q', '-F', '-L', `vol-${name}`.slice(0, 16), '-E', 'root_owner=0:0', '-m', '0', part, `${sizeMib}M`]);
        // A new volume is an empty folder in the box, as docker's are: no lost+found (e2fsck recreates it if needed).
        await run('/usr/sbin/debugfs', ['-w', '-R', 'rmdir lost+found', part]);
        fs.renameSync(part, this.diskPath(name));
      } catch (e) {
        fs.rmSync(dir, { recursive: true, force: true });
        throw new BoxliteError(`cannot create volume ${name}: ${(e as Error).message}`);
      }
      const rec: VolumeRecord = { name, sizeMib, createdAt: new Date().toISOString(), ...(opts.project ? { project: opts.project } : {}) };
      writeJsonAtomic(path.join(dir, 'volume.json'), rec); // the record last: a folder without one is an interrupted create
      return rec;
    });
  }

  /** Grows a volume no running box has mounted (the file system is grown on the host). */
  async grow(name: string, sizeMib: number, isRunning: (boxName: string) => boolean): Promise<void> {
    const v = this.get(name);
    if (sizeMib < v.sizeMib) throw new InvalidOptionError(`volume ${name}: volumes only grow (it has ${v.sizeMib} MiB, asked for ${sizeMib} MiB)`);
    if (sizeMib === v.sizeMib) return;
    const busy = this.usedBy(name).filter(isRunning);
    if (busy.length) throw new VolumeInUseError(`volume ${name} is mounted by running box ${busy.join(', ')}: stop it first`);
    await withLock(this.lock, `the volumes in ${this.home.root}`, async () => {
      const disk = this.diskPath(name);
      fs.truncateSync(disk, sizeMib * 1024 * 1024);
      await run('/usr/sbin/e2fsck', ['-f', '-p', disk]).catch(() => {}); // resize2fs wants a freshly checked fs
      await run('/usr/sbin/resize2fs', [disk]);
      writeJsonAtomic(path.join(this.dir(name), 'volume.json'), { ...v, sizeMib });
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
