// This process's agent connection to a box: made while it boots (watching for reasons to give up early), or
// found again for a box another process started. The agent client (grpc-js, protobufjs) is loaded when a box is
// first reached: commands that only read records, such as a `boxlite up` with nothing to do, start faster.
import * as fs from 'node:fs';
import { CONSOLE_ERROR_MARK, CONSOLE_INIT_STARTED } from '../core/protocol.js';
import { BoxliteError, BoxStateError } from '../core/errors.js';
import type { AgentClient } from '../vmm/agent-client.js';
import type { RestoredRequest } from '../core/protocol.js';
import type { RuntimeContext } from './context.js';
import { bootConsole, boxStatus, explainExit } from './status.js';

/** The guest kernel did not reach init in time: seen rarely under TCG, and a second boot goes through. */
export class InitStalled extends Error {}

export interface ConnectOptions {
  /** The most it may take in any case. */
  timeoutMs: number;
  /** A boot: give up when the guest makes no progress for this long (no console output, no CPU used), and boot
   *  once more when its kernel has used initCpuMs of CPU without reaching init. A slow guest (a loaded host) is
   *  waited for as long as it moves. */
  stallMs?: number;
  initCpuMs?: number;
  /** The VM continues a saved state: the guest's first answer comes after it has made itself this box (made when the
   *  handshake is sent: it carries the host's clock). */
  restored?: () => RestoredRequest;
}

/** Waits for the agent of a (booting) VM, giving up early when the VM dies, the guest init reports an error, the
 *  kernel spins without reaching init, or the guest stops making progress. */
export async function connectAgent(ctx: RuntimeContext, id: string, opts: ConnectOptions): Promise<AgentClient> {
  const dir = ctx.home.boxDir(id);
  const name = ctx.records.read(id)?.name ?? id;
  const consoleFile = ctx.engine.consolePath(dir);
  const consoleSize = () => fs.statSync(consoleFile, { throwIfNoEntry: false })?.size ?? 0;
  let stalled = false;
  let cpuAtStart: number | null = null;
  let last = { at: Date.now(), cpu: 0, size: consoleSize() };
  try {
    const { AgentClient } = await import('../vmm/agent-client.js');
    return await AgentClient.connect(dir, name, {
      timeoutMs: opts.timeoutMs,
      restored: opts.restored,
      peerPid: () => {
        try {
          return ctx.engine.peerPid(dir);
        } catch {
          return null;
        }
      },
      check: () => {
        const vm = ctx.engine.status(dir);
        if (vm.kind !== 'running') return explainExit(ctx, ctx.records.get(id), vm).detail;
        const con = bootConsole(ctx, id);
        const err = con.find((l) => l.startsWith(CONSOLE_ERROR_MARK));
        if (err) return err.slice(CONSOLE_ERROR_MARK.length);
        if (!opts.stallMs) return null;
        const cpu = ctx.engine.cpuSeconds(dir);
        if (cpu === null) return null; // not started yet
        cpuAtStart ??= cpu;
        if (opts.initCpuMs && (cpu - cpuAtStart) * 1000 > opts.initCpuMs && !con.some((l) => l.startsWith(CONSOLE_INIT_STARTED))) {
          stalled = true;
          return `the guest kernel did not reach init after ${opts.initCpuMs / 1000}s of CPU time`;
        }
        // Progress: console output, or CPU the guest used (a guest waiting for a CPU of a loaded host uses little,
        // but some; a guest stuck idle uses none).
        const size = consoleSize();
        if (size !== last.size || cpu - last.cpu > 0.2) last = { at: Date.now(), cpu, size };
        else if (Date.now() - last.at > opts.stallMs) return `the guest made no progress for ${opts.stallMs / 1000}s (no console output, no CPU used)`;
        return null;
      },
    });
  } catch (e) {
    throw stalled ? new InitStalled((e as Error).message) : e;
  }
}

/** An agent connection for a running box (reattaching when this process did not start it). */
export async function agentClient(ctx: RuntimeContext, id: string): Promise<AgentClient> {
  const rec = ctx.records.get(id);
  const st = boxStatus(ctx, rec);
  const cached = ctx.clients.get(id);
  if (st.state !== 'running') {
    cached?.close();
    ctx.clients.delete(id);
    throw new BoxStateError(`box ${rec.name} is ${st.state}${st.exit ? ` (${st.exit.reason}: ${st.exit.detail})` : ''}: start it with 'boxlite start ${rec.name}'`);
  }
  if (cached) return cached;
  let c: AgentClient;
  try {
    c = await connectAgent(ctx, id, { timeoutMs: 30_000 });
  } catch (e) {
    if (e instanceof BoxliteError) throw e;
    throw new BoxStateError(`box ${rec.name} cannot be reached: ${(e as Error).message}`);
  }
  ctx.clients.set(id, c);
  return c;
}
