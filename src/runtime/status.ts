// A box's state as it is now: the record says what boxlite last did; the engine says whether the VM still runs;
// the guest console and QEMU's log say why a VM that should run has gone.
import { printable } from '../util/printable.js';
import * as path from 'node:path';
import { CONSOLE_AGENT_EXITED, CONSOLE_CLEAN_SHUTDOWN, CONSOLE_ERROR_MARK } from '../core/protocol.js';
import { tailLines } from '../util/fs.js';
import { passtPid } from '../vmm/passt.js';
import { guardPid } from '../vmm/netguard/guard.js';
import { relayPid } from '../vmm/udp-relay.js';
import { egressPid } from '../vmm/egress/gateway.js';
import { needsGateway } from './options.js';
import type { VmExit } from '../vmm/engine.js';
import type { RuntimeContext } from './context.js';
import type { BoxRecord, BoxState, ExitInfo } from './types.js';

export interface BoxStatus {
  state: BoxState;
  exit?: ExitInfo;
  pid?: number;
  /** For a running box with a network: degraded when its network helper is gone (restart the box). */
  network?: 'ok' | 'degraded' | 'none';
}

/** A record saying "running" whose VM is gone is reported exited, with the reason. */
export function boxStatus(ctx: RuntimeContext, rec: BoxRecord): BoxStatus {
  if (rec.state !== 'running') return { state: rec.state, exit: rec.exit };
  const dir = ctx.home.boxDir(rec.id);
  const vm = ctx.engine.status(dir);
  if (vm.kind === 'running') {
    const udp = (rec.ports ?? []).some((p) => p.protocol === 'udp');
    const network = rec.options.network === 'none' ? 'none' : passtPid(dir) && guardPid(dir) && (!udp || relayPid(dir)) && (!needsGateway(rec.options) || egressPid(dir)) ? 'ok' : 'degraded';
    return { state: 'running', pid: vm.pid, network };
  }
  return { state: 'exited', exit: explainExit(ctx, rec, vm) };
}

export const isRunning = (ctx: RuntimeContext, id: string) => {
  const r = ctx.records.read(id);
  return !!r && boxStatus(ctx, r).state === 'running';
};

/** The guest console since the last boot, as printable text: its lines end up in errors, records and `ps`. */
export function bootConsole(ctx: RuntimeContext, id: string, lines = 200): string[] {
  const all = tailLines(ctx.engine.consolePath(ctx.home.boxDir(id)), lines).map((l) => printable(l, false));
  const start = all.map((l) => l.startsWith('--- boxlite: boot at')).lastIndexOf(true);
  return start >= 0 ? all.slice(start + 1) : all;
}

/** Why a VM that was running has gone, from its exit status, QEMU's log and the guest's own account. */
export function explainExit(ctx: RuntimeContext, rec: BoxRecord, vm: VmExit): ExitInfo {
  const at = new Date().toISOString();
  const dir = ctx.home.boxDir(rec.id);
  const con = bootConsole(ctx, rec.id);
  if (vm.kind === 'ended' && vm.signal) return { reason: 'killed', detail: `the VM process was killed by ${vm.signal}`, at };
  // QEMU catches SIGTERM/SIGINT/SIGHUP, says so in its log and exits 0.
  const term = tailLines(path.join(dir, 'qemu.log'), 5).find((l) => l.includes('terminating on signal'));
  if (term) return { reason: 'killed', detail: `the VM process was ${term.slice(term.indexOf('terminating'))}`, at };
  if (vm.kind === 'ended' && vm.code !== 0) {
    const log = tailLines(path.join(dir, 'qemu.log'), 3).join(' ');
    return { reason: 'crash', detail: `QEMU exited with status ${vm.code}${log ? `: ${log}` : ''}`, at };
  }
  const panic = con.find((l) => l.includes('Kernel panic'));
  if (panic) return { reason: 'crash', detail: `guest kernel panic: ${panic.replace(/^\[[^\]]*\]\s*/, '')}`, at };
  const agent = con.filter((l) => l.startsWith(CONSOLE_AGENT_EXITED)).at(-1);
  if (agent) return { reason: 'crash', detail: `the guest agent died (${agent.slice('boxlite-init: '.length)})`, at };
  const err = con.filter((l) => l.startsWith(CONSOLE_ERROR_MARK)).at(-1);
  if (err) return { reason: 'crash', detail: err.slice(CONSOLE_ERROR_MARK.length), at };
  if (con.some((l) => l.startsWith(CONSOLE_CLEAN_SHUTDOWN))) return { reason: 'exit', detail: 'the box shut down', at };
  if (vm.kind === 'gone') return { reason: 'killed', detail: 'the VM process ended without recording why', at };
  return { reason: 'exit', detail: 'the guest powered off', at };
}
