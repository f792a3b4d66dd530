// Root filesystem sources for a box: a plain directory, or an OCI image layout directory (index.json + blobs).
// The box's disk is an ext4 image built from the source; the guest mounts it read-write as its root.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createGunzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { RootfsError } from './errors.js';
import { run } from '../util/exec.js';
import { ensureDir } from '../util/fs.js';

export interface ImageConfig {
  env: string[];
  entrypoint: string[];
  cmd: string[];
  workingDir: string;
  user: string;
}

export interface Source {
  kind: 'dir' | 'oci';
  path: string;
  /** For OCI layouts: the manifest digest the box was made from. */
  digest?: string;
  config: ImageConfig;
}

const EMPTY_CONFIG: ImageConfig = { env: [], entrypoint: [], cmd: [], workingDir: '', user: '' };

function readableDir(p: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    throw new RootfsError(`root filesystem ${p} does not exist: give a directory or an OCI image layout`);
  }
  if (!st.isDirectory()) throw new RootfsError(`root filesystem ${p} is not a directory: give a directory or an OCI image layout`);
  try {
    fs.accessSync(p, fs.constants.R_OK | fs.constants.X_OK);
    fs.readdirSync(p);
  } catch {
    throw new RootfsError(`root filesystem ${p} is not readable by this user: fix its permissions (chmod) or run as its owner`);
  }
}

const blobPath = (layout: string, digest: string) => {
  const [algo, hex] = digest.split(':');
  if (!algo || !hex || !/^[a-f0-9]+$/.test(hex)) throw new RootfsError(`OCI layout ${layout}: malformed digest ${digest}`);
  return path.join(layout, 'blobs', algo, hex);
};

function readBlobJson(layout: string, digest: string): any {
  const p = blobPath(layout, digest);
  try {
    return JSON.parse(fs.readFileSync(p, 'utf8'));
  } catch (e) {
    throw new RootfsError(`OCI layout ${layout}: cannot read blob ${digest} (${(e as Error).message})`);
  }
}

/** Resolves and validates a source path; reads the image config of an OCI layout. */
export function resolveSource(p: string): Source {
  const abs = path.resolve(p);
  readableDir(abs);
  if (!fs.existsSync(path.join(abs, 'oci-layout')) || !fs.existsSync(path.join(abs, 'index.json'))) {
    return { kind: 'dir', path: abs, config: { ...EMPTY_CONFIG } };
  }
  let index: any;
  try {
    index = JSON.parse(fs.readFileSync(path.join(abs, 'index.json'), 'utf8'));
  } catch (e) {
    throw new RootfsError(`OCI layout ${abs}: index.json is not valid JSON (${(e as Error).message})`);
  }
  let desc = pickManifest(index.manifests ?? []);
  if (!desc) throw new RootfsError(`OCI layout ${abs}: index.json lists no image manifest`);
  let manifest = readBlobJson(abs, desc.digest);
  if (manifest.manifests) {
    // A nested index (multi-platform image): choose linux/amd64.
    desc = pickManifest(manifest.manifests);
    if (!desc) throw new RootfsError(`OCI layout ${abs}: no linux/amd64 manifest in the image index`);
    manifest = readBlobJson(abs, desc.digest);
  }
  if (!manifest.config?.digest || !Array.isArray(manifest.layers)) {
    throw new RootfsError(`OCI layout ${abs}: manifest ${desc.digest} has no config or layers`);
  }
  const cfg = readBlobJson(abs, manifest.config.digest).config ?? {};
  return {
    kind: 'oci',
    path: abs,
    digest: desc.digest,
    config: {
      env: cfg.Env ?? [],
      entrypoint: cfg.Entrypoint ?? [],
      cmd: cfg.Cmd ?? [],
      workingDir: cfg.WorkingDir ?? '',
      user: cfg.User ?? '',
    },
  };
}

function pickManifest(list: any[]): any {
  return (
    list.find((m) => m.platform?.os === 'linux' && m.platform?.architecture === 'amd64') ??
    list.find((m) => !m.platform) ??
    null
  );
}

/** Applies the layers of an OCI layout, in order, into dir, with whiteout and opaque-directory semantics. */
async function unpackLayers(src: Source, dir: string): Promise<void> {
  let manifest = readBlobJson(src.path, src.digest!);
  for (const layer of manifest.layers as { digest: string; mediaType: string }[]) {
    const file = blobPath(src.path, layer.digest);
    if (!fs.existsSync(file)) throw new RootfsError(`OCI layout ${src.path}: layer blob ${layer.digest} is missing`);
    const gz = /gzip/.test(layer.mediaType) || isGzip(file);
    await applyLayer(fs.createReadStream(file), gz, dir);
  }
}

function isGzip(file: string): boolean {
  const b = Buffer.alloc(2);
  const fd = fs.openSync(file, 'r');
  fs.readSync(fd, b, 0, 2, 0);
  fs.closeSync(fd);
  return b[0] === 0x1f && b[1] === 0x8b;
}

export async function applyLayer(input: Readable, gzip: boolean, root: string): Promise<void> {
  const extract = tar.extract();
  const safe = (name: string) => {
    const t = path.resolve(root, name);
    if (t !== root && !t.startsWith(root + '/')) throw new RootfsError(`layer entry ${name} escapes the root filesystem`);
    return t;
  };
  extract.on('entry', (h, stream, next) => {
    const done = (err?: unknown) => next(err as Error | undefined);
    try {
      const target = safe(h.name);
      const base = path.basename(target);
      const parent = path.dirname(target);
      if (base === '.wh..wh..opq') {
        // Opaque directory: hide everything lower layers put in it.
        for (const e of fs.existsSync(parent) ? fs.readdirSync(parent) : []) fs.rmSync(path.join(parent, e), { recursive: true, force: true });
        stream.resume();
        return done();
      }
      if (base.startsWith('.wh.')) {
        fs.rmSync(path.join(parent, base.slice(4)), { recursive: true, force: true });
        stream.resume();
        return done();
      }
      ensureDir(parent);
      const existing = fs.lstatSync(target, { throwIfNoEntry: false });
      if (existing && !(existing.isDirectory() && h.type === 'directory')) fs.rmSync(target, { recursive: true, force: true });
      const own = () => {
        try {
          fs.lchownSync(target, h.uid ?? 0, h.gid ?? 0);
          if (h.type !== 'symlink') fs.chmodSync(target, (h.mode ?? 0o644) & 0o7777);
        } catch {}
      };
      switch (h.type) {
        case 'directory':
          ensureDir(target);
          own();
          stream.resume();
          return done();
        case 'file':
        case 'contiguous-file':
          return pipeline(stream, fs.createWriteStream(target)).then(() => (own(), done()), done);
        case 'symlink':
          fs.symlinkSync(h.linkname!, target);
          own();
          stream.resume();
          return done();
        case 'link':
          fs.linkSync(safe(h.linkname!), target);
          stream.resume();
          return done();
        case 'character-device':
        case 'block-device':
        case 'fifo': {
          stream.resume();
          const kind = h.type === 'fifo' ? 'p' : h.type === 'character-device' ? 'c' : 'b';
          const args = kind === 'p' ? [target, 'p'] : [target, kind, String(h.devmajor ?? 0), String(h.devminor ?? 0)];
          return run('mknod', args).then(() => (own(), done()), () => done()); // devices need root: skipped otherwise
        }
        default:
          stream.resume();
          return done();
      }
    } catch (e) {
      stream.resume();
      done(e);
    }
  });
  await (gzip ? pipeline(input, createGunzip(), extract) : pipeline(input, extract));
}

async function duBytes(dir: string): Promise<number> {
  return Number((await run('du', ['-sb', dir])).split(/\s/)[0]);
}

/** Builds the box's ext4 disk at diskPath from the source. Sparse: unused space costs nothing. */
export async function buildDisk(src: Source, diskPath: string, sizeMib: number): Promise<void> {
  let dir = src.path;
  let tmp: string | null = null;
  try {
    if (src.kind === 'oci') {
      tmp = fs.mkdtempSync(path.join(path.dirname(diskPath), 'rootfs-'));
      await unpackLayers(src, tmp);
      dir = tmp;
    }
    readableDir(dir);
    const need = Math.ceil(((await duBytes(dir)) * 1.3) / (1 << 20)) + 64;
    if (need > sizeMib) {
      throw new RootfsError(`root filesystem ${src.path} needs about ${need} MiB but the disk is ${sizeMib} MiB: give a larger disk size`);
    }
    const part = `${diskPath}.part`;
    fs.rmSync(part, { force: true });
    try {
      await run('/usr/sbin/mkfs.ext4', ['-q', '-F', '-L', 'boxlite-root', '-d', dir, part, `${sizeMib}M`]);
    } catch (e) {
      throw new RootfsError(`cannot build the box's disk from ${src.path}: ${(e as Error).message}`);
    }
    fs.renameSync(part, diskPath);
  } finally {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
}
