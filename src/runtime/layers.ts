// Layers: qcow2 files under home/layers that are never written again, shared copy-on-write by boxes.
// A clone freezes its source's current disk into a layer (a hard link, then the source moves onto a new qcow2
// over it), so the source and every clone read the same clusters and only write their own: constant time
// whatever the disk holds. Snapshots taken before a freeze stay inside the layer ("frozen").
import * as fs from 'node:fs';
import * as path from 'node:path';
import { templateRefs } from './template-refs.js';
import { randomBytes } from 'node:crypto';
import { run } from '../util/exec.js';
import { ensureDir, renameDurable } from '../util/fs.js';
import type { Home } from './home.js';
import type { RecordStore } from './records.js';

export const newLayerPath = (home: Home) => path.join(ensureDir(home.layersDir), `${randomBytes(8).toString('hex')}.qcow2`);
export const isLayer = (home: Home, file: string) => file.startsWith(home.layersDir + path.sep);

export interface ChainImage {
  filename: string;
  format: string;
  backing?: string;
  /** A qcow2 whose clusters live in another file. */
  dataFile?: string;
  snapshots: string[];
}

/** What a disk tool working on a box's disk (written by its VMM) is given: the disk, and read-only what it may
 *  stand on (layers and image bases); a backing file named elsewhere is not in its view. */
export function diskToolFiles(home: Home, disk: string): { rw: string[]; ro: string[] } {
  return { rw: [disk], ro: [home.layersDir, path.join(home.root, 'images', 'bases')] };
}

/** The disk and the images under it, top first (-U: also while QEMU has them open). */
export async function backingChain(disk: string): Promise<ChainImage[]> {
  const out = JSON.parse(await run('qemu-img', ['info', '-U', '--backing-chain', '--output=json', disk])) as {
    filename: string;
    format: string;
    'full-backing-filename'?: string;
    'backing-filename'?: string;
    'format-specific'?: { data?: { 'data-file'?: string } };
    snapshots?: { name: string }[];
  }[];
  return out.map((i) => ({
    filename: path.resolve(i.filename),
    format: i.format,
    backing: i['full-backing-filename'] ?? i['backing-filename'],
    dataFile: i['format-specific']?.data?.['data-file'],
    snapshots: (i.snapshots ?? []).map((s) => s.name),
  }));
}

export class TamperedDiskError extends Error {}

/** A box's disk chain, checked: the VM writes its disk, so its header may have been rewritten by a guest that
 *  broke out. Every image below it must be a layer or an image base of this home (what boxlite makes), and none
 *  may keep its data in another file; otherwise nothing of the chain is used (nor bound into a jail, nor read by
 *  an export). */
export async function checkedChain(home: Home, disk: string): Promise<ChainImage[]> {
  const chain = await backingChain(disk);
  const real = (p: string) => fs.realpathSync(p);
  const allowed = [home.layersDir, path.join(home.root, 'images', 'bases')].filter((d) => fs.existsSync(d)).map((d) => real(d) + path.sep);
  for (const [i, c] of chain.entries()) {
    if (c.dataFile) throw new TamperedDiskError(`${c.filename} keeps its data in ${c.dataFile}`);
    if (i === 0) continue;
    const r = fs.existsSync(c.filename) ? real(c.filename) : c.filename;
    if (!allowed.some((a) => r.startsWith(a))) throw new TamperedDiskError(`it reads from ${c.filename}, which is not a layer or image base of ${home.root}`);
  }
  return chain;
}

/** A qcow2 over `backing`, made under a temporary name and renamed into place. unsafe: do not open the backing
 *  (QEMU may hold it), the size is given. */
export async function createTop(backing: string, target: string, sizeMib: number, opts: { unsafe?: boolean; backingFormat?: 'qcow2' | 'raw' } = {}): Promise<void> {
  const part = `${target}.part`;
  fs.rmSync(part, { force: true });
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', opts.backingFormat ?? 'qcow2', '-b', backing, ...(opts.unsafe ? ['-u'] : []), '-o', 'cluster_size=65536', part, `${sizeMib}M`]);
  renameDurable(part, target);
}

/** Whether the top holds no data of its own (everything reads from below): freezing it again would add nothing. */
export async function isEmptyTop(disk: string): Promise<boolean> {
  const map = JSON.parse(await run('qemu-img', ['map', '-U', '--output=json', disk])) as { depth: number; data: boolean }[];
  return map.every((m) => m.depth > 0 || !m.data);
}

/** A new layer holding a snapshot's view of chain[i]: only what the box wrote above its base is copied (the
 *  layer is an overlay of the same base). */
export async function layerFromSnapshot(home: Home, chain: ChainImage[], i: number, snapshot: string): Promise<string> {
  const holder = chain[i];
  const layer = newLayerPath(home);
  const part = `${layer}.part`;
  await run('qemu-img', ['convert', '-U', '-l', `snapshot.name=${snapshot}`, '-O', 'qcow2', ...(holder.backing ? ['-B', holder.backing, '-F', chain[i + 1].format] : []), holder.filename, part]);
  renameDurable(part, layer);
  return layer;
}

/** The boxes (by name) whose disks read from a layer. */
export async function dependentsOf(home: Home, records: RecordStore, layer: string): Promise<string[]> {
  const out: string[] = [];
  for (const r of records.list()) {
    const disk = path.join(home.boxDir(r.id), 'disk.qcow2');
    if (!fs.existsSync(disk)) continue;
    const chain = await backingChain(disk).catch(() => []);
    if (chain.slice(1).some((c) => c.filename === path.resolve(layer))) out.push(r.name);
  }
  return out;
}

/** Deletes layers no box reads from any more (and what a killed freeze left half made). Call under the registry
 *  lock. When any box's chain cannot be read, nothing is deleted: a layer is never removed on doubt. */
export async function collectLayers(home: Home, records: RecordStore): Promise<{ removed: string[]; kept: string }> {
  const dir = home.layersDir;
  if (!fs.existsSync(dir)) return { removed: [], kept: '' };
  const used = new Set<string>();
  for (const r of records.list()) {
    // disk.next.qcow2: a live freeze a killed CLI left before its rename (finished at the box's next start).
    for (const f of ['disk.qcow2', 'ctl/disk.next.qcow2']) {
      const disk = path.join(home.boxDir(r.id), f);
      if (!fs.existsSync(disk)) continue;
      let chain: ChainImage[];
      try {
        chain = await backingChain(disk);
      } catch (e) {
        return { removed: [], kept: `the disk chain of box ${r.name} could not be read (${(e as Error).message.split('\n')[0]})` };
      }
      for (const c of chain) used.add(c.filename);
    }
    for (const l of Object.values(r.snapshotLayers ?? {})) used.add(path.resolve(l));
    for (const s of r.snapshots ?? []) if (s.layer) used.add(path.resolve(s.layer)); // frozen snapshots live there
  }
  for (const t of templateRefs(home.root)) used.add(t.layer);
  const removed: string[] = [];
  for (const n of fs.readdirSync(dir)) {
    const f = path.join(dir, n);
    if (used.has(f)) continue;
    fs.rmSync(f, { force: true });
    removed.push(f);
  }
  return { removed, kept: '' };
}
