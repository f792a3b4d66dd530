// Applying one image layer to the staging folder of a base: OCI whiteouts and opaque folders, and a record of what
// an unprivileged process cannot put in a folder (other users' ownership, device nodes, fifos, xattrs), which
// assemble.ts writes into the finished file system with debugfs.
//
// A layer is written by whoever made the image. Every name goes through SafeRoot (contain): a symlink the layers
// made is followed only inside the staging folder, so no entry, whiteout or opaque marker acts on a host file,
// and a hard link can only join files already in the image.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { ImageError } from '../../core/errors.js';
import { SafeRoot, UnsafeEntryError, type Resolved } from '../../util/safe-root.js';
import { BadXattrError, extract as tarExtract, failEntry, xattrsOf } from '../../util/tar.js';
import { hashingStream } from './verify.js';

export interface Fix {
  type: 'file' | 'directory' | 'symlink' | 'char' | 'block' | 'fifo';
  uid: number;
  gid: number;
  mode: number;
  major?: number;
  minor?: number;
  /** Whether uid/gid/mode still need setting (the staging folder could not take them). */
  owner: boolean;
  xattrs?: Record<string, Buffer>;
}

/** What debugfs needs per file, by its canonical name in the image. */
export type Fixes = Map<string, Fix>;

const OPAQUE = '.wh..wh..opq';
const WHITEOUT = '.wh.';
const canChown = process.getuid?.() === 0;

function dropFixes(fixes: Fixes, rel: string): void {
  const prefix = rel === '' ? '' : `${rel}/`;
  for (const k of fixes.keys()) if (k === rel || k.startsWith(prefix)) fixes.delete(k);
}

/** Applies one layer's tar stream; returns the sha256 of every byte of it that was read: the layer's true diff_id. */
export async function applyLayer(input: Readable, root: SafeRoot, fixes: Fixes, what: string): Promise<string> {
  const extract = tarExtract();
  const thisLayer = new Set<string>();
  /** Removes what a lower layer put there, and its recorded fixes (a device node lives only there). */
  const removeAt = (r: Resolved) => {
    root.remove(r);
    dropFixes(fixes, r.rel);
  };
  /** The folder holding a whiteout or opaque marker, inside the root; null when it is not there (nothing to hide). */
  const holder = (parts: string[]): Resolved | null => {
    try {
      const d = root.existing(parts.join('/'), { followLast: true });
      return fs.lstatSync(d.abs).isDirectory() ? d : null;
    } catch (e) {
      if (e instanceof UnsafeEntryError) return null;
      throw e;
    }
  };

  extract.on('entry', (h, stream, next) => {
    const done = (err?: unknown) => next(err as Error | undefined);
    const skip = () => {
      stream.on('end', () => done());
      stream.resume();
    };
    try {
      const parts = SafeRoot.components(h.name);
      const base = parts.at(-1) ?? '';
      if (base === OPAQUE) {
        // Opaque folder: what lower layers put in it is hidden; this layer's own entries stay.
        const dir = holder(parts.slice(0, -1));
        if (dir) {
          for (const e of fs.readdirSync(dir.abs)) {
            const child = dir.rel ? `${dir.rel}/${e}` : e;
            if (!thisLayer.has(child)) removeAt({ rel: child, abs: path.join(dir.abs, e) });
          }
          const prefix = dir.rel ? `${dir.rel}/` : '';
          for (const k of [...fixes.keys()]) {
            if (!k.startsWith(prefix) || k === dir.rel) continue;
            if (!thisLayer.has(prefix + k.slice(prefix.length).split('/')[0])) fixes.delete(k); // device nodes live only here
          }
        }
        return skip();
      }
      if (base.startsWith(WHITEOUT)) {
        const victim = base.slice(WHITEOUT.length);
        if (!victim || victim === '.' || victim === '..') throw new UnsafeEntryError(`whiteout "${h.name}" names no entry`);
        const dir = holder(parts.slice(0, -1));
        if (dir) removeAt({ rel: dir.rel ? `${dir.rel}/${victim}` : victim, abs: path.join(dir.abs, victim) });
        return skip();
      }
      const at = root.place(h.name, { create: true });
      const rel = at.rel;
      const p = at.abs;
      thisLayer.add(rel);
      const xattrs = xattrsOf(h);
      const hasX = Object.keys(xattrs).length > 0;
      const mode = (h.mode ?? 0o644) & 0o7777;
      const uid = h.uid ?? 0;
      const gid = h.gid ?? 0;
      const record = (type: Fix['type'], ownerSet: boolean, extra: Partial<Fix> = {}) => {
        if (!ownerSet || hasX || type === 'char' || type === 'block' || type === 'fifo') {
          fixes.set(rel, { type, uid, gid, mode, owner: !ownerSet, xattrs: hasX ? xattrs : undefined, ...extra });
        } else fixes.delete(rel);
      };
      // chown first: it clears setuid bits, which chmod then sets. Unprivileged, the staging copy keeps owner
      // access (to write into folders, and for mke2fs to read files); the real mode is written with debugfs.
      const own = (kind: 'file' | 'directory' | 'symlink'): boolean => {
        let ok = true;
        if (canChown) {
          try {
            fs.lchownSync(p, uid, gid);
          } catch {
            ok = false;
          }
        } else ok = uid === process.getuid?.() && gid === process.getgid?.();
        if (kind !== 'symlink') {
          const staged = canChown ? mode : mode | (kind === 'directory' ? 0o700 : 0o600);
          fs.chmodSync(p, staged);
          if (staged !== mode) ok = false;
        }
        return ok;
      };
      switch (h.type) {
        case 'directory': {
          const st = fs.lstatSync(p, { throwIfNoEntry: false });
          if (st && !st.isDirectory()) removeAt(at);
          if (!st || !st.isDirectory()) fs.mkdirSync(p, { mode: 0o700 });
          record('directory', own('directory'));
          return skip();
        }
        case 'file':
        case 'contiguous-file': {
          removeAt(at);
          // O_EXCL: a name that is there now was not there a moment ago; never write through anything.
          // Synchronous writes: one image has thousands of small files, and a write stream per file costs
          // several thread-pool round trips each.
          const fd = fs.openSync(p, 'wx', 0o600);
          let failed = false;
          stream.on('data', (chunk: unknown) => {
            if (failed) return;
            try {
              fs.writeSync(fd, chunk as Buffer);
            } catch (e) {
              failed = true;
              fs.closeSync(fd);
              stream.destroy(e as Error);
            }
          });
          stream.on('error', (e) => done(e));
          stream.on('end', () => {
            if (failed) return;
            try {
              fs.closeSync(fd);
              record('file', own('file'));
              done();
            } catch (e) {
              done(e);
            }
          });
          return;
        }
        case 'symlink': {
          removeAt(at);
          fs.symlinkSync(h.linkname ?? '', p); // its target is never followed here
          record('symlink', own('symlink'));
          return skip();
        }
        case 'link': {
          removeAt(at);
          const linkname = h.linkname ?? '';
          let target: string;
          try {
            target = root.place(linkname).rel;
          } catch (e) {
            if (!(e instanceof UnsafeEntryError)) throw e;
            throw new UnsafeEntryError(`hard link ${rel} points at ${linkname}, which is not in the image (${e.message})`);
          }
          const t = fixes.get(target);
          if (t && (t.type === 'char' || t.type === 'block' || t.type === 'fifo')) {
            fixes.set(rel, { ...t }); // a hard link to a device node: another node with the same numbers
            return skip();
          }
          try {
            root.link(at, linkname);
          } catch (e) {
            if (!(e instanceof UnsafeEntryError)) throw e;
            throw new UnsafeEntryError(`hard link ${rel} points at ${linkname}, which is not in the image (${e.message})`);
          }
          return skip();
        }
        case 'character-device':
        case 'block-device':
        case 'fifo': {
          removeAt(at);
          const type = h.type === 'fifo' ? 'fifo' : h.type === 'character-device' ? 'char' : 'block';
          fixes.set(rel, { type, uid, gid, mode, major: h.devmajor ?? 0, minor: h.devminor ?? 0, owner: true, xattrs: hasX ? xattrs : undefined });
          return skip();
        }
        default:
          return skip(); // pax and GNU extension headers are handled by tar-stream; other types carry nothing to keep
      }
    } catch (e) {
      failEntry(stream, next, e instanceof UnsafeEntryError || e instanceof BadXattrError ? new ImageError(`${what}: ${e.message}; the image was refused`) : (e as Error));
    }
  });
  const hashed = hashingStream();
  try {
    await pipeline(input, hashed.stream, extract);
  } catch (e) {
    if (e instanceof ImageError || (e as NodeJS.ErrnoException).code === 'ENOSPC') throw e;
    throw new ImageError(`${what} is not a readable tar stream: ${(e as Error).message}`);
  }
  return hashed.digest();
}
