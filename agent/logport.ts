// The box's log: what a project box's command prints reaches the host as it is printed, whatever happens to the
// box later. The command writes into GUEST_LOG_FIFO; this reads it, puts the time in front of each line, and
// writes the lines to the log port, which QEMU appends to a file in the box's folder on the host.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { GUEST_LOG_FIFO, LOG_PORT_NAME } from '../src/core/protocol.js';
import { BUSYBOX } from '../src/core/guest.js';

const WRITE_MAX = 32 * 1024; // virtio_console caps each write() of a port at 32 KiB
const LINE_MAX = 16 * 1024; // a longer line (or one left unfinished) goes out in pieces
const QUEUE_MAX = 1 << 20; // past this much unwritten, the FIFO is not read: the writer waits in its pipe
const PARTIAL_FLUSH_MS = 1000; // a line without its newline yet (a prompt) is not held back longer

export function findPort(name: string): string | null {
  const dir = '/sys/class/virtio-ports';
  try {
    for (const n of fs.readdirSync(dir)) {
      try {
        if (fs.readFileSync(path.join(dir, n, 'name'), 'utf8').trim() === name) return `/dev/${n}`;
      } catch {}
    }
  } catch {}
  return null;
}

export function serveLog(log: (m: string) => void): void {
  const dev = findPort(LOG_PORT_NAME);
  if (!dev) return; // a host without the log port: commands write to a file in the box instead
  let fifo: number;
  let out: number;
  try {
    try {
      if (!fs.lstatSync(GUEST_LOG_FIFO).isFIFO()) fs.rmSync(GUEST_LOG_FIFO, { force: true });
    } catch {}
    if (!fs.existsSync(GUEST_LOG_FIFO)) execFileSync(BUSYBOX, ['mkfifo', '-m', '666', GUEST_LOG_FIFO]);
    // Read and write: the FIFO never reaches end-of-file between two commands.
    fifo = fs.openSync(GUEST_LOG_FIFO, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    out = fs.openSync(dev, 'w');
  } catch (e) {
    log(`the box's log is not available: ${(e as Error).message}`);
    return;
  }
  const input = new net.Socket({ fd: fifo, readable: true, writable: false });
  let partial = '';
  let queued: Buffer[] = [];
  let queuedBytes = 0;
  let writing = false;
  let flushTimer: NodeJS.Timeout | null = null;

  const pump = () => {
    if (writing || !queued.length) return;
    const all = Buffer.concat(queued);
    const chunk = all.subarray(0, WRITE_MAX);
    queued = chunk.length < all.length ? [all.subarray(chunk.length)] : [];
    writing = true;
    fs.write(out, chunk, 0, chunk.length, null, (err, n) => {
      writing = false;
      if (err) {
        log(`the box's log port failed: ${err.message}`);
        queued = [];
        queuedBytes = 0;
        return;
      }
      if (n < chunk.length) queued.unshift(chunk.subarray(n));
      queuedBytes -= n;
      if (queuedBytes < QUEUE_MAX && input.isPaused()) input.resume();
      pump();
    });
  };
  const send = (line: string) => {
    const b = Buffer.from(`${new Date().toISOString()} ${line}\n`);
    queued.push(b);
    queuedBytes += b.length;
    if (queuedBytes >= QUEUE_MAX) input.pause();
    pump();
  };
  input.setEncoding('utf8');
  input.on('data', (d: string) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop()!;
    for (const l of lines) send(l);
    while (partial.length > LINE_MAX) {
      send(partial.slice(0, LINE_MAX));
      partial = partial.slice(LINE_MAX);
    }
    if (flushTimer) clearTimeout(flushTimer);
    flushTimer = partial
      ? setTimeout(() => {
          if (partial) send(partial);
          partial = '';
        }, PARTIAL_FLUSH_MS)
      : null;
  });
  input.on('error', (e) => log(`the box's log stopped: ${e.message}`));
}
