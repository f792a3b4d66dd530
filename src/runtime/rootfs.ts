// Root filesystem sources for a box: a plain folder, or an image from the store (see images/). A folder's box
// gets a full ext4 copy of it as its disk; the guest mounts the disk read-write as its root.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RootfsError } from '../core/errors.js';
import { run } from '../util/exec.js';
import { renameDurable } from '../util/fs.js';
import type { ImageConfig, Source } from './types.js';

export const EMPTY_CONFIG: ImageConfig = { env: [], entrypoint: [], cmd: [], workingDir: '', user: '' };

function readableDir(p: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    throw new RootfsError(`root filesystem ${p} does not exist: give a directory, an OCI image layout or an image reference`);
  }
  if (!st.isDirectory()) throw new RootfsError(`root filesystem ${p} is not a directory: give a directory, an OCI image layout or an image reference`);
  try {
    fs.accessSync(p, fs.constants.R_OK | fs.constants.X_OK);
    fs.readdirSync(p);
  } catch {
    throw new RootfsError(`root filesystem ${p} is not readable by this user: fix its permissions (chmod) or run as its owner`);
  }
}

export function isOciLayout(p: string): boolean {
  return fs.existsSync(path.join(p, 'oci-layout')) && fs.existsSync(path.join(p, 'index.json'));
}

/** Validates a plain root filesystem folder as a box source. */
export function resolveDir(p: string): Source & { kind: 'dir' } {
  const abs = path.resolve(p);
  readableDir(abs);
  return { kind: 'dir', path: abs, config: { ...EMPTY_CONFIG } };
}

async function duBytes(dir: string): Promise<number> {
  return Number((await run('du', ['-sb', dir])).split(/\s/)[0]);
}

/** Builds the box's ext4 disk at diskPath from the source. Sparse: unused space costs nothing. */
export async function buildDisk(src: Source & { kind: 'dir' }, diskPath: string, sizeMib: number): Promise<void> {
  const dir = src.path;
  readableDir(dir);
  const need = Math.ceil(((await duBytes(dir)) * 1.3) / (1 << 20)) + 64;
  if (need > sizeMib) {
    throw new RootfsError(`root filesystem ${src.path} needs about ${need} MiB but the disk is ${sizeMib} MiB: give a larger disk size`);
  }
  const part = `${diskPath}.part`;
  fs.rmSync(part, { force: true });
  try {
    await run('/usr/sbin/mkfs.ext4', ['-q', '-F', '-L', 'boxlite-root', '-d', dir, part, `${sizeMib}M`]);
  } catch (e) {
    throw new RootfsError(`cannot build the box's disk from ${src.path}: ${(e as Error).message}`);
  }
  renameDurable(part, diskPath);
}
