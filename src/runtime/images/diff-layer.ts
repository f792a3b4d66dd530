// One image layer of what a box changed: its disk (an ext4 image) compared with the base it grew from. An entry is
// changed when it is new, when its inode is another one (replaced), or when its type, mode, owner, size or ctime
// differ (ctime moves with every write, chmod, chown and xattr change, and no program can set it back). Deleted
// entries become whiteouts (.wh.NAME), once at the top of a deleted tree. Owners, modes, device numbers, hard
// links within the layer and xattrs are written as the disk has them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { createGzip } from 'node:zlib';
import { PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { renameDurable } from '../../util/fs.js';
import { dumpInodes, readTree, readXattrs, statInodes, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, type TreeEntry } from './ext4-read.js';
import { finish, writeEntry, type TarEntry } from './tar-write.js';
import type { ImageStore } from './store.js';

export interface DiffLayer {
  digest: string;
  size: number;
  diffId: string;
  mediaType: string;
  added: number;
  changed: number;
  deleted: number;
}

const TYPES: Record<number, TarEntry['type']> = { [S_IFREG]: 'file', [S_IFDIR]: 'directory', [S_IFLNK]: 'symlink', [S_IFCHR]: 'char', [S_IFBLK]: 'block', [S_IFIFO]: 'fifo' };

const parentOf = (p: string) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '');

function hashing(h: ReturnType<typeof createHash>, count: { n: number }): Transform {
  return new Transform({
    transform(chunk, _e, cb) {
      h.update(chunk);
      count.n += chunk.length;
      cb(null, chunk);
    },
  });
}

/** Compares the upper file system with the lower (null: an empty one) and stores the layer in the store. */
export async function diffLayer(store: ImageStore, lower: string | null, upper: string, exclude: (rel: string) => boolean, scratch: string): Promise<DiffLayer> {
  const up = await readTree(upper, scratch);
  const low = lower ? await readTree(lower, scratch) : new Map<string, TreeEntry>();
  const excluded = (p: string) => {
    for (let q = p; q; q = parentOf(q)) if (exclude(q)) return true;
    return false;
  };
  const picked = new Set<string>();
  const same: string[] = [];
  let added = 0;
  for (const [p, u] of up) {
    if (excluded(p)) continue;
    const l = low.get(p);
    if (!l) {
      picked.add(p);
      added++;
    } else if (l.ino !== u.ino || l.mode !== u.mode || l.uid !== u.uid || l.gid !== u.gid || l.size !== u.size) picked.add(p);
    else same.push(p);
  }
  if (same.length && lower) {
    const us = await statInodes(upper, same.map((p) => up.get(p)!.ino), scratch);
    const ls = await statInodes(lower, same.map((p) => low.get(p)!.ino), scratch);
    for (const p of same) if (us.get(up.get(p)!.ino)!.ctime !== ls.get(low.get(p)!.ino)!.ctime) picked.add(p);
  }
  const changed = picked.size - added;
  const deleted = [...low.keys()].filter((p) => !up.has(p) && !excluded(p) && !(parentOf(p) && !up.has(parentOf(p))));
  // Each picked entry's folders come first, as the disk has them.
  for (const p of [...picked]) for (let q = parentOf(p); q; q = parentOf(q)) picked.add(q);
  for (const p of deleted) for (let q = parentOf(p); q; q = parentOf(q)) picked.add(q);

  const paths = [...picked].sort();
  const info = await statInodes(upper, paths.map((p) => up.get(p)!.ino), scratch);
  const firstOf = new Map<number, string>();
  const dumps: { ino: number; dest: string }[] = [];
  const content = new Map<string, string>();
  for (const p of paths) {
    const e = up.get(p)!;
    const type = e.mode & S_IFMT;
    const slowLink = type === S_IFLNK && info.get(e.ino)!.fastLink === undefined;
    if ((type === S_IFREG && !firstOf.has(e.ino)) || slowLink) {
      const dest = path.join(scratch, `f${dumps.length}`);
      dumps.push({ ino: e.ino, dest });
      content.set(p, dest);
    }
    if (type === S_IFREG && !firstOf.has(e.ino)) firstOf.set(e.ino, p);
  }
  await dumpInodes(upper, dumps, scratch);

  const part = path.join(store.tmpDir, `commit-${process.pid}-${Date.now().toString(36)}.tar.gz`);
  const diff = createHash('sha256');
  const blob = createHash('sha256');
  const size = { n: 0 };
  const raw = new PassThrough({ highWaterMark: 1 << 20 });
  const done = pipeline(raw, hashing(diff, { n: 0 }), createGzip({ level: 6 }), hashing(blob, size), fs.createWriteStream(part));
  try {
    const deletedIn = new Map<string, string[]>();
    for (const d of deleted) deletedIn.set(parentOf(d), [...(deletedIn.get(parentOf(d)) ?? []), d]);
    const whiteouts = (dir: string) => (deletedIn.get(dir) ?? []).map((d) => ({ name: `${dir ? `${dir}/` : ''}.wh.${path.posix.basename(d)}`, type: 'file' as const, mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0 }));
    for (const w of whiteouts('')) await writeEntry(raw, w);
    for (const p of paths) {
      const e = up.get(p)!;
      const i = info.get(e.ino)!;
      const type = TYPES[e.mode & S_IFMT];
      if (!type) continue; // sockets are not kept in images
      const xattrs = i.xattrs.length ? await readXattrs(upper, e.ino, i.xattrs, scratch) : undefined;
      const base = { name: p, mode: e.mode, uid: e.uid, gid: e.gid, mtime: i.mtime, ...(xattrs ? { xattrs } : {}) };
      if (type === 'file' && firstOf.get(e.ino) !== p) await writeEntry(raw, { ...base, type: 'link', linkname: firstOf.get(e.ino)! });
      else if (type === 'file') await writeEntry(raw, { ...base, type, size: e.size, source: content.get(p) });
      else if (type === 'symlink') await writeEntry(raw, { ...base, type, linkname: i.fastLink ?? fs.readFileSync(content.get(p)!, 'utf8') });
      else if (type === 'char' || type === 'block') await writeEntry(raw, { ...base, type, major: i.major, minor: i.minor });
      else await writeEntry(raw, { ...base, type });
      if (type === 'directory') for (const w of whiteouts(p)) await writeEntry(raw, w);
    }
    await finish(raw);
    raw.end();
    await done;
  } catch (e) {
    raw.destroy();
    await done.catch(() => {});
    fs.rmSync(part, { force: true });
    throw e;
  }
  const digest = `sha256:${blob.digest('hex')}`;
  renameDurable(part, store.blobPath(digest));
  return { digest, size: size.n, diffId: `sha256:${diff.digest('hex')}`, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', added, changed, deleted: deleted.length };
}
