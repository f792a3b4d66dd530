// Box records: boxes/{id}/box.json, written atomically. A record says what the box is and the state boxlite last
// put it in; the observed state (is the VM still alive?) is derived from the engine when read.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Source } from './rootfs.js';
import type { NetworkMode, PortMapping } from './network.js';
import type { SnapshotInfo } from './snapshots.js';
import type { VolumeMount } from './volumes.js';
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
  /** Named volumes mounted into the box. */
  volumes?: VolumeMount[];
  /** The guest's host name; default the box's name. */
  hostname?: string;
  /** A NIC on a project's private LAN (see src/reconciler/lan.ts). */
  lan?: LanConfig;
  /** Host folders and files mounted into the box (virtiofs). */
  binds?: BindMount[];
}

export interface BindMount {
  /** Absolute host path: a folder or a file. */
  hostPath: string;
  target: string;
  readOnly: boolean;
}

export interface LanConfig {
  /** The loopback multicast group carrying the LAN's frames: 239.x.y.z:port. */
  mcast: string;
  /** The box's address on the LAN (a /24). */
  address: string;
  mac: string;
}

export type BoxState = 'created' | 'running' | 'stopped' | 'exited';
export type ExitReason = 'exit' | 'crash' | 'killed';

export interface ExitInfo {
  reason: ExitReason;
  detail: string;
  at: string;
}

/** What a project (boxlite.yaml) knows about one of its boxes. The runtime keeps it; the reconciler reads it. */
export interface ProjectLabel {
  project: string;
  /** The box's name in the project. */
  box: string;
  /** The project file the box was last applied from. */
  file: string;
  /** The normalised box spec it was last made to match (src/spec BoxSpec). */
  applied: Record<string, unknown>;
  /** A hash per field group of `applied` (compose's config hash, per group so the action can be told apart). */
  hash: Record<string, string>;
  /** Provisioning: pending until every setup command has succeeded. */
  setup: 'pending' | 'done' | 'failed';
  setupError?: string;
  /** The long-running command started with the box. */
  command?: { execId: string; startedAt: string };
  health?: HealthState;
  /** Set on a box kept aside by a snapshot policy when its project box was recreated. */
  retiredAt?: string;
}

export interface HealthState {
  status: 'starting' | 'healthy' | 'unhealthy';
  failingStreak: number;
  /** The output of the last failing check. */
  output?: string;
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
  /** Set for a box made by a project. */
  project?: ProjectLabel;
  /** Layers made from this box's snapshots for clones (snapshot name → layer file), reused by later clones. */
  snapshotLayers?: Record<string, string>;
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
