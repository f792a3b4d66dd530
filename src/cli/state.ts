// Commands on a box's state: snapshot, clone, fork, resize, export, import, cp.
import { parseArgs, parseIntOpt, UsageError } from './args.js';
import { printTable } from './table.js';
import { parseVolumes, stopTimeoutMs } from './boxes.js';
import type { Command } from './command.js';

/** NEW, or NEW-1 … NEW-N with --count N. */
function cloneNames(name: string, count: number | undefined): string[] {
  if (count !== undefined && (count < 1 || count > 100)) throw new UsageError(`--count must be from 1 to 100 (got ${count})`);
  return count === undefined ? [name] : Array.from({ length: count }, (_, i) => `${name}-${i + 1}`);
}

export const STATE_COMMANDS: Record<string, Command> = {
  snapshot: {
    usage: 'snapshot create|ls|restore|rm BOX [NAME]',
    help: "take, list, restore and remove snapshots of a box's disk (and, with --memory, of its running processes)",
    opts: {
      time: { short: 't', value: true, help: 'seconds to wait for a clean shutdown when restoring a running box (default 10)' },
      memory: { help: 'create: save the running box\'s memory too; restoring it continues every process from that instant' },
    },
    async run({ rt, out, err }, args, spec) {
      const p = parseArgs(args, spec, -1, 'snapshot');
      const [sub, boxRef, name, ...extra] = p.positionals;
      const needName = sub === 'create' || sub === 'restore' || sub === 'rm';
      if (!sub || !['create', 'ls', 'restore', 'rm'].includes(sub)) throw new UsageError('snapshot: say create, ls, restore or rm');
      if (!boxRef || (needName && !name) || extra.length || (!needName && name)) throw new UsageError(`snapshot ${sub}: give BOX${needName ? ' NAME' : ''}`);
      if (p.opts.memory && sub !== 'create') throw new UsageError(`snapshot ${sub}: --memory is for create`);
      const box = rt.get(boxRef);
      if (sub === 'create') {
        out((await box.snapshots.create(name, { memory: !!p.opts.memory })).name);
      } else if (sub === 'ls') {
        const rows = (await box.snapshots.list()).map((s) => [s.name, s.createdAt.replace('T', ' ').slice(0, 19) || '?', s.memory ? 'yes' : 'no', `${s.auto ? 'auto' : 'manual'}${s.frozen ? ' (taken before a clone: shared)' : ''}`]);
        printTable(['NAME', 'CREATED', 'MEMORY', 'KIND'], rows, out);
      } else if (sub === 'restore') {
        // A project box's snapshot policy (before_apply) is applied by the runtime's project hooks.
        const r = await box.snapshots.restore(name, { timeoutMs: stopTimeoutMs(p) });
        if (r.memory) err(`boxlite: ${box.name} continues from "${name}", its processes as they were`);
        else if (r.restarted) err(`boxlite: ${box.name} was running: it was stopped, restored to "${name}" and started again`);
        out(name);
      } else {
        await box.snapshots.remove(name);
        out(name);
      }
      return 0;
    },
  },

  clone: {
    usage: 'clone BOX[@SNAPSHOT] NEW [--count N]',
    help: "new boxes sharing BOX's disk copy-on-write (NEW, or NEW-1 … NEW-N)",
    opts: { count: { short: 'n', value: true, help: 'how many clones (named NEW-1 … NEW-N)' } },
    async run({ rt, out, err }, args, spec) {
      const p = parseArgs(args, spec, -1, 'clone');
      if (p.positionals.length !== 2) throw new UsageError('clone: give BOX[@SNAPSHOT] and a NEW name');
      const [srcRef, newName] = p.positionals;
      const at = srcRef.lastIndexOf('@');
      const [boxRef, snapshot] = at > 0 ? [srcRef.slice(0, at), srcRef.slice(at + 1)] : [srcRef, undefined];
      const names = cloneNames(newName, parseIntOpt(p.opts.count, '--count'));
      const t = performance.now();
      const made = await rt.get(boxRef).clone(names, { snapshot });
      for (const b of made) out(b.name);
      err(`boxlite: ${made.length} clone${made.length > 1 ? 's' : ''} of ${boxRef}${snapshot ? `@${snapshot}` : ''} in ${(performance.now() - t).toFixed(0)} ms, sharing its disk copy-on-write`);
      return 0;
    },
  },

  fork: {
    usage: 'fork BOX NEW [--count N] [--no-start]',
    help: "new boxes continuing running BOX's processes from this instant (its memory and disk), each on its own",
    opts: {
      count: { short: 'n', value: true, help: 'how many forks (named NEW-1 … NEW-N)' },
      'no-start': { help: 'make the forks without starting them (each continues at its first start)' },
    },
    async run({ rt, out, err }, args, spec) {
      const p = parseArgs(args, spec, -1, 'fork');
      if (p.positionals.length !== 2) throw new UsageError('fork: give BOX and a NEW name');
      const [boxRef, newName] = p.positionals;
      const names = cloneNames(newName, parseIntOpt(p.opts.count, '--count'));
      const t = performance.now();
      const made = await rt.get(boxRef).fork(names, { start: !p.opts['no-start'] });
      for (const b of made) out(b.name);
      err(`boxlite: ${made.length} fork${made.length > 1 ? 's' : ''} of ${boxRef} in ${(performance.now() - t).toFixed(0)} ms${p.opts['no-start'] ? '' : ', running'}`);
      return 0;
    },
  },

  resize: {
    usage: 'resize --disk MIB BOX',
    help: "grow a stopped box's disk (its file system follows at the next start)",
    opts: { disk: { value: true, help: 'the new disk size in MiB' } },
    async run({ rt, out }, args, spec) {
      const p = parseArgs(args, spec, -1, 'resize');
      const mib = parseIntOpt(p.opts.disk, '--disk');
      if (p.positionals.length !== 1 || mib === undefined) throw new UsageError('resize: give --disk MIB and one BOX');
      await rt.get(p.positionals[0]).resize(mib);
      out(p.positionals[0]);
      return 0;
    },
  },

  export: {
    usage: 'export BOX FILE',
    help: 'write a stopped box (options and disk, checksummed) to one archive',
    opts: {},
    async run({ rt, out }, args, spec) {
      const p = parseArgs(args, spec, -1, 'export');
      if (p.positionals.length !== 2) throw new UsageError('export: give BOX and FILE');
      await rt.get(p.positionals[0]).export(p.positionals[1]);
      out(p.positionals[1]);
      return 0;
    },
  },

  import: {
    usage: 'import FILE [--name NAME] [-p PORT…] [-v VOLUME…] [--dns IP…]',
    help: "make a box from an archive written by 'boxlite export' (what it mounted or published is not taken from it)",
    opts: {
      name: { value: true, help: 'a name for the imported box (default: its exported name)' },
      publish: { short: 'p', value: true, multiple: true, help: 'forward a host port, as with create (the archive\'s fixed host ports are not used)' },
      volume: { short: 'v', value: true, multiple: true, help: 'mount a named volume or a host folder, as with create (the archive\'s are not used)' },
      dns: { value: true, multiple: true, help: "DNS servers for the box, as with create (the archive's are not used)" },
    },
    async run({ rt, out, err }, args, spec) {
      const p = parseArgs(args, spec, -1, 'import');
      if (p.positionals.length !== 1) throw new UsageError('import: give one FILE');
      const mounts = parseVolumes(p.opts.volume as string[] | undefined);
      const box = await rt.importBox(p.positionals[0], {
        name: p.opts.name as string | undefined,
        ports: p.opts.publish as string[] | undefined,
        volumes: p.opts.volume ? (mounts.volumes ?? []) : undefined,
        binds: p.opts.volume ? (mounts.binds ?? []) : undefined,
        dns: p.opts.dns as string[] | undefined,
      });
      for (const n of box.notes) err(`boxlite: import: ${n}`);
      out(box.name);
      return 0;
    },
  },

  cp: {
    usage: 'cp BOX:PATH HOSTPATH | cp HOSTPATH BOX:PATH',
    help: 'copy files and folders between the host and a running box (modes kept)',
    opts: {},
    async run({ rt }, args, spec) {
      const p = parseArgs(args, spec, -1, 'cp');
      if (p.positionals.length !== 2) throw new UsageError('cp: give a source and a destination, one of them BOX:PATH');
      const inBox = (a: string) => /^([^/:]+):(.*)$/.exec(a);
      const [src, dst] = p.positionals;
      const a = inBox(src);
      const b = inBox(dst);
      if (!!a === !!b) throw new UsageError('cp: exactly one of source and destination must be BOX:PATH (a box path starts after the colon)');
      if (a) await rt.get(a[1]).copyOut(a[2] || '/', dst);
      else await rt.get(b![1]).copyIn(src, b![2] || '/');
      return 0;
    },
  },
};
