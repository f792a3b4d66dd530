// Serves gRPC connections over one virtio-serial port. The port is a byte stream that outlives host
// connections; see LINK_HELLO in src/runtime/protocol.ts for how connection boundaries are found.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { Duplex } from 'node:stream';
import { LINK_HELLO, LINK_READY } from '../src/core/protocol.js';

const READ_SIZE = 64 * 1024;
const PORT_WRITE_MAX = 32 * 1024; // virtio_console caps each write() of a port at 32 KiB
const IOV_MAX = 1024;
const NEW_HELLO = new RegExp(`^${LINK_HELLO}([0-9a-f]{16})\n`);
// read() returns 0 at once while no host is connected, so an idle port is polled. Polled every 50 ms, four ports
// cost an idle box ~10 % of a host core under TCG; once the kernel is asked to signal a host's arrival (SIGIO,
// armed a little after boot so that loading koffi does not delay it), the poll is only a safety net.
let idlePollMs = 50;
const ARMED_POLL_MS = 2000;
const wakers = new Set<() => void>();
const fds: number[] = [];

/** Asks the kernel for SIGIO when a host connects to any port, then polls idle ports rarely. */
let armed = false;
export function armHostSignal(log: (m: string) => void): void {
  if (armed) return;
  armed = true;
  try {
    const koffi = createRequire(__filename)('koffi');
    const fcntl = koffi.load('libc.so.6').func('int fcntl(int, int, int)');
    const F_GETFL = 3;
    const F_SETFL = 4;
    const F_SETOWN = 8;
    const O_ASYNC = 0o20000;
    // The handler first: SIGIO's default action ends the process.
    process.on('SIGIO', () => {
      for (const w of wakers) w();
    });
    for (const fd of fds) {
      if (fcntl(fd, F_SETOWN, process.pid) < 0) throw new Error('F_SETOWN failed');
      const fl = fcntl(fd, F_GETFL, 0);
      if (fl < 0 || fcntl(fd, F_SETFL, fl | O_ASYNC) < 0) throw new Error('F_SETFL O_ASYNC failed');
    }
    idlePollMs = ARMED_POLL_MS;
  } catch (e) {
    log(`host connections stay polled every ${idlePollMs} ms: ${(e as Error).message}`);
  }
}

/** One host connection: bytes from the port go to the HTTP/2 server, its writes go to the port. */
class PortConnection extends Duplex {
  ended = false;
  constructor(private readonly write_: (b: Buffer) => Promise<void>) {
    super({ allowHalfOpen: false });
  }
  _read(): void {}
  _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.ended) return cb();
    this.write_(chunk).then(() => cb(), (err) => cb(err));
  }
  // HTTP/2 hands over each frame as a 9-byte header and its payload (16 KiB at most): what queued up while the
  // port was busy goes out joined, in one system call, not one trip through the thread pool (and one port buffer
  // in the guest's kernel and in QEMU) per piece. Measured under TCG, joining beat writing the pieces as they are.
  _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this._write(chunks.length === 1 ? chunks[0].chunk : Buffer.concat(chunks.map((c) => c.chunk)), 'binary', cb);
  }
  // The HTTP/2 server ends a connection it gave up on (a protocol error: say, bytes of a host that is no longer
  // there, left in a memory that was saved and restored) by ending its side: the connection is then over, and the
  // port goes back to waiting for a HELLO.
  _final(cb: (err?: Error | null) => void): void {
    cb();
    this.destroy();
  }
  _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.ended = true;
    cb(err);
  }
  feed(b: Buffer): void {
    if (!this.ended && !this.destroyed) this.push(b);
  }
}

export function servePort(devicePath: string, onConnection: (d: Duplex) => void, log: (m: string) => void): void {
  const fd = fs.openSync(devicePath, 'r+');
  fds.push(fd);
  // The port's driver takes at most PORT_WRITE_MAX bytes per write(); a writev of pieces that size moves a large
  // buffer in one system call (the kernel writes them one by one) and one trip through the thread pool.
  const write = (b: Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      const loop = (off: number) => {
        const pieces: Buffer[] = [];
        for (let at = off; at < b.length && pieces.length < IOV_MAX; at += PORT_WRITE_MAX) pieces.push(b.subarray(at, at + PORT_WRITE_MAX));
        fs.writev(fd, pieces, null, (err, n) => {
          // EPIPE/ENODEV: the host went away; the connection ends when read() says so.
          if (err) return (err as NodeJS.ErrnoException).code === 'EPIPE' ? resolve() : reject(err);
          if (off + n < b.length) loop(off + n);
          else resolve();
        });
      };
      loop(0);
    });

  let conn: PortConnection | null = null;
  let nonce = '';
  let pending = Buffer.alloc(0); // bytes not yet classified (scanning for HELLO, or stripping repeated HELLOs)
  let stripping = false;

  const endConnection = () => {
    if (conn) {
      conn.ended = true;
      conn.destroy();
      conn = null;
    }
    pending = Buffer.alloc(0);
    stripping = false;
  };

  const scan = () => {
    // Looking for "BOXLITE-HELLO <nonce>\n"; anything before it is stale.
    const text = pending.toString('latin1');
    const at = text.lastIndexOf(LINK_HELLO);
    if (at < 0) {
      pending = pending.subarray(Math.max(0, pending.length - LINK_HELLO.length));
      return;
    }
    const nl = text.indexOf('\n', at);
    if (nl < 0) {
      pending = pending.subarray(at);
      return;
    }
    nonce = text.slice(at + LINK_HELLO.length, nl);
    pending = pending.subarray(nl + 1);
    const c = new PortConnection(write);
    conn = c;
    c.on('close', () => {
      if (conn === c) conn = null; // server closed it (protocol error, goaway): scan for the next HELLO
    });
    c.on('error', () => {});
    stripping = true;
    void write(Buffer.from(`${LINK_READY}${nonce}\n`, 'latin1')).then(() => onConnection(c));
    strip();
  };

  const strip = () => {
    // The host repeats HELLO until it sees READY: drop those repeats before HTTP/2 begins.
    const line = Buffer.from(`${LINK_HELLO}${nonce}\n`, 'latin1');
    while (pending.length > 0) {
      const n = Math.min(pending.length, line.length);
      if (!pending.subarray(0, n).equals(line.subarray(0, n))) {
        stripping = false;
        break;
      }
      if (n < line.length) return; // a partial repeat: wait for more
      pending = pending.subarray(line.length);
    }
    if (!stripping && pending.length > 0 && conn) {
      const rest = pending;
      pending = Buffer.alloc(0);
      conn.feed(rest);
    }
  };

  const onData = (b: Buffer) => {
    if (conn && !stripping) {
      // A new host's HELLO where the old host's bytes were expected: the old host left without this guest seeing
      // it (a reconnect faster than the guest's read, or a memory saved with a host connected and restored).
      // A host's first bytes are its HELLO, so a read that begins with one with another nonce is a new host.
      const hello = NEW_HELLO.exec(b.subarray(0, LINK_HELLO.length + 18).toString('latin1'));
      if (!hello || hello[1] === nonce) return conn.feed(b);
      endConnection();
    }
    pending = Buffer.concat([pending, b]);
    if (conn) strip();
    else scan();
  };

  const buf = Buffer.alloc(READ_SIZE);
  const readLoop = () => {
    fs.read(fd, buf, 0, READ_SIZE, null, (err, n) => {
      if (err) {
        log(`port ${devicePath}: read failed: ${err.message}`);
        endConnection();
        return setTimeout(readLoop, 500);
      }
      if (n === 0) {
        // No host connected (or it just left): the connection, if any, is over.
        endConnection();
        let timer: NodeJS.Timeout | null = null;
        const wake = () => {
          if (!timer) return;
          clearTimeout(timer);
          timer = null;
          wakers.delete(wake);
          readLoop();
        };
        timer = setTimeout(wake, idlePollMs);
        wakers.add(wake);
        return;
      }
      onData(Buffer.from(buf.subarray(0, n)));
      readLoop();
    });
  };
  readLoop();
}
