// Processes started by Exec. Each keeps its undelivered output so that a client that disconnects can reattach
// (Output again) and still collect its exit status (Wait). Output flows with backpressure: what a reader has not
// taken yet stays in a bounded queue, and past that the process's pipes are paused, so a flood waits in the
// process's own write(), never in the agent's memory.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tty from 'node:tty';
import { randomUUID } from 'node:crypto';
import { openPty, resizePty } from './pty.js';
import { resolveUser } from './users.js';
import { BUSYBOX } from '../src/core/guest.js';

export const STDOUT = 0;
export const STDERR = 1;
const MAX_BUFFERED = 1 << 20; // undelivered bytes before the process's output is paused
// One message carries up to this much of one stream: under TCG (the agent's node runs --jitless) each message
// costs a fixed amount of interpreted work, so a flood goes in few large messages (measured over gRPC from a box:
// 64 KiB messages 8.5 MiB/s, 1 MiB 34 MiB/s). Output that arrives while the reader is idle goes at once, unjoined.
const MAX_MESSAGE = 1 << 20;
// Messages handed to the reader and not yet written out: two keep the transport busy while the next one is joined.
const IN_FLIGHT = 2;
const KEEP_FINISHED = 256;
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface ExecOptions {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  user: string;
  tty: boolean;
  rows: number;
  cols: number;
  stdin: boolean;
  timeoutMs: number;
  detach?: boolean;
}

export interface ExitStatus { exitCode: number; signal: string; timedOut: boolean }
interface Chunk { stream: number; data: Buffer }
/** Output of one stream, in the pieces it was read in: joined only when it is encoded (agent/wire.ts). */
export interface OutputMessage { stream: number; parts: Buffer[]; size: number }
/** Takes one message (null: the output is complete) and calls done once it has been written out. */
type Reader = (c: OutputMessage | null, done: () => void) => void;

export class ExecError extends Error {}

/** Finds an executable the way execvp does, so "not found" can be answered like a shell (exit 127). */
function lookPath(cmd: string, envPath: string, cwd: string): { path?: string; code?: number; message?: string } {
  const check = (p: string) => {
    try {
      const st = fs.statSync(p);
      if (st.isDirectory()) return { code: 126, message: `${cmd}: is a directory` };
      fs.accessSync(p, fs.constants.X_OK);
      return { path: p };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EACCES') return { code: 126, message: `${cmd}: permission denied` };
      return null;
    }
  };
  if (cmd.includes('/')) {
    return check(path.resolve(cwd, cmd)) ?? { code: 127, message: `${cmd}: no such file or directory` };
  }
  let denied: { code?: number; message?: string } | null = null;
  for (const dir of envPath.split(':')) {
    const r = check(path.join(dir || '.', cmd));
    if (r?.path) return r;
    if (r && !denied) denied = r;
  }
  return denied ?? { code: 127, message: `${cmd}: command not found` };
}

export class Process {
  readonly id = randomUUID();
  pid = 0;
  private queue: Chunk[] = [];
  private queued = 0;
  private reader: Reader | null = null;
  private inFlight = 0;
  private outputDone = false;
  private endSent = false;
  private paused = false;
  status: ExitStatus | null = null;
  private waiters: ((s: ExitStatus) => void)[] = [];
  private child: ChildProcess | null = null;
  private master: number | null = null;
  private masterIn: tty.ReadStream | null = null;
  private masterOut: fs.WriteStream | null = null;
  private timer: NodeJS.Timeout | null = null;
  private timedOut = false;

  constructor(readonly opts: ExecOptions) {}

  start(): void {
    const o = this.opts;
    if (o.argv.length === 0 || !o.argv[0]) throw new ExecError('no command given');
    const user = resolveUser(o.user);
    const env: Record<string, string> = { PATH: DEFAULT_PATH, HOME: user.home, ...o.env };
    if (o.tty && !env.TERM) env.TERM = 'xterm';
    const cwd = o.cwd || user.home || '/';
    let st: fs.Stats | null = null;
    try {
      st = fs.statSync(cwd);
    } catch {}
    if (!st?.isDirectory()) throw new ExecError(`working directory ${cwd} does not exist in the box`);

    const found = lookPath(o.argv[0], env.PATH, cwd);
    if (!found.path) {
      // Answer like a shell would, without starting anything.
      this.push(STDERR, Buffer.from(`${found.message}\n`));
      this.finishOutput();
      this.exited({ exitCode: found.code ?? 127, signal: '', timedOut: false });
      return;
    }

    const common = { cwd, env, uid: user.uid, gid: user.gid, argv0: o.argv[0] };
    if (o.tty) {
      const { master, slavePath } = openPty(o.rows, o.cols);
      this.master = master;
      // detached: libuv makes the child a session leader; the wrapper then opens the pty by path, which makes it
      // the session's controlling terminal (job control, ^C), and execs the command.
      fs.chownSync(slavePath, user.uid, user.gid); // as login does: the user's own terminal
      this.child = spawn(BUSYBOX, ['-c', 'exec "$@" <>"$0" >&0 2>&0', slavePath, found.path, ...o.argv.slice(1)], {
        ...common,
        argv0: 'sh', // busybox runs the applet named by argv[0]
        detached: true,
        stdio: ['ignore', 'ignore', 'pipe'], // stderr: the wrapper's own errors, before it switches to the pty
      });
      this.child.stderr!.on('data', (d: Buffer) => this.push(STDERR, d));
      this.masterIn = new tty.ReadStream(master);
      this.masterIn.on('data', (d: Buffer) => {
        this.push(STDOUT, d);
        if (this.status) this.closeMasterSoon(); // still draining after exit
      });
      // EIO on the master means every slave fd is closed: output is complete.
      this.masterIn.on('error', () => this.finishOutput());
      this.masterIn.on('end', () => this.finishOutput());
      this.masterOut = fs.createWriteStream('', { fd: master, autoClose: false });
      this.masterOut.on('error', () => {});
    } else {
      this.child = spawn(found.path, o.argv.slice(1), {
        ...common,
        detached: true, // its own process group, so Kill and the timeout reach its children too
        stdio: [o.stdin ? 'pipe' : 'ignore', o.detach ? 'ignore' : 'pipe', o.detach ? 'ignore' : 'pipe'],
      });
      this.child.stdout?.on('data', (d: Buffer) => this.push(STDOUT, d));
      this.child.stderr?.on('data', (d: Buffer) => this.push(STDERR, d));
      this.child.stdin?.on('error', () => {});
      this.child.on('close', () => this.finishOutput());
    }
    this.pid = this.child.pid ?? 0;
    this.child.on('error', (err) => {
      this.push(STDERR, Buffer.from(`${o.argv[0]}: ${err.message}\n`));
      this.finishOutput();
      this.exited({ exitCode: 126, signal: '', timedOut: false });
    });
    this.child.on('exit', (code, signal) => {
      this.exited({ exitCode: code ?? -1, signal: signal ?? '', timedOut: this.timedOut });
      // The master reads EIO once every slave fd is closed; a background process may keep one open, so output
      // is also taken as complete once the pty has been quiet for a moment after the exit.
      if (this.master !== null) this.closeMasterSoon();
    });
    if (o.timeoutMs > 0) {
      this.timer = setTimeout(() => {
        this.timedOut = true;
        this.kill('SIGKILL');
      }, o.timeoutMs);
    }
  }

  private quietTimer: NodeJS.Timeout | null = null;
  private closeMasterSoon(): void {
    if (this.quietTimer) clearTimeout(this.quietTimer);
    this.quietTimer = setTimeout(() => this.closeMaster(), 300);
  }

  private closeMaster(): void {
    if (this.master === null) return;
    this.masterIn?.destroy();
    this.master = null;
    this.finishOutput();
  }

  private exited(s: ExitStatus): void {
    if (this.status) return;
    if (this.timer) clearTimeout(this.timer);
    this.status = s;
    for (const w of this.waiters.splice(0)) w(s);
  }

  private push(stream: number, data: Buffer): void {
    this.queue.push({ stream, data });
    this.queued += data.length;
    if (this.queued > MAX_BUFFERED && !this.paused) {
      this.paused = true;
      this.child?.stdout?.pause();
      this.child?.stderr?.pause();
      this.masterIn?.pause();
    }
    this.deliver();
  }

  /** Hands queued output to the reader while it has room, joining what waited, and resumes the pipes once the
   *  queue has gone down. */
  private deliver(): void {
    const reader = this.reader;
    while (reader && this.inFlight < IN_FLIGHT && this.queue.length > 0) {
      const c = this.take();
      this.inFlight++;
      let called = false;
      reader(c, () => {
        if (called) return;
        called = true;
        if (this.reader !== reader) return; // a reader replaced meanwhile starts its own count
        this.inFlight--;
        this.deliver();
      });
    }
    if (this.paused && this.queued <= MAX_BUFFERED / 2) {
      this.paused = false;
      this.child?.stdout?.resume();
      this.child?.stderr?.resume();
      this.masterIn?.resume();
    }
    if (reader && this.outputDone && this.queue.length === 0 && !this.endSent) {
      this.endSent = true;
      reader(null, () => {});
    }
  }

  /** The next message: the first queued chunk with those after it of the same stream, up to MAX_MESSAGE. */
  private take(): OutputMessage {
    const stream = this.queue[0].stream;
    let n = 1;
    let size = this.queue[0].data.length;
    while (n < this.queue.length && this.queue[n].stream === stream && size + this.queue[n].data.length <= MAX_MESSAGE) {
      size += this.queue[n].data.length;
      n++;
    }
    this.queued -= size;
    return { stream, parts: this.queue.splice(0, n).map((c) => c.data), size };
  }

  private finishOutput(): void {
    if (this.outputDone) return;
    this.outputDone = true;
    this.deliver();
  }

  get running(): boolean {
    return this.status === null;
  }

  /** Attaches a reader (replacing any earlier one, which is ended): the queued output, then live output as the
   *  reader takes it, then null. Output handed to a reader that goes away unwritten is lost, as it was sent. */
  attach(reader: Reader): () => void {
    const old = this.reader;
    this.reader = reader;
    this.inFlight = 0;
    this.endSent = false;
    old?.(null, () => {});
    this.deliver();
    return () => {
      if (this.reader === reader) this.reader = null;
    };
  }

  wait(): Promise<ExitStatus> {
    if (this.status) return Promise.resolve(this.status);
    return new Promise((r) => this.waiters.push(r));
  }

  write(data: Buffer): void {
    if (this.masterOut) this.masterOut.write(data);
    else this.child?.stdin?.write(data);
  }

  closeStdin(): void {
    if (this.masterOut) this.masterOut.write(Buffer.from([4])); // ^D: end of input for the line discipline
    else this.child?.stdin?.end();
  }

  kill(signal: string): void {
    if (!this.pid || this.status) return;
    try {
      process.kill(-this.pid, signal as NodeJS.Signals); // the whole process group
    } catch {
      try {
        process.kill(this.pid, signal as NodeJS.Signals);
      } catch {}
    }
  }

  resize(rows: number, cols: number): void {
    if (this.master !== null) resizePty(this.master, rows, cols);
  }
}

export class ProcessTable {
  private procs = new Map<string, Process>();

  start(opts: ExecOptions): Process {
    const p = new Process(opts);
    p.start();
    this.procs.set(p.id, p);
    this.prune();
    return p;
  }

  get(id: string): Process {
    const p = this.procs.get(id);
    if (!p) throw new ExecError(`no process with exec id ${id} in this box`);
    return p;
  }

  all(): Process[] {
    return [...this.procs.values()];
  }

  private prune(): void {
    const finished = this.all().filter((p) => !p.running);
    for (const p of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) this.procs.delete(p.id);
  }

  /** Used by Shutdown: TERM everything, then KILL what is left. */
  async terminateAll(graceMs: number): Promise<void> {
    const running = this.all().filter((p) => p.running);
    for (const p of running) p.kill('SIGTERM');
    await Promise.race([Promise.all(running.map((p) => p.wait())), new Promise((r) => setTimeout(r, graceMs))]);
    for (const p of running) p.kill('SIGKILL');
  }
}
