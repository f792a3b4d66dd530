// Host folders (and single files) in a box: one virtiofsd per mount, reached by QEMU's vhost-user-fs device.
// virtio-9p was the other candidate, but the guest kernel (Debian's cloud kernel) is built without 9p, so the
// choice was made for us; virtiofs is also the faster of the two where both were measured elsewhere.
//
// Each virtiofsd runs in a mount namespace of its own, where the shared tree is bind-mounted into a private
// folder first: read-only mounts are then enforced on the host (a guest root remounting rw still cannot write),
// and a single file is shared as the only entry of that folder, so its siblings stay out of the box.
// It runs detached, and exits by itself when QEMU closes its socket.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tailLines } from '../util/fs.js';
import { helperPid, stopHelper } from '../util/proc.js';

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
const pidFile = (dir: string, i: number) => path.join(fsDir(dir), `${i}.pid`);
const logFile = (dir: string, i: number) => path.join(fsDir(dir), `${i}.log`);
/** A shared single file appears in its share under this name. */
export const SHARED_FILE_NAME = 'file';

/** The shell run under `unshare -m`: prepares the private tree, then becomes virtiofsd. */
function script(s: ShareSpec, isFile: boolean): string {
  const q = (x: string) => `'${x.replace(/'/g, `'\\''`)}'`;
  const priv = path.join(fsDir(s.dir), `${s.index}.root`);
  const lines = [
    'set -e',
    `mount --make-rprivate /`,
    `mkdir -p ${q(priv)}`,
    isFile ? `: > ${q(path.join(priv, SHARED_FILE_NAME))} && mount --bind ${q(s.source)} ${q(path.join(priv, SHARED_FILE_NAME))}` : `mount --bind ${q(s.source)} ${q(priv)}`,
    ...(s.readOnly ? [isFile ? `mount -o remount,bind,ro ${q(path.join(priv, SHARED_FILE_NAME))}` : `mount -o remount,bind,ro ${q(priv)}`] : []),
    `exec ${q(VIRTIOFSD)} --socket-path=${q(shareSocket(s.dir, s.index))} -o source=${q(priv)} -o cache=auto -o xattr -o no_posix_lock`,
  ];
  return lines.join('\n');
}

export function sharePid(dir: string, i: number): number | null {
  return helperPid(pidFile(dir, i), shareSocket(dir, i));
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
  stopShare(s.dir, s.index);
  fs.mkdirSync(fsDir(s.dir), { recursive: true, mode: 0o700 });
  for (const f of [shareSocket(s.dir, s.index), pidFile(s.dir, s.index), logFile(s.dir, s.index)]) fs.rmSync(f, { force: true });
  const log = fs.openSync(logFile(s.dir, s.index), 'a');
  const child = spawn('unshare', ['-m', 'sh', '-c', script(s, !st.isDirectory())], { detached: true, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  let exited: number | null = null;
  child.on('exit', (code) => (exited = code ?? -1));
  child.unref();
  fs.writeFileSync(pidFile(s.dir, s.index), String(child.pid));
  const deadline = Date.now() + 10_000;
  while (!fs.existsSync(shareSocket(s.dir, s.index))) {
    if (exited !== null || Date.now() > deadline) {
      try {
        process.kill(child.pid!, 'SIGKILL');
      } catch {}
      const why = tailLines(logFile(s.dir, s.index), 5).join(' ');
      throw new Error(`the file sharing helper for ${s.source} ${exited !== null ? `exited with status ${exited}` : 'did not start'}${why ? `: ${why}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function stopShare(dir: string, i: number): void {
  stopHelper(pidFile(dir, i), shareSocket(dir, i));
}

/** Ends every share helper of a box (those still running). */
export function stopShares(dir: string): void {
  let names: string[] = [];
  try {
    names = fs.readdirSync(fsDir(dir));
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^(\d+)\.pid$/.exec(n);
    if (m) stopShare(dir, Number(m[1]));
  }
}
