// An execution on a server as Node streams (stdout, stderr, stdin) with wait() and resize(): the shape the CLI's
// terminal attaches to, so `boxlite --host URL exec -it` is the same terminal as the local one.
import { PassThrough, Writable } from 'node:stream';
import { BoxliteError } from '../core/errors.js';
import type { ExitStatus } from '../runtime/execution.js';
import type { RestClient } from './rest.js';

export interface StreamExecution {
  readonly id: string;
  readonly stdout: PassThrough;
  readonly stderr: PassThrough;
  readonly stdin: Writable;
  wait(): Promise<ExitStatus>;
  resize(rows: number, cols: number): Promise<void>;
  kill(): Promise<void>;
}

export function streamExecution(client: RestClient, boxId: string, execId: string): StreamExecution {
  const ws = client.attach(boxId, execId);
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const opened = new Promise<void>((res, rej) => {
    ws.once('open', () => res());
    ws.once('error', rej);
  });
  opened.catch(() => {});
  let exitCode: number | null = null;
  let error: string | null = null;
  ws.on('error', () => {});
  ws.on('message', (data: Buffer, binary: boolean) => {
    if (binary) {
      // Backpressure: stop reading the socket while this side's output is full.
      const to = data[0] === 2 ? stderr : stdout;
      if (!to.write(data.subarray(1))) {
        ws.pause();
        to.once('drain', () => ws.resume());
      }
    } else {
      const m = JSON.parse(data.toString());
      if (m.type === 'exit') exitCode = m.exit_code;
      else if (m.type === 'error') error = m.message;
    }
  });
  const closed = new Promise<void>((r) => ws.once('close', () => r()));
  const stdin = new Writable({
    write(chunk: Buffer, _e, cb) {
      opened.then(() => ws.send(chunk, { binary: true }, cb), cb);
    },
    final(cb) {
      opened.then(() => ws.send(JSON.stringify({ type: 'stdin_eof' }), () => cb()), () => cb());
    },
  });
  stdin.on('error', () => {});
  const path = `${client.box(boxId)}/executions/${encodeURIComponent(execId)}`;
  return {
    id: execId,
    stdout,
    stderr,
    stdin,
    async wait() {
      await closed;
      stdout.end();
      stderr.end();
      if (exitCode === null) throw new BoxliteError(`execution ${execId}: ${error ?? 'the connection to the server ended before the command did'}`);
      const info = await client.json('GET', path).catch(() => null);
      return { exitCode, signal: null, timedOut: info?.status === 'timed_out' };
    },
    async resize(rows, cols) {
      await opened;
      ws.send(JSON.stringify({ type: 'resize', rows, cols }));
    },
    async kill() {
      await client.request('DELETE', path, { ok: [404] });
    },
  };
}
