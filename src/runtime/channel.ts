// This process's agent connection to a box: made while it boots (watching for reasons to give up early), or
// found again for a box another process started. The agent client (grpc-js, protobufjs) is loaded when a box is
// first reached: commands that only read records, such as a `boxlite up` with nothing to do, start faster.
import { CONSOLE_ERROR_MARK, CONSOLE_INIT_STARTED } from '../core/protocol.js';
import { BoxStateError } from '../core/errors.js';
import type { AgentClient } from '../vmm/agent-client.js';
import type { RuntimeContext } from './context.js';
import { bootConsole, boxStatus, explainExit } from './status.js';

/** The guest kernel did not reach init in time: seen rarely under TCG, and a second boot goes through. */
export class InitStalled extends Error {}

export interface ConnectOptions {
  timeoutMs: number;
  /** Give up when the kernel has not reached init after this long (0: never). */
  stallMs?: number;
}

/** Waits for the agent of a (booting) VM, giving up early when the VM dies, the guest init reports an error, or
 *  the kernel never reaches init. */
export async function connectAgent(ctx: RuntimeContext, id: string, opts: ConnectOptions): Promise<AgentClient> {
  const dir = ctx.home.boxDir(id);
  const name = ctx.records.read(id)?.name ?? id;
  const since = Date.now();
  let stalled = false;
  try {
    const { AgentClient } = await import('../vmm/agent-client.js');
    return await AgentClient.connect(dir, name, {
      timeoutMs: opts.timeoutMs,
      check: () => {
        const vm = ctx.engine.status(dir);
        if (vm.kind !== 'running') return explainExit(ctx, ctx.records.get(id), vm).detail;
        const con = bootConsole(ctx, id);
        const err = con.find((l) => l.startsWith(CONSOLE_ERROR_MARK));
        if (err) return err.slice(CONSOLE_ERROR_MARK.length);
        if (opts.stallMs && Date.now() - since > opts.stallMs && !con.some((l) => l.startsWith(CONSOLE_INIT_STARTED))) {
          stalled = true;
          return `the guest kernel did not reach init within ${opts.stallMs / 1000}s`;
        }
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
  const c = await connectAgent(ctx, id, { timeoutMs: 30_000 });
  ctx.clients.set(id, c);
  return c;
}
