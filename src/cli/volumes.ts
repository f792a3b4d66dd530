// `boxlite volume …`: named volumes, their own disks that outlive boxes.
import type { Runtime } from '../runtime/runtime.js';
import { printTable } from './table.js';
import { helpFor, parseArgs, UsageError, type OptionSpec } from './args.js';
import { parseSizeMib } from '../core/units.js';
import { DEFAULT_VOLUME_MIB } from '../core/defaults.js';
import { stdout as out, type Command } from './command.js';

const SUB: Record<string, { usage: string; help: string; opts: Record<string, OptionSpec> }> = {
  ls: { usage: 'volume ls [--json]', help: 'list named volumes', opts: { json: { help: 'print JSON' } } },
  create: { usage: 'volume create [--size SIZE] NAME', help: 'make a named volume (default 1GiB; sparse on the host)', opts: { size: { value: true, help: 'its size: 512MiB, 10GiB (a bare number is MiB)' } } },
  rm: { usage: 'volume rm NAME…', help: 'remove volumes (refused while a box uses one)', opts: {} },
  inspect: { usage: 'volume inspect NAME', help: 'print what is known about a volume, as JSON', opts: {} },
};

async function volumeCommand(rt: Runtime, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (!sub || sub === '--help' || sub === '-h') {
    out(['Usage: boxlite volume COMMAND', '', ...Object.entries(SUB).map(([k, c]) => `  ${k.padEnd(8)} ${c.help}`)].join('\n'));
    return sub ? 0 : 1;
  }
  const c = SUB[sub];
  if (!c) throw new UsageError(`volume: unknown command "${sub}" (ls, create, rm, inspect)`);
  if (rest.includes('--help') || rest.includes('-h')) {
    out(`Usage: boxlite ${c.usage}\n\n${c.help}\n\n${helpFor(c.opts)}`);
    return 0;
  }
  const p = parseArgs(rest, c.opts, -1, `volume ${sub}`);
  switch (sub) {
    case 'ls': {
      const vols = rt.volumes.list().map((v) => ({ ...v, usedBy: rt.volumes.usedBy(v.name), hostBytes: rt.volumes.usedBytes(v.name) }));
      if (p.opts.json) {
        out(JSON.stringify(vols, null, 2));
        return 0;
      }
      const rows = vols.map((v) => [v.name, `${v.sizeMib} MiB`, `${(v.hostBytes / (1 << 20)).toFixed(1)} MiB`, v.project ?? '', v.usedBy.join(', ')]);
      const head = ['NAME', 'SIZE', 'ON HOST', 'PROJECT', 'USED BY'];
      printTable(head, rows);
      return 0;
    }
    case 'create': {
      if (p.positionals.length !== 1) throw new UsageError('volume create: name one volume');
      let size = DEFAULT_VOLUME_MIB;
      if (p.opts.size !== undefined) {
        try {
          size = parseSizeMib(/^\d+$/.test(String(p.opts.size)) ? Number(p.opts.size) : String(p.opts.size));
        } catch (e) {
          throw new UsageError(`volume create: --size: ${(e as Error).message}`);
        }
      }
      const v = await rt.volumes.create(p.positionals[0], size);
      out(v.name);
      return 0;
    }
    case 'rm': {
      if (!p.positionals.length) throw new UsageError('volume rm: name at least one volume');
      for (const n of p.positionals) {
        await rt.volumes.remove(n);
        out(n);
      }
      return 0;
    }
    case 'inspect': {
      if (p.positionals.length !== 1) throw new UsageError('volume inspect: name one volume');
      const v = rt.volumes.get(p.positionals[0]);
      out(JSON.stringify({ ...v, disk: rt.volumes.diskPath(v.name), hostBytes: rt.volumes.usedBytes(v.name), usedBy: rt.volumes.usedBy(v.name) }, null, 2));
      return 0;
    }
  }
  return 1;
}

export const VOLUME_COMMANDS: Record<string, Command> = {
  volume: { usage: 'volume ls|create|rm|inspect', help: 'manage named volumes: ls, create, rm, inspect', opts: {}, ownHelp: true, run: ({ rt }, args) => volumeCommand(rt, args) },
};
