// The image store under the home: content-addressed blobs shared by every image and box, one record per image,
// and an index of references. A blob becomes visible only once its digest is verified (rename into blobs/), so an
// interrupted download can never be mistaken for a finished one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import type { Home } from '../home.js';
import { DigestMismatchError, ImageError } from '../../core/errors.js';
import { CorruptFileError, ensureDir, readJson, renameDurable, writeJsonAtomic } from '../../util/fs.js';
import { acquireLock, withLock, type Lock } from '../../util/lock.js';
import type { ImageConfig } from '../types.js';

export interface LayerDescriptor {
  digest: string;
  size: number;
  mediaType: string;
}

export interface ImageRecord {
  /** The config digest, as docker uses it for the image ID. */
  id: string;
  /** The platform manifest's digest (what `repo@sha256:…` pins). */
  manifestDigest: string;
  references: string[];
  platform: string;
  configDigest: string;
  layers: LayerDescriptor[];
  /** Uncompressed layer digests from the config: what its maker claims the layers contain, whatever their
   *  compression. Checked against the layers' content when the image's base is built (assemble.ts). */
  diffIds: string[];
  config: ImageConfig;
  created?: string;
  /** Sum of the (compressed) layer sizes. */
  size: number;
  storedAt: string;
  /** Where it came from: a registry, a tarball, an OCI layout. */
  origin: string;
  /** A commit: the references of the images its layers came from, so a push can mount them from there. */
  mountFrom?: string[];
}

const DIGEST_RE = /^sha256:([a-f0-9]{64})$/;

export function digestHex(digest: string): string {
  const m = DIGEST_RE.exec(digest);
  if (!m) throw new ImageError(`unsupported or malformed digest "${digest}" (only sha256 is supported)`);
  return m[1];
}

export const sha256Digest = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export class ImageStore {
  readonly root: string;
  constructor(readonly home: Home) {
    this.root = path.join(home.root, 'images');
  }
  get blobsDir(): string {
    return ensureDir(path.join(this.root, 'blobs', 'sha256'));
  }
  get tmpDir(): string {
    return ensureDir(path.join(this.root, 'tmp'));
  }
  get basesDir(): string {
    return ensureDir(path.join(this.root, 'bases'));
  }
  private get recordsDir(): string {
    return ensureDir(path.join(this.root, 'records'));
  }
  private get refsFile(): string {
    return path.join(this.root, 'refs.json');
  }
  get lockFile(): string {
    return path.join(ensureDir(this.root), 'images.lock');
  }

  /** Held shared by everything that puts things into the store or builds on them before a record says so (a pull,
   *  a load, a base being assembled, a box being created); held exclusively by prune and rm, which therefore never
   *  delete a blob, a partial download or a base that such work is about to use. */
  use(what: string, mode: { exclusive?: boolean } = {}): Promise<Lock> {
    return acquireLock(path.join(ensureDir(this.root), 'use.lock'), what, 30 * 60_000, { shared: !mode.exclusive });
  }

  blobPath(digest: string): string {
    return path.join(this.blobsDir, digestHex(digest));
  }
  hasBlob(digest: string, size?: number): boolean {
    const st = fs.statSync(this.blobPath(digest), { throwIfNoEntry: false });
    return !!st && (size === undefined || size < 0 || st.size === size);
  }

  /** Stores a small blob held in memory (manifests, configs) after checking its digest. */
  putBlob(data: Buffer, digest: string, what: string): void {
    const actual = sha256Digest(data);
    if (actual !== digest) throw new DigestMismatchError(`${what}: content does not match its digest (expected ${digest}, got ${actual}); nothing was stored`);
    if (this.hasBlob(digest, data.length)) return;
    const tmp = path.join(this.tmpDir, `${digestHex(digest)}.small-${process.pid}`);
    fs.writeFileSync(tmp, data);
    renameDurable(tmp, this.blobPath(digest));
  }

  readBlobJson(digest: string): any {
    try {
      return JSON.parse(fs.readFileSync(this.blobPath(digest), 'utf8'));
    } catch (e) {
      throw new ImageError(`the image store's blob ${digest} is missing or unreadable (${(e as Error).message}): pull the image again`);
    }
  }

  // ---- records and references ---------------------------------------------------------------------------------

  refs(): Record<string, string> {
    try {
      return readJson<Record<string, string>>(this.refsFile) ?? {};
    } catch (e) {
      if (!(e instanceof CorruptFileError)) throw e;
      throw new ImageError(`the image store's index ${this.refsFile} is corrupt: remove it (images stay stored, their names are lost) and pull or load them again`);
    }
  }

  record(id: string): ImageRecord | undefined {
    try {
      return readJson<ImageRecord>(path.join(this.recordsDir, `${digestHex(id)}.json`));
    } catch (e) {
      if (e instanceof CorruptFileError) return undefined; // treated as absent; pulling the image again rewrites it
      throw e;
    }
  }

  list(): ImageRecord[] {
    const out: ImageRecord[] = [];
    for (const f of fs.readdirSync(this.recordsDir)) {
      if (!/^[a-f0-9]{64}\.json$/.test(f)) continue;
      const r = this.record(`sha256:${f.slice(0, -5)}`);
      if (r) out.push(r);
    }
    return out.sort((a, b) => b.storedAt.localeCompare(a.storedAt));
  }

  /** Records an image and points its references at it (a reference moves from an older image, as with docker). */
  async register(rec: Omit<ImageRecord, 'references'>, refs: string[]): Promise<ImageRecord> {
    return withLock(this.lockFile, `the image store in ${this.root}`, () => {
      const index = this.refs();
      for (const r of refs) {
        const old = index[r];
        index[r] = rec.id;
        if (old && old !== rec.id) {
          const o = this.record(old);
          if (o) this.writeRecord({ ...o, references: o.references.filter((x) => x !== r) });
        }
      }
      const prev = this.record(rec.id);
      const full: ImageRecord = { ...rec, references: [...new Set([...(prev?.references ?? []), ...refs])] };
      this.writeRecord(full); // the record before the reference, so a reference never points at nothing
      writeJsonAtomic(this.refsFile, index);
      return full;
    });
  }

  private writeRecord(r: ImageRecord): void {
    writeJsonAtomic(path.join(this.recordsDir, `${digestHex(r.id)}.json`), r);
  }

  /** Drops references and, when none is left, the image record (blobs go with prune). Call under the lock. */
  unregister(id: string, refs?: string[]): void {
    const index = this.refs();
    const rec = this.record(id);
    const drop = refs ?? rec?.references ?? [];
    for (const r of drop) if (index[r] === id) delete index[r];
    writeJsonAtomic(this.refsFile, index);
    if (!rec) return;
    const left = rec.references.filter((r) => !drop.includes(r));
    if (left.length > 0 && refs) this.writeRecord({ ...rec, references: left });
    else fs.rmSync(path.join(this.recordsDir, `${digestHex(id)}.json`), { force: true });
  }
}
