// Pseudo-terminals for `exec -t`. Node has no openpty, so the few libc calls go through koffi.
import { createRequire } from 'node:module';

const TIOCSWINSZ = 0x5414;

let libc: {
  posix_openpt: (flags: number) => number;
  grantpt: (fd: number) => number;
  unlockpt: (fd: number) => number;
  ptsname: (fd: number) => string | null;
  ioctl: (fd: number, req: number, arg: Buffer) => number;
} | null = null;

function lib() {
  if (!libc) {
    // Loaded on first use: most execs need no pty, and loading the addon costs guest boot time.
    const koffi = createRequire(__filename)('koffi');
    const c = koffi.load('libc.so.6');
    libc = {
      posix_openpt: c.func('int posix_openpt(int)'),
      grantpt: c.func('int grantpt(int)'),
      unlockpt: c.func('int unlockpt(int)'),
      ptsname: c.func('const char *ptsname(int)'),
      ioctl: c.func('int ioctl(int, unsigned long, _Inout_ uint8_t *)'),
    };
  }
  return libc;
}

const O_RDWR = 0o2;
const O_NOCTTY = 0o400;
const O_CLOEXEC = 0o2000000; // the master must not leak into the processes we start

/** Opens a new pty pair; returns the master fd and the slave's path. */
export function openPty(rows: number, cols: number): { master: number; slavePath: string } {
  const c = lib();
  const master = c.posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) throw new Error('posix_openpt failed');
  if (c.grantpt(master) !== 0 || c.unlockpt(master) !== 0) throw new Error('grantpt/unlockpt failed');
  const slavePath = c.ptsname(master);
  if (!slavePath) throw new Error('ptsname failed');
  resizePty(master, rows, cols);
  return { master, slavePath };
}

export function resizePty(fd: number, rows: number, cols: number): void {
  const ws = Buffer.alloc(8);
  ws.writeUInt16LE(rows || 24, 0);
  ws.writeUInt16LE(cols || 80, 2);
  lib().ioctl(fd, TIOCSWINSZ, ws);
}
