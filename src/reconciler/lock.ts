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
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  const bad = (why: string) => new InvalidOptionError(`${file}: ${why}; write it again with 'boxlite lock --update'`);
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
    const pin = lock.images[b.image];
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
  const old = readLock(file);
  const refs = [...new Set(Object.values(spec.boxes).map((b) => b.image).filter(lockable))].sort();
  const images: ProjectLock['images'] = {};
  const result: LockResult = { file, images: [], removed: Object.keys(old?.images ?? {}).filter((r) => !refs.includes(r)) };
  for (const ref of refs) {
    const before = old?.images[ref];
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
