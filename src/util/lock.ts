// Advisory file locks (flock(2)) so that concurrent boxlite processes never corrupt the home. Node has no flock;
// koffi calls libc. Locks vanish with the process that held them, so a killed CLI never leaves a stale lock.
// Shared locks let many users of a thing (pulls of the image store) exclude one remover (prune), and no more.
import * as fs from 'node:fs';
import { koffiLib } from './koffi-lib.js';

const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

let flockFn: ((fd: number, op: number) => number) | null = null;
function flock(fd: number, op: number): number {
  flockFn ??= koffiLib().load('libc.so.6').func('int flock(int, int)');
  return flockFn(fd, op);
}

export class LockTimeoutError extends Error {}

export interface Lock {
  release(): void;
}

export interface LockMode {
  /** Many holders at once; excludes only exclusive holders. */
  shared?: boolean;
}

/** Tries once; returns null if another process holds it. */
export function tryLock(file: string, mode: LockMode = {}): Lock | null {
  const fd = fs.openSync(file, 'a', 0o600);
  if (flock(fd, (mode.shared ? LOCK_SH : LOCK_EX) | LOCK_NB) !== 0) {
    fs.closeSync(fd);
    return null;
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      flock(fd, LOCK_UN);
      fs.closeSync(fd);
    },
  };
}

/** Waits (without blocking the event loop) until the lock is ours, or throws after timeoutMs. */
export async function acquireLock(file: string, what: string, timeoutMs = 120_000, mode: LockMode = {}): Promise<Lock> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    const l = tryLock(file, mode);
    if (l) return l;
    if (Date.now() > deadline) {
      throw new LockTimeoutError(`${what} is busy: another boxlite process has held its lock for ${timeoutMs / 1000}s (${file})`);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 100);
  }
}

export async function withLock<T>(file: string, what: string, fn: () => Promise<T> | T, mode: LockMode = {}): Promise<T> {
  const l = await acquireLock(file, what, undefined, mode);
  try {
    return await fn();
  } finally {
    l.release();
  }
}
