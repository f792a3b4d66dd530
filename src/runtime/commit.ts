// boxlite commit BOX REF: a box's disk as an OCI image — the layers of the image it was made from plus one layer of
// what the box changed (images/diff-layer.ts), and its env, working folder, user and command as the config. The
// disk is frozen into a layer first (freeze.ts: live for a running box, whose file system is frozen for that
// instant), so the commit reads one consistent, unchanging disk while the box goes on.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BoxStateError, ImageError } from '../core/errors.js';
import { run, CommandError } from '../util/exec.js';
import { withBoxLock, withRegistryLock, type RuntimeContext } from './context.js';
import { ensureDisk } from './disks.js';
import { backingChain } from './layers.js';
import { freeze } from './freeze.js';
import { diffLayer } from './images/diff-layer.js';
import { formatReference, parseReference } from './images/reference.js';
import { sha256Digest, type ImageRecord, type LayerDescriptor } from './images/store.js';
import { imageConfigOf } from './images/config.js';
import { MANIFEST_TYPES } from './images/registry.js';
import type { BoxRecord } from './types.js';

export interface CommitOptions {
  /** The image's command (Cmd, with no Entrypoint); default the image's own. */
  command?: string[];
  /** Recorded in the image's history. */
  message?: string;
}

export interface CommitResult {
  image: ImageRecord;
  added: number;
  changed: number;
  deleted: number;
}

/** What boxlite itself writes into a box at each start, which is not the box's own content (as docker leaves out
 *  /etc/hosts and friends): the guest tools' mount point, DNS, the LAN's names, the box's CA, boxlite's logs. */
const RUNTIME_PATHS = new Set(['.boxlite', 'etc/resolv.conf', 'etc/hosts', 'etc/hostname', 'etc/boxlite', 'var/log/boxlite']);

/** The image a box's disk grew from: the store's image whose base is at the bottom of the disk's chain. */
function parentImage(ctx: RuntimeContext, bottom: string, rec: BoxRecord): ImageRecord | null {
  if (rec.source.kind === 'image') {
    const r = ctx.images.store.record(rec.source.imageId);
    if (r && ctx.images.existingBase(r)?.path === bottom) return r;
  }
  return ctx.images.list().find((r) => ctx.images.existingBase(r)?.path === bottom) ?? null;
}

function configOf(parent: any, rec: BoxRecord, diffId: string, opts: CommitOptions): any {
  const doc = parent ? structuredClone(parent) : { architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } };
  const cfg = (doc.config ??= {});
  const img = imageConfigOf(doc);
  const env = new Map(img.env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv] as const));
  for (const [k, v] of Object.entries(rec.options.env)) env.set(k, `${k}=${v}`);
  cfg.Env = [...env.values()];
  if (rec.options.workingDir) cfg.WorkingDir = rec.options.workingDir;
  if (rec.options.user) cfg.User = rec.options.user;
  if (opts.command?.length) {
    cfg.Entrypoint = null;
    cfg.Cmd = opts.command;
  }
  const created = new Date().toISOString();
  doc.created = created;
  doc.rootfs = { type: 'layers', diff_ids: [...(doc.rootfs?.diff_ids ?? []), diffId] };
  doc.history = [...(Array.isArray(doc.history) ? doc.history : []), { created, created_by: `boxlite commit ${rec.name}`, ...(opts.message ? { comment: opts.message } : {}) }];
  return doc;
}

export async function commitBox(ctx: RuntimeContext, id: string, reference: string, opts: CommitOptions = {}): Promise<CommitResult> {
  const ref = parseReference(reference);
  const name = ref.digest ? formatReference({ ...ref, tag: undefined }) : formatReference(ref);
  if (ref.digest) throw new ImageError(`commit ${reference}: name the image with a tag, not a digest (the digest is what the commit makes)`);
  const scratch = fs.mkdtempSync(path.join(ctx.images.store.tmpDir, 'commit-'));
  const raw = path.join(scratch, 'disk.raw');
  try {
    let bottom = '';
    let rec = ctx.records.get(id);
    // The disk as it is at this instant, in a file nothing writes again; then a plain copy to read it from.
    await withBoxLock(ctx, id, async () => {
      rec = ctx.records.get(id);
      if (rec.state === 'paused' || rec.paused) throw new BoxStateError(`box ${rec.name} is paused: resume it (or stop it) before a commit`);
      await ensureDisk(ctx, rec);
      const layer = await withRegistryLock(ctx, () => freeze(ctx, ctx.records.get(id)));
      const chain = await backingChain(layer);
      bottom = chain[chain.length - 1].filename;
      await run('qemu-img', ['convert', '-U', '-O', 'raw', layer, raw]);
    });
    // A box that was killed leaves a journal to replay; a frozen or cleanly stopped one has none.
    await run('/usr/sbin/e2fsck', ['-p', '-E', 'journal_only', raw]).catch((e) => {
      if (!(e instanceof CommandError && e.code === 1)) throw new ImageError(`box ${rec.name}'s file system could not be read for the commit: ${(e as Error).message}`);
    });
    const parent = parentImage(ctx, bottom, rec);
    const layer = await diffLayer(ctx.images.store, parent ? bottom : null, raw, (rel) => RUNTIME_PATHS.has(rel), scratch);
    const store = ctx.images.store;
    const parentDoc = parent ? store.readBlobJson(parent.configDigest) : null;
    const config = Buffer.from(JSON.stringify(configOf(parentDoc, rec, layer.diffId, opts)));
    const configDigest = sha256Digest(config);
    store.putBlob(config, configDigest, `the config of ${name}`);
    // Docker's manifest type for an image that came in Docker's types, OCI's otherwise.
    const docker = !!parent && parent.layers.some((l) => l.mediaType.startsWith('application/vnd.docker.'));
    const newLayer: LayerDescriptor = { digest: layer.digest, size: layer.size, mediaType: docker ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : layer.mediaType };
    const layers = [...(parent?.layers ?? []), newLayer];
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: docker ? MANIFEST_TYPES.dockerManifest : MANIFEST_TYPES.ociManifest,
        config: { mediaType: docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
        layers,
      }),
    );
    const manifestDigest = sha256Digest(manifest);
    store.putBlob(manifest, manifestDigest, `the manifest of ${name}`);
    const doc = JSON.parse(config.toString());
    const image = await store.register(
      {
        id: configDigest,
        manifestDigest,
        platform: `${doc.os}/${doc.architecture}`,
        configDigest,
        layers,
        diffIds: doc.rootfs.diff_ids,
        config: imageConfigOf(doc),
        created: doc.created,
        size: layers.reduce((s, l) => s + l.size, 0),
        storedAt: new Date().toISOString(),
        origin: `commit of box ${rec.name}`,
        ...(parent ? { mountFrom: [...(parent.mountFrom ?? []), ...parent.references] } : {}),
      },
      [name],
    );
    return { image, added: layer.added, changed: layer.changed, deleted: layer.deleted };
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}
