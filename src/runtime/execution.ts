// A process running in a box, seen from the host: stdout/stderr streams, stdin, wait, kill, resize.
// Built from the agent's separate Exec / Output / Input / Wait calls, so any process can attach to it by id.
import { constants } from 'node:os';
import { PassThrough, Writable } from 'node:stream';
import type * as grpc from '@grpc/grpc-js';
import type { AgentClient } from '../vmm/agent-client.js';

export interface ExecOptions {
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  tty?: boolean;
  rows?: number;
  cols?: number;
  /** Keep stdin open for writing (Execution.stdin); otherwise the process reads /dev/null. */
  stdin?: boolean;
  /** Kill the process (and its children) after this many ms. */
  timeoutMs?: number;
  /** false: the run is not a use of the box, for an idle pause (a health check). */
  countsAsUse?: boolean;
}

export interface ExitStatus {
  /** The exit code; 128+N when the process was ended by signal N, as a shell reports it. */
  exitCode: number;
  signal: string | null;
  timedOut: boolean;
}

export interface ExecResult extends ExitStatus {
  stdout: string;
  stderr: string;
}

export function signalExitCode(signal: string): number {
  const n = (constants.signals as Record<string, number>)[signal];
  return 128 + (n ?? 0);
}

// What each of stdout and stderr holds for a reader that has not read it yet. Past that the output call is paused,
// which stops the box sending (HTTP/2 flow control) and, in the box, the command's pipe: output not read waits in
// the box, as a child process's does. A reader must read both streams (a few KiB of stderr fit here unread).
const STREAM_BUFFER = 1 << 20;

/** Relays the messages of a server-streaming call into readables, pausing the call while any of them is full. */
export function relayCall(call: grpc.ClientReadableStream<unknown>, pick: (m: any) => { to: Writable; data: Buffer }): void {
  const full = new Set<Writable>();
  call.on('data', (m) => {
    const { to, data } = pick(m);
    if (to.write(data) || full.has(to)) return;
    full.add(to);
    call.pause();
    to.once('drain', () => {
      full.delete(to);
      if (full.size === 0) call.resume();
    });
  });
}

export class Execution {
  readonly stdout = new PassThrough({ highWaterMark: STREAM_BUFFER });
  readonly stderr = new PassThrough({ highWaterMark: STREAM_BUFFER });
  private stdinStream: Writable | null = null;
  private outputDone: Promise<void>;

  constructor(
    private readonly client: AgentClient,
    readonly id: string,
    readonly pid: number,
    openStdin: boolean,
  ) {
    this.outputDone = this.follow();
    if (openStdin) this.stdinStream = this.openInput();
  }

  /** Writable stdin of the process (only when started with stdin: true). end() closes it. */
  get stdin(): Writable {
    if (!this.stdinStream) throw new Error('this execution was started without stdin: pass { stdin: true }');
    return this.stdinStream;
  }

  private follow(): Promise<void> {
    return new Promise((resolve) => {
      const call = this.client.execution.output({ execId: this.id });
      relayCall(call, (c: { stream: number; data: Buffer }) => ({ to: c.stream === 1 ? this.stderr : this.stdout, data: c.data }));
      const finish = (err?: Error) => {
        this.closeInput();
        this.stdout.end();
        this.stderr.end();
        if (err) this.stderr.emit('boxlite-error', err);
        resolve();
      };
      call.on('end', () => finish());
      call.on('error', (e: Error) => finish(e));
    });
  }

  private openInput(): Writable {
    const call = this.client.execution.input(() => {});
    call.on('error', () => {});
    call.write({ execId: this.id });
    let open = true;
    // The process is gone (its output ended): the call is ended without a word about a process the agent has
    // forgotten, or it would stay open, and held here, for as long as the stdin is not closed.
    this.closeInput = () => {
      if (open) call.end();
      open = false;
    };
    return new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        if (open) call.write({ execId: this.id, data: chunk }, cb);
        else cb(); // what is written after the process ended goes nowhere, as into a closed pipe's reader
      },
      final: (cb) => {
        if (open) call.write({ execId: this.id, eof: true });
        this.closeInput();
        cb();
      },
    });
  }

  private closeInput: () => void = () => {};

  /** Resolves when the process has exited and all its output was delivered. */
  async wait(): Promise<ExitStatus> {
    const s = await this.client.call<{ exitCode: number; signal: string; timedOut: boolean }>('execution', 'wait', { execId: this.id }, 0);
    await this.outputDone;
    return {
      exitCode: s.signal ? signalExitCode(s.signal) : s.exitCode,
      signal: s.signal || null,
      timedOut: s.timedOut,
    };
  }

  kill(signal = 'SIGKILL'): Promise<void> {
    return this.client.call('execution', 'kill', { execId: this.id, signal });
  }

  resize(rows: number, cols: number): Promise<void> {
    return this.client.call('execution', 'resizeTty', { execId: this.id, rows, cols });
  }
}
