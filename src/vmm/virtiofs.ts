// Host folders (and single files) in a box: one virtiofsd per mount, reached by QEMU's vhost-user-fs device.
// virtio-9p was the other candidate, but the guest kernel (Debian's cloud kernel) is built without 9p, so the
// choice was made for us; virtiofs is also the faster of the two where both were measured elsewhere.
//
// Each virtiofsd runs in a mount namespace of its own, where the shared tree is bind-mounted into a private
// folder first: read-only mounts are then enforced on the host (a guest root remounting rw still cannot write),
// and a single file is shared as the only entry of that folder, so its siblings stay out of the box.
// It runs detached, and exits by itself when QEMU closes its socket.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startHelper } from './helpers.js';

export const VIRTIOFSD = process.env.BOXLITE_VIRTIOFSD ?? '/usr/lib/qemu/virtiofsd';

export interface ShareSpec {
  /** The box's folder. */
  dir: string;
  index: number;
  /** An absolute host path: a folder, or a file. */
  source: string;
  readOnly: boolean;
}

const fsDir = (dir: string) => path.join(dir, 'fs');
export const shareSocket = (dir: string, i: number) => path.join(fsDir(dir), `${i}.sock`);
/** A shared single file appears in its share under this name. */
export const SHARED_FILE_NAME = 'file';

/** The shell run under `unshare -m`: prepares the private tree, then becomes virtiofsd. */
function script(s: ShareSpec, isFile: boolean): string {
  const q = (x: string) => `'${x.replace(/'/g, `'\\''`)}'`;
  const priv = path.join(fsDir(s.dir), `${s.index}.root`);
  const target = isFile ? path.join(priv, SHARED_FILE_NAME) : priv;
  const lines = [
    'set -e',
    `mount --make-rprivate /`,
    `mkdir -p ${q(priv)}`,
    ...(isFile ? [`: > ${q(target)}`] : []),
    `mount --bind ${q(s.source)} ${q(target)}`,
    ...(s.readOnly ? [`mount -o remount,bind,ro ${q(target)}`] : []),
    `exec ${q(VIRTIOFSD)} --socket-path=${q(shareSocket(s.dir, s.index))} -o source=${q(priv)} -o cache=auto -o xattr -o no_posix_lock`,
  ];
  return lines.join('\n');
}

/** Starts the virtiofsd of one share and waits for its socket. */
export async function startShare(s: ShareSpec): Promise<void> {
  if (!fs.existsSync(VIRTIOFSD)) throw new Error(`virtiofsd is not installed (${VIRTIOFSD}): run 'boxlite setup' (Debian package qemu-system-common)`);
  if (process.getuid?.() !== 0) throw new Error(`host folders as volumes need root here: this virtiofsd (${VIRTIOFSD}) can only run as root`);
  let st: fs.Stats;
  try {
    st = fs.statSync(s.source);
  } catch {
    throw new Error(`host path ${s.source} does not exist: create it, or fix the volume`);
  }
  fs.mkdirSync(fsDir(s.dir), { recursive: true, mode: 0o700 });
  await startHelper({
    dir: s.dir,
    name: `fs-${s.index}`,
    what: `the file sharing helper for ${s.source}`,
    command: 'unshare',
    args: ['-m', 'sh', '-c', script(s, !st.isDirectory())],
    mark: shareSocket(s.dir, s.index),
    log: path.join(fsDir(s.dir), `${s.index}.log`),
    ready: { file: shareSocket(s.dir, s.index) },
  });
}
