// What a box costs and does, at one instant: its VMM process as the host sees it, its guest's own view (memory,
// processes, disk and network counters, read by the agent), the execs run in it, and how its last start went.
// Counters are totals; rates (CPU %, bytes per second) come from two readings (boxlite stats).
import { agentClient } from './channel.js';
import { execCounts } from './activity.js';
import { boxStatus } from './status.js';
import type { RuntimeContext } from './context.js';
import type { BoxState, StartTimings } from './types.js';

export interface BoxMetrics {
  at: number; // ms since the epoch
  state: BoxState;
  cpus: number;
  /** The guest's RAM. */
  memoryLimitBytes: number;
  /** The VMM process on the host, while the box runs. */
  vmm?: { cpuSeconds: number; rssBytes: number };
  /** The guest's own counters, while it runs and its agent answers. */
  guest?: {
    memUsedBytes: number;
    memTotalBytes: number;
    processes: number;
    diskReadBytes: number;
    diskWriteBytes: number;
    netRxBytes: number;
    netTxBytes: number;
    uptimeMs: number;
  };
  execs: { total: number; errors: number };
  lastStart?: StartTimings;
}

interface Usage {
  memTotalBytes: number;
  memAvailableBytes: number;
  processes: number;
  diskReadBytes: number;
  diskWriteBytes: number;
  interfaces: { rxBytes: number; txBytes: number }[];
  uptimeMs: number;
}

export async function boxMetrics(ctx: RuntimeContext, id: string): Promise<BoxMetrics> {
  const rec = ctx.records.get(id);
  const state = boxStatus(ctx, rec).state;
  const dir = ctx.home.boxDir(id);
  const m: BoxMetrics = {
    at: Date.now(),
    state,
    cpus: rec.options.cpus,
    memoryLimitBytes: rec.options.memoryMib * 2 ** 20,
    execs: execCounts(ctx, id),
    lastStart: rec.lastStart,
  };
  if (state !== 'running') return m; // a paused box is not woken to be measured
  const cpu = ctx.engine.cpuSeconds(dir);
  const rss = ctx.engine.rssBytes(dir);
  if (cpu !== null && rss !== null) m.vmm = { cpuSeconds: cpu, rssBytes: rss };
  try {
    const u = await (await agentClient(ctx, id)).call<Usage>('guest', 'usage', {}, 10_000);
    m.guest = {
      memUsedBytes: Math.max(0, u.memTotalBytes - u.memAvailableBytes), // the guest's word: never below zero
      memTotalBytes: u.memTotalBytes,
      processes: u.processes,
      diskReadBytes: u.diskReadBytes,
      diskWriteBytes: u.diskWriteBytes,
      netRxBytes: u.interfaces.reduce((n, i) => n + i.rxBytes, 0),
      netTxBytes: u.interfaces.reduce((n, i) => n + i.txBytes, 0),
      uptimeMs: u.uptimeMs,
    };
  } catch {} // an agent busy or from an older boxlite: the host's figures still stand
  return m;
}
