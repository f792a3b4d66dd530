// Builds OCI images for tests without root or docker: layers written entry by entry with tar-stream (so they can
// hold other users' files, device nodes and whiteouts), gzip, zstd or plain, laid out as an OCI image layout.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';

export interface Entry {
  path: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';
  data?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  /** Symlink or hard-link target. */
  target?: string;
  major?: number;
  minor?: number;
  xattrs?: Record<string, string>;
}

export function tarLayer(entries: Entry[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const pack = tar.pack();
    const chunks: Buffer[] = [];
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    pack.on('end', () => resolve(Buffer.concat(chunks)));
    pack.on('error', reject);
    for (const e of entries) {
      const type = e.type ?? (e.data !== undefined ? 'file' : 'directory');
      const pax = e.xattrs ? Object.fromEntries(Object.entries(e.xattrs).map(([k, v]) => [`SCHILY.xattr.${k}`, v])) : undefined;
      const header: Parameters<typeof pack.entry>[0] = {
        name: e.path,
        type,
        mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
        uid: e.uid ?? 0,
        gid: e.gid ?? 0,
        ...(e.target !== undefined ? { linkname: e.target } : {}),
        ...(e.major !== undefined ? { devmajor: e.major, devminor: e.minor ?? 0 } : {}),
        mtime: new Date(1_700_000_000_000),
        ...(pax ? { pax } : {}),
      };
      if (type === 'file') pack.entry(header, Buffer.from(e.data ?? ''));
      else pack.entry(header);
    }
    pack.finalize();
  });
}

/** A folder as one layer (owned by root), like `docker build`'s COPY of a tree. */
export function dirLayer(dir: string): Buffer {
  return execFileSync('tar', ['-C', dir, '--numeric-owner', '--owner=0', '--group=0', '-cf', '-', '.'], { maxBuffer: 1 << 30 });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export type Compression = 'gzip' | 'zstd' | 'none';

export interface ImageSpec {
  layers: Buffer[];
  /** Compression per layer (default gzip). */
  compression?: Compression[];
  config?: Record<string, unknown>;
  architecture?: string;
  /** What the config claims the layers hold, instead of their true diff_ids (a forged or corrupt image). */
  diffIds?: string[];
}

export class Layout {
  readonly blobs: string;
  constructor(readonly dir: string) {
    this.blobs = path.join(dir, 'blobs', 'sha256');
    fs.mkdirSync(this.blobs, { recursive: true });
    fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  }

  put(b: Buffer): { digest: string; size: number } {
    const d = sha(b);
    fs.writeFileSync(path.join(this.blobs, d), b);
    return { digest: `sha256:${d}`, size: b.length };
  }

  /** Writes one platform's image; returns its manifest descriptor. */
  image(spec: ImageSpec) {
    const arch = spec.architecture ?? 'amd64';
    const layers = spec.layers.map((raw, i) => {
      const c = spec.compression?.[i] ?? 'gzip';
      const blob = c === 'gzip' ? gzipSync(raw) : c === 'zstd' ? execFileSync('zstd', ['-q', '-c'], { input: raw, maxBuffer: 1 << 30 }) : raw;
      const mediaType = `application/vnd.oci.image.layer.v1.tar${c === 'none' ? '' : `+${c}`}`;
      return { mediaType, ...this.put(blob), diffId: `sha256:${sha(raw)}` };
    });
    const cfg = this.put(
      Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', created: '2026-01-01T00:00:00Z', config: spec.config ?? {}, rootfs: { type: 'layers', diff_ids: spec.diffIds ?? layers.map((l) => l.diffId) } })),
    );
    const manifest = this.put(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg },
          layers: layers.map(({ diffId: _d, ...l }) => l),
        }),
      ),
    );
    return { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, platform: { os: 'linux', architecture: arch } };
  }

  /** index.json pointing at one image, or at an image index of several platforms. */
  finish(manifests: ReturnType<Layout['image']>[]): string {
    let top: object;
    if (manifests.length === 1) top = manifests[0];
    else {
      const idx = this.put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests })));
      top = { mediaType: 'application/vnd.oci.image.index.v1+json', ...idx };
    }
    fs.writeFileSync(path.join(this.dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [top] }));
    return this.dir;
  }
}

export function newLayout(): Layout {
  return new Layout(fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-oci-')));
}

/** An OCI layout holding one image. */
export function ociImage(spec: ImageSpec): string {
  const l = newLayout();
  return l.finish([l.image(spec)]);
}

export interface DockerSaveSpec {
  layers: Buffer[];
  config?: Record<string, unknown>;
  tags: string[];
  /** What the config claims the layers hold, instead of their true diff_ids. */
  diffIds?: string[];
  /** Gzip the layers (podman can), rather than docker's plain tar. */
  gzip?: boolean;
  /** Lay the files out as docker 25+ does: config and layers under blobs/sha256/, each named by its digest. */
  blobNames?: boolean;
  /** Bytes written in place of the config or of one layer after every name and digest was computed. */
  tamper?: { config?: Buffer; layer?: { index: number; data: Buffer } };
}

/** A `docker save` archive (docker's manifest.json format, uncompressed layers unless gzip) of one image. */
export async function dockerSaveArchive(file: string, spec: DockerSaveSpec): Promise<string> {
  const diffIds = spec.diffIds ?? spec.layers.map((l) => `sha256:${sha(l)}`);
  const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: spec.config ?? {}, rootfs: { type: 'layers', diff_ids: diffIds } }));
  const cfgName = spec.blobNames ? `blobs/sha256/${sha(cfg)}` : `${sha(cfg)}.json`;
  const entries: Entry[] = spec.blobNames ? [{ path: 'blobs/', type: 'directory' }, { path: 'blobs/sha256/', type: 'directory' }] : [];
  entries.push({ path: cfgName, data: spec.tamper?.config ?? cfg });
  const layerNames = spec.layers.map((raw, i) => {
    const l = spec.gzip ? gzipSync(raw) : raw;
    const data = spec.tamper?.layer?.index === i ? spec.tamper.layer.data : l;
    if (spec.blobNames) {
      entries.push({ path: `blobs/sha256/${sha(l)}`, data });
      return `blobs/sha256/${sha(l)}`;
    }
    const dir = sha(Buffer.concat([l, Buffer.from(String(i))]));
    entries.push({ path: `${dir}/`, type: 'directory' }, { path: `${dir}/layer.tar`, data }, { path: `${dir}/VERSION`, data: '1.0' });
    return `${dir}/layer.tar`;
  });
  entries.push({ path: 'manifest.json', data: JSON.stringify([{ Config: cfgName, RepoTags: spec.tags, Layers: layerNames }]) });
  fs.writeFileSync(file, await tarLayer(entries));
  return file;
}
