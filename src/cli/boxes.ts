// Commands on boxes: create, run, start, stop, restart, rm, exec, ps, inspect, port, logs (logs.ts), events.
import { cgroupUsage, readBoxCgroup } from '../vmm/cgroup.js';
import { printable } from '../util/printable.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULTS } from '../core/defaults.js';
import { BoxliteError } from '../core/errors.js';
import { formatPort } from '../core/network.js';
import type { CreateOptions } from '../runtime/options.js';
import type { BoxRecord } from '../runtime/types.js';
import { describeProjectBox, healthOfRun, projectLabel, updateProjectLabel } from '../reconciler/label.js';
import { lastCheckSaid, refreshHealth, waitHealthy } from '../reconciler/health.js';
import type { HealthcheckSpec } from '../spec/types.js';
import { boxName } from '../reconciler/names.js';
import { parseArgs, parseEnv, parseIntOpt, UsageError, type OptionSpec } from './args.js';
import { attachTerminal, EXEC_OPTS, execOptions } from './terminal.js';
import { contextProjectName } from './project.js';
import { LayerBars } from './progress.js';
import { LOGS_COMMAND } from './logs.js';
import { printTable } from './table.js';
import { describeJail, jailWanted, probeJail } from '../vmm/jail.js';
import { eventCounts } from '../vmm/egress/events.js';
import type { EgressEvent } from '../runtime/egress-events.js';
import type { Cli, Command } from './command.js';

export const BOX_OPTS: Record<string, OptionSpec> = {
  name: { value: true, help: 'a unique name for the box' },
  env: EXEC_OPTS.env,
  workdir: EXEC_OPTS.workdir,
  user: EXEC_OPTS.user,
  cpus: { value: true, help: `virtual CPUs (default ${DEFAULTS.cpus})` },
  memory: { short: 'm', value: true, help: `memory in MiB (default ${DEFAULTS.memoryMib}, at least 128)` },
  disk: { value: true, help: `disk size in MiB (default ${DEFAULTS.diskSizeMib})` },
  pull: { value: true, help: 'pull the image: missing (default), always, never' },
  publish: { short: 'p', value: true, multiple: true, help: 'forward a host port: [HOST_IP:]HOST_PORT:BOX_PORT[/udp], or BOX_PORT (host port chosen); host IP 127.0.0.1 unless given' },
  network: { value: true, help: 'default (outbound NAT and DNS) or none (loopback only)' },
  'net-allow': { value: true, multiple: true, help: 'allow outbound to a domain, *.domain, IP or CIDR, optionally :PORT[/udp]; any allow rule denies everything else' },
  'net-deny': { value: true, multiple: true, help: 'deny outbound to a domain, *.domain, IP or CIDR, optionally :PORT[/udp]' },
  secret: { value: true, multiple: true, help: 'NAME@HOST[,HOST]: the box sees a placeholder in $NAME, replaced in HTTP(S) requests to HOST by the value of $NAME here (read at each start, never stored)' },
  dns: { value: true, multiple: true, help: "a DNS server for the box (default: the host's resolver)" },
  volume: { short: 'v', value: true, multiple: true, help: 'mount a named volume (NAME:/path[:ro]) or a host folder or file (/host/path:/path[:ro], ./rel:/path)' },
};
const DETACH: OptionSpec = { short: 'd', help: 'leave the command running in the box and return (its output is discarded)' };
const STOP_OPTS: Record<string, OptionSpec> = { time: { short: 't', value: true, help: 'seconds to wait for a clean shutdown (default 10)' } };

/** SOURCE on the command line: a folder (a root file system or an OCI layout) when written as a path (with a '/',
 *  or starting with '.' or '~'), else an image reference — as docker reads it. A folder in the working directory
 *  that a bare name would also name (a cloned repository's ./alpine beside the image alpine) is not taken
 *  silently: it is said which one was. */
export function sourceOption(src: string, say: (m: string) => void = () => {}): { image?: string; rootfs?: string } {
  const isDir = (p: string) => fs.existsSync(p) && fs.statSync(p).isDirectory();
  if (/^(\.|~)|\//.test(src)) return isDir(src) ? { rootfs: src } : { image: src };
  if (isDir(src)) say(`boxlite: "${src}" is taken as the image ${src}, not the folder ./${src} here: give ./${src} for the folder`);
  return { image: src };
}

/** -v NAME:/path[:ro] (a named volume) or -v /host/path:/path[:ro] (a host folder or file), as docker reads them. */
export function parseVolumes(specs: string[] = []): Pick<CreateOptions, 'volumes' | 'binds'> {
  const volumes: NonNullable<CreateOptions['volumes']> = [];
  const binds: NonNullable<CreateOptions['binds']> = [];
  for (const v of specs) {
    const m = /^([^:]+):(\/[^:]*)(?::(ro|rw))?$/.exec(v);
    if (!m) throw new UsageError(`--volume "${v}": expected NAME:/path[:ro] or /host/path:/path[:ro]`);
    const [, src, target, mode] = m;
    if (/^(\/|\.|~)/.test(src)) binds.push({ hostPath: path.resolve(src.replace(/^~(?=\/|$)/, process.env.HOME ?? '~')), target, readOnly: mode === 'ro' });
    else volumes.push({ volume: src, target, readOnly: mode === 'ro' });
  }
  return { ...(volumes.length ? { volumes } : {}), ...(binds.length ? { binds } : {}) };
}

/** --secret NAME@HOST[,HOST]: the value comes from $NAME of the process that starts the box, never from argv. */
function parseSecretFlag(spec: string): NonNullable<CreateOptions['secrets']>[number] {
  const at = spec.indexOf('@');
  if (at <= 0 || at === spec.length - 1) throw new UsageError(`--secret "${spec}": expected NAME@HOST[,HOST] (the value is read from the environment variable NAME)`);
  const name = spec.slice(0, at);
  return { name, env: name, hosts: spec.slice(at + 1).split(',') };
}

export function boxCreateOptions(o: Record<string, unknown>): CreateOptions {
  const pull = o.pull as string | undefined;
  if (pull !== undefined && !['missing', 'always', 'never'].includes(pull)) throw new UsageError(`--pull must be missing, always or never (got "${pull}")`);
  return {
    pull: pull as CreateOptions['pull'],
    ports: (o.publish as string[] | undefined) ?? [],
    network: o.network as CreateOptions['network'],
    dns: o.dns as string[] | undefined,
    egress: { allow: (o['net-allow'] as string[] | undefined) ?? [], deny: (o['net-deny'] as string[] | undefined) ?? [] },
    secrets: ((o.secret as string[] | undefined) ?? []).map(parseSecretFlag),
    onPullProgress: new LayerBars().update,
    name: o.name as string | undefined,
    env: parseEnv(o.env as string[] | undefined),
    workingDir: o.workdir as string | undefined,
    user: o.user as string | undefined,
    cpus: parseIntOpt(o.cpus, '--cpus'),
    memoryMib: parseIntOpt(o.memory, '--memory'),
    diskSizeMib: parseIntOpt(o.disk, '--disk'),
    ...parseVolumes(o.volume as string[] | undefined),
  };
}

/** The clean-shutdown timeout of stop and restart (-t SECONDS), in ms. */
export function stopTimeoutMs(p: { opts: Record<string, unknown> }): number {
  const s = parseIntOpt(p.opts.time, '--time') ?? 10;
  if (s < 0) throw new UsageError(`--time must be 0 or more seconds (got ${s})`);
  return s * 1000;
}

export function needBoxes(p: { positionals: string[] }, cmd: string): string[] {
  if (p.positionals.length === 0) throw new UsageError(`${cmd}: name at least one box`);
  return p.positionals;
}

/** A record as `ps --json` and `inspect` show it: a project box's label under "project". */
export function shown<T extends BoxRecord>(r: T): Omit<T, 'label'> & { project?: unknown; label?: unknown } {
  const l = projectLabel(r);
  return l ? { ...r, label: undefined, project: l } : r;
}

/** Starts a box, a project box's depends_on first when they are not running (as compose's start does), saying so;
 *  a dependency with condition healthy is waited for until its check passes, as `up` waits. */
async function startWithDependencies(rt: Cli['rt'], ref: string, o: { cold: boolean }, say: (l: string) => void, seen = new Set<string>()): Promise<void> {
  const box = rt.get(ref);
  const label = projectLabel(rt.record(box.id));
  const deps = Object.entries((label?.applied as { dependsOn?: Record<string, string> } | undefined)?.dependsOn ?? {});
  for (const [dep, cond] of deps) {
    const name = boxName(label!.project, dep);
    if (seen.has(name)) continue;
    seen.add(name);
    let id: string;
    try {
      id = rt.get(name).id;
    } catch {
      throw new BoxliteError(`${label!.box} depends on ${dep}, which has no box: run 'boxlite up' to make it`);
    }
    if (rt.status(rt.record(id)).state !== 'running') {
      say(`boxlite: starting ${dep} first (${label!.box} depends on it)`);
      await startWithDependencies(rt, name, o, say, seen);
    }
    if (cond === 'healthy') await dependencyHealthy(rt, id, dep, label!.box, say);
  }
  await box.start({ cold: o.cold });
}

/** Waits for a dependency's health check to pass (recording each result for ps), or says why the dependant is
 *  not started. */
async function dependencyHealthy(rt: Cli['rt'], id: string, dep: string, dependant: string, say: (l: string) => void): Promise<void> {
  const rec = rt.record(id);
  const label = projectLabel(rec);
  const h = (label?.applied as { healthcheck?: HealthcheckSpec } | undefined)?.healthcheck;
  if (!h) return; // no check declared: running is all it can be
  if (healthOfRun(label, rec)?.status === 'healthy') return;
  say(`boxlite: waiting for ${dep} to be healthy (${dependant} depends on it)`);
  const startedAt = Date.parse(rec.startedAt ?? '') || Date.now();
  try {
    await waitHealthy(rt, id, dep, h, {
      startedAt,
      deadline: Date.now() + DEPENDENCY_WAIT_MS,
      onState: (s) => updateProjectLabel(rt, id, (l) => l && { ...l, health: s }),
    });
  } catch (e) {
    throw new BoxliteError(`${dependant} not started: it depends on ${dep}, which did not become healthy${lastCheckSaid(e)}: see 'boxlite ps' and 'boxlite logs ${dep}'`);
  }
}

/** As long as up --wait waits by default. */
const DEPENDENCY_WAIT_MS = 600_000;

export const BOX_COMMANDS: Record<string, Command> = {
  run: {
    usage: 'run [OPTIONS] SOURCE [--] [CMD…]',
    help: 'create and start a box, run a command in it, show its output',
    opts: { ...BOX_OPTS, detach: DETACH, rm: { help: 'remove the box when the command ends' }, interactive: EXEC_OPTS.interactive, tty: EXEC_OPTS.tty, timeout: EXEC_OPTS.timeout },
    async run({ rt, out, err }, args, spec) {
      const p = parseArgs(args, spec, 1, 'run');
      if (p.positionals.length !== 1) throw new UsageError('run: give a SOURCE (an image reference, a root filesystem folder or an OCI layout)');
      const e = execOptions(p.opts);
      // Without a daemon nothing would be left to remove the box when a detached command ends.
      if (p.opts.detach && p.opts.rm) throw new UsageError('run: -d and --rm cannot go together (boxlite has no daemon to remove the box later): drop --rm, and remove it with boxlite rm -f');
      const box = await rt.create({ ...sourceOption(p.positionals[0], err), ...boxCreateOptions(p.opts), autoRemove: !!p.opts.rm });
      try {
        const cfg = box.info().source.config;
        const argv = p.rest.length ? [...cfg.entrypoint, ...p.rest] : [...cfg.entrypoint, ...cfg.cmd];
        if (argv.length === 0) throw new UsageError(`run: no command given and ${p.positionals[0]} defines none: boxlite run SOURCE -- CMD…`);
        await box.start();
        if (p.opts.detach) {
          await box.spawnDetached(argv, e.exec);
          out(box.name);
          return 0;
        }
        return await attachTerminal(await box.spawn(argv, e.exec), e);
      } finally {
        if (p.opts.rm) await box.remove({ force: true });
      }
    },
  },

  create: {
    usage: 'create [OPTIONS] SOURCE',
    help: 'record a new box (its disk and VM are made on first start)',
    opts: BOX_OPTS,
    async run({ rt, out, err }, args, spec) {
      const p = parseArgs(args, spec, -1, 'create');
      if (p.positionals.length !== 1) throw new UsageError('create: give exactly one SOURCE (an image reference, a root filesystem folder or an OCI layout)');
      const box = await rt.create({ ...sourceOption(p.positionals[0], err), ...boxCreateOptions(p.opts) });
      out(box.name);
      return 0;
    },
  },

  start: {
    usage: 'start [--cold] BOX…',
    help: 'boot boxes (a paused box continues where it was)',
    opts: { cold: { help: 'a paused box: discard its saved memory and boot it from its disk' } },
    async run({ rt, out, err }, args, spec) {
      const p = parseArgs(args, spec, -1, 'start');
      for (const ref of needBoxes(p, 'start')) {
        await startWithDependencies(rt, ref, { cold: !!p.opts.cold }, err);
        out(ref);
      }
      return 0;
    },
  },

  pause: {
    usage: 'pause BOX…',
    help: 'save boxes\' memory and end their VMs (no CPU, no host memory); resume continues them',
    opts: {},
    async run({ rt, out }, args, spec) {
      for (const ref of needBoxes(parseArgs(args, spec, -1, 'pause'), 'pause')) {
        await rt.get(ref).pause();
        out(ref);
      }
      return 0;
    },
  },

  resume: {
    usage: 'resume BOX…',
    help: 'continue paused boxes where they were',
    opts: {},
    async run({ rt, out }, args, spec) {
      for (const ref of needBoxes(parseArgs(args, spec, -1, 'resume'), 'resume')) {
        const box = rt.get(ref);
        if (box.info().state !== 'paused') throw new UsageError(`resume: box ${box.name} is not paused (it is ${box.info().state}): use 'boxlite start'`);
        await box.resume();
        out(ref);
      }
      return 0;
    },
  },

  stop: {
    usage: 'stop [-t SECONDS] BOX…',
    help: 'shut boxes down (forced after the timeout)',
    opts: STOP_OPTS,
    async run({ rt, out, err }, args, spec) {
      const p = parseArgs(args, spec, -1, 'stop');
      const timeoutMs = stopTimeoutMs(p);
      for (const ref of needBoxes(p, 'stop')) {
        const r = await rt.get(ref).stop({ timeoutMs });
        if (r.forced) err(`boxlite: ${ref} did not shut down within ${timeoutMs / 1000}s and was stopped by force`);
        out(ref);
      }
      return 0;
    },
  },

  restart: {
    usage: 'restart [-t SECONDS] BOX…',
    help: 'stop and start boxes',
    opts: STOP_OPTS,
    async run({ rt, out }, args, spec) {
      const p = parseArgs(args, spec, -1, 'restart');
      const timeoutMs = stopTimeoutMs(p);
      for (const ref of needBoxes(p, 'restart')) {
        await rt.get(ref).restart({ timeoutMs });
        out(ref);
      }
      return 0;
    },
  },

  rm: {
    usage: 'rm [-f] BOX…',
    help: 'remove boxes and their disks',
    opts: { force: { short: 'f', help: 'also remove running boxes' } },
    async run({ rt, out, err }, args, spec) {
      const p = parseArgs(args, spec, -1, 'rm');
      let status = 0;
      for (const ref of needBoxes(p, 'rm')) {
        try {
          await rt.get(ref).remove({ force: !!p.opts.force });
          out(ref);
        } catch (e) {
          if (!(e instanceof BoxliteError)) throw e;
          err(`boxlite: ${e.message}`);
          status = 1;
        }
      }
      return status;
    },
  },

  exec: {
    usage: 'exec [OPTIONS] BOX [--] CMD…',
    help: 'run a command in a running box',
    opts: { ...EXEC_OPTS, detach: DETACH },
    async run({ rt }, args, spec) {
      const p = parseArgs(args, spec, 1, 'exec');
      if (p.positionals.length !== 1) throw new UsageError('exec: name a BOX');
      if (p.rest.length === 0) throw new UsageError('exec: give the command to run: boxlite exec BOX -- CMD…');
      const e = execOptions(p.opts);
      if (p.opts.detach) {
        await rt.get(p.positionals[0]).spawnDetached(p.rest, e.exec);
        return 0;
      }
      return attachTerminal(await rt.get(p.positionals[0]).spawn(p.rest, e.exec), e);
    },
  },

  ps: {
    usage: 'ps [-a] [-q] [--json] [--all-projects]',
    help: "list boxes (running and paused ones, or all with -a); inside a project folder, that project's",
    opts: { all: { short: 'a', help: 'include boxes that are not running' }, quiet: { short: 'q', help: 'only their names' }, json: { help: 'print JSON' }, 'all-projects': { help: 'inside a project folder, list every box anyway' } },
    async run(cli: Cli, args, spec) {
      const p = parseArgs(args, spec, -1, 'ps');
      // Inside a project (or with -p/-f), ps lists that project's boxes.
      const proj = cli.project.project || cli.project.file || !p.opts['all-projects'] ? contextProjectName(cli.project) : undefined;
      const pick = () => cli.rt.list().filter((b) => (p.opts.all || b.state === 'running' || b.state === 'paused') && (!proj || projectLabel(b)?.project === proj));
      let boxes = pick();
      if (!p.opts.quiet) {
        // No daemon checks health: a running box's check is run now when its last one is older than its interval.
        await Promise.all(boxes.map((b) => refreshHealth(cli.rt, b).catch(() => {})));
        boxes = pick();
      }
      if (p.opts.json) {
        cli.out(JSON.stringify(boxes.map(shown), null, 2));
        return 0;
      }
      if (p.opts.quiet) {
        // A project's live box by its name in the project (how it is addressed there); others, retired ones included, by their own.
        for (const b of boxes) {
          const l = projectLabel(b);
          cli.out(proj && l && !l.retiredAt ? l.box : b.name);
        }
        return 0;
      }
      const rows = boxes.map((b) => {
        const label = projectLabel(b);
        return [
          b.id,
          b.name,
          b.state === 'exited' && b.exit ? `exited (${b.exit.reason})` : b.network === 'degraded' ? 'running (network degraded)' : b.state,
          `${b.options.cpus} cpu, ${b.options.memoryMib} MiB`,
          b.source.kind === 'dir' ? b.source.path : b.source.kind === 'image' ? b.source.reference : 'imported',
          b.createdAt.replace('T', ' ').slice(0, 19),
          (b.state === 'running' && b.ports ? b.ports : (b.options.ports ?? [])).map(formatPort).join(', '),
          label ? describeProjectBox(label, b) : '',
        ];
      });
      printTable(['ID', 'NAME', 'STATE', 'RESOURCES', 'SOURCE', 'CREATED', 'PORTS', 'PROJECT'], rows, cli.out);
      return 0;
    },
  },

  inspect: {
    usage: 'inspect BOX',
    help: 'print everything boxlite knows about a box, as JSON',
    opts: {},
    async run({ rt, out }, args, spec) {
      const p = parseArgs(args, spec, -1, 'inspect');
      if (p.positionals.length !== 1) throw new UsageError('inspect: name one BOX');
      const box = rt.get(p.positionals[0]);
      const info = box.info();
      const networkStats = info.state === 'running' && info.network !== 'none' ? await box.networkStats().catch((e) => ({ error: (e as Error).message })) : undefined;
      const metrics = await box.metrics();
      const jail = describeJail(jailWanted(), probeJail());
      const denied = info.options.egress || info.options.secrets?.length ? eventCounts(rt.home.boxDir(box.id)) : undefined;
      const cg = readBoxCgroup(rt.home.boxDir(box.id));
      const limits = cg && (cg.mode === 'none' ? { cgroup: 'none', why: cg.why } : { cgroup: cg.mode, ...cg.limits, dirs: cg.dirs, ...(info.state === 'running' ? { usage: cgroupUsage(cg.dirs) } : {}) });
      out(JSON.stringify({ ...shown(info), networkStats, metrics, ...(denied ? { denied } : {}), dir: rt.home.boxDir(box.id), console: box.consolePath(), jail: { on: jail.on, detail: jail.detail, ...(info.vmmUid ? { uid: info.vmmUid } : {}) }, ...(limits ? { limits } : {}) }, null, 2));
      return 0;
    },
  },

  port: {
    usage: 'port BOX',
    help: "list a box's port forwards (host ports chosen at start included)",
    opts: {},
    async run({ rt, out }, args, spec) {
      const p = parseArgs(args, spec, -1, 'port');
      if (p.positionals.length !== 1) throw new UsageError('port: name one BOX');
      for (const m of rt.get(p.positionals[0]).ports()) out(`${m.guestPort}/${m.protocol} -> ${m.hostIp.includes(':') ? `[${m.hostIp}]` : m.hostIp}:${m.hostPort || '(chosen at start)'}`);
      return 0;
    },
  },

  logs: LOGS_COMMAND,
};

function formatEvent(e: EgressEvent): string {
  return printable(`${e.time}  ${e.box}  denied ${e.kind} ${e.protocol} ${e.destination}  (${e.rule})`, false);
}

export const EVENTS_COMMAND: Command = {
  usage: 'events [-f] [--json] BOX',
  help: "what a box's outbound policy denied: connections, datagrams and DNS names",
  opts: { follow: { short: 'f', help: 'keep printing new events (until Ctrl-C)' }, json: { help: 'one JSON object per line' } },
  async run({ rt, out }, args, spec) {
    const p = parseArgs(args, spec, -1, 'events');
    if (p.positionals.length !== 1) throw new UsageError('events: name one BOX');
    const box = rt.get(p.positionals[0]);
    const ac = new AbortController();
    process.once('SIGINT', () => ac.abort());
    for await (const e of box.events({ follow: !!p.opts.follow, signal: ac.signal })) out(p.opts.json ? JSON.stringify(e) : formatEvent(e));
    return 0;
  },
};
