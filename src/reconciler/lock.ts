// boxlite.lock: what a project's image references resolved to, so that a project in git runs the same images on
// every machine until someone updates the lock. `boxlite lock` writes it (each reference's manifest digest and
// platform, and the guest kernel); plan and up use a locked reference's digest (a tag that moved changes nothing);
// `up --locked` refuses a box whose image is not in the lock.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidOptionError } from '../core/errors.js';
import { writeFileAtomic } from '../util/fs.js';
import type { Runtime } from '../runtime/runtime.js';
import type { ProjectSpec } from '../spec/types.js';

export const LOCK_FILE = 'boxlite.lock';
const FORMAT = 1;
const MAX_LOCK_BYTES = 4 << 20;
/** The platform boxes run (QEMU's x86_64 guests): a lock made for another one would not boot here. */
const BOX_PLATFORM = 'linux/amd64';

export interface LockedImage {
  digest: string;
  platform: string;
}

export interface ProjectLock {
  version: number;
  /** The guest kernel the lock was made with (a different one is said, not refused: it is the host's). */
  kernel?: string;
  /** Image reference as written in boxlite.yaml → what it resolved to. */
  images: Record<string, LockedImage>;
}

export const lockPathOf = (spec: ProjectSpec) => path.join(spec.dir, LOCK_FILE);

/** A registry reference (not a folder or an OCI layout path, not already pinned by digest). */
const lockable = (image: string) => !path.isAbsolute(image) && !image.includes('@');

/** The lock beside the project file, checked; null when there is none. */
export function readLock(file: string): ProjectLock | null {
  const bad = (why: string) => new InvalidOptionError(`${file}: ${why}; write it again with 'boxlite lock --update'`);
  let text: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw bad('not a regular file');
    if (st.size > MAX_LOCK_BYTES) throw bad(`larger than ${MAX_LOCK_BYTES >> 20} MiB`);
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    if (e instanceof InvalidOptionError) throw e;
    throw bad(`cannot be read (${(e as Error).message})`);
  }
  let lock: ProjectLock;
  try {
    lock = JSON.parse(text);
  } catch (e) {
    throw bad(`not valid JSON (${(e as Error).message})`);
  }
  if (typeof lock !== 'object' || lock === null || Array.isArray(lock)) throw bad('not a lock file');
  if (lock.version !== FORMAT) throw bad(`format ${JSON.stringify(lock.version)} is not ${FORMAT}`);
  if (typeof lock.images !== 'object' || lock.images === null || Array.isArray(lock.images)) throw bad('"images" is not an object');
  for (const [ref, v] of Object.entries(lock.images)) {
    if (typeof v !== 'object' || v === null || !/^sha256:[0-9a-f]{64}$/.test(String(v.digest)) || typeof v.platform !== 'string') {
      throw bad(`the entry for ${JSON.stringify(ref)} has no valid digest (sha256:…) and platform`);
    }
  }
  return lock;
}

/** The spec with each locked reference pinned to its digest (ref@sha256:…). locked: a lockable image missing from
 *  the lock (or no lock at all) is an error naming the box. */
export function applyLock(spec: ProjectSpec, lock: ProjectLock | null, opts: { locked?: boolean } = {}): ProjectSpec {
  const file = lockPathOf(spec);
  if (opts.locked && !lock) throw new InvalidOptionError(`--locked: there is no ${file}: write it with 'boxlite lock'`);
  if (!lock) return spec;
  const boxes = { ...spec.boxes };
  for (const [name, b] of Object.entries(spec.boxes)) {
    if (!lockable(b.image)) continue;
    const pin = Object.hasOwn(lock.images, b.image) ? lock.images[b.image] : undefined;
    if (pin && pin.platform !== BOX_PLATFORM) {
      throw new InvalidOptionError(`${file} pins box ${name}'s image ${b.image} for ${pin.platform}, but boxes run ${BOX_PLATFORM}: run 'boxlite lock --update' on this host`);
    }
    if (!pin) {
      if (opts.locked) throw new InvalidOptionError(`--locked: box ${name}'s image ${b.image} is not in ${file}: run 'boxlite lock' (and commit it)`);
      continue;
    }
    boxes[name] = { ...b, image: `${b.image}@${pin.digest}` };
  }
  return { ...spec, boxes };
}

export interface LockResult {
  file: string;
  /** Per reference: what happened to it. */
  images: { reference: string; digest: string; change: 'added' | 'updated' | 'kept' }[];
  removed: string[];
}

/** Resolves the project's image references (pulling them) and writes the lock. Without update, references already
 *  locked keep their digest; references no box uses any more leave the lock. */
export async function writeLock(rt: Runtime, spec: ProjectSpec, opts: { update?: boolean; kernel?: string; say?: (m: string) => void } = {}): Promise<LockResult> {
  const file = lockPathOf(spec);
  let old: ProjectLock | null;
  try {
    old = readLock(file);
  } catch (e) {
    // --update writes the lock afresh, so a broken one is no obstacle; without it, say how.
    if (!opts.update) throw e;
    opts.say?.(`boxlite: ${(e as Error).message.replace(/; write it again.*$/, '')}: writing it afresh`);
    old = null;
  }
  const refs = [...new Set(Object.values(spec.boxes).map((b) => b.image).filter(lockable))].sort();
  const images: ProjectLock['images'] = {};
  const result: LockResult = { file, images: [], removed: Object.keys(old?.images ?? {}).filter((r) => !refs.includes(r)) };
  for (const ref of refs) {
    const before = old && Object.hasOwn(old.images, ref) ? old.images[ref] : undefined;
    if (before && !opts.update) {
      images[ref] = before;
      result.images.push({ reference: ref, digest: before.digest, change: 'kept' });
      continue;
    }
    opts.say?.(`resolving ${ref}`);
    const img = await rt.images.pull(ref);
    images[ref] = { digest: img.manifestDigest, platform: img.platform };
    result.images.push({ reference: ref, digest: img.manifestDigest, change: !before ? 'added' : before.digest === img.manifestDigest ? 'kept' : 'updated' });
  }
  const lock: ProjectLock = { version: FORMAT, ...(opts.kernel ? { kernel: opts.kernel } : {}), images };
  writeFileAtomic(file, JSON.stringify(lock, null, 2) + '\n');
  return result;
}
