// BoxLite's Execution handle: stdout()/stderr() readers (`await s.next()` until null), stdin() (write,
// writeString, close), wait() → { exitCode, errorMessage }, kill(), resizeTty(), signal(). Two sources: a process
// of this machine's runtime, and an execution on a server, read through the attach WebSocket.
import { StringDecoder } from 'node:string_decoder';
import type { Readable, Writable } from 'node:stream';
import type WebSocket from 'ws';
import { BoxliteError } from '../core/errors.js';
import type { Execution as LocalExecution } from '../runtime/execution.js';
import type { RestClient } from './rest.js';
import { signalName } from './signals.js';

export interface ExecResultInfo {
  exitCode: number;
  errorMessage?: string;
}

/** Text chunks of one output stream, in order; null once it ended. */
export class OutputReader {
  private chunks: string[] = [];
  private ended = false;
  private waiter: (() => void) | null = null;
  private decoder = new StringDecoder('utf8');

  push(b: Buffer): void {
    const s = this.decoder.write(b);
    if (s) this.chunks.push(s);
    this.wake();
  }
  end(): void {
    const s = this.decoder.end();
    if (s) this.chunks.push(s);
    this.ended = true;
    this.wake();
  }
  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }
  async next(): Promise<string | null> {
    while (!this.chunks.length && !this.ended) await new Promise<void>((r) => (this.waiter = r));
    return this.chunks.shift() ?? null;
  }
}

export interface StdinWriter {
  write(data: Buffer | Uint8Array): Promise<void>;
  writeString(text: string): Promise<void>;
  close(): Promise<void>;
}

export interface JsExecution {
  id(): Promise<string>;
  stdin(): Promise<StdinWriter>;
  stdout(): Promise<OutputReader>;
  stderr(): Promise<OutputReader>;
  wait(): Promise<ExecResultInfo>;
  kill(): Promise<void>;
  resizeTty(rows: number, cols: number): Promise<void>;
  signal(signal: number): Promise<void>;
}

function reader(s: Readable): OutputReader {
  const r = new OutputReader();
  s.on('data', (d: Buffer) => r.push(d));
  s.on('end', () => r.end());
  return r;
}

/** A process of this machine's runtime. Its output is read as it comes (so wait() never waits on a full pipe). */
export class LocalJsExecution implements JsExecution {
  private readonly out: OutputReader;
  private readonly err: OutputReader;
  constructor(private readonly ex: LocalExecution) {
    this.out = reader(ex.stdout);
    this.err = reader(ex.stderr);
  }
  async id(): Promise<string> {
    return this.ex.id;
  }
  async stdin(): Promise<StdinWriter> {
    const w: Writable = this.ex.stdin;
    const write = (d: Buffer | Uint8Array | string) => new Promise<void>((res, rej) => w.write(d, (e) => (e ? rej(e) : res())));
    return { write, writeString: write, close: async () => void w.end() };
  }
  async stdout(): Promise<OutputReader> {
    return this.out;
  }
  async stderr(): Promise<OutputReader> {
    return this.err;
  }
  async wait(): Promise<ExecResultInfo> {
    const s = await this.ex.wait();
    return { exitCode: s.exitCode, ...(s.timedOut ? { errorMessage: 'timed out' } : {}) };
  }
  kill(): Promise<void> {
    return this.ex.kill('SIGKILL');
  }
  resizeTty(rows: number, cols: number): Promise<void> {
    return this.ex.resize(rows, cols);
  }
  async signal(n: number): Promise<void> {
    await this.ex.kill(signalName(n));
  }
}

/** An execution on a server, attached at once (output made before the attach waits on the server). */
export class RemoteJsExecution implements JsExecution {
  private readonly out = new OutputReader();
  private readonly err = new OutputReader();
  private readonly ws: WebSocket;
  private readonly opened: Promise<void>;
  private readonly done: Promise<ExecResultInfo>;

  constructor(
    private readonly client: RestClient,
    private readonly boxId: string,
    private readonly execId: string,
  ) {
    this.ws = client.attach(boxId, execId);
    this.opened = new Promise((res, rej) => {
      this.ws.once('open', () => res());
      this.ws.once('unexpected-response', (_q, r) => rej(new BoxliteError(`attach to execution ${execId} refused: HTTP ${r.statusCode}`)));
      this.ws.once('error', rej);
    });
    this.opened.catch(() => {});
    let exit: ExecResultInfo | null = null;
    let error: string | null = null;
    this.ws.on('message', (data: Buffer, binary: boolean) => {
      if (binary) (data[0] === 2 ? this.err : this.out).push(data.subarray(1));
      else {
        const m = JSON.parse(data.toString());
        if (m.type === 'exit') exit = { exitCode: m.exit_code };
        else if (m.type === 'error') error = m.message;
      }
    });
    this.ws.on('error', () => {});
    this.done = new Promise((resolve, reject) => {
      this.ws.once('close', () => {
        this.out.end();
        this.err.end();
        if (exit) resolve(exit);
        else reject(new BoxliteError(`execution ${execId}: ${error ?? 'the connection to the server ended before the command did'}`));
      });
    });
    this.done.catch(() => {});
  }

  async id(): Promise<string> {
    return this.execId;
  }
  async stdin(): Promise<StdinWriter> {
    await this.opened;
    const send = (d: Buffer | Uint8Array | string, binary: boolean) => new Promise<void>((res, rej) => this.ws.send(d, { binary }, (e) => (e ? rej(e) : res())));
    return {
      write: (d) => send(Buffer.from(d), true),
      writeString: (t) => send(Buffer.from(t, 'utf8'), true),
      close: () => send(JSON.stringify({ type: 'stdin_eof' }), false),
    };
  }
  async stdout(): Promise<OutputReader> {
    return this.out;
  }
  async stderr(): Promise<OutputReader> {
    return this.err;
  }
  wait(): Promise<ExecResultInfo> {
    return this.done;
  }
  async kill(): Promise<void> {
    await this.client.request('DELETE', `${this.client.box(this.boxId)}/executions/${encodeURIComponent(this.execId)}`, { ok: [404] });
  }
  async resizeTty(rows: number, cols: number): Promise<void> {
    await this.client.request('POST', `${this.client.box(this.boxId)}/executions/${encodeURIComponent(this.execId)}/resize`, { json: { rows, cols } });
  }
  async signal(n: number): Promise<void> {
    await this.client.request('POST', `${this.client.box(this.boxId)}/executions/${encodeURIComponent(this.execId)}/signal`, { json: { signal: n } });
  }
}
