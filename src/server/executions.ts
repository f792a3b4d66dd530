// Executions started through the API and what their clients see of them. Output is framed as BoxLite's attach
// protocol ([0x01 stdout | 0x02 stderr][bytes]) in the order it arrived, queued while no client is attached and
// sent once to the client that is: the queue is bounded, and past the bound the command's output is paused (so the
// command waits in the box, as it would on a full pipe) rather than dropped. A terminal (tty) execution also keeps
// the tail of what it already sent, replayed to a client that reattaches so it can redraw the screen.
// Executions no client is attached to are reaped: running ones get SIGHUP after orphanMs (BoxLite's policy),
// finished ones are forgotten after retainMs; at most maxSessions are kept at once.
import { constants } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { WebSocket } from 'ws';
import type { Runtime } from '../runtime/runtime.js';
import type { Execution } from '../runtime/execution.js';
import { ApiError, conflict, notFound } from './errors.js';
import type { ExecRequest } from './request.js';

export interface ExecLimits {
  /** Output queued per execution before its command is paused. */
  backlogBytes: number;
  /** What a reattaching tty client gets replayed. */
  ttyReplayBytes: number;
  orphanMs: number;
  retainMs: number;
  maxSessions: number;
}

export const DEFAULT_EXEC_LIMITS: ExecLimits = { backlogBytes: 512 << 10, ttyReplayBytes: 64 << 10, orphanMs: 5 * 60_000, retainMs: 5 * 60_000, maxSessions: 512 };

/** Signals a client may send (BoxLite's list: HUP INT QUIT ABRT USR1 USR2 TERM WINCH); KILL is DELETE's. */
export const SIGNALS_ALLOWED = new Set([1, 2, 3, 6, 10, 12, 15, 28]);
const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([k, v]) => [v as number, k]));
export const signalName = (n: number) => SIGNAL_NAMES.get(n);

const IN_FLIGHT = 256 << 10;

export type ExecStatus = 'running' | 'completed' | 'killed' | 'timed_out';

export class ExecSession {
  readonly id = `exec_${randomBytes(12).toString('base64url')}`;
  readonly startedAt = new Date();
  status: ExecStatus = 'running';
  exitCode: number | null = null;
  errorMessage: string | null = null;
  endedAt: number | null = null;
  detachedAt: number | null = Date.now();
  hupSent = false;
  private ex: Execution | null;
  private stdinOpen: boolean;
  private queue: Buffer[] = [];
  private queued = 0;
  private inFlight = 0;
  private paused = false;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private client: WebSocket | null = null;
  private finished = false;
  private killed = false;
  private exitSent = false;

  constructor(
    readonly boxId: string,
    ex: Execution,
    readonly tty: boolean,
    stdinOpen: boolean,
    private readonly limits: ExecLimits,
    private readonly onEnd: (s: ExecSession) => void,
  ) {
    this.ex = ex;
    this.stdinOpen = stdinOpen;
    if (stdinOpen) ex.stdin.on('error', () => (this.stdinOpen = false));
    ex.stdout.on('data', (d: Buffer) => this.output(1, d));
    ex.stderr.on('data', (d: Buffer) => this.output(2, d));
    ex.stderr.on('boxlite-error', (e: Error) => (this.errorMessage = `the box's agent connection ended: ${e.message}`));
    const ended = (s: NodeJS.ReadableStream) => new Promise<void>((r) => s.once('end', () => r()));
    Promise.all([ex.wait(), ended(ex.stdout), ended(ex.stderr)]).then(
      ([st]) => this.end(st.timedOut ? 'timed_out' : this.killed || st.signal === 'SIGKILL' ? 'killed' : 'completed', st.exitCode),
      (e: Error) => {
        this.errorMessage ??= `the execution's status could not be read: ${e.message}`;
        this.end('killed', null);
      },
    );
  }

  get attached(): boolean {
    return this.client !== null;
  }

  info(): Record<string, unknown> {
    return {
      execution_id: this.id,
      status: this.status,
      exit_code: this.exitCode,
      started_at: this.startedAt.toISOString(),
      duration_ms: this.endedAt !== null ? this.endedAt - this.startedAt.getTime() : null,
      error_message: this.errorMessage,
      boxlite: { tty: this.tty, attached: this.attached, stdin_open: this.stdinOpen },
    };
  }

  private output(channel: 1 | 2, data: Buffer): void {
    const frame = Buffer.allocUnsafe(data.length + 1);
    frame[0] = channel;
    data.copy(frame, 1);
    this.queue.push(frame);
    this.queued += frame.length;
    this.pump();
  }

  /** Sends what is queued while the client keeps up; pauses or resumes the command's output to keep the bound. */
  private pump(): void {
    const ws = this.client;
    while (ws && this.queue.length && this.inFlight < IN_FLIGHT) {
      const frame = this.queue.shift()!;
      this.queued -= frame.length;
      this.inFlight += frame.length;
      ws.send(frame, { binary: true }, () => {
        this.inFlight -= frame.length;
        this.pump();
      });
      if (this.tty) this.keepTail(frame);
    }
    const over = this.queued + this.inFlight > this.limits.backlogBytes;
    if (this.ex && over !== this.paused) {
      this.paused = over;
      for (const s of [this.ex.stdout, this.ex.stderr]) over ? s.pause() : s.resume();
    }
    if (this.finished && ws && !this.queue.length && this.inFlight === 0 && !this.exitSent) {
      this.exitSent = true;
      ws.send(JSON.stringify(this.errorMessage && this.exitCode === null ? { type: 'error', message: this.errorMessage } : { type: 'exit', exit_code: this.exitCode }), () => ws.close(1000));
    }
  }

  private keepTail(frame: Buffer): void {
    this.tail.push(frame);
    this.tailBytes += frame.length;
    while (this.tailBytes > this.limits.ttyReplayBytes && this.tail.length > 1) this.tailBytes -= this.tail.shift()!.length;
  }

  private end(status: ExecStatus, exitCode: number | null): void {
    this.status = status;
    this.exitCode = exitCode;
    this.endedAt = Date.now();
    this.finished = true;
    this.ex = null; // its streams are done: nothing of the process is held any more
    this.stdinOpen = false;
    this.pump();
    this.onEnd(this);
  }

  /** Whether every byte and the exit reached a client. */
  get delivered(): boolean {
    return this.exitSent;
  }

  attach(ws: WebSocket): void {
    if (this.client) throw conflict(`execution ${this.id} already has a client attached: one at a time (close the other first)`);
    this.client = ws;
    this.detachedAt = null;
    this.exitSent = false;
    if (this.tty) for (const f of this.tail) ws.send(f, { binary: true });
    if (this.finished && this.exitCode === null && !this.errorMessage) this.errorMessage = 'the execution ended';
    this.pump();
  }

  detach(ws: WebSocket): void {
    if (this.client !== ws) return;
    this.client = null;
    this.detachedAt = Date.now();
    this.inFlight = 0; // what the closed socket held is gone with it
    this.pump();
  }

  write(data: Buffer): boolean {
    if (!this.ex || !this.stdinOpen) return false;
    return this.ex.stdin.write(data);
  }

  get stdin(): NodeJS.WritableStream | null {
    return this.ex && this.stdinOpen ? this.ex.stdin : null;
  }

  closeStdin(): void {
    if (this.ex && this.stdinOpen) this.ex.stdin.end();
    this.stdinOpen = false;
  }

  async signal(n: number): Promise<void> {
    const name = signalName(n);
    if (!SIGNALS_ALLOWED.has(n) || !name) throw new ApiError(400, 'InvalidArgumentError', `signal ${n} is not one a client may send (${[...SIGNALS_ALLOWED].join(', ')}); to kill, DELETE the execution`);
    if (!this.ex) throw conflict(`execution ${this.id} has ended`);
    await this.ex.kill(name);
  }

  async kill(): Promise<void> {
    if (!this.ex) return;
    this.killed = true;
    await this.ex.kill('SIGKILL');
  }

  async resize(rows: number, cols: number): Promise<void> {
    if (!this.tty) throw conflict(`execution ${this.id} has no terminal: start it with tty: true to resize it`);
    if (!this.ex) throw conflict(`execution ${this.id} has ended`);
    await this.ex.resize(rows, cols);
  }

  /** The server is going away: the client is told, and the command goes on in the box. */
  shutdown(): void {
    const ws = this.client;
    if (!ws) return;
    ws.send(JSON.stringify({ type: 'error', message: `the server is shutting down: execution ${this.id} ${this.finished ? 'has ended' : 'goes on in the box, but its output from now on is not kept'}` }), () => ws.close(1001, 'server shutting down'));
  }

  /** Waits until the execution has ended (for DELETE). */
  ended(): Promise<void> {
    return this.finished ? Promise.resolve() : new Promise((r) => this.endWaiters.push(r));
  }
  endWaiters: (() => void)[] = [];
}

export class Executions {
  private sessions = new Map<string, ExecSession>();
  private timer: NodeJS.Timeout;

  constructor(
    private readonly rt: Runtime,
    readonly limits: ExecLimits = DEFAULT_EXEC_LIMITS,
  ) {
    this.timer = setInterval(() => this.reap(), Math.max(50, Math.min(limits.orphanMs, limits.retainMs) / 4));
    this.timer.unref();
  }

  /** Starts under way (their sessions are not in the table yet). */
  private starting = 0;

  get size(): number {
    return this.sessions.size;
  }

  running(): number {
    let n = 0;
    for (const s of this.sessions.values()) if (s.status === 'running') n++;
    return n;
  }

  async start(boxId: string, r: ExecRequest): Promise<ExecSession> {
    this.reap();
    // Starts under way hold their place: many at once must not each see room and together pass the bound.
    const held = () => this.sessions.size + this.starting;
    // Full: finished executions make room, those whose exit reached a client first, oldest first.
    if (held() >= this.limits.maxSessions) {
      const done = [...this.sessions.values()].filter((s) => s.endedAt !== null && !s.attached).sort((a, b) => Number(b.delivered) - Number(a.delivered) || a.endedAt! - b.endedAt!);
      for (const s of done.slice(0, held() - this.limits.maxSessions + 1)) this.sessions.delete(s.id);
    }
    if (held() >= this.limits.maxSessions) throw new ApiError(429, 'ResourceExhaustedError', `this server keeps at most ${this.limits.maxSessions} executions: wait for some to end, or DELETE finished ones`);
    this.starting++;
    let ex: Awaited<ReturnType<Runtime['spawn']>>;
    try {
      ex = await this.rt.spawn(boxId, [r.command, ...(r.args ?? [])], {
        env: r.env, cwd: r.working_dir, user: r.user, tty: !!r.tty, rows: r.rows, cols: r.cols, stdin: true,
        ...(r.timeout_seconds ? { timeoutMs: Math.round(r.timeout_seconds * 1000) } : {}),
      });
    } finally {
      this.starting--;
    }
    const s = new ExecSession(boxId, ex, !!r.tty, r.stdin === undefined, this.limits, (x) => {
      for (const w of x.endWaiters.splice(0)) w();
    });
    if (r.stdin !== undefined) ex.stdin.end(r.stdin);
    this.sessions.set(s.id, s);
    return s;
  }

  get(boxId: string, id: string): ExecSession {
    const s = this.sessions.get(id);
    if (!s || s.boxId !== boxId) throw notFound(`execution not found: ${id} (in box ${boxId}); executions are forgotten ${Math.round(this.limits.retainMs / 1000)} s after they end`);
    return s;
  }

  forget(id: string): void {
    this.sessions.delete(id);
  }

  /** Forgets every execution of a box (it was removed). */
  forgetBox(boxId: string): void {
    for (const [id, s] of this.sessions) if (s.boxId === boxId && !s.attached) this.sessions.delete(id);
  }

  reap(now = Date.now()): void {
    for (const [id, s] of this.sessions) {
      if (s.attached) continue;
      if (s.status === 'running') {
        if (!s.hupSent && s.detachedAt !== null && now - s.detachedAt >= this.limits.orphanMs) {
          s.hupSent = true;
          s.signal(1).catch(() => {});
        }
      } else if ((s.delivered && now - (s.detachedAt ?? now) >= Math.min(60_000, this.limits.retainMs)) || now - (s.endedAt ?? now) >= this.limits.retainMs) {
        this.sessions.delete(id);
      }
    }
  }

  shutdown(): void {
    clearInterval(this.timer);
    for (const s of this.sessions.values()) s.shutdown();
  }
}
