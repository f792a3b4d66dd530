// QMP, QEMU's control socket: a connection that negotiates capabilities, then runs commands one after another and
// hands out the events it sees. qmp() is the one-command form most operations need.
import * as net from 'node:net';
import { checkPeer } from './peer.js';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
}

export class QmpError extends Error {}

export class QmpConnection {
  private buf = '';
  private waiting: { resolve: (v: unknown) => void; reject: (e: Error) => void; command: string }[] = [];
  private listeners: ((e: QmpEvent) => void)[] = [];
  private closedWith: Error | null = null;

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d) => this.onData(d));
    const close = (e?: Error) => {
      this.closedWith ??= new QmpError(`connection closed${e ? `: ${e.message}` : ''}`);
      for (const w of this.waiting.splice(0)) w.reject(new QmpError(`QMP ${w.command}: ${this.closedWith.message}`));
    };
    sock.on('error', close);
    sock.on('close', () => close());
  }

  /** Connects and negotiates; rejects if QEMU does not greet within timeoutMs. With peerPid, the socket must be
   *  served by that process (the box's QEMU), checked before anything is sent. */
  static async open(socketPath: string, timeoutMs = 5000, peerPid?: number): Promise<QmpConnection> {
    const sock = await connectWhenServed(socketPath, Date.now() + timeoutMs);
    if (peerPid !== undefined) {
      try {
        checkPeer(sock, peerPid, `QMP socket ${socketPath}`);
      } catch (e) {
        sock.destroy();
        throw e;
      }
    }
    const conn = new QmpConnection(sock);
    const timer = setTimeout(() => sock.destroy(new Error(`no greeting within ${timeoutMs} ms`)), timeoutMs);
    try {
      await new Promise<void>((resolve, reject) => {
        conn.waiting.push({ resolve: () => resolve(), reject, command: 'greeting' });
      });
      await conn.execute('qmp_capabilities');
      return conn;
    } catch (e) {
      sock.destroy();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  private onData(d: Buffer): void {
    this.buf += d.toString();
    let nl;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let msg: any;
      try {
        msg = JSON.parse(line);
      } catch {
        continue;
      }
      if (msg.event) {
        for (const l of this.listeners) l(msg as QmpEvent);
        continue;
      }
      const w = this.waiting.shift();
      if (!w) continue;
      if (msg.QMP) w.resolve(undefined);
      else if (msg.error) w.reject(new QmpError(`QMP ${w.command}: ${msg.error.desc}`));
      else w.resolve(msg.return);
    }
  }

  /** Runs one command; answers come back in order, so commands may be queued. */
  execute<T = unknown>(command: string, args?: object, timeoutMs = 30_000): Promise<T> {
    if (this.closedWith) return Promise.reject(new QmpError(`QMP ${command}: ${this.closedWith.message}`));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new QmpError(`QMP ${command}: no answer within ${timeoutMs} ms`));
        this.sock.destroy();
      }, timeoutMs);
      this.waiting.push({
        command,
        resolve: (v) => (clearTimeout(timer), resolve(v as T)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.sock.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) }) + '\n');
    });
  }

  onEvent(l: (e: QmpEvent) => void): void {
    this.listeners.push(l);
  }

  /** Resolves once QEMU has closed the connection (it exits after `quit`). */
  closed(): Promise<void> {
    if (this.sock.destroyed) return Promise.resolve();
    return new Promise((r) => this.sock.once('close', () => r()));
  }

  close(): void {
    this.sock.destroy();
  }
}

/** One command on a connection of its own. `quit` resolves when QEMU closes the socket. */
export async function qmp<T = unknown>(socketPath: string, command: string, args?: object, timeoutMs = 5000, peerPid?: number): Promise<T> {
  let conn: QmpConnection;
  try {
    conn = await QmpConnection.open(socketPath, timeoutMs, peerPid);
  } catch (e) {
    throw new QmpError(`QMP ${command}: ${(e as Error).message}`);
  }
  try {
    if (command === 'quit') {
      await Promise.race([conn.execute(command, args, timeoutMs).catch(() => undefined), conn.closed()]);
      return undefined as T;
    }
    return await conn.execute<T>(command, args, timeoutMs);
  } finally {
    conn.close();
  }
}

/** A QEMU that has just written its pidfile may not be listening yet: until the deadline, a socket that is missing
 *  or refuses is tried again. Until a reader attaches, what QEMU sends waits in the stream. */
async function connectWhenServed(socketPath: string, deadline: number): Promise<net.Socket> {
  for (;;) {
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const sock = net.connect(socketPath);
        sock.once('connect', () => {
          sock.off('error', reject);
          resolve(sock);
        });
        sock.once('error', reject);
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || Date.now() >= deadline) throw e;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}
