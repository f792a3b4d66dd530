// Pulling an image: resolve the reference to one platform's manifest, fetch config and layers into the store
// (layers in parallel, each verified against its digest, resuming a partial download), then record the image.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { DigestMismatchError, ImageError, ImageNotFoundError, RegistryUnreachableError } from '../../core/errors.js';
import { acquireLock } from '../../util/lock.js';
import { renameDurable } from '../../util/fs.js';
import { formatReference, parseReference, type ImageRef } from './reference.js';
import { isNetworkError, MANIFEST_TYPES, RegistryClient, type RegistryOptions } from './registry.js';
import { digestHex, sha256Digest, type ImageRecord, type ImageStore, type LayerDescriptor } from './store.js';
import { imageConfigOf } from './config.js';

export interface LayerProgress {
  digest: string;
  size: number;
  done: number;
  phase: 'waiting' | 'downloading' | 'done' | 'exists';
}

export interface PullOptions extends RegistryOptions {
  /** os/arch[/variant]; default linux/amd64, the platform boxes run. */
  platform?: string;
  onLayer?: (p: LayerProgress) => void;
  /** Layers fetched at once. */
  concurrency?: number;
}

export const DEFAULT_PLATFORM = 'linux/amd64';

const LAYER_TYPES = new Set([
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.diff.tar',
]);

export function checkLayerType(what: string, l: LayerDescriptor): void {
  if (!LAYER_TYPES.has(l.mediaType)) {
    throw new ImageError(`${what}: layer ${l.digest} has media type ${l.mediaType}, which boxlite cannot unpack (tar, tar+gzip and tar+zstd are supported)`);
  }
}

interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

function parsePlatform(p: string): Platform {
  const [os, architecture, variant] = p.split('/');
  if (!os || !architecture) throw new ImageError(`platform "${p}" is invalid: write os/arch, e.g. linux/amd64`);
  return { os, architecture, variant };
}

const platformString = (p: Platform) => [p.os, p.architecture, p.variant].filter(Boolean).join('/');

/** Picks the manifest for a platform from an image index / manifest list. */
export function pickPlatform(manifests: { digest: string; platform?: Platform; mediaType?: string }[], want: string, what: string) {
  const p = parsePlatform(want);
  const match = manifests.filter((m) => m.platform?.os === p.os && m.platform?.architecture === p.architecture && (!p.variant || m.platform?.variant === p.variant));
  if (match.length === 0) {
    const have = manifests.map((m) => (m.platform ? platformString(m.platform) : 'unknown')).filter((s) => s !== 'unknown/unknown');
    throw new ImageNotFoundError(`image ${what} has no ${want} variant (it has: ${have.join(', ') || 'none'})`);
  }
  return match[0];
}

function verified(body: Buffer, expected: string | undefined, what: string): string {
  const actual = sha256Digest(body);
  if (expected && expected.startsWith('sha256:') && expected !== actual) {
    throw new DigestMismatchError(`${what}: the registry sent content whose digest ${actual} does not match ${expected}; nothing was stored`);
  }
  return actual;
}

/** Fetches one blob into the store. Finished blobs are kept; a partial one is resumed with a Range request. */
export async function fetchBlob(store: ImageStore, client: RegistryClient, desc: LayerDescriptor, what: string, onProgress?: (p: LayerProgress) => void): Promise<void> {
  const report = (done: number, phase: LayerProgress['phase']) => onProgress?.({ digest: desc.digest, size: desc.size, done, phase });
  if (store.hasBlob(desc.digest, desc.size)) return report(desc.size, 'exists');
  const hex = digestHex(desc.digest);
  // Two processes pulling the same blob: the second waits and then finds it stored.
  const lock = await acquireLock(path.join(store.tmpDir, `${hex}.lock`), `the download of blob ${desc.digest}`, 30 * 60_000);
  try {
    if (store.hasBlob(desc.digest, desc.size)) return report(desc.size, 'exists');
    const part = path.join(store.tmpDir, `${hex}.part`);
    let offset = fs.statSync(part, { throwIfNoEntry: false })?.size ?? 0;
    if (desc.size >= 0 && offset >= desc.size) {
      fs.rmSync(part, { force: true });
      offset = 0;
    }
    const hash = createHash('sha256');
    if (offset > 0) for await (const chunk of fs.createReadStream(part)) hash.update(chunk as Buffer);
    report(offset, 'downloading');
    const res = await client.blob(desc.digest, offset);
    // A 200 to a range request means the registry sent the whole blob: start the file again.
    if (res.status === 200 && offset > 0) return await write(res.body, 0, createHash('sha256'));
    return await write(res.body, offset, hash);

    async function write(body: AsyncIterable<Buffer>, start: number, h: ReturnType<typeof createHash>): Promise<void> {
      const fd = fs.openSync(part, start > 0 ? 'a' : 'w');
      let done = start;
      let lastReport = 0;
      try {
        for await (const chunk of body) {
          done += chunk.length;
          if (desc.size >= 0 && done > desc.size) {
            fs.closeSync(fd);
            fs.rmSync(part, { force: true });
            throw new DigestMismatchError(`${what}: layer ${desc.digest} is larger than the ${desc.size} bytes its manifest declares; it was discarded`);
          }
          h.update(chunk);
          fs.writeSync(fd, chunk);
          if (Date.now() - lastReport > 100) {
            lastReport = Date.now();
            report(done, 'downloading');
          }
        }
      } catch (e) {
        try {
          fs.closeSync(fd);
        } catch {}
        if (e instanceof ImageError) throw e;
        if (isNetworkError(e) || (e as Error).name === 'SocketError' || /terminated|aborted|other side closed/i.test((e as Error).message)) {
          throw new RegistryUnreachableError(
            `${what}: the connection to registry ${client.ref.registry} broke while downloading ${desc.digest} (${done} of ${desc.size} bytes): pull again and it resumes where it stopped`,
          );
        }
        throw e;
      }
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      if (desc.size >= 0 && done < desc.size) {
        throw new RegistryUnreachableError(
          `${what}: registry ${client.ref.registry} ended ${desc.digest} after ${done} of ${desc.size} bytes: pull again and it resumes where it stopped`,
        );
      }
      const actual = `sha256:${h.digest('hex')}`;
      if (actual !== desc.digest) {
        fs.rmSync(part, { force: true });
        throw new DigestMismatchError(`${what}: layer ${desc.digest} arrived with digest ${actual}: it was discarded and the store is unchanged; pull again, and if it repeats, the registry is serving corrupt data`);
      }
      renameDurable(part, store.blobPath(desc.digest));
      report(done, 'done');
    }
  } finally {
    lock.release();
  }
}

async function runLimited<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < items.length && failure === undefined) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (e) {
        failure ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure;
}

export async function pull(store: ImageStore, reference: string, opts: PullOptions = {}): Promise<ImageRecord> {
  const ref = parseReference(reference);
  const name = formatReference(ref);
  const client = new RegistryClient(ref, opts);
  const platform = opts.platform ?? DEFAULT_PLATFORM;

  let m = await client.manifest(ref.digest ?? ref.tag!);
  let digest = verified(m.body, ref.digest ?? m.digest, `the manifest of ${name}`);
  let doc = parseJson(m.body, `the manifest of ${name}`);
  let mediaType: string = doc.mediaType ?? m.mediaType;
  if (doc.schemaVersion === 1) throw new ImageError(`image ${name} uses Docker's schema 1 manifest, which boxlite does not support: push it again with a current tool`);
  if (mediaType === MANIFEST_TYPES.ociIndex || mediaType === MANIFEST_TYPES.dockerList || Array.isArray(doc.manifests)) {
    store.putBlob(m.body, digest, `the index of ${name}`);
    const desc = pickPlatform(doc.manifests ?? [], platform, name);
    m = await client.manifest(desc.digest);
    digest = verified(m.body, desc.digest, `the ${platform} manifest of ${name}`);
    doc = parseJson(m.body, `the ${platform} manifest of ${name}`);
    mediaType = doc.mediaType ?? m.mediaType;
  }
  if (!doc.config?.digest || !Array.isArray(doc.layers)) throw new ImageError(`the manifest of ${name} (${mediaType}) has no config or layers`);
  store.putBlob(m.body, digest, `the manifest of ${name}`);

  const configDigest: string = doc.config.digest;
  if (!store.hasBlob(configDigest)) {
    const res = await client.blob(configDigest);
    const body = Buffer.from(await res.body.arrayBuffer());
    store.putBlob(body, configDigest, `the config of ${name}`);
  }
  const config = store.readBlobJson(configDigest);
  const layers: LayerDescriptor[] = doc.layers.map((l: any) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType }));
  for (const l of layers) checkLayerType(name, l);
  const arch = config.architecture && config.os ? `${config.os}/${config.architecture}` : platform;
  if (arch !== platform.split('/').slice(0, 2).join('/')) {
    throw new ImageError(`image ${name} is for ${arch}, but boxes run ${platform}: pick a ${platform} image or tag`);
  }
  for (const l of layers) opts.onLayer?.({ digest: l.digest, size: l.size, done: 0, phase: 'waiting' });
  await runLimited(layers, opts.concurrency ?? 3, (l) => fetchBlob(store, client, l, `pulling ${name}`, opts.onLayer));

  return store.register(
    {
      id: configDigest,
      manifestDigest: digest,
      platform: arch,
      configDigest,
      layers,
      diffIds: config.rootfs?.diff_ids ?? [],
      config: imageConfigOf(config),
      created: config.created,
      size: layers.reduce((s, l) => s + l.size, 0),
      storedAt: new Date().toISOString(),
      origin: `registry ${ref.registry}`,
    },
    [pinnedName(ref)],
  );
}

/** A tag reference is recorded as written; a digest reference as repo@digest. */
function pinnedName(ref: ImageRef): string {
  return ref.digest ? formatReference({ ...ref, tag: undefined }) : formatReference(ref);
}

function parseJson(b: Buffer, what: string): any {
  try {
    return JSON.parse(b.toString('utf8'));
  } catch (e) {
    throw new ImageError(`${what} is not valid JSON (${(e as Error).message})`);
  }
}
