// Turns an image's layers into one read-only ext4 base, built once per image and shared by every box made from
// it (each box gets a thin qcow2 overlay on top, see disks.ts).
//
// Layers are applied in order into a staging folder with OCI whiteout and opaque-directory semantics. What an
// unprivileged process cannot put in a folder (other users' ownership, device nodes, fifos, xattrs such as file
// capabilities) is recorded on the side and written into the finished file system with debugfs, so the result is
// the same whether boxlite runs as root or as a normal user.
//
// A base is shared by every image whose layer blobs are the same bytes, and named by them: blobs are verified
// against their digests as they arrive (pull.ts, load.ts). What a config claims the layers hold (diff_ids) is
// checked as each layer is unpacked, and recorded beside the base only once every layer matched, so a claim
// alone never selects a base another image's layers built.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { ImageError } from '../../core/errors.js';
import { SafeRoot } from '../../util/safe-root.js';
import { applyLayer, type Fix, type Fixes } from './layer.js';
import { run } from '../../util/exec.js';
import { ensureDir, readJson, renameDurable, sha256, writeJsonAtomic } from '../../util/fs.js';
import { pidAlive } from '../../util/proc.js';
import { acquireLock } from '../../util/lock.js';
import type { ImageRecord, ImageStore } from './store.js';
import { checkDiffIdCount, diffIdMismatch } from './verify.js';

/** Bumped when the way bases are built or named changes, so old bases are rebuilt rather than reused. ext4-1 bases
 *  were named by unchecked diff_ids (an image could claim another's): none of them is trusted. */
const BASE_FORMAT = 'ext4-2';

export interface Base {
  path: string;
  /** Size of the base file system, which a box's disk must be at least. */
  sizeMib: number;
}

const TYPE_BITS: Record<Fix['type'], number> = { file: 0o100000, directory: 0o040000, symlink: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000 };

/** Named by the layer blobs' digests, which the store verified: the base is a function of exactly those bytes. */
export function baseKey(rec: ImageRecord): string {
  return sha256(BASE_FORMAT, ...rec.layers.map((l) => l.digest)).slice(0, 32);
}

interface BaseMeta {
  sizeMib: number;
  /** The diff_ids the layers were found to have while they were unpacked. */
  diffIds: string[];
}

function builtBase(store: ImageStore, rec: ImageRecord): { base: Base; diffIds: string[] } | null {
  const key = baseKey(rec);
  const meta = readJson<BaseMeta>(path.join(store.basesDir, `${key}.json`));
  const file = path.join(store.basesDir, `${key}.ext4`);
  return meta && fs.existsSync(file) ? { base: { path: file, sizeMib: meta.sizeMib }, diffIds: Array.isArray(meta.diffIds) ? meta.diffIds : [] } : null;
}

/** The base of an image if it was built from its layers and they hold what its config claims, else null. */
export function existingBase(store: ImageStore, rec: ImageRecord): Base | null {
  const b = builtBase(store, rec);
  return b && b.diffIds.length === rec.diffIds.length && b.diffIds.every((d, i) => d === rec.diffIds[i]) ? b.base : null;
}

/** The base built from these layers, for an image whose config must claim what they were found to hold. */
function claimed(b: { base: Base; diffIds: string[] }, rec: ImageRecord, name: string): Base {
  if (b.diffIds.length !== rec.layers.length) {
    throw new ImageError(`image ${name}: the record of its base ${b.base.path} is damaged (it does not say what the layers hold): remove the boxes made from it and run 'boxlite images prune'`);
  }
  const i = b.diffIds.findIndex((d, j) => d !== rec.diffIds[j]);
  if (i >= 0) throw diffIdMismatch(`image ${name}`, i + 1, rec.layers[i].digest, rec.diffIds[i], b.diffIds[i], 'no box was made from it');
  return b.base;
}

/** Builds the image's base once (other processes wait for it); returns it. */
export async function ensureBase(store: ImageStore, rec: ImageRecord, name: string, say?: (m: string) => void): Promise<Base> {
  checkDiffIdCount(`image ${name}`, rec);
  const have = builtBase(store, rec);
  if (have) return claimed(have, rec, name);
  const key = baseKey(rec);
  const lock = await acquireLock(path.join(store.basesDir, `${key}.lock`), `the assembly of image ${name}`, 30 * 60_000);
  try {
    const again = builtBase(store, rec);
    if (again) return claimed(again, rec, name);
    say?.(`assembling ${name} (${rec.layers.length} layer${rec.layers.length === 1 ? '' : 's'})`);
    // The image's root is a folder inside a private one (0700): while it is unpacked, its setuid files and
    // devices' owners are not for other users of this host to reach.
    // mkdtemp makes it atomically, 0700, under a name nobody could have prepared: /dev/shm is open to every user.
    const shm = stagingRoot(rec, store.basesDir);
    const outer = fs.mkdtempSync(path.join(shm, `boxlite-staging-${process.pid}-`));
    const staging = path.join(outer, 'root');
    const part = path.join(store.basesDir, `${key}.ext4.part-${process.pid}`);
    let where = shm;
    try {
      const fixes: Fixes = new Map();
      fs.mkdirSync(staging);
      const root = new SafeRoot(staging, 'contain');
      for (const [i, layer] of rec.layers.entries()) {
        const file = store.blobPath(layer.digest);
        if (!fs.existsSync(file)) throw new ImageError(`image ${name}: layer ${layer.digest} is missing from the store: pull the image again`);
        // Hashed as it is unpacked; a layer that is not what the config claims ends the build, leaving nothing.
        const diffId = await applyLayer(await openLayer(file), root, fixes, `image ${name}, layer ${layer.digest.slice(7, 19)}`);
        if (diffId !== rec.diffIds[i]) throw diffIdMismatch(`image ${name}`, i + 1, layer.digest, rec.diffIds[i], diffId, 'nothing was built');
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
      // The metadata last: without it the base is not there (existingBase), so a build cut short leaves none.
      writeJsonAtomic(path.join(store.basesDir, `${key}.json`), { sizeMib, diffIds: rec.diffIds, image: rec.id, builtAt: new Date().toISOString(), format: BASE_FORMAT });
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
      fs.rmSync(outer, { recursive: true, force: true });
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
  sweepStaleStaging(fallback);
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

/** Staging folders of assemblies whose process died (kill -9): in tmpfs they would hold memory until reboot. Only
 *  real folders of this user are removed, never what another user put there under a similar name. */
function sweepStaleStaging(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  const uid = process.getuid?.() ?? 0;
  for (const n of names) {
    // boxlite-staging-PID-XXXXXX (mkdtemp), or boxlite-staging-KEY-PID as earlier versions named them.
    const m = /^boxlite-staging-(?:(\d+)-[A-Za-z0-9]{6}|[0-9a-f]+-(\d+))$/.exec(n);
    if (!m) continue;
    const pid = Number(m[1] ?? m[2]);
    if (pid === process.pid || pidAlive(pid)) continue;
    const st = fs.lstatSync(path.join(dir, n), { throwIfNoEntry: false });
    if (!st?.isDirectory() || st.uid !== uid) continue;
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

const q = (p: string) => {
  if (/["\n\\]/.test(p)) throw new ImageError(`cannot write the metadata of "${p}": its name contains a quote, backslash or newline`);
  return `"${p}"`;
};

/** Writes owners, modes, device nodes and xattrs the staging folder could not hold, in one debugfs run. */
async function applyFixes(image: string, fixes: Fixes, xattrDir: string): Promise<void> {
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
        if (!/^[A-Za-z0-9._@+-]+$/.test(k)) throw new ImageError(`cannot write xattr ${JSON.stringify(k)} of "${p}": its name is malformed`); // xattrsOf refused it already
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
