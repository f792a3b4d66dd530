// Box records: boxes/{id}/box.json, written atomically. A record says what the box is and the state boxlite last
// put it in; the observed state (is the VM still alive?) is derived from the engine when read.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Source } from './rootfs.js';
import type { NetworkMode, PortMapping } from './network.js';
import type { SnapshotInfo } from './snapshots.js';
import { readJson, writeJsonAtomic } from '../util/fs.js';
import { Home } from './home.js';
import { BoxNotFoundError } from './errors.js';

export interface BoxOptions {
  cpus: number;
  memoryMib: number;
  diskSizeMib: number;
  env: Record<string, string>;
  workingDir: string;
  user: string;
  network: NetworkMode;
  /** As declared: a host port of 0 is chosen at each start. */
  ports: PortMapping[];
  dns: string[];
}

export type BoxState = 'created' | 'running' | 'stopped' | 'exited';
export type ExitReason = 'exit' | 'crash' | 'killed';

export interface ExitInfo {
  reason: ExitReason;
  detail: string;
  at: string;
}

export interface BoxRecord {
  id: string;
  name: string;
  createdAt: string;
  source: Source;
  options: BoxOptions;
  state: BoxState;
  exit?: ExitInfo;
  startedAt?: string;
  stoppedAt?: string;
  accel?: string;
  /** When each snapshot was taken (the qcow2 disk says which exist). */
  snapshots?: SnapshotInfo[];
  /** The forwards in effect since the last start, with their host ports. */
  ports?: PortMapping[];
  /** The size the guest last grew the box's file system to (image boxes start at the image's size). */
  fsSizeMib?: number;
  /** Removed when it stops (run --rm). */
  autoRemove?: boolean;
}

export const recordPath = (home: Home, id: string) => path.join(home.boxDir(id), 'box.json');

export function readRecord(home: Home, id: string): BoxRecord | undefined {
  return readJson<BoxRecord>(recordPath(home, id));
}

export function writeRecord(home: Home, rec: BoxRecord): void {
  writeJsonAtomic(recordPath(home, rec.id), rec);
}

export function listRecords(home: Home): BoxRecord[] {
  let ids: string[] = [];
  try {
    ids = fs.readdirSync(home.boxesDir);
  } catch {}
  const out: BoxRecord[] = [];
  for (const id of ids) {
    const r = readRecord(home, id);
    if (r) out.push(r); // a folder without a record is a create that was interrupted: ignored
  }
  return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

/** Finds a box by exact name, exact id, or a unique id prefix. */
export function findRecord(home: Home, ref: string): BoxRecord {
  const all = listRecords(home);
  const hit =
    all.find((r) => r.name === ref) ??
    all.find((r) => r.id === ref) ??
    (() => {
      const byPrefix = ref.length >= 4 ? all.filter((r) => r.id.startsWith(ref)) : [];
      return byPrefix.length === 1 ? byPrefix[0] : undefined;
    })();
  if (!hit) throw new BoxNotFoundError(`no box named or with id "${ref}": see 'boxlite ps -a' for the boxes in ${home.root}`);
  return hit;
}
