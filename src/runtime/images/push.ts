// Pushing a stored image to any OCI registry, with the credentials and token flow pull uses: each blob is asked
// for first (HEAD), mounted from the repository its layers came from when that is on the same registry, and
// otherwise uploaded in chunks whose progress is kept, so a push that broke resumes where the registry says it
// has got to; the manifest goes last, so the tag never names an image the registry does not have whole.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { ImageError, RegistryUnreachableError } from '../../core/errors.js';
import { readJson, writeJsonAtomic } from '../../util/fs.js';
import { formatReference, parseReference } from './reference.js';
import { MANIFEST_TYPES, RegistryClient, type RegistryOptions, type Response } from './registry.js';
import { sha256Digest, type ImageRecord, type ImageStore, type LayerDescriptor } from './store.js';
import type { Images } from './index.js';

export interface BlobPushProgress {
  digest: string;
  size: number;
  done: number;
  /** resumed: going on from the byte the registry says it has; restarted: the blob starts over in a new upload. */
  phase: 'exists' | 'mounted' | 'uploading' | 'resumed' | 'restarted' | 'done';
}

export interface PushOptions extends RegistryOptions {
  onBlob?: (p: BlobPushProgress) => void;
  /** Bytes per upload request (default 8 MiB). */
  chunkSize?: number;
}

export interface PushResult {
  /** The reference pushed, and the digest that pins it. */
  reference: string;
  digest: string;
  blobs: { digest: string; size: number; how: 'exists' | 'mounted' | 'uploaded' | 'resumed' }[];
}

interface UploadState {
  location: string;
  offset: number;
}

const header = (r: Response, k: string) => {
  const v = r.headers[k];
  return Array.isArray(v) ? v[0] : v;
};

/** The image's manifest as stored, or one made from its record (an image loaded from an archive has none). */
function manifestOf(store: ImageStore, rec: ImageRecord): { body: Buffer; mediaType: string } {
  if (store.hasBlob(rec.manifestDigest)) {
    const body = fs.readFileSync(store.blobPath(rec.manifestDigest));
    const doc = JSON.parse(body.toString('utf8'));
    if (doc.config?.digest === rec.configDigest) return { body, mediaType: doc.mediaType ?? MANIFEST_TYPES.ociManifest };
  }
  const size = fs.statSync(store.blobPath(rec.configDigest)).size;
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPES.ociManifest, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: rec.configDigest, size }, layers: rec.layers }));
  return { body, mediaType: MANIFEST_TYPES.ociManifest };
}

export async function pushImage(images: Images, reference: string, opts: PushOptions = {}): Promise<PushResult> {
  const rec = images.get(reference);
  const ref = parseReference(reference);
  if (ref.digest) throw new ImageError(`push ${reference}: push a tag (the registry gives the digest)`);
  const store = images.store;
  const client = new RegistryClient(ref, { ...images.registryOptions, ...opts, insecure: [...(images.registryOptions.insecure ?? []), ...(opts.insecure ?? [])] });
  const what = formatReference(ref);
  const configDesc: LayerDescriptor = { digest: rec.configDigest, size: fs.statSync(store.blobPath(rec.configDigest)).size, mediaType: 'config' };
  const sources = (rec.mountFrom ?? []).flatMap((r) => {
    try {
      const p = parseReference(r);
      return p.registry === ref.registry && p.repository !== ref.repository ? [p.repository] : [];
    } catch {
      return [];
    }
  });
  const blobs: PushResult['blobs'] = [];
  for (const desc of [...rec.layers, configDesc]) {
    if (!store.hasBlob(desc.digest)) throw new ImageError(`push ${what}: blob ${desc.digest} is missing from the store: pull or commit the image again`);
    blobs.push({ digest: desc.digest, size: desc.size, how: await pushBlob(store, client, ref.repository, desc, [...new Set(sources)], opts, what) });
  }
  const m = manifestOf(store, rec);
  const res = await client.send(`${ref.repository}/manifests/${ref.tag}`, { method: 'PUT', headers: { 'content-type': m.mediaType }, body: m.body });
  if (res.status !== 201 && res.status !== 200) {
    const code = await client.errorCode(res);
    throw new ImageError(`registry ${ref.registry} refused the manifest of ${what} (${res.status}${code ? ` ${code}` : ''})`);
  }
  await res.body.dump();
  return { reference: what, digest: sha256Digest(m.body), blobs };
}

async function pushBlob(store: ImageStore, client: RegistryClient, repo: string, desc: LayerDescriptor, sources: string[], opts: PushOptions, what: string): Promise<PushResult['blobs'][number]['how']> {
  const report = (done: number, phase: BlobPushProgress['phase']) => opts.onBlob?.({ digest: desc.digest, size: desc.size, done, phase });
  const head = await client.send(`${repo}/blobs/${desc.digest}`, { method: 'HEAD' });
  await head.body.dump();
  if (head.status === 200) {
    report(desc.size, 'exists');
    return 'exists';
  }
  const stateFile = path.join(store.tmpDir, `upload-${createHash('sha256').update(`${client.base}/${repo}@${desc.digest}`).digest('hex').slice(0, 32)}.json`);
  let state: UploadState | null = readJson<UploadState>(stateFile) ?? null;
  let resumed = false;
  if (state) {
    const at = await uploadOffset(client, state.location).catch(() => null);
    if (at) {
      state = at;
      resumed = true;
      report(state.offset, 'resumed');
    } else state = null;
  }
  if (!state) {
    for (const from of sources) {
      const r = await client.send(`${repo}/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(from)}`, { method: 'POST' });
      await r.body.dump();
      if (r.status === 201) {
        report(desc.size, 'mounted');
        return 'mounted';
      }
      // 202: the registry could not mount it and opened an upload instead.
      if (r.status === 202 && header(r, 'location')) {
        state = { location: header(r, 'location')!, offset: 0 };
        break;
      }
    }
  }
  let up: UploadState = state ?? (await openUpload(client, repo, what));
  writeJsonAtomic(stateFile, up);
  const chunk = opts.chunkSize ?? 8 << 20;
  const fd = fs.openSync(store.blobPath(desc.digest), 'r');
  try {
    let failures = 0;
    let restarts = 0;
    while (up.offset < desc.size) {
      const len = Math.min(chunk, desc.size - up.offset);
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, up.offset);
      report(up.offset, 'uploading');
      try {
        const r = await client.send(up.location, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream', 'content-range': `${up.offset}-${up.offset + len - 1}`, 'content-length': String(len) }, body: buf });
        if (r.status !== 202 && failures > 0 && restarts < 3) {
          // The registry kept part of a chunk it never acknowledged and cannot go on from its own count: this
          // blob starts over in a new upload (blobs already pushed stay pushed).
          await r.body.dump();
          await client.send(up.location, { method: 'DELETE' }).then((d) => d.body.dump()).catch(() => {});
          restarts++;
          up = await openUpload(client, repo, what);
          report(0, 'restarted');
          writeJsonAtomic(stateFile, up);
          continue;
        }
        if (r.status !== 202) {
          const code = await client.errorCode(r);
          throw new ImageError(`registry ${client.ref.registry} refused part of blob ${desc.digest} of ${what} (${r.status}${code ? ` ${code}` : ''}, at byte ${up.offset})`);
        }
        await r.body.dump();
        up = { location: header(r, 'location') ?? up.location, offset: up.offset + len };
        writeJsonAtomic(stateFile, up);
      } catch (e) {
        // The connection broke: ask the registry how far it got, and go on from there.
        if (!(e instanceof RegistryUnreachableError) || ++failures > 3) {
          if (e instanceof RegistryUnreachableError) throw new RegistryUnreachableError(`${e.message}; push again and it resumes from byte ${up.offset}`);
          throw e;
        }
        const at = await uploadOffset(client, up.location).catch(() => null);
        if (at) {
          up = at;
          report(up.offset, 'resumed');
        }
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  const done = await client.send(`${up.location}${up.location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(desc.digest)}`, { method: 'PUT', headers: { 'content-length': '0' } });
  if (done.status !== 201) {
    const code = await client.errorCode(done);
    throw new ImageError(`registry ${client.ref.registry} did not take blob ${desc.digest} of ${what} (${done.status}${code ? ` ${code}` : ''})`);
  }
  await done.body.dump();
  fs.rmSync(stateFile, { force: true });
  report(desc.size, 'done');
  return resumed ? 'resumed' : 'uploaded';
}

async function openUpload(client: RegistryClient, repo: string, what: string): Promise<UploadState> {
  const r = await client.send(`${repo}/blobs/uploads/`, { method: 'POST' });
  await r.body.dump();
  if (r.status !== 202 || !header(r, 'location')) throw new ImageError(`registry ${client.ref.registry} did not open an upload for ${what} (${r.status})`);
  return { location: header(r, 'location')!, offset: 0 };
}

/** How much of an upload the registry has (its Range header), or null when it no longer knows the upload. */
async function uploadOffset(client: RegistryClient, location: string): Promise<UploadState | null> {
  const r = await client.send(location, { method: 'GET' });
  await r.body.dump();
  if (r.status !== 204) return null;
  const range = /^(?:bytes=)?0-(\d+)$/.exec(header(r, 'range') ?? '');
  return { location: header(r, 'location') ?? location, offset: range ? Number(range[1]) + 1 : 0 };
}
