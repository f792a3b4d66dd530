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
  // A VMM restarted between readings has less CPU time than before: no figure rather than a negative one.
  const used = now.vmm && before?.vmm ? now.vmm.cpuSeconds - before.vmm.cpuSeconds : -1;
  const cpuPercent = used >= 0 && dt > 0 ? (used / dt) * 100 : null;
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
      if (interval < 1 || interval > 3600) throw new UsageError(`--interval must be 1 to 3600 seconds (got ${interval})`);
      const named = p.positionals.map((ref) => cli.rt.get(ref));
      const project = named.length ? undefined : contextProjectName(cli.project);
      const liveBoxes = () => cli.rt.list().filter((b) => b.state === 'running' && (!project || projectLabel(b)?.project === project)).map((b) => cli.rt.get(b.id));
      const boxes = () => (named.length ? named : liveBoxes());
      const live = !p.opts['no-stream'] && !p.opts.json && process.stdout.isTTY;
      let before = new Map<string, BoxMetrics>();
      let stop = false;
      let wake = () => {};
      const onInt = () => {
        stop = true;
        wake();
      };
      process.once('SIGINT', onInt);
      // A box removed while stats runs leaves the table (a named one is reported once).
      const read = async (b: Box) => b.metrics().catch((e) => {
        if (named.length) cli.err(`boxlite: ${b.id}: ${(e as Error).message}`);
        return null;
      });
      try {
        // The first reading has no CPU % yet: a second one, a moment later, gives it (as docker stats does).
        const first = await Promise.all(boxes().map(async (b) => [b.id, await read(b)] as const));
        before = new Map(first.filter((f): f is [string, BoxMetrics] => !!f[1]));
        for (let n = 0; !stop; n++) {
          await new Promise<void>((r) => {
            const t = setTimeout(r, n === 0 ? 1000 : interval * 1000);
            wake = () => (clearTimeout(t), r());
          });
          if (stop) break;
          const list = named.length ? named : liveBoxes();
          const read2 = await Promise.all(list.map(async (b) => ({ b, m: await read(b) })));
          const rows = read2.filter((x) => x.m).map(({ b, m }) => row(b, m!, before.get(b.id)));
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
