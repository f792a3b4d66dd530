// Host folders (and single files) in a box: one virtiofsd per mount, reached by QEMU's vhost-user-fs device.
// virtio-9p was the other candidate, but the guest kernel (Debian's cloud kernel) is built without 9p, so the
// choice was made for us; virtiofs is also the faster of the two where both were measured elsewhere.
//
// Each virtiofsd runs under bubblewrap, in a file system view that holds only the shared tree (bound read-only
// for a read-only mount: enforced on the host, so a guest root remounting rw still cannot write; a single file is
// the only entry of its folder, so its siblings stay out of the box) and the box's run folder for its socket. What
// a box's root could otherwise plant in a host folder is stopped there:
//   - setuid and setgid bits: a seccomp filter refuses them (seccomp.ts);
//   - device nodes: virtiofsd drops the mknod capability;
//   - xattrs (security.capability — a file capability — among them): not passed through at all. An xattrmap that
//     would keep security.* and trusted.* under user.virtiofs.* breaks chown in this virtiofsd (QEMU 7.2: every
//     chown fails with EBADF once any map is given), and chown matters more in a shared folder than user.* xattrs.
// Run by a user, virtiofsd is root in a user namespace of its own: it can share what the user can (through the
// user's groups too: see seccomp.ts), and files the box makes belong to the user. It exits by itself when QEMU closes its socket.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startHelper } from './helpers.js';
import { runDir } from './engine.js';
import { BWRAP, type JailIdentity } from './jail.js';
import { noSetuidFilter } from './seccomp.js';

export const VIRTIOFSD = process.env.BOXLITE_VIRTIOFSD ?? '/usr/lib/qemu/virtiofsd';

export interface ShareSpec {
  /** The box's folder. */
  dir: string;
  index: number;
  /** An absolute host path: a folder, or a file. */
  source: string;
  readOnly: boolean;
  /** The uid of the box's jailed QEMU: the socket is handed to it. */
  vmm?: JailIdentity;
}

export const shareSocket = (dir: string, i: number) => path.join(runDir(dir), `fs-${i}.sock`);
/** A shared single file appears in its share under this name. */
export const SHARED_FILE_NAME = 'file';
/** Where the shared tree is inside virtiofsd's view. */
const SHARE_ROOT = '/share';

/** bwrap's view for one share (pure, for tests). */
export function shareArgs(s: ShareSpec, isFile: boolean, root: boolean, seccompFd: number): string[] {
  const run = runDir(s.dir);
  const bind = s.readOnly ? '--ro-bind' : '--bind';
  // Run by a user: root of a user namespace of its own, with that namespace's capabilities (bwrap would drop them),
  // which virtiofsd needs to build its own sandbox; they reach nothing the user could not.
  const user = root ? [] : ['--unshare-user', '--uid', '0', '--gid', '0', '--cap-add', 'ALL'];
  return [
    ...user,
    // Not --die-with-parent: its parent is the CLI, and the share must outlive it as the VM does.
    '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-net', '--new-session',
    '--ro-bind', '/usr', '/usr',
    ...['/lib', '/lib64', '/bin', '/sbin'].flatMap((top) => {
      const st = fs.lstatSync(top, { throwIfNoEntry: false });
      return st?.isSymbolicLink() ? ['--symlink', fs.readlinkSync(top), top] : st?.isDirectory() ? ['--ro-bind', top, top] : [];
    }),
    '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/run', '--tmpfs', '/tmp',
    ...(isFile ? ['--dir', SHARE_ROOT, bind, s.source, `${SHARE_ROOT}/${SHARED_FILE_NAME}`] : [bind, s.source, SHARE_ROOT]),
    '--bind', run, run,
    '--seccomp', String(seccompFd),
    '--',
    VIRTIOFSD, `--socket-path=${shareSocket(s.dir, s.index)}`, `-o`, `source=${SHARE_ROOT}`, '-o', 'cache=auto', '-o', 'no_posix_lock',
    '-o', 'no_xattr', '-o', 'modcaps=-mknod',
  ];
}

/** Starts the virtiofsd of one share and waits for its socket. */
export async function startShare(s: ShareSpec): Promise<void> {
  for (const [bin, pkg] of [[VIRTIOFSD, 'qemu-system-common'], [BWRAP, 'bubblewrap']]) {
    if (!fs.existsSync(bin)) throw new Error(`${bin} is not installed: run 'boxlite setup' (Debian package ${pkg})`);
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(s.source);
  } catch {
    throw new Error(`host path ${s.source} does not exist: create it, or fix the volume`);
  }
  const root = process.getuid?.() === 0;
  const filter = path.join(s.dir, `fs-${s.index}.bpf`);
  fs.writeFileSync(filter, noSetuidFilter({ groupsKept: !root }), { mode: 0o600 });
  const fd = fs.openSync(filter, 'r');
  try {
    await startHelper({
      dir: s.dir,
      name: `fs-${s.index}`,
      what: `the file sharing helper for ${s.source}`,
      command: BWRAP,
      args: shareArgs(s, !st.isDirectory(), root, 3),
      fds: [fd],
      mark: shareSocket(s.dir, s.index),
      log: path.join(s.dir, `fs-${s.index}.log`),
      ready: { file: shareSocket(s.dir, s.index) },
    });
  } finally {
    fs.closeSync(fd);
  }
  // virtiofsd made its socket as root; the jailed QEMU connects as the box's uid.
  if (s.vmm && root) fs.lchownSync(shareSocket(s.dir, s.index), s.vmm.uid, s.vmm.gid);
}
