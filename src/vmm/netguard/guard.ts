// The network guard of a box: a helper process (detached, like passt) that QEMU's NICs connect to instead of the
// helpers behind them. Debian 12's passt carries a frame the guest wrote to 127.0.0.1 or 0.0.0.0 to the host's
// loopback, whatever --no-map-gw says, so every frame is judged before passt sees it; and the project LAN is
// carried by the guards themselves, over sockets only the home's user can reach, in each box's own name.
// Measured cost and the reasons for this design: README, "Network".
import * as fs from 'node:fs';
import * as path from 'node:path';
import { koffiLib } from '../../util/koffi-lib.js';
import { fileURLToPath } from 'node:url';
import { compiledModule } from '../../util/package-root.js';
import { helperPid, startHelper, stopHelper } from '../helpers.js';
import type { JailIdentity } from '../jail.js';
import type { LanSpec } from './lan.js';

const NAME = 'netguard';
export const GUARD_MARK = '--boxlite-netguard';
export const guardLog = (dir: string) => path.join(dir, 'netguard.log');

/** The listening sockets QEMU's NICs connect to, as the guard gets them: the uplink's, then the LAN's. */
export const UPLINK_FD = 3;
export const LAN_FD = 4;

export interface GuardConfig {
  /** The box's name, for its denial events. */
  name: string;
  /** The NIC to the network helper: the socket QEMU connects to, passt's, and the guest's MAC and address there. */
  uplink?: { listen: string; helper: string; mac: string; address: string; policed: boolean };
  /** The NIC on the project LAN: the socket QEMU connects to, and the box's place on the LAN. */
  lan?: LanSpec & { listen: string };
  /** Started by root: the box's uid, which the guard becomes once its sockets exist. */
  as: JailIdentity | null;
}

export function guardPid(dir: string): number | null {
  return helperPid(dir, NAME);
}

export function stopGuard(dir: string): void {
  stopHelper(dir, NAME);
}

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0x80000;
let libc: { socket: (d: number, t: number, p: number) => number; bind: (fd: number, a: Buffer, l: number) => number; listen: (fd: number, n: number) => number; close: (fd: number) => number } | null = null;

/** A listening Unix socket at file, for QEMU (its uid: as), as a bare descriptor to hand to the guard: Node's
 *  listening sockets cannot be handed to a child that is not a Node IPC peer. */
function listenUnix(file: string, as: JailIdentity | null): number {
  if (!libc) {
    const lib = koffiLib().load('libc.so.6');
    libc = { socket: lib.func('int socket(int, int, int)'), bind: lib.func('int bind(int, uint8_t *, uint32_t)'), listen: lib.func('int listen(int, int)'), close: lib.func('int close(int)') };
  }
  fs.rmSync(file, { force: true });
  const name = Buffer.from(file);
  if (name.length > 107) throw new Error(`the socket path ${file} is too long for a Unix socket (${name.length} bytes, at most 107): use a shorter BOXLITE_HOME`);
  const addr = Buffer.alloc(110);
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, 2);
  const fd = libc.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`cannot make a socket for ${file}`);
  if (libc.bind(fd, addr, 2 + name.length + 1) !== 0 || libc.listen(fd, 4) !== 0) {
    libc.close(fd);
    throw new Error(`cannot listen on ${file}`);
  }
  // A jailed QEMU runs as the box's uid; the folder is closed to everyone else.
  if (as) fs.chownSync(file, as.uid, as.gid);
  fs.chmodSync(file, 0o600);
  return fd;
}

/** Starts the guard. Its sockets for QEMU exist when this returns, so QEMU may start at once; the promise it
 *  gives resolves once the guard is ready (the guard's own start, ~0.15 s of node's, overlaps QEMU's). */
export function startGuard(dir: string, cfg: GuardConfig): { ready: Promise<number> } {
  const main = compiledModule(fileURLToPath(import.meta.url)).replace(/guard\.js$/, 'main.js');
  const fds = [cfg.uplink?.listen, cfg.lan?.listen].filter((f): f is string => !!f).map((f) => listenUnix(f, cfg.as));
  const ready = startHelper({
    dir,
    name: NAME,
    what: 'the network guard',
    command: process.execPath,
    args: ['--expose-gc', main, GUARD_MARK, dir, JSON.stringify(cfg)],
    // The guard allocates a buffer per read of up to 1 MiB and keeps none: allocations that large get pages of
    // their own, given back when freed; glibc would otherwise keep them in its heap (measured: 22 MiB left there
    // after one 128 MiB transfer).
    env: { GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536' },
    fds,
    mark: `${GUARD_MARK}\0${dir}`,
    log: guardLog(dir),
    ready: { line: 'ready' },
    timeoutMs: 20_000,
  });
  for (const fd of fds) libc!.close(fd); // the guard has its own copies from here on
  return { ready };
}
