// logs: what boxes printed, in any state. A project box with a command: its command's output, kept on the host
// (stamped lines, see src/reconciler/logs.ts); any other box: its guest console. With no box inside a project
// folder, or with several, the boxes' lines are interleaved by time with a name prefix, as `docker compose logs`.
import * as fs from 'node:fs';
import { projectLabel } from '../reconciler/label.js';
import { followLogs, interleave, readLog, type LogLine, type LogSource } from '../reconciler/logs.js';
import { parseArgs, parseIntOpt, UsageError } from './args.js';
import { contextProjectName } from './project.js';
import type { Box } from '../runtime/runtime.js';
import type { Cli, Command } from './command.js';

/** How a box is named in a listing: inside its project by its name there. */
function shownName(box: Box, project: string | undefined): string {
  const l = projectLabel(box.info());
  return l && l.project === project && !l.retiredAt ? l.box : box.name;
}

const hasCommand = (box: Box) => !!projectLabel(box.info())?.applied.command;

export const LOGS_COMMAND: Command = {
  usage: 'logs [-n LINES] [-f] [-t] [--console] [BOX…]',
  help: "what boxes printed, in any state: a project box's command output (else its guest console); no BOX: the project's boxes",
  opts: {
    tail: { short: 'n', value: true, help: 'only the last LINES lines (of each box)' },
    follow: { short: 'f', help: 'keep printing new output (until Ctrl-C)' },
    timestamps: { short: 't', help: 'show when each line was printed' },
    console: { help: 'the guest console even for a box with a command' },
  },
  async run(cli: Cli, args, spec) {
    const p = parseArgs(args, spec, -1, 'logs');
    const n = parseIntOpt(p.opts.tail, '--tail');
    if (n !== undefined && n < 0) throw new UsageError(`--tail must be 0 or more lines (got ${n})`);
    const project = contextProjectName(cli.project);
    let boxes: Box[];
    if (p.positionals.length) boxes = p.positionals.map((ref) => cli.rt.get(ref));
    else {
      if (!project) throw new UsageError('logs: name a BOX (or run it in a project folder, or with -f FILE, for all of its boxes)');
      boxes = cli.rt
        .list()
        .filter((r) => projectLabel(r)?.project === project && !projectLabel(r)?.retiredAt)
        .map((r) => cli.rt.get(r.id))
        .sort((a, b) => shownName(a, project).localeCompare(shownName(b, project), undefined, { numeric: true }));
      if (!boxes.length) throw new UsageError(`logs: project ${project} has no boxes: run 'boxlite up'`);
    }
    const stamps = !!p.opts.timestamps;

    // One box without a command (or --console): its guest console, as it always was.
    if (boxes.length === 1 && (p.opts.console || !hasCommand(boxes[0]))) {
      const file = boxes[0].consolePath();
      let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
      if (n !== undefined) text = text.split('\n').slice(-n - 1).join('\n');
      process.stdout.write(text);
      if (p.opts.follow) await followFile(file);
      return 0;
    }
    if (p.opts.console) throw new UsageError('logs: --console shows one box\'s console: name one BOX');

    // Boxes without a command print nothing here (their consoles are the guest's own, not a service's output).
    const sources: LogSource[] = boxes.filter(hasCommand).map((b) => ({ box: shownName(b, project), file: b.logPath() }));
    const width = boxes.length > 1 ? Math.max(...sources.map((s) => s.box.length)) : 0;
    const show = (l: LogLine) => cli.out(`${width ? `${l.box.padEnd(width)} | ` : ''}${stamps ? `${l.time || '-'} ` : ''}${l.text}`);
    for (const l of interleave(sources.map((s) => readLog(s, n)))) show(l);
    if (p.opts.follow) {
      const ac = new AbortController();
      process.once('SIGINT', () => ac.abort());
      process.once('SIGTERM', () => ac.abort());
      await followLogs(sources, show, ac.signal);
    }
    return 0;
  },
};

/** Prints what is appended to a file until Ctrl-C. */
async function followFile(file: string): Promise<void> {
  let pos = fs.existsSync(file) ? fs.statSync(file).size : 0;
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    fs.watchFile(file, { interval: 200 }, (cur) => {
      if (cur.size <= pos) return;
      const fd = fs.openSync(file, 'r');
      const buf = Buffer.alloc(cur.size - pos);
      fs.readSync(fd, buf, 0, buf.length, pos);
      fs.closeSync(fd);
      pos = cur.size;
      process.stdout.write(buf);
    });
  });
  fs.unwatchFile(file);
}
