// Idle boxes paused, and woken by their next use. Use is an exec or a copy (the runtime stamps the box's `active`
// file; a health check does not count) or network traffic through the guest's interfaces (its counters, read
// through the agent). A box idle for its time is paused; while it is paused, whoever paused it listens on its TCP
// forwards' host ports, and the first connection wakes the box (with the same host ports) and is carried to it.
// Connections that arrive while it wakes are refused: the port is free for its network helper to take.
import * as fs from 'node:fs';
import * as net from 'node:net';
import { networkStats } from './exec.js';
import { pauseBox } from './memory.js';
import { startBox } from './boot.js';
import { boxStatus } from './status.js';
import { activeFile } from './activity.js';
import { carry } from './carry.js';
import type { RuntimeContext } from './context.js';

const PORT_FREED_MS = 15_000;

export class IdlePauser {
  /** Per box: the traffic last seen and when it last changed. */
  private seen = new Map<string, { bytes: number; at: number }>();
  private listeners = new Map<string, net.Server[]>();

  constructor(private readonly ctx: RuntimeContext, private readonly say: (line: string) => void) {}

  /** One look at the boxes: pauses those idle for their time, and listens for the wake-up of those it paused. */
  async sweep(boxes: { id: string; name: string; afterMs: number }[]): Promise<void> {
    const now = Date.now();
    for (const b of boxes) {
      const rec = this.ctx.records.read(b.id);
      if (!rec) continue;
      if (rec.state === 'paused') {
        if (rec.paused?.idle && !this.listeners.has(b.id)) this.listen(b.id, b.name);
        continue;
      }
      if (boxStatus(this.ctx, rec).state !== 'running') {
        this.seen.delete(b.id);
        continue;
      }
      const stats = await networkStats(this.ctx, b.id).catch(() => null);
      if (!stats) continue; // no answer now: not a reason to pause
      const bytes = stats.reduce((n, s) => n + s.rxBytes + s.txBytes, 0);
      const prev = this.seen.get(b.id);
      const started = Date.parse(rec.startedAt ?? '') || now;
      const used = fs.statSync(activeFile(this.ctx, b.id), { throwIfNoEntry: false })?.mtimeMs ?? 0;
      const at = Math.max(prev && prev.bytes === bytes ? prev.at : now, started, used);
      this.seen.set(b.id, { bytes, at });
      if (now - at < b.afterMs) continue;
      try {
        await pauseBox(this.ctx, b.id, { idle: true });
        this.seen.delete(b.id);
        this.say(`${b.name}: idle for ${Math.round((now - at) / 1000)}s: paused (the next exec or connection wakes it)`);
        this.listen(b.id, b.name);
      } catch (e) {
        this.say(`${b.name}: idle, but could not be paused: ${(e as Error).message}`);
      }
    }
  }

  /** Stops listening for boxes it paused (they stay paused; an exec still wakes them). */
  async stop(): Promise<void> {
    for (const id of [...this.listeners.keys()]) this.unlisten(id);
  }

  private listen(id: string, name: string): void {
    const rec = this.ctx.records.get(id);
    const servers: net.Server[] = [];
    this.listeners.set(id, servers);
    for (const p of (rec.ports ?? []).filter((q) => q.protocol === 'tcp' && q.hostPort)) {
      const server = net.createServer((conn) => void this.wake(id, name, conn, p.hostIp, p.hostPort));
      // The box's network helper is told to end with its VM, but may hold the port a moment longer: try again.
      const deadline = Date.now() + PORT_FREED_MS;
      const current = () => this.listeners.get(id) === servers; // not woken (or stopped) meanwhile
      server.on('error', (e: NodeJS.ErrnoException) => {
        if (!current()) return;
        if (e.code === 'EADDRINUSE' && Date.now() < deadline) {
          setTimeout(() => current() && server.listen({ port: p.hostPort, host: p.hostIp, exclusive: true }), 100);
          return;
        }
        this.say(`${name}: cannot listen on ${p.hostIp}:${p.hostPort} while it is paused (${e.message}): a connection there will not wake it`);
      });
      server.listen({ port: p.hostPort, host: p.hostIp, exclusive: true });
      servers.push(server);
    }
  }

  /** Frees the ports at once. Not awaiting close(): its callback waits for open connections to end, and the one
   *  that woke the box is still open. */
  private unlisten(id: string): void {
    for (const s of this.listeners.get(id) ?? []) s.close();
    this.listeners.delete(id);
  }

  /** A connection to a paused box: the box is woken, then the connection carried to its forward. */
  private async wake(id: string, name: string, conn: net.Socket, host: string, port: number): Promise<void> {
    conn.pause();
    conn.on('error', () => {});
    this.unlisten(id); // the network helper of the woken box takes the port
    try {
      await startBox(this.ctx, id);
      this.say(`${name}: woken by a connection to ${host}:${port}`);
    } catch (e) {
      this.say(`${name}: a connection to ${host}:${port} could not wake it: ${(e as Error).message.split('\n')[0]}`);
      conn.destroy();
      return;
    }
    carry(conn, host, port);
  }
}
