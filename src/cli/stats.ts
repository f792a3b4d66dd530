// boxlite stats, as docker stats: one row per box (CPU %, guest memory, host memory of its VMM, network and disk
// bytes, processes), live on a terminal until Ctrl-C, one table per reading otherwise, one reading with
// --no-stream. CPU % is the VMM's CPU time over the time between two readings (100% = one host core).
import type { Box } from '../runtime/runtime.js';
import type { BoxMetrics } from '../runtime/metrics.js';
import { projectLabel } from '../reconciler/label.js';
import { parseArgs, parseIntOpt, UsageError } from './args.js';
import { contextProjectName } from './project.js';
import { printTable } from './table.js';
import type { Cli, Command } from './command.js';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
export function bytes(n: number): string {
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) (n /= 1024), i++;
  return `${Number.isInteger(n) ? n : n.toFixed(n < 10 ? 2 : 1)}${UNITS[i]}`;
}

export interface StatsRow {
  name: string;
  id: string;
  state: string;
  cpuPercent: number | null;
  metrics: BoxMetrics;
}

function row(box: Box, now: BoxMetrics, before: BoxMetrics | undefined): StatsRow {
  const dt = before ? (now.at - before.at) / 1000 : 0;
  const cpuPercent = now.vmm && before?.vmm && dt > 0 ? ((now.vmm.cpuSeconds - before.vmm.cpuSeconds) / dt) * 100 : null;
  return { name: box.name, id: box.id, state: now.state, cpuPercent, metrics: now };
}

function table(rows: StatsRow[], out: (l: string) => void): void {
  printTable(
    ['NAME', 'STATE', 'CPU %', 'MEM USAGE / LIMIT', 'VMM RSS', 'NET I/O', 'BLOCK I/O', 'PIDS'],
    rows.map(({ name, state, cpuPercent, metrics: m }) => [
      name,
      state,
      cpuPercent === null ? '--' : `${cpuPercent.toFixed(2)}%`,
      m.guest ? `${bytes(m.guest.memUsedBytes)} / ${bytes(m.memoryLimitBytes)}` : `-- / ${bytes(m.memoryLimitBytes)}`,
      m.vmm ? bytes(m.vmm.rssBytes) : '--',
      m.guest ? `${bytes(m.guest.netRxBytes)} / ${bytes(m.guest.netTxBytes)}` : '--',
      m.guest ? `${bytes(m.guest.diskReadBytes)} / ${bytes(m.guest.diskWriteBytes)}` : '--',
      m.guest ? String(m.guest.processes) : '--',
    ]),
    out,
  );
}

export const STATS_COMMANDS: Record<string, Command> = {
  stats: {
    usage: 'stats [--no-stream] [--json] [--interval SECONDS] [BOX…]',
    help: 'live CPU, memory, network and disk use of boxes (running ones, or those named)',
    opts: {
      'no-stream': { help: 'one reading, then exit' },
      json: { help: 'one JSON array per reading, one line each' },
      interval: { value: true, help: 'seconds between readings (default 2)' },
    },
    async run(cli: Cli, args, spec) {
      const p = parseArgs(args, spec, -1, 'stats');
      const interval = parseIntOpt(p.opts.interval, '--interval') ?? 2;
      if (interval < 1) throw new UsageError(`--interval must be 1 second or more (got ${interval})`);
      const named = p.positionals.map((ref) => cli.rt.get(ref));
      const project = named.length ? undefined : contextProjectName(cli.project);
      const boxes = () =>
        named.length ? named : cli.rt.list().filter((b) => b.state === 'running' && (!project || projectLabel(b)?.project === project)).map((b) => cli.rt.get(b.id));
      const live = !p.opts['no-stream'] && !p.opts.json && process.stdout.isTTY;
      let before = new Map<string, BoxMetrics>();
      let stop = false;
      const onInt = () => (stop = true);
      process.once('SIGINT', onInt);
      try {
        // The first reading has no CPU % yet: a second one, a moment later, gives it (as docker stats does).
        const first = await Promise.all(boxes().map(async (b) => [b.id, await b.metrics()] as const));
        before = new Map(first);
        for (let n = 0; !stop; n++) {
          await new Promise((r) => setTimeout(r, n === 0 ? 1000 : interval * 1000));
          if (stop) break;
          const list = boxes();
          const rows = await Promise.all(list.map(async (b) => row(b, await b.metrics(), before.get(b.id))));
          before = new Map(rows.map((r) => [r.id, r.metrics]));
          if (p.opts.json) cli.out(JSON.stringify(rows));
          else {
            if (live) process.stdout.write('\x1b[H\x1b[2J'); // redraw in place
            table(rows, cli.out);
          }
          if (p.opts['no-stream']) break;
        }
      } finally {
        process.off('SIGINT', onInt);
      }
      return 0;
    },
  },
};
