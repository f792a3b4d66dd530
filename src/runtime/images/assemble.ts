// Turns an image's layers into one read-only ext4 base, built once per image and shared by every box made from
// it (each box gets a thin qcow2 overlay on top, see disks.ts).
//
// Layers are applied in order into a staging folder with OCI whiteout and opaque-directory semantics. What an
// unprivileged process cannot put in a folder (other users' ownership, device nodes, fifos, xattrs such as file
// capabilities) is recorded on the side and written into the finished file system with debugfs, so the result is
// the same whether boxlite runs as root or as a normal user.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { createGunzip } from 'node:zlib';
import { createRequire } from 'node:module';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { ImageError } from '../../core/errors.js';
import { run } from '../../util/exec.js';
import { ensureDir, readJson, renameDurable, sha256, writeJsonAtomic } from '../../util/fs.js';
import { pidAlive } from '../../util/proc.js';
import { acquireLock } from '../../util/lock.js';
import type { ImageRecord, ImageStore } from './store.js';

/** Bumped when the way bases are built changes, so old bases are rebuilt rather than reused. */
const BASE_FORMAT = 'ext4-1';

// tar-stream decodes PAX values as UTF-8, which mangles binary xattrs (security.capability). Keep xattr values as
// latin1 so every byte survives; Buffer.from(v, 'latin1') gets them back.
{
  const require = createRequire(import.meta.url);
  const headers = require(path.join(path.dirname(require.resolve('tar-stream')), 'headers.js'));
  if (!headers.__boxlitePatched) {
    headers.decodePax = (buf: Buffer) => {
      const result: Record<string, string> = {};
      while (buf.length) {
        let i = 0;
        while (i < buf.length && buf[i] !== 32) i++;
        const len = parseInt(buf.subarray(0, i).toString(), 10);
        if (!len) return result;
        const rec = buf.subarray(i + 1, len - 1);
        const eq = rec.indexOf(61);
        if (eq === -1) return result;
        const key = rec.subarray(0, eq).toString('utf8');
        result[key] = rec.subarray(eq + 1).toString(key.startsWith('SCHILY.xattr.') ? 'latin1' : 'utf8');
        buf = buf.subarray(len);
      }
      return result;
    };
    headers.__boxlitePatched = true;
  }
}

export interface Base {
  path: string;
  /** Size of the base file system, which a box's disk must be at least. */
  sizeMib: number;
}

interface Fix {
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

const TYPE_BITS: Record<Fix['type'], number> = { file: 0o100000, directory: 0o040000, symlink: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000 };

export function baseKey(rec: ImageRecord): string {
  const layers = rec.diffIds.length === rec.layers.length ? rec.diffIds : rec.layers.map((l) => l.digest);
  return sha256(BASE_FORMAT, ...layers).slice(0, 32);
}

/** The base of an image if it was built, else null. */
export function existingBase(store: ImageStore, rec: ImageRecord): Base | null {
  const key = baseKey(rec);
  const meta = readJson<{ sizeMib: number }>(path.join(store.basesDir, `${key}.json`));
  const file = path.join(store.basesDir, `${key}.ext4`);
  return meta && fs.existsSync(file) ? { path: file, sizeMib: meta.sizeMib } : null;
}

/** Builds the image's base once (other processes wait for it); returns it. */
export async function ensureBase(store: ImageStore, rec: ImageRecord, name: string, say?: (m: string) => void): Promise<Base> {
  const have = existingBase(store, rec);
  if (have) return have;
  const key = baseKey(rec);
  const lock = await acquireLock(path.join(store.basesDir, `${key}.lock`), `the assembly of image ${name}`, 30 * 60_000);
  try {
    const again = existingBase(store, rec);
    if (again) return again;
    say?.(`assembling ${name} (${rec.layers.length} layer${rec.layers.length === 1 ? '' : 's'})`);
    const staging = path.join(stagingRoot(rec, store.basesDir), `boxlite-staging-${key}-${process.pid}`);
    const part = path.join(store.basesDir, `${key}.ext4.part-${process.pid}`);
    fs.rmSync(staging, { recursive: true, force: true });
    let where = path.dirname(staging);
    try {
      const fixes = new Map<string, Fix>();
      ensureDir(staging);
      for (const layer of rec.layers) {
        const file = store.blobPath(layer.digest);
        if (!fs.existsSync(file)) throw new ImageError(`image ${name}: layer ${layer.digest} is missing from the store: pull the image again`);
        await applyLayer(await openLayer(file), staging, fixes, `image ${name}, layer ${layer.digest.slice(7, 19)}`);
      }
      // What mke2fs will need: whole 4 KiB blocks per file, one per folder (what later layers deleted is not counted).
      const { bytes, entries } = measure(staging);
      // Room for ext4's own metadata and a little slack; the box's disk grows the file system at first boot.
      const sizeMib = Math.ceil((bytes * 1.15) / (1 << 20)) + 32;
      const inodes = Math.max(entries + fixes.size + 4096, Math.ceil(entries * 1.3));
      where = store.basesDir;
      await run('/usr/sbin/mkfs.ext4', ['-q', '-F', '-L', 'boxlite-root', '-N', String(inodes), '-E', 'root_owner=0:0', '-d', staging, part, `${sizeMib}M`]);
      await applyFixes(part, fixes, path.join(store.basesDir, `${key}.xattr-${process.pid}`));
      fs.chmodSync(part, 0o444);
      const final = path.join(store.basesDir, `${key}.ext4`);
      renameDurable(part, final);
      writeJsonAtomic(path.join(store.basesDir, `${key}.json`), { sizeMib, image: rec.id, builtAt: new Date().toISOString(), format: BASE_FORMAT });
      return { path: final, sizeMib };
    } catch (e) {
      fs.rmSync(part, { force: true });
      const msg = (e as Error).message;
      if ((e as NodeJS.ErrnoException).code === 'ENOSPC' || /No space left|ENOSPC|Could not allocate block/i.test(msg)) {
        throw new ImageError(`no space left on the device holding ${where} while assembling image ${name}: free some space (or prune images) and try again; nothing was kept`);
      }
      if (e instanceof ImageError) throw e;
      throw new ImageError(`cannot assemble image ${name}: ${msg}`);
    } finally {
      fs.rmSync(staging, { recursive: true, force: true });
    }
  } finally {
    lock.release();
  }
}

/**
 * Where layers are unpacked before mke2fs copies them into the base. Creating an inode costs ~0.75 ms on this
 * project's ext4 hosts and ~0.03 ms in tmpfs (measured: a Debian image's 7 348 entries unpack in 5.7 s vs 0.24 s),
 * so the staging goes to /dev/shm when the image fits comfortably in memory; otherwise beside the bases.
 */
function stagingRoot(rec: ImageRecord, fallback: string): string {
  const shm = process.env.BOXLITE_STAGING_DIR ?? '/dev/shm';
  sweepStaleStaging(shm);
  // Layers are mostly gzip; unpacked they are a few times larger.
  const estimate = rec.layers.reduce((n, l) => n + l.size * (/gzip|zstd/.test(l.mediaType) ? 4 : 1.1), 0);
  try {
    const st = fs.statfsSync(shm);
    const free = st.bavail * st.bsize;
    const mem = /MemAvailable:\s+(\d+) kB/.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
    const available = mem ? Number(mem[1]) * 1024 : 0;
    fs.accessSync(shm, fs.constants.W_OK);
    if (estimate < free / 2 && estimate < available / 4) return shm;
  } catch {}
  return fallback;
}

/** Staging folders of assemblies whose process died (kill -9): in tmpfs they would hold memory until reboot. */
function sweepStaleStaging(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.startsWith('boxlite-staging-'));
  } catch {
    return;
  }
  for (const n of names) {
    const pid = Number(n.split('-').at(-1));
    if (!pid || pid === process.pid || pidAlive(pid)) continue;
    fs.rmSync(path.join(dir, n), { recursive: true, force: true });
  }
}

/** A layer's tar stream, decompressed by what its bytes say (gzip, zstd or none), not by its declared media type. */
async function openLayer(file: string): Promise<Readable> {
  const head = Buffer.alloc(4);
  const fd = fs.openSync(file, 'r');
  fs.readSync(fd, head, 0, 4, 0);
  fs.closeSync(fd);
  if (head[0] === 0x1f && head[1] === 0x8b) return fs.createReadStream(file).pipe(createGunzip());
  if (head.readUInt32LE(0) === 0xfd2fb528) {
    const z = spawn('zstd', ['-dcq', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    z.stderr.on('data', (d) => (err += d));
    z.on('close', (code) => code !== 0 && z.stdout.destroy(new Error(`zstd could not decompress ${path.basename(file)}: ${err.trim() || `exit ${code}`}`)));
    return z.stdout;
  }
  return fs.createReadStream(file);
}

function measure(dir: string): { bytes: number; entries: number } {
  let bytes = 0;
  let entries = 0;
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      entries++;
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        bytes += 4096;
        walk(p);
      } else if (e.isFile()) bytes += Math.ceil(fs.lstatSync(p).size / 4096) * 4096;
    }
  };
  walk(dir);
  return { bytes, entries };
}

/** Normalises a tar entry name to a path inside the root ('' is the root itself); refuses escapes. */
function entryPath(name: string, what: string): string {
  const parts: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') throw new ImageError(`${what}: entry "${name}" climbs out of the root file system`);
    parts.push(p);
  }
  return parts.join('/');
}

function dropFixes(fixes: Map<string, Fix>, rel: string, withSelf: boolean): void {
  const prefix = rel === '' ? '' : `${rel}/`;
  for (const k of fixes.keys()) if ((withSelf && k === rel) || k.startsWith(prefix)) fixes.delete(k);
}

const canChown = process.getuid?.() === 0;

async function applyLayer(input: Readable, root: string, fixes: Map<string, Fix>, what: string): Promise<void> {
  const extract = tar.extract();
  const thisLayer = new Set<string>();
  const abs = (rel: string) => (rel === '' ? root : path.join(root, rel));
  // Folders known to exist: most entries land in a folder an earlier entry made, so skip asking the disk.
  const dirs = new Set<string>([root]);
  const removeExisting = (rel: string) => {
    const p = abs(rel);
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (st) {
      fs.rmSync(p, { recursive: true, force: true });
      if (st.isDirectory()) for (const d of dirs) if (d === p || d.startsWith(p + '/')) dirs.delete(d);
      dropFixes(fixes, rel, true);
    } else if (fixes.has(rel)) fixes.delete(rel); // a device node, which lives only in fixes
  };
  const ensureParent = (rel: string) => {
    const parent = path.dirname(abs(rel));
    if (dirs.has(parent)) return;
    const st = fs.lstatSync(parent, { throwIfNoEntry: false });
    if (st && !st.isDirectory()) fs.rmSync(parent, { force: true }); // a lower layer's file where this layer has a folder
    ensureDir(parent);
    dirs.add(parent);
  };

  extract.on('entry', (h, stream, next) => {
    const done = (err?: unknown) => next(err as Error | undefined);
    const skip = () => {
      stream.on('end', () => done());
      stream.resume();
    };
    try {
      const rel = entryPath(h.name, what);
      const base = path.posix.basename(rel);
      const dir = path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel);
      if (base === '.wh..wh..opq') {
        // Opaque directory: what lower layers put in it is hidden; this layer's own entries stay.
        const d = abs(dir);
        for (const e of fs.existsSync(d) ? fs.readdirSync(d) : []) {
          const child = dir ? `${dir}/${e}` : e;
          if (!thisLayer.has(child)) removeExisting(child);
        }
        const prefix = dir ? `${dir}/` : '';
        for (const k of [...fixes.keys()]) {
          if (!k.startsWith(prefix) || k === dir) continue;
          if (!thisLayer.has(prefix + k.slice(prefix.length).split('/')[0])) fixes.delete(k); // device nodes live only here
        }
        return skip();
      }
      if (base.startsWith('.wh.')) {
        removeExisting(dir ? `${dir}/${base.slice(4)}` : base.slice(4));
        return skip();
      }
      thisLayer.add(rel);
      const xattrs: Record<string, Buffer> = {};
      for (const [k, v] of Object.entries(h.pax ?? {})) if (k.startsWith('SCHILY.xattr.')) xattrs[k.slice(13)] = Buffer.from(v, 'latin1');
      const mode = (h.mode ?? 0o644) & 0o7777;
      const uid = h.uid ?? 0;
      const gid = h.gid ?? 0;
      const record = (type: Fix['type'], ownerSet: boolean, extra: Partial<Fix> = {}) => {
        const hasX = Object.keys(xattrs).length > 0;
        if (!ownerSet || hasX || type === 'char' || type === 'block' || type === 'fifo') {
          fixes.set(rel, { type, uid, gid, mode, owner: !ownerSet, xattrs: hasX ? xattrs : undefined, ...extra });
        } else fixes.delete(rel);
      };
      // chown first: it clears setuid bits, which chmod then sets.
      // Unprivileged, the staging copy keeps owner access (to write into folders, and for mke2fs to read files);
      // the real mode is then written with debugfs.
      const own = (p: string, kind: 'file' | 'directory' | 'symlink'): boolean => {
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
          const p = abs(rel);
          const st = fs.lstatSync(p, { throwIfNoEntry: false });
          if (st && !st.isDirectory()) removeExisting(rel);
          if (rel !== '') ensureParent(rel);
          ensureDir(p);
          dirs.add(p);
          record('directory', own(p, 'directory'));
          return skip();
        }
        case 'file':
        case 'contiguous-file': {
          removeExisting(rel);
          ensureParent(rel);
          const p = abs(rel);
          // Synchronous writes: one image has thousands of small files, and a write stream per file costs
          // several thread-pool round trips each.
          const fd = fs.openSync(p, 'w', 0o600);
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
              record('file', own(p, 'file'));
              done();
            } catch (e) {
              done(e);
            }
          });
          return;
        }
        case 'symlink': {
          removeExisting(rel);
          ensureParent(rel);
          fs.symlinkSync(h.linkname ?? '', abs(rel));
          record('symlink', own(abs(rel), 'symlink'));
          return skip();
        }
        case 'link': {
          const target = entryPath(h.linkname ?? '', what);
          removeExisting(rel);
          ensureParent(rel);
          const t = fixes.get(target);
          if (t && (t.type === 'char' || t.type === 'block' || t.type === 'fifo')) {
            fixes.set(rel, { ...t }); // a hard link to a device node: another node with the same numbers
            return skip();
          }
          try {
            fs.linkSync(abs(target), abs(rel));
          } catch (e) {
            throw new ImageError(`${what}: hard link ${rel} points at ${target}, which is not in the image (${(e as NodeJS.ErrnoException).code})`);
          }
          return skip();
        }
        case 'character-device':
        case 'block-device':
        case 'fifo': {
          removeExisting(rel);
          ensureParent(rel);
          const type = h.type === 'fifo' ? 'fifo' : h.type === 'character-device' ? 'char' : 'block';
          fixes.set(rel, { type, uid, gid, mode, major: h.devmajor ?? 0, minor: h.devminor ?? 0, owner: true, xattrs: Object.keys(xattrs).length ? xattrs : undefined });
          return skip();
        }
        default:
          return skip(); // pax and GNU extension headers are handled by tar-stream; other types carry nothing to keep
      }
    } catch (e) {
      stream.resume();
      done(e);
    }
  });
  try {
    await pipeline(input, extract);
  } catch (e) {
    if (e instanceof ImageError || (e as NodeJS.ErrnoException).code === 'ENOSPC') throw e;
    throw new ImageError(`${what} is not a readable tar stream: ${(e as Error).message}`);
  }
}

const q = (p: string) => {
  if (/["\n\\]/.test(p)) throw new ImageError(`cannot write the metadata of "${p}": its name contains a quote, backslash or newline`);
  return `"${p}"`;
};

/** Writes owners, modes, device nodes and xattrs the staging folder could not hold, in one debugfs run. */
async function applyFixes(image: string, fixes: Map<string, Fix>, xattrDir: string): Promise<void> {
  if (fixes.size === 0) return;
  const lines: string[] = [];
  let n = 0;
  try {
    for (const [rel, f] of fixes) {
      const p = `/${rel}`;
      if (f.type === 'char' || f.type === 'block' || f.type === 'fifo') {
        const dir = path.posix.dirname(p);
        const name = path.posix.basename(p);
        lines.push(`cd ${q(dir)}`, f.type === 'fifo' ? `mknod ${q(name)} p` : `mknod ${q(name)} ${f.type === 'char' ? 'c' : 'b'} ${f.major} ${f.minor}`);
      }
      if (f.owner || f.type === 'char' || f.type === 'block' || f.type === 'fifo') {
        lines.push(`sif ${q(p)} uid ${f.uid}`, `sif ${q(p)} gid ${f.gid}`);
        if (f.type !== 'symlink') lines.push(`sif ${q(p)} mode 0${(TYPE_BITS[f.type] | f.mode).toString(8)}`);
      }
      for (const [k, v] of Object.entries(f.xattrs ?? {})) {
        ensureDir(xattrDir);
        const vf = path.join(xattrDir, String(n++));
        fs.writeFileSync(vf, v);
        lines.push(`ea_set -f ${q(vf)} ${q(p)} ${k}`);
      }
    }
    const script = `${xattrDir}.script`;
    fs.writeFileSync(script, lines.join('\n') + '\n');
    const out = await run('sh', ['-c', '/usr/sbin/debugfs -w -f "$1" "$2" 2>&1', 'sh', script, image]);
    fs.rmSync(script, { force: true });
    // debugfs reports failures of single commands on stdout/stderr but exits 0; look for them.
    const bad = out.split('\n').find((l) => /^(?!debugfs:).*(not found|Could not|No free space|error|Invalid)/i.test(l));
    if (bad) throw new ImageError(`writing file metadata into the image failed: ${bad.trim()}`);
  } finally {
    fs.rmSync(xattrDir, { recursive: true, force: true });
  }
}
