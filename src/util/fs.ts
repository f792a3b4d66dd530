// File helpers for state that must survive a crash: a reader sees the old content or the new, never a torn one,
// and once a call returns, a power loss cannot undo it (file and folder are both fsynced).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';

/** Flushes a file's data, or a folder's entries (a rename into it, a new file), to disk. */
export function fsyncPath(p: string): void {
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Puts a finished file (or folder) in place for good: its data, then the rename, then the folder. */
export function renameDurable(from: string, to: string): void {
  if (fs.lstatSync(from).isFile()) fsyncPath(from);
  fs.renameSync(from, to);
  fsyncPath(path.dirname(to));
}

/** Writes a file so that readers see either the old or the new content, never a torn one. */
export function writeFileAtomic(file: string, data: string | Buffer, mode = 0o644): void {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  // 'wx': a symlink planted at the temporary name (in a folder a jailed helper owns) is never followed.
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  fsyncPath(path.dirname(file));
}

export function writeJsonAtomic(file: string, value: unknown, mode = 0o644): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n', mode);
}

export class CorruptFileError extends Error {
  constructor(readonly file: string, why: string) {
    super(`${file} is not valid JSON (${why})`);
  }
}

/** The parsed file, undefined when it does not exist; a CorruptFileError when it cannot be parsed. */
export function readJson<T>(file: string): T | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw e;
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new CorruptFileError(file, (e as Error).message);
  }
}

export function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(1 << 20);
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

export function sha256(...parts: (string | Buffer)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex');
}

export function ensureDir(dir: string, mode?: number): string {
  fs.mkdirSync(dir, { recursive: true, ...(mode !== undefined ? { mode } : {}) });
  return dir;
}

/** Last n lines of a text file (reads only its end). */
export function tailLines(file: string, n: number, maxBytes = 64 * 1024): string[] {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return [];
  }
  try {
    const size = fs.fstatSync(fd).size;
    const len = Math.min(size, maxBytes);
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, size - len);
    const lines = buf.toString('utf8').replace(/\r/g, '').split('\n');
    if (lines.at(-1) === '') lines.pop();
    return lines.slice(-n);
  } finally {
    fs.closeSync(fd);
  }
}

/** The start of a small file in a folder someone else may write (a VMM's run folder): only a regular file is read,
 *  never through a symlink, and a FIFO put there cannot make the reader wait. Null when it is anything else. */
export function readSmallRegularFile(file: string, maxBytes = 4096): string | null {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
  } catch {
    return null;
  }
  try {
    if (!fs.fstatSync(fd).isFile()) return null;
    const buf = Buffer.alloc(maxBytes);
    return buf.subarray(0, fs.readSync(fd, buf, 0, maxBytes, 0)).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}
