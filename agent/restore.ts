// What a guest must redo after its memory was restored from a saved state: its clock stood still while it was
// saved, its random state is shared with every other copy of that state, and a fork or a warm-started box has
// another name (and LAN address).
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { BUSYBOX } from '../src/core/guest.js';
import type { RestoredRequest } from '../src/core/protocol.js';

const CLOCK_REALTIME = 0;
const RNDRESEEDCRNG = 0x5207; // _IO('R', 0x07)
const FITHAW = 0xc0045878; // _IOWR('X', 120, int)

let libc: { clock_settime: (clk: number, ts: Buffer) => number; ioctl: (fd: number, req: number, arg: number) => number; sethostname: (name: string, len: number) => number } | null = null;
function lib() {
  if (!libc) {
    const koffi = createRequire(__filename)('koffi');
    const c = koffi.load('libc.so.6');
    libc = { clock_settime: c.func('int clock_settime(int, const uint8_t *)'), ioctl: c.func('int ioctl(int, unsigned long, long)'), sethostname: c.func('int sethostname(const char *, size_t)') };
  }
  return libc;
}

/** Loads what restored() calls (koffi and libc take a while to load under TCG), and drops the clean page cache:
 *  what is on disk need not be in the saved memory (it is read again when used), so the state is smaller and
 *  loads faster. Done before a save. */
export function prepareRestore(): void {
  lib();
  execFileSync(BUSYBOX, ['sync']);
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
}

/** Thaws the root file system frozen for a save (a call rather than a process: see restored()). */
export function thawRootFs(): void {
  const fd = fs.openSync('/', 'r');
  try {
    lib().ioctl(fd, FITHAW, 0); // EINVAL when it is not frozen: nothing to do
  } finally {
    fs.closeSync(fd);
  }
}

export function restored(req: RestoredRequest): void {
  const ts = Buffer.alloc(16);
  ts.writeBigInt64LE(BigInt(Math.floor(req.unixMs / 1000)), 0);
  ts.writeBigInt64LE(BigInt((req.unixMs % 1000) * 1_000_000), 8);
  if (lib().clock_settime(CLOCK_REALTIME, ts) !== 0) throw new Error('clock_settime failed');
  if (req.entropy?.length) {
    // Written entropy is mixed into the input pool; the reseed makes the random generator draw from it now.
    const fd = fs.openSync('/dev/urandom', 'r+');
    try {
      fs.writeSync(fd, req.entropy);
      if (lib().ioctl(fd, RNDRESEEDCRNG, 0) !== 0) throw new Error('RNDRESEEDCRNG failed');
    } finally {
      fs.closeSync(fd);
    }
  }
  // A call rather than a process: every process started costs a restored box's first answer time under TCG.
  if (req.hostname && lib().sethostname(req.hostname, Buffer.byteLength(req.hostname)) !== 0) throw new Error('sethostname failed');
  if (req.lanAddress && req.lanMac) {
    // The NIC keeps its name (lan0, from the boot the memory came from); its MAC and address become this box's.
    // One small shell runs the five steps: each process node starts costs far more under TCG than one sh forks.
    const ip = `${BUSYBOX} ip`;
    const script = `${ip} link set lan0 down && ${ip} link set lan0 address "$1" && ${ip} addr flush dev lan0 && ${ip} addr add "$2" dev lan0 && ${ip} link set lan0 up`;
    execFileSync(BUSYBOX, ['sh', '-c', script, 'sh', req.lanMac, req.lanAddress]);
  }
}
