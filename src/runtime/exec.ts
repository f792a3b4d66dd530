// Running things in a box through its agent: processes (started, attached to, waited for), and tar streams in
// and out of its file system.
import { secretEnv } from './secrets.js';
import { PassThrough } from 'node:stream';
import type * as grpc from '@grpc/grpc-js';
import { AgentCallError, ExecError, TimeoutError } from '../core/errors.js';

/** The codes the agent answers its own refusals with (agent/main.ts fail()). */
const GRPC_INTERNAL = 13;
const GRPC_FAILED_PRECONDITION = 9;
import type { AgentClient } from '../vmm/agent-client.js';
import { agentClient } from './channel.js';
import { startBox } from './boot.js';
import { restoreUnfinished } from './memory.js';
import { countExec, markActive } from './activity.js';
import { Execution, relayCall, signalExitCode, type ExecOptions, type ExecResult } from './execution.js';
import type { RuntimeContext } from './context.js';


export interface NetworkStats {
  name: string;
  address: string;
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
}

export type ExecInput = ExecOptions & { input?: string | Buffer };

/** A paused box is continued by whatever needs it running (an exec, a copy); each is a use of the box, which an
 *  idle pause waits for the absence of (a health check is not). */
async function awake(ctx: RuntimeContext, id: string, use = true): Promise<AgentClient> {
  if (use) markActive(ctx, id);
  // A restore whose CLI died before the guest was told is done again by a start (see abandonUnfinishedRestore).
  if (ctx.records.get(id).state === 'paused' || restoreUnfinished(ctx, id)) await startBox(ctx, id);
  return agentClient(ctx, id);
}

/** The environment, folder and user a command runs with: the image's, then the box's, then the call's. */
async function startProcess(ctx: RuntimeContext, id: string, argv: string[], opts: ExecOptions & { detach?: boolean }): Promise<{ client: AgentClient; execId: string; pid: number }> {
  if (argv.length === 0) throw new ExecError('no command given');
  const client = await awake(ctx, id, opts.countsAsUse !== false);
  const rec = ctx.records.get(id);
  const env: Record<string, string> = {};
  for (const kv of rec.source.config.env) {
    const i = kv.indexOf('=');
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  Object.assign(env, secretEnv(rec), rec.options.env, opts.env);
  try {
    const res = await client.call<{ execId: string; pid: number }>('execution', 'exec', {
      argv,
      env,
      cwd: opts.cwd || rec.options.workingDir || rec.source.config.workingDir || '',
      user: opts.user || rec.options.user || rec.source.config.user || '',
      tty: !!opts.tty,
      rows: opts.rows ?? 24,
      cols: opts.cols ?? 80,
      stdin: !!opts.stdin,
      timeoutMs: opts.timeoutMs ?? 0,
      detach: !!opts.detach,
    });
    if (opts.countsAsUse !== false) countExec(ctx, id, true);
    return { client, execId: res.execId, pid: res.pid };
  } catch (e) {
    if (opts.countsAsUse !== false) countExec(ctx, id, false);
    // The agent's refusal (a missing user, command or folder) in its own words, naming the box.
    if (e instanceof AgentCallError && (e.code === GRPC_FAILED_PRECONDITION || e.code === GRPC_INTERNAL)) throw new ExecError(`box ${rec.name}: ${e.details}`);
    throw e;
  }
}

export async function spawnIn(ctx: RuntimeContext, id: string, argv: string[], opts: ExecOptions = {}): Promise<Execution> {
  const { client, execId, pid } = await startProcess(ctx, id, argv, opts);
  return new Execution(client, execId, pid, !!opts.stdin);
}

/** Starts a process and leaves it running in the box, unwatched; its output is discarded, its exit status kept
 *  (attachTo its exec id and wait). */
export async function startDetached(ctx: RuntimeContext, id: string, argv: string[], opts: ExecOptions = {}): Promise<{ execId: string; pid: number }> {
  const { execId, pid } = await startProcess(ctx, id, argv, { ...opts, stdin: false, tty: false, detach: true });
  return { execId, pid };
}

/** Attaches to a process started earlier (by this or another process) by its exec id. */
export async function attachTo(ctx: RuntimeContext, id: string, execId: string): Promise<Execution> {
  return new Execution(await agentClient(ctx, id), execId, 0, false);
}

/** Runs a command to completion and collects its output; a TimeoutError (with the partial result) on timeout. */
export async function execIn(ctx: RuntimeContext, id: string, argv: string[], opts: ExecInput = {}): Promise<ExecResult> {
  const ex = await spawnIn(ctx, id, argv, { ...opts, stdin: opts.input !== undefined || opts.stdin });
  if (opts.input !== undefined) ex.stdin.end(opts.input);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  ex.stdout.on('data', (d: Buffer) => out.push(d));
  ex.stderr.on('data', (d: Buffer) => err.push(d));
  const status = await ex.wait();
  const result = { ...status, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
  if (status.timedOut) {
    throw Object.assign(new TimeoutError(`${argv.join(' ')} was killed after the ${opts.timeoutMs} ms timeout`), { result });
  }
  return result;
}

/** Whether a process started in the box is still running; its exit status when it is not. */
export async function processState(ctx: RuntimeContext, id: string, execId: string): Promise<{ running: boolean; exitCode?: number }> {
  const client = await agentClient(ctx, id);
  const r = await client.call<{ processes: { execId: string; running: boolean }[] }>('execution', 'list', {}, 10_000);
  const p = r.processes.find((x) => x.execId === execId);
  if (!p) return { running: false };
  if (p.running) return { running: true };
  const s = await client.call<{ exitCode: number; signal: string }>('execution', 'wait', { execId }, 10_000);
  return { running: false, exitCode: s.signal ? signalExitCode(s.signal) : s.exitCode };
}

/** Unpacks a tar stream into dest (a directory in the box), keeping modes and owners. */
export async function uploadTar(ctx: RuntimeContext, id: string, dest: string, tarStream: NodeJS.ReadableStream): Promise<void> {
  const client = await awake(ctx, id);
  await new Promise<void>((resolve, reject) => {
    const call = client.files.upload((err: Error | null) => (err ? reject(new ExecError(`upload to ${dest}: ${(err as grpc.ServiceError).details ?? err.message}`)) : resolve()));
    call.write({ dest });
    tarStream.on('data', (d: Buffer) => {
      if (!call.write({ dest, data: d })) {
        tarStream.pause();
        call.once('drain', () => tarStream.resume());
      }
    });
    tarStream.on('end', () => call.end());
    tarStream.on('error', (e: Error) => {
      call.cancel();
      reject(e);
    });
  });
}

/** A tar stream of a file or directory in the box. */
export async function downloadTar(ctx: RuntimeContext, id: string, boxPath: string): Promise<NodeJS.ReadableStream> {
  const client = await awake(ctx, id);
  const call = client.files.download({ path: boxPath });
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  relayCall(call, (m: { data: Buffer }) => ({ to: out, data: m.data }));
  call.on('end', () => out.end());
  call.on('error', (e: grpc.ServiceError) => out.destroy(new ExecError(`download of ${boxPath}: ${e.details ?? e.message}`)));
  return out;
}

/** Counters of the box's network interfaces, read in the guest. */
export async function networkStats(ctx: RuntimeContext, id: string): Promise<NetworkStats[]> {
  const client = await agentClient(ctx, id);
  const r = await client.call<{ interfaces: NetworkStats[] }>('guest', 'netStats', {}, 10_000);
  return r.interfaces;
}
