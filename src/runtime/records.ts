// Box records: boxes/{id}/box.json. A record says what the box is and the state boxlite last put it in; the
// observed state (is the VM still alive?) is derived from the engine when read. Every change goes through
// update(), which re-reads the record under that record's own lock, so no writer loses another's change, and
// every write reaches the disk (file and folder) before the call returns.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CorruptFileError, readJson, writeJsonAtomic } from '../util/fs.js';
import { acquireLock } from '../util/lock.js';
import { BoxNotFoundError, BoxStateError } from '../core/errors.js';
import { lanSegment } from '../core/network.js';
import type { Home } from './home.js';
import type { BoxRecord } from './types.js';

const RECORD = 'box.json';
const warned = new Set<string>();

export class RecordStore {
  constructor(
    private readonly home: Home,
    /** Where "skipping a corrupt record" is said (once per file and process). */
    private readonly warn: (m: string) => void = (m) => process.stderr.write(m + '\n'),
  ) {}

  path(id: string): string {
    return path.join(this.home.boxDir(id), RECORD);
  }

  /** The record, or undefined when there is none; a corrupt one is reported and treated as absent. */
  read(id: string): BoxRecord | undefined {
    let r: (BoxRecord & { project?: BoxRecord['label'] }) | undefined;
    try {
      r = readJson<BoxRecord & { project?: BoxRecord['label'] }>(this.path(id));
    } catch (e) {
      if (!(e instanceof CorruptFileError)) throw e;
      if (!warned.has(e.file)) {
        warned.add(e.file);
        this.warn(`boxlite: skipping box ${id}: its record ${e.file} is corrupt (${e.message.replace(/^.*?\(/, '').replace(/\)$/, '')}); remove that folder, or restore the file`);
      }
      return undefined;
    }
    if (r && r.project && !r.label) {
      // Records written before labels were opaque kept the project's label under "project".
      r.label = r.project;
      delete r.project;
    }
    const lan = r?.options?.lan as (BoxRecord['options']['lan'] & { mcast?: string }) | undefined;
    if (lan?.mcast && !lan.segment) {
      // Records written while LANs were multicast groups: the group named the LAN, and so names its segment.
      lan.segment = lanSegment(lan.mcast);
      delete lan.mcast;
    }
    return r;
  }

  /** The record of a box this process knows exists; a BoxStateError when it was removed meanwhile. */
  get(id: string): BoxRecord {
    const r = this.read(id);
    if (!r) throw new BoxStateError(`box ${id} was removed`);
    return r;
  }

  /** Every readable record, oldest first (folders without one are interrupted creates: ignored). */
  list(): BoxRecord[] {
    let ids: string[] = [];
    try {
      ids = fs.readdirSync(this.home.boxesDir);
    } catch {}
    const out: BoxRecord[] = [];
    for (const id of ids) {
      if (id.startsWith('.')) continue;
      const r = this.read(id);
      if (r) out.push(r);
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** A box by exact name, exact id, or a unique id prefix. */
  find(ref: string): BoxRecord {
    const all = this.list();
    const hit =
      all.find((r) => r.name === ref) ??
      all.find((r) => r.id === ref) ??
      (() => {
        const byPrefix = ref.length >= 4 ? all.filter((r) => r.id.startsWith(ref)) : [];
        return byPrefix.length === 1 ? byPrefix[0] : undefined;
      })();
    if (!hit) throw new BoxNotFoundError(`no box named or with id "${ref}": see 'boxlite ps -a' for the boxes in ${this.home.root}`);
    return hit;
  }

  /** Writes a new box's record: the last step of making a box, so a folder without one is an interrupted create. */
  create(rec: BoxRecord): void {
    writeJsonAtomic(this.path(rec.id), rec, 0o600);
  }

  /** Re-reads the record under its lock, applies change (which returns the new record, or edits it in place), and
   *  writes it back. Holding the lock only for this, never across a boot or a shutdown. */
  async update(id: string, change: (r: BoxRecord) => BoxRecord | void): Promise<BoxRecord> {
    if (!fs.existsSync(this.home.boxDir(id))) throw new BoxStateError(`box ${id} was removed`);
    const lock = await acquireLock(this.home.recordLock(id), `the record of box ${id}`, 30_000);
    try {
      const cur = this.get(id);
      const next = change(cur) ?? cur;
      writeJsonAtomic(this.path(id), next, 0o600);
      return next;
    } finally {
      lock.release();
    }
  }

  /** Deletes the record first, so an interrupted remove leaves no half box visible. */
  forget(id: string): void {
    fs.rmSync(this.path(id), { force: true });
  }
}
