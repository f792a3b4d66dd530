// Local image sources: an OCI image layout folder, and an archive made by `docker save` / `podman save` (docker's
// manifest.json format or an OCI layout in a tar, plain or gzip). Every blob is checked against its digest before
// the image is recorded (and a docker save file named by a digest against that name); a bad archive leaves the
// store as it was.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createGunzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { DigestMismatchError, ImageError } from '../../core/errors.js';
import { renameDurable, sha256File } from '../../util/fs.js';
import { SafeRoot, UnsafeEntryError } from '../../util/safe-root.js';
import { extract as tarExtract, failEntry } from '../../util/tar.js';
import { canonicalName } from './reference.js';
import { checkLayerType, DEFAULT_PLATFORM, pickPlatform } from './pull.js';
import { digestHex, sha256Digest, type ImageRecord, type ImageStore, type LayerDescriptor } from './store.js';
import { imageConfigOf } from './config.js';
import { diffIdMismatch, namedDigest } from './verify.js';

const isGzipFile = (file: string) => {
  const b = Buffer.alloc(2);
  const fd = fs.openSync(file, 'r');
  const n = fs.readSync(fd, b, 0, 2, 0);
  fs.closeSync(fd);
  return n === 2 && b[0] === 0x1f && b[1] === 0x8b;
};

/** Moves (or copies) a file into the store as a blob after checking it has the digest it is named by. */
function importBlob(store: ImageStore, file: string, digest: string, what: string, move: boolean): void {
  const hex = digestHex(digest);
  if (store.hasBlob(digest)) return;
  if (!fs.existsSync(file)) throw new ImageError(`${what}: blob ${digest} is missing`);
  const actual = sha256File(file);
  if (actual !== hex) throw new DigestMismatchError(`${what}: blob ${digest} has digest sha256:${actual}; the image was not loaded`);
  const tmp = path.join(store.tmpDir, `${hex}.import-${process.pid}`);
  if (move) fs.renameSync(file, tmp);
  else fs.copyFileSync(file, tmp);
  renameDurable(tmp, store.blobPath(digest));
}

function readJsonFile(file: string, what: string): any {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ImageError(`${what}: ${path.basename(file)} is missing or not valid JSON (${(e as Error).message})`);
  }
}

const stringList = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

type Pending = Omit<ImageRecord, 'references'> & { refs: string[] };

/** Reads an OCI layout folder into the store; returns the images it holds (one per index entry). */
function importOciLayout(store: ImageStore, dir: string, what: string, move: boolean, platform: string): Pending[] {
  return malformedAsImageError(what, () => readOciLayout(store, dir, what, move, platform));
}

/** The documents of an image come from whoever made it: a field of the wrong type is a refused image with a
 *  message, never a stack trace. */
function malformedAsImageError<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ImageError || e instanceof DigestMismatchError) throw e;
    if (e instanceof TypeError || e instanceof SyntaxError) throw new ImageError(`${what}: its manifest or config is malformed (${e.message}); nothing was loaded`);
    throw e;
  }
}

function readOciLayout(store: ImageStore, dir: string, what: string, move: boolean, platform: string): Pending[] {
  const index = readJsonFile(path.join(dir, 'index.json'), what);
  const blob = (d: string) => path.join(dir, 'blobs', 'sha256', digestHex(d));
  const json = (d: string, role: string) => {
    const file = blob(d);
    if (!fs.existsSync(file)) throw new ImageError(`${what}: the ${role} blob ${d} is missing`);
    const data = fs.readFileSync(file);
    if (sha256Digest(data) !== d) throw new DigestMismatchError(`${what}: the ${role} blob ${d} does not match its digest; the image was not loaded`);
    return { data, doc: JSON.parse(data.toString('utf8')) };
  };
  const out: Pending[] = [];
  const entries: any[] = Array.isArray(index?.manifests) ? index.manifests.filter((e: unknown) => e && typeof e === 'object') : [];
  if (entries.length === 0) throw new ImageError(`${what}: index.json lists no image`);
  // Entries for another platform are left out; a layout that has only those says which it has.
  const [os, arch] = platform.split('/');
  let chosen = entries.filter((e) => !e.platform || (e.platform.os === os && e.platform.architecture === arch));
  if (chosen.length === 0) chosen = [pickPlatform(entries, platform, what)];
  for (const entry of chosen) {
    let m = json(entry.digest, 'manifest');
    let manifestDigest: string = entry.digest;
    if (Array.isArray(m.doc.manifests)) {
      store.putBlob(m.data, manifestDigest, what);
      const d = pickPlatform(m.doc.manifests, platform, what);
      m = json(d.digest, 'manifest');
      manifestDigest = d.digest;
    }
    if (!m.doc.config?.digest || !Array.isArray(m.doc.layers)) throw new ImageError(`${what}: manifest ${manifestDigest} has no config or layers`);
    const cfg = json(m.doc.config.digest, 'config');
    const layers: LayerDescriptor[] = m.doc.layers.map((l: any) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType }));
    for (const l of layers) {
      checkLayerType(what, l);
      importBlob(store, blob(l.digest), l.digest, what, move);
    }
    store.putBlob(cfg.data, m.doc.config.digest, what);
    store.putBlob(m.data, manifestDigest, what);
    const name = entry.annotations?.['io.containerd.image.name'] ?? entry.annotations?.['org.opencontainers.image.ref.name'];
    out.push({
      id: m.doc.config.digest,
      manifestDigest,
      platform: `${cfg.doc.os ?? 'linux'}/${cfg.doc.architecture ?? 'amd64'}`,
      configDigest: m.doc.config.digest,
      layers,
      diffIds: stringList(cfg.doc.rootfs?.diff_ids),
      config: imageConfigOf(cfg.doc),
      created: cfg.doc.created,
      size: layers.reduce((s, l) => s + l.size, 0),
      storedAt: new Date().toISOString(),
      origin: what,
      // A bare tag ("latest", as skopeo writes) names nothing on its own.
      refs: name && /[/:]/.test(name) ? [canonicalName(name)] : [],
    });
  }
  return out;
}

/** docker save's own format: manifest.json listing Config, RepoTags and Layers (paths inside the archive). */
function importDockerArchive(store: ImageStore, dir: string, what: string): Pending[] {
  return malformedAsImageError(what, () => readDockerArchive(store, dir, what));
}

function readDockerArchive(store: ImageStore, dir: string, what: string): Pending[] {
  const list = readJsonFile(path.join(dir, 'manifest.json'), what);
  if (!Array.isArray(list) || list.length === 0) throw new ImageError(`${what}: manifest.json lists no image`);
  const inside = (p: unknown) => {
    if (typeof p !== 'string') throw new ImageError(`${what}: manifest.json has a malformed entry`);
    const abs = path.resolve(dir, p);
    if (!abs.startsWith(dir + path.sep)) throw new ImageError(`${what}: manifest.json points outside the archive (${p})`);
    if (!fs.existsSync(abs)) throw new ImageError(`${what}: ${p}, named in manifest.json, is not in the archive`);
    return abs;
  };
  /** A file named by a digest must have it: the name is the archive's claim about its content. */
  const asNamed = (p: string, actual: string) => {
    const named = namedDigest(p);
    if (named && named !== actual) throw new DigestMismatchError(`${what}: ${p} does not match the digest it is named by: its content is ${actual}; the image was not loaded`);
  };
  return list.map((img: any) => {
    const cfgData = fs.readFileSync(inside(img.Config));
    const configDigest = sha256Digest(cfgData);
    asNamed(img.Config, configDigest);
    const cfg = JSON.parse(cfgData.toString('utf8'));
    const diffIds = stringList(cfg.rootfs?.diff_ids);
    const layers: LayerDescriptor[] = (img.Layers ?? []).map((l: unknown, i: number) => {
      const file = inside(l);
      const digest = `sha256:${sha256File(file)}`;
      asNamed(l as string, digest);
      const plain = !isGzipFile(file);
      // An uncompressed layer's digest is its diff_id: what the config claims is checked here already (a
      // compressed one's is checked as its base is built).
      if (plain && diffIds[i] && diffIds[i] !== digest) throw diffIdMismatch(what, i + 1, digest, diffIds[i], digest, 'it was not loaded');
      const layer = { digest, size: fs.statSync(file).size, mediaType: plain ? 'application/vnd.docker.image.rootfs.diff.tar' : 'application/vnd.docker.image.rootfs.diff.tar.gzip' };
      importBlob(store, file, digest, what, true);
      return layer;
    });
    store.putBlob(cfgData, configDigest, what);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: cfgData.length },
        layers: layers.map((l) => ({ mediaType: l.mediaType.endsWith('gzip') ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar', digest: l.digest, size: l.size })),
      }),
    );
    const manifestDigest = sha256Digest(manifest);
    store.putBlob(manifest, manifestDigest, what);
    return {
      id: configDigest,
      manifestDigest,
      platform: `${cfg.os ?? 'linux'}/${cfg.architecture ?? 'amd64'}`,
      configDigest,
      layers,
      diffIds,
      config: imageConfigOf(cfg),
      created: cfg.created,
      size: layers.reduce((s, l) => s + l.size, 0),
      storedAt: new Date().toISOString(),
      origin: what,
      refs: stringList(img.RepoTags).map(canonicalName),
    };
  });
}

async function registerAll(store: ImageStore, pending: Pending[]): Promise<ImageRecord[]> {
  const out: ImageRecord[] = [];
  for (const { refs, ...rec } of pending) out.push(await store.register(rec, refs));
  return out;
}

/** Loads an OCI layout folder. Without a reference annotation, the image is named by extraRef. */
export async function loadLayout(store: ImageStore, dir: string, extraRef?: string, platform = DEFAULT_PLATFORM): Promise<ImageRecord[]> {
  const pending = importOciLayout(store, dir, `OCI layout ${dir}`, false, platform);
  if (extraRef) for (const p of pending) if (p.refs.length === 0) p.refs.push(extraRef);
  return registerAll(store, pending);
}

/** Loads a `docker save` / `podman save` archive (tar or tar.gz). */
export async function loadArchive(store: ImageStore, file: string, platform = DEFAULT_PLATFORM): Promise<ImageRecord[]> {
  const what = `image archive ${file}`;
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (!st) throw new ImageError(`${what} does not exist`);
  if (!st.isFile()) throw new ImageError(`${what} is not a file: give a tarball made by docker save or podman save`);
  const dir = fs.mkdtempSync(path.join(store.tmpDir, 'load-'));
  try {
    // Only folders and files are unpacked, each inside the temporary folder: the manifest names the files it
    // needs, and docker save's symlinks between layer folders are not followed or made.
    const root = new SafeRoot(dir, 'refuse');
    const extract = tarExtract();
    extract.on('entry', (h, stream, next) => {
      const skip = () => {
        stream.on('end', () => next());
        stream.resume();
      };
      try {
        if (h.type !== 'directory' && h.type !== 'file' && h.type !== 'contiguous-file') return skip();
        const at = root.place(h.name, { create: true });
        if (h.type === 'directory') {
          if (!fs.lstatSync(at.abs, { throwIfNoEntry: false })?.isDirectory()) {
            root.remove(at);
            fs.mkdirSync(at.abs);
          }
          return skip();
        }
        root.remove(at);
        pipeline(stream, fs.createWriteStream(at.abs, { flags: 'wx', mode: 0o600 })).then(() => next(), next);
      } catch (e) {
        failEntry(stream, next, e instanceof UnsafeEntryError ? new ImageError(`${what}: ${e.message}; nothing was loaded`) : (e as Error));
      }
    });
    try {
      const input = fs.createReadStream(file);
      await (isGzipFile(file) ? pipeline(input, createGunzip(), extract) : pipeline(input, extract));
    } catch (e) {
      if (e instanceof ImageError) throw e;
      if ((e as NodeJS.ErrnoException).code === 'ENOSPC') throw new ImageError(`no space left on the device holding ${store.root} while reading ${what}: free some space and try again`);
      throw new ImageError(`${what} is not a valid image archive (${(e as Error).message}): it is truncated or corrupt, or not made by docker save / podman save`);
    }
    let pending: Pending[];
    if (fs.existsSync(path.join(dir, 'manifest.json'))) pending = importDockerArchive(store, dir, what);
    else if (fs.existsSync(path.join(dir, 'index.json'))) pending = importOciLayout(store, dir, what, true, platform);
    else throw new ImageError(`${what} holds neither manifest.json (docker save) nor index.json (OCI layout): it is not an image archive`);
    return await registerAll(store, pending);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
