// Images as users see them: pull, load, list, inspect, remove, prune — over the store in the home folder.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Home } from '../home.js';
import type { RecordStore } from '../records.js';
import { ImageError, ImageNotFoundError } from '../../core/errors.js';
import { run } from '../../util/exec.js';
import { withLock } from '../../util/lock.js';
import { pidAlive } from '../../util/proc.js';
import { canonicalName, familiarReference, formatReference, parseReference } from './reference.js';
import { pull, type PullOptions } from './pull.js';
import { loadArchive, loadLayout } from './load.js';
import { baseKey, ensureBase, existingBase, type Base } from './assemble.js';
import { ImageStore, digestHex, type ImageRecord } from './store.js';
import { RegistryClient, type RegistryOptions } from './registry.js';

export type { ImageRecord } from './store.js';
export type { LayerProgress, PullOptions } from './pull.js';
export type { RegistryOptions, Credentials } from './registry.js';
export type { Base } from './assemble.js';
export { parseReference, formatReference, familiarReference } from './reference.js';

/** Registries reached over plain HTTP besides loopback: BOXLITE_INSECURE_REGISTRIES=host:port,host2 */
function envInsecure(): string[] {
  return (process.env.BOXLITE_INSECURE_REGISTRIES ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

export interface RemoveResult {
  untagged: string[];
  removed: boolean;
}

export interface PruneResult {
  images: string[];
  blobs: number;
  bases: number;
  bytes: number;
}

export class Images {
  readonly store: ImageStore;
  private readonly registry: RegistryOptions;
  /** The credentials and insecure hosts this runtime reaches registries with (pull's, and push's). */
  get registryOptions(): RegistryOptions {
    return this.registry;
  }

  constructor(
    readonly home: Home,
    private readonly records: RecordStore,
    registry: RegistryOptions = {},
  ) {
    this.store = new ImageStore(home);
    this.registry = { ...registry, insecure: [...(registry.insecure ?? []), ...envInsecure()] };
  }

  /** An image by reference (as written or canonical), by repo@digest, or by a prefix of its ID. */
  find(ref: string): ImageRecord | undefined {
    const refs = this.store.refs();
    if (refs[ref]) return this.store.record(refs[ref]);
    let parsed;
    try {
      parsed = parseReference(ref);
    } catch {
      parsed = undefined;
    }
    if (parsed) {
      const id = refs[formatReference(parsed)];
      if (id) return this.store.record(id);
      if (parsed.digest) {
        const hit = this.store.list().find((r) => r.manifestDigest === parsed.digest || r.id === parsed.digest);
        if (hit) return hit;
      }
    }
    const hex = ref.replace(/^sha256:/, '');
    if (/^[a-f0-9]{4,64}$/.test(hex)) {
      const hits = this.store.list().filter((r) => digestHex(r.id).startsWith(hex));
      if (hits.length === 1) return hits[0];
      if (hits.length > 1) throw new ImageError(`image ID prefix ${hex} is ambiguous (${hits.length} images): give more characters`);
    }
    return undefined;
  }

  get(ref: string): ImageRecord {
    const r = this.find(ref);
    if (!r) throw new ImageNotFoundError(`no image "${ref}" in ${this.store.root}: pull it with 'boxlite images pull ${ref}' or load it with 'boxlite images load FILE'`);
    return r;
  }

  /** The reference to show for an image: its first name, or its short ID. */
  static label(r: ImageRecord): string {
    const first = r.references[0];
    if (!first) return digestHex(r.id).slice(0, 12);
    try {
      return familiarReference(parseReference(first));
    } catch {
      return first;
    }
  }

  async pull(reference: string, opts: PullOptions = {}): Promise<ImageRecord> {
    const use = await this.store.use(`the image store in ${this.store.root}`);
    try {
      return await pull(this.store, reference, { ...this.registry, ...opts, insecure: [...(this.registry.insecure ?? []), ...(opts.insecure ?? [])] });
    } finally {
      use.release();
    }
  }

  /** Throws, saying why, unless the image is stored or its registry answers for its manifest (nothing is pulled):
   *  what plan checks before it promises to create a box of it. */
  async available(reference: string): Promise<void> {
    if (this.find(reference)) return;
    const ref = parseReference(reference);
    await new RegistryClient(ref, this.registry).manifest(ref.digest ?? ref.tag!);
  }

  /** The image if stored, else pulled. */
  async ensure(reference: string, opts: PullOptions = {}): Promise<ImageRecord> {
    return this.find(reference) ?? this.pull(reference, opts);
  }

  async load(file: string): Promise<ImageRecord[]> {
    const use = await this.store.use(`the image store in ${this.store.root}`);
    try {
      return await loadArchive(this.store, path.resolve(file));
    } finally {
      use.release();
    }
  }

  /** An OCI layout folder used directly as a box source: stored under the name oci-layout:PATH unless it names itself. */
  async loadLayout(dir: string): Promise<ImageRecord> {
    const abs = path.resolve(dir);
    const use = await this.store.use(`the image store in ${this.store.root}`);
    try {
      const recs = await loadLayout(this.store, abs, `oci-layout:${abs}`);
      return recs.find((r) => r.references.includes(`oci-layout:${abs}`)) ?? recs[0];
    } finally {
      use.release();
    }
  }

  list(): ImageRecord[] {
    return this.store.list();
  }

  base(rec: ImageRecord, say?: (m: string) => void): Promise<Base> {
    return ensureBase(this.store, rec, Images.label(rec), say);
  }

  /** Names of the boxes whose disks were made from an image. */
  usedBy(id: string): string[] {
    return this.records
      .list()
      .filter((b) => b.source.kind === 'image' && b.source.imageId === id)
      .map((b) => b.name);
  }

  /** Removes a reference; the image goes with its last reference (or at once, when named by ID). */
  async remove(ref: string, opts: { force?: boolean } = {}): Promise<RemoveResult> {
    const rec = this.get(ref);
    const use = await this.store.use(`the image store in ${this.store.root} (a pull or a create is using it)`, { exclusive: true });
    return withLock(this.store.lockFile, `the image store in ${this.store.root}`, () => {
      const refs = this.store.refs();
      const named = Object.keys(refs).filter((k) => refs[k] === rec.id);
      const byName = named.find((k) => k === ref || k === canonicalName(ref));
      const dropping = byName && named.length > 1 ? [byName] : named;
      const last = dropping.length === named.length;
      if (last) {
        const users = this.usedBy(rec.id);
        if (users.length > 0 && !opts.force) {
          throw new ImageError(`image ${Images.label(rec)} is used by box${users.length > 1 ? 'es' : ''} ${users.join(', ')}: remove ${users.length > 1 ? 'them' : 'it'} first, or force with 'boxlite images rm -f' (the boxes keep working: their base stays until they are removed and images are pruned)`);
        }
      }
      this.store.unregister(rec.id, last ? undefined : dropping);
      return { untagged: dropping, removed: last };
    }).finally(() => use.release());
  }

  /** Removes what nothing needs: images without a reference (all unused images with all), their blobs and bases. */
  async prune(opts: { all?: boolean } = {}): Promise<PruneResult> {
    // Exclusive: no pull, load or create is between storing something and recording that it uses it.
    const use = await this.store.use(`the image store in ${this.store.root} (a pull or a create is using it)`, { exclusive: true });
    return withLock(this.store.lockFile, `the image store in ${this.store.root}`, async () => {
      const boxes = this.records.list();
      const usedImages = new Set(boxes.flatMap((b) => (b.source.kind === 'image' ? [b.source.imageId] : [])));
      const usedBases = new Set(boxes.flatMap((b) => (b.source.kind === 'image' ? [path.basename(b.source.base)] : [])));
      const result: PruneResult = { images: [], blobs: 0, bases: 0, bytes: 0 };
      for (const r of this.store.list()) {
        if (usedImages.has(r.id)) continue;
        if (r.references.length === 0 || opts.all) {
          this.store.unregister(r.id);
          result.images.push(Images.label(r));
        }
      }
      const keep = new Set<string>();
      for (const r of this.store.list()) {
        for (const d of [r.id, r.manifestDigest, r.configDigest, ...r.layers.map((l) => l.digest)]) keep.add(digestHex(d));
        usedBases.add(`${baseKey(r)}.ext4`);
      }
      for (const f of fs.readdirSync(this.store.blobsDir)) {
        if (keep.has(f)) continue;
        result.bytes += fs.statSync(path.join(this.store.blobsDir, f)).size;
        fs.rmSync(path.join(this.store.blobsDir, f), { force: true });
        result.blobs++;
      }
      for (const f of fs.readdirSync(this.store.basesDir)) {
        // Leftovers of an assembly whose process died (name-<pid>); a live one is left alone.
        const pid = /-(\d+)$/.exec(f)?.[1];
        if (pid && !pidAlive(Number(pid))) {
          fs.rmSync(path.join(this.store.basesDir, f), { recursive: true, force: true });
          continue;
        }
        if (!f.endsWith('.ext4') || usedBases.has(f)) continue;
        const p = path.join(this.store.basesDir, f);
        result.bytes += Number((await run('du', ['-s', '-B1', p])).split(/\s/)[0]);
        fs.rmSync(p, { force: true });
        fs.rmSync(p.replace(/\.ext4$/, '.json'), { force: true });
        result.bases++;
      }
      // Partial downloads and leftovers of interrupted work.
      for (const f of fs.readdirSync(this.store.tmpDir)) if (!f.endsWith('.lock')) fs.rmSync(path.join(this.store.tmpDir, f), { recursive: true, force: true });
      return result;
    }).finally(() => use.release());
  }

  existingBase(rec: ImageRecord): Base | null {
    return existingBase(this.store, rec);
  }
}
