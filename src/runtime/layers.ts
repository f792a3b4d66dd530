// Layers: qcow2 files under home/layers that are never written again, shared copy-on-write by boxes.
// A clone freezes its source's current disk into a layer (a hard link, then the source moves onto a new qcow2
// over it), so the source and every clone read the same clusters and only write their own: constant time
// whatever the disk holds. Snapshots taken before a freeze stay inside the layer ("frozen").
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { run } from '../util/exec.js';
import { ensureDir } from '../util/fs.js';
import { listRecords } from './records.js';
import type { Home } from './home.js';

export const layersDir = (home: Home) => path.join(home.root, 'layers');
export const newLayerPath = (home: Home) => path.join(ensureDir(layersDir(home)), `${randomBytes(8).toString('hex')}.qcow2`);

export interface ChainImage {
  filename: string;
  format: string;
  backing?: string;
  snapshots: string[];
}

/** The disk and the images under it, top first (-U: also while QEMU has them open). */
export async function backingChain(disk: string): Promise<ChainImage[]> {
  const out = JSON.parse(await run('qemu-img', ['info', '-U', '--backing-chain', '--output=json', disk])) as {
    filename: string;
    format: string;
    'full-backing-filename'?: string;
    'backing-filename'?: string;
    snapshots?: { name: string }[];
  }[];
  return out.map((i) => ({
    filename: path.resolve(i.filename),
    format: i.format,
    backing: i['full-backing-filename'] ?? i['backing-filename'],
    snapshots: (i.snapshots ?? []).map((s) => s.name),
  }));
}

/** A qcow2 over `backing`, made under a temporary name and renamed into place. unsafe: do not open the backing
 *  (QEMU may hold it), the size is given. */
export async function createTop(backing: string, target: string, sizeMib: number, unsafe = false): Promise<void> {
  const part = `${target}.part`;
  fs.rmSync(part, { force: true });
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', backing, ...(unsafe ? ['-u'] : []), '-o', 'cluster_size=65536', part, `${sizeMib}M`]);
  fs.renameSync(part, target);
}

/** Whether the top holds no data of its own (everything reads from below): freezing it again would add nothing. */
export async function isEmptyTop(disk: string): Promise<boolean> {
  const map = JSON.parse(await run('qemu-img', ['map', '-U', '--output=json', disk])) as { depth: number; data: boolean }[];
  return map.every((m) => m.depth > 0 || !m.data);
}

/** The boxes (by name) whose disks read from a layer. */
export async function dependentsOf(home: Home, layer: string): Promise<string[]> {
  const out: string[] = [];
  for (const r of listRecords(home)) {
    const disk = path.join(home.boxDir(r.id), 'disk.qcow2');
    if (!fs.existsSync(disk)) continue;
    const chain = await backingChain(disk).catch(() => []);
    if (chain.slice(1).some((c) => c.filename === path.resolve(layer))) out.push(r.name);
  }
  return out;
}

/** Deletes layers no box reads from any more (and what a killed freeze left half made). */
export async function collectLayers(home: Home): Promise<void> {
  const dir = layersDir(home);
  if (!fs.existsSync(dir)) return;
  const used = new Set<string>();
  for (const r of listRecords(home)) {
    // disk.next.qcow2: a live freeze a killed CLI left before its rename (finished at the box's next start).
    for (const f of ['disk.qcow2', 'disk.next.qcow2']) {
      const disk = path.join(home.boxDir(r.id), f);
      if (!fs.existsSync(disk)) continue;
      for (const c of await backingChain(disk).catch(() => [])) used.add(c.filename);
    }
  }
  for (const r of listRecords(home)) {
    for (const l of Object.values(r.snapshotLayers ?? {})) used.add(path.resolve(l));
    for (const s of r.snapshots ?? []) if (s.layer) used.add(path.resolve(s.layer)); // frozen snapshots live there
  }
  for (const n of fs.readdirSync(dir)) {
    const f = path.join(dir, n);
    if (!used.has(f)) fs.rmSync(f, { force: true });
  }
}
