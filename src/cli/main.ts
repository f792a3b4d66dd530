// The boxlite command line. Each command is a thin layer over the Runtime (src/runtime).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Runtime, DEFAULTS } from '../runtime/runtime.js';
import { setup, loadAssets, missingPackages, HOST_PACKAGES } from '../runtime/assets.js';
import { BoxliteError } from '../runtime/errors.js';
import { qemuBinary } from '../vmm/qemu.js';
import { probeHost } from '../vmm/accel.js';
import type { Execution } from '../runtime/execution.js';
import { printTable } from './table.js';
import { helpFor, parseArgs, parseEnv, parseIntOpt, UsageError, type OptionSpec } from './args.js';
import { run as runCmd } from '../util/exec.js';
import { IMAGES_HELP, imagesCommand } from './images.js';
import { LayerBars } from './progress.js';
import { formatPort } from '../runtime/network.js';
import { exportBox, importBox } from '../runtime/transfer.js';
import { cloneBox } from '../runtime/clone.js';
import { contextProjectName, describeProjectBox, globalOptions, installNameResolver, PROJECT_COMMANDS, PROJECT_IMPL, type ProjectContext } from './project.js';
import { COMMAND_LOG, startCommand } from '../reconciler/command.js';
import { stamp } from '../reconciler/plan.js';
import { volumeCommand, VOLUME_HELP } from './volumes.js';

const BOX_OPTS: Record<string, OptionSpec> = {
  name: { value: true, help: 'a unique name for the box' },
  env: { short: 'e', value: true, multiple: true, help: 'set an environment variable (NAME=value, or NAME to pass it on)' },
  workdir: { short: 'w', value: true, help: 'working directory for commands in the box' },
  user: { short: 'u', value: true, help: 'user for commands in the box (name, uid or uid:gid)' },
  cpus: { value: true, help: `virtual CPUs (default ${DEFAULTS.cpus})` },
  memory: { short: 'm', value: true, help: `memory in MiB (default ${DEFAULTS.memoryMib}, at least 128)` },
  disk: { value: true, help: `disk size in MiB (default ${DEFAULTS.diskSizeMib})` },
  pull: { value: true, help: 'pull the image: missing (default), always, never' },
  publish: { short: 'p', value: true, multiple: true, help: 'forward a host port: [HOST_IP:]HOST_PORT:BOX_PORT[/udp], or BOX_PORT (host port chosen); host IP 127.0.0.1 unless given' },
  network: { value: true, help: 'default (outbound NAT and DNS) or none (loopback only)' },
  dns: { value: true, multiple: true, help: "a DNS server for the box (default: the host's resolver)" },
  volume: { short: 'v', value: true, multiple: true, help: 'mount a named volume (NAME:/path[:ro]) or a host folder or file (/host/path:/path[:ro], ./rel:/path)' },
};
const EXEC_OPTS: Record<string, OptionSpec> = {
  interactive: { short: 'i', help: 'keep stdin open and send it to the command' },
  tty: { short: 't', help: 'allocate a terminal for the command' },
  env: BOX_OPTS.env,
  workdir: BOX_OPTS.workdir,
  user: BOX_OPTS.user,
  timeout: { value: true, help: 'kill the command after this many seconds (exit status 124)' },
};

const STOP_OPTS: Record<string, OptionSpec> = { time: { short: 't', value: true, help: 'seconds to wait for a clean shutdown (default 10)' } };

const COMMANDS: Record<string, { usage: string; help: string; opts: Record<string, OptionSpec> }> = {
  setup: { usage: 'setup [--if-missing]', help: 'install the Debian packages boxlite needs and build the guest assets', opts: { 'if-missing': { help: 'only build what is missing or out of date' } } },
  images: { usage: 'images COMMAND', help: IMAGES_HELP, opts: {} },
  pull: { usage: 'pull [OPTIONS] REFERENCE', help: "download an image (same as 'images pull')", opts: {} },
  load: { usage: 'load FILE', help: "load a docker save / podman save archive (same as 'images load')", opts: {} },
  run: { usage: 'run [OPTIONS] SOURCE [--] [CMD…]', help: 'create and start a box, run a command in it, show its output', opts: { ...BOX_OPTS, rm: { help: 'remove the box when the command ends' }, interactive: EXEC_OPTS.interactive, tty: EXEC_OPTS.tty, timeout: EXEC_OPTS.timeout } },
  create: { usage: 'create [OPTIONS] SOURCE', help: 'record a new box (its disk and VM are made on first start)', opts: BOX_OPTS },
  start: { usage: 'start BOX…', help: 'boot boxes', opts: {} },
  stop: { usage: 'stop [-t SECONDS] BOX…', help: 'shut boxes down (forced after the timeout)', opts: STOP_OPTS },
  restart: { usage: 'restart [-t SECONDS] BOX…', help: 'stop and start boxes', opts: STOP_OPTS },
  rm: { usage: 'rm [-f] BOX…', help: 'remove boxes and their disks', opts: { force: { short: 'f', help: 'also remove running boxes' } } },
  exec: { usage: 'exec [OPTIONS] BOX [--] CMD…', help: 'run a command in a running box', opts: EXEC_OPTS },
  ps: { usage: 'ps [-a] [--json] [--all-projects]', help: "list boxes (running ones, or all with -a); inside a project folder, that project's", opts: { all: { short: 'a', help: 'include boxes that are not running' }, json: { help: 'print JSON' }, 'all-projects': { help: 'inside a project folder, list every box anyway' } } },
  inspect: { usage: 'inspect BOX', help: 'print everything boxlite knows about a box, as JSON', opts: {} },
  snapshot: { usage: 'snapshot create|ls|restore|rm BOX [NAME]', help: "take, list, restore and remove snapshots of a box's disk", opts: { time: STOP_OPTS.time } },
  clone: { usage: 'clone BOX[@SNAPSHOT] NEW [--count N]', help: "new boxes sharing BOX's disk copy-on-write (NEW, or NEW-1 … NEW-N)", opts: { count: { short: 'n', value: true, help: 'how many clones (named NEW-1 … NEW-N)' } } },
  resize: { usage: 'resize --disk MIB BOX', help: "grow a stopped box's disk (its file system follows at the next start)", opts: { disk: { value: true, help: 'the new disk size in MiB' } } },
  export: { usage: 'export BOX FILE', help: "write a stopped box (options and disk, checksummed) to one archive", opts: {} },
  import: { usage: 'import FILE [--name NAME]', help: "make a box from an archive written by 'boxlite export'", opts: { name: { value: true, help: 'a name for the imported box (default: its exported name)' } } },
  cp: { usage: 'cp BOX:PATH HOSTPATH | cp HOSTPATH BOX:PATH', help: 'copy files and folders between the host and a running box (modes kept)', opts: {} },
  port: { usage: 'port BOX', help: "list a box's port forwards (host ports chosen at start included)", opts: {} },
  logs: { usage: 'logs [-n LINES] [-f] [--console] BOX', help: "print a box's guest console (a project box with a command: the command's output)", opts: { tail: { short: 'n', value: true, help: 'only the last LINES lines' }, follow: { short: 'f', help: 'keep printing new output' }, console: { help: "the guest console even for a box with a command" } } },
  doctor: { usage: 'doctor', help: 'check this host: accelerator, QEMU, guest assets', opts: {} },
  volume: { usage: 'volume ls|create|rm|inspect', help: VOLUME_HELP, opts: {} },
  ...PROJECT_COMMANDS,
};

const out = (s: string) => process.stdout.write(s + '\n');
const err = (s: string) => process.stderr.write(s + '\n');

function usage(): string {
  return [
    'boxlite — local micro-VM sandboxes',
    '',
    'Usage: boxlite [-f FILE] [-p PROJECT] COMMAND [OPTIONS]',
    '',
    ...Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(9)} ${c.help}`),
    '',
    "Run 'boxlite COMMAND --help' for a command's options. -f/-p name a project (boxlite.yaml) for plan, up, down,\nconfig, watch and for boxes by their name in it. Home: $BOXLITE_HOME (default ~/.boxlite).",
  ].join('\n');
}

export async function main(argvIn: string[]): Promise<number> {
  let g: ProjectContext;
  let argv: string[];
  try {
    ({ ctx: g, rest: argv } = globalOptions(argvIn));
  } catch (e) {
    err(`boxlite: ${(e as Error).message}`);
    return 1;
  }
  const [cmd, ...args] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    out(usage());
    return 0;
  }
  if (cmd === '--version' || cmd === 'version') {
    out('boxlite 0.1.0');
    return 0;
  }
  const c = COMMANDS[cmd];
  if (!c) {
    err(`boxlite: unknown command "${cmd}"\n\n${usage()}`);
    return 1;
  }
  const imageCmd = cmd === 'images' ? args : cmd === 'pull' || cmd === 'load' ? [cmd, ...args] : null;
  if (!imageCmd && cmd !== 'volume' && (args.includes('--help') || args.includes('-h'))) {
    out(`Usage: boxlite ${c.usage}\n\n${c.help}\n\n${helpFor(c.opts)}`);
    return 0;
  }
  const rt = new Runtime({ say: err });
  installNameResolver(rt, g);
  try {
    if (imageCmd) return await imagesCommand(rt, imageCmd);
    if (cmd === 'volume') return await volumeCommand(rt, args);
    if (PROJECT_IMPL[cmd]) return await PROJECT_IMPL[cmd](rt, args, c.opts, g);
    projectContext = g;
    return await COMMAND_IMPL[cmd](rt, args, c.opts);
  } catch (e) {
    const code = cmd === 'run' || cmd === 'exec' ? 125 : 1;
    if (e instanceof UsageError) err(`boxlite: ${e.message}${imageCmd ? '' : `\nUsage: boxlite ${c.usage}`}`);
    else if (e instanceof BoxliteError || (e as Error).name === 'AssetsMissingError') err(`boxlite: ${(e as Error).message}`);
    else err(`boxlite: ${(e as Error).stack ?? e}`);
    return code;
  } finally {
    rt.close();
  }
}

type Impl = (rt: Runtime, args: string[], spec: Record<string, OptionSpec>) => Promise<number>;

/** -f/-p given before the command. */
let projectContext: ProjectContext = {};

/** A project box's declared command starts with the box, whoever starts it. */
async function startProjectCommand(rt: Runtime, ref: string): Promise<void> {
  const box = rt.get(ref);
  const cmd = box.info().project?.applied.command as string[] | undefined;
  if (cmd && !box.info().project?.retiredAt) await startCommand(rt, box.id, cmd);
}

/** SOURCE on the command line: an existing folder (a root file system or an OCI layout) or an image reference. */
function sourceOption(src: string): { image?: string; rootfs?: string } {
  return fs.existsSync(src) && fs.statSync(src).isDirectory() ? { rootfs: src } : { image: src };
}

function boxCreateOptions(o: Record<string, unknown>) {
  const pull = o.pull as string | undefined;
  if (pull !== undefined && !['missing', 'always', 'never'].includes(pull)) throw new UsageError(`--pull must be missing, always or never (got "${pull}")`);
  return {
    pull: pull as 'missing' | 'always' | 'never' | undefined,
    ports: (o.publish as string[] | undefined) ?? [],
    network: o.network as 'default' | 'none' | undefined,
    dns: o.dns as string[] | undefined,
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

/** -v NAME:/path[:ro] (a named volume) or -v /host/path:/path[:ro] (a host folder or file), as docker reads them. */
function parseVolumes(specs: string[] = []) {
  const volumes: { volume: string; target: string; readOnly: boolean }[] = [];
  const binds: { hostPath: string; target: string; readOnly: boolean }[] = [];
  for (const v of specs) {
    const m = /^([^:]+):(\/[^:]*)(?::(ro|rw))?$/.exec(v);
    if (!m) throw new UsageError(`--volume "${v}": expected NAME:/path[:ro] or /host/path:/path[:ro]`);
    const [, src, target, mode] = m;
    if (/^(\/|\.|~)/.test(src)) binds.push({ hostPath: path.resolve(src.replace(/^~(?=\/|$)/, process.env.HOME ?? '~')), target, readOnly: mode === 'ro' });
    else volumes.push({ volume: src, target, readOnly: mode === 'ro' });
  }
  return { ...(volumes.length ? { volumes } : {}), ...(binds.length ? { binds } : {}) };
}

/** The clean-shutdown timeout of stop and restart (-t SECONDS), in ms. */
function stopTimeoutMs(p: { opts: Record<string, unknown> }): number {
  const s = parseIntOpt(p.opts.time, '--time') ?? 10;
  if (s < 0) throw new UsageError(`--time must be 0 or more seconds (got ${s})`);
  return s * 1000;
}

function needBoxes(p: { positionals: string[] }, cmd: string): string[] {
  if (p.positionals.length === 0) throw new UsageError(`${cmd}: name at least one box`);
  return p.positionals;
}

/** Runs an execution attached to this terminal; returns the CLI's exit status. */
async function attachTerminal(ex: Execution, o: { interactive: boolean; tty: boolean; timeoutS?: number }): Promise<number> {
  const stdin = process.stdin;
  const raw = o.tty && o.interactive && stdin.isTTY;
  const onResize = () => void ex.resize(process.stdout.rows ?? 24, process.stdout.columns ?? 80).catch(() => {});
  if (raw) {
    stdin.setRawMode(true);
    process.stdout.on('resize', onResize);
  }
  if (o.interactive) {
    stdin.pipe(ex.stdin);
  }
  ex.stdout.pipe(process.stdout, { end: false });
  ex.stderr.pipe(process.stderr, { end: false });
  try {
    const s = await ex.wait();
    if (s.timedOut) {
      err(`boxlite: the command was killed after the ${o.timeoutS} s timeout`);
      return 124;
    }
    return s.exitCode;
  } finally {
    if (raw) {
      stdin.setRawMode(false);
      process.stdout.off('resize', onResize);
    }
    stdin.unpipe();
    stdin.pause();
    stdin.destroy();
  }
}

function execOptions(o: Record<string, unknown>) {
  const tty = !!o.tty;
  const interactive = !!o.interactive;
  const timeoutS = o.timeout !== undefined ? Number(o.timeout) : undefined;
  if (timeoutS !== undefined && !(timeoutS > 0)) throw new UsageError(`--timeout must be a positive number of seconds (got "${o.timeout}")`);
  return {
    interactive,
    timeoutS,
    exec: {
      tty,
      stdin: interactive,
      rows: process.stdout.rows ?? 24,
      cols: process.stdout.columns ?? 80,
      env: parseEnv(o.env as string[] | undefined),
      cwd: o.workdir as string | undefined,
      user: o.user as string | undefined,
      timeoutMs: timeoutS ? Math.round(timeoutS * 1000) : undefined,
    },
  };
}

const COMMAND_IMPL: Record<string, Impl> = {
  async setup(rt, args, spec) {
    const p = parseArgs(args, spec, -1, 'setup');
    await setup(rt.home, { ifMissing: !!p.opts['if-missing'], say: (m) => err(`setup: ${m}`) });
    return 0;
  },

  async create(rt, args, spec) {
    const p = parseArgs(args, spec, -1, 'create');
    if (p.positionals.length !== 1) throw new UsageError('create: give exactly one SOURCE (an image reference, a root filesystem folder or an OCI layout)');
    const box = await rt.create({ ...sourceOption(p.positionals[0]), ...boxCreateOptions(p.opts) });
    out(box.name);
    return 0;
  },

  async run(rt, args, spec) {
    const p = parseArgs(args, spec, 1, 'run');
    if (p.positionals.length !== 1) throw new UsageError('run: give a SOURCE (an image reference, a root filesystem folder or an OCI layout)');
    const e = execOptions(p.opts);
    const box = await rt.create({ ...sourceOption(p.positionals[0]), ...boxCreateOptions(p.opts), autoRemove: !!p.opts.rm });
    try {
      const cfg = box.info().source.config;
      const argv = p.rest.length ? [...cfg.entrypoint, ...p.rest] : [...cfg.entrypoint, ...cfg.cmd];
      if (argv.length === 0) throw new UsageError(`run: no command given and ${p.positionals[0]} defines none: boxlite run SOURCE -- CMD…`);
      await box.start();
      const ex = await box.spawn(argv, e.exec);
      return await attachTerminal(ex, { interactive: e.interactive, tty: e.exec.tty, timeoutS: e.timeoutS });
    } finally {
      if (p.opts.rm) await box.remove({ force: true });
    }
  },

  async start(rt, args, spec) {
    for (const ref of needBoxes(parseArgs(args, spec, -1, 'start'), 'start')) {
      await rt.get(ref).start();
      await startProjectCommand(rt, ref);
      out(ref);
    }
    return 0;
  },

  async stop(rt, args, spec) {
    const p = parseArgs(args, spec, -1, 'stop');
    const timeoutMs = stopTimeoutMs(p);
    for (const ref of needBoxes(p, 'stop')) {
      const r = await rt.get(ref).stop({ timeoutMs });
      if (r.forced) err(`boxlite: ${ref} did not shut down within ${timeoutMs / 1000}s and was stopped by force`);
      out(ref);
    }
    return 0;
  },

  async restart(rt, args, spec) {
    const p = parseArgs(args, spec, -1, 'restart');
    const timeoutMs = stopTimeoutMs(p);
    for (const ref of needBoxes(p, 'restart')) {
      await rt.get(ref).restart({ timeoutMs });
      await startProjectCommand(rt, ref);
      out(ref);
    }
    return 0;
  },

  async rm(rt, args, spec) {
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

  async exec(rt, args, spec) {
    const p = parseArgs(args, spec, 1, 'exec');
    if (p.positionals.length !== 1) throw new UsageError('exec: name a BOX');
    if (p.rest.length === 0) throw new UsageError('exec: give the command to run: boxlite exec BOX -- CMD…');
    const e = execOptions(p.opts);
    const ex = await rt.get(p.positionals[0]).spawn(p.rest, e.exec);
    return attachTerminal(ex, { interactive: e.interactive, tty: e.exec.tty, timeoutS: e.timeoutS });
  },

  async ps(rt, args, spec) {
    const p = parseArgs(args, spec, -1, 'ps');
    // Inside a project (or with -p/-f), ps lists that project's boxes.
    const proj = projectContext.project || projectContext.file || !p.opts['all-projects'] ? contextProjectName(projectContext) : undefined;
    const boxes = rt.list().filter((b) => (p.opts.all || b.state === 'running') && (!proj || b.project?.project === proj));
    if (p.opts.json) {
      out(JSON.stringify(boxes, null, 2));
      return 0;
    }
    const rows = boxes.map((b) => [
      b.id,
      b.name,
      b.state === 'exited' && b.exit ? `exited (${b.exit.reason})` : b.network === 'degraded' ? 'running (network degraded)' : b.state,
      `${b.options.cpus} cpu, ${b.options.memoryMib} MiB`,
      b.source.kind === 'dir' ? b.source.path : b.source.kind === 'image' ? b.source.reference : 'imported',
      b.createdAt.replace('T', ' ').slice(0, 19),
      (b.state === 'running' && b.ports ? b.ports : (b.options.ports ?? [])).map(formatPort).join(', '),
      b.project ? describeProjectBox(b.project) : '',
    ]);
    const head = ['ID', 'NAME', 'STATE', 'RESOURCES', 'SOURCE', 'CREATED', 'PORTS', 'PROJECT'];
    printTable(head, rows);
    return 0;
  },

  async inspect(rt, args, spec) {
    const p = parseArgs(args, spec, -1, 'inspect');
    if (p.positionals.length !== 1) throw new UsageError('inspect: name one BOX');
    const box = rt.get(p.positionals[0]);
    const info = box.info();
    const networkStats = info.state === 'running' && info.network !== 'none' ? await box.networkStats().catch((e) => ({ error: (e as Error).message })) : undefined;
    out(JSON.stringify({ ...info, networkStats, dir: rt.home.boxDir(box.id), console: box.consolePath() }, null, 2));
    return 0;
  },

  async snapshot(rt, args, spec) {
    const p = parseArgs(args, spec, -1, 'snapshot');
    const [sub, boxRef, name, ...extra] = p.positionals;
    const needName = sub === 'create' || sub === 'restore' || sub === 'rm';
    if (!sub || !['create', 'ls', 'restore', 'rm'].includes(sub)) throw new UsageError('snapshot: say create, ls, restore or rm');
    if (!boxRef || (needName && !name) || extra.length || (!needName && name)) throw new UsageError(`snapshot ${sub}: give BOX${needName ? ' NAME' : ''}`);
    const box = rt.get(boxRef);
    if (sub === 'create') {
      const s = await box.snapshots.create(name);
      out(s.name);
    } else if (sub === 'ls') {
      const list = await box.snapshots.list();
      out(['NAME', 'CREATED', 'KIND'].join('  '));
      for (const s of list) out([s.name, s.createdAt.replace('T', ' ').slice(0, 19) || '?', `${s.auto ? 'auto' : 'manual'}${s.frozen ? ' (taken before a clone: shared)' : ''}`].join('  '));
    } else if (sub === 'restore') {
      // A project box whose policy says before_apply is snapshotted before a restore overwrites its disk.
      const policy = box.info().project?.applied.snapshots as { beforeApply?: boolean } | undefined;
      if (policy?.beforeApply && (await box.snapshots.list()).some((x) => x.name === name)) {
        const auto = `before-restore-${stamp(new Date())}`;
        await box.snapshots.create(auto, { auto: true });
        err(`boxlite: took snapshot ${auto} first (snapshot policy before_apply)`);
      }
      const r = await box.snapshots.restore(name, { timeoutMs: stopTimeoutMs(p) });
      if (r.restarted) err(`boxlite: ${box.name} was running: it was stopped, restored to "${name}" and started again`);
      out(name);
    } else {
      await box.snapshots.remove(name);
      out(name);
    }
    return 0;
  },

  async clone(rt, args, spec) {
    const p = parseArgs(args, spec, -1, 'clone');
    if (p.positionals.length !== 2) throw new UsageError('clone: give BOX[@SNAPSHOT] and a NEW name');
    const [srcRef, newName] = p.positionals;
    const at = srcRef.lastIndexOf('@');
    const [box, snapshot] = at > 0 ? [srcRef.slice(0, at), srcRef.slice(at + 1)] : [srcRef, undefined];
    const count = parseIntOpt(p.opts.count, '--count');
    if (count !== undefined && (count < 1 || count > 100)) throw new UsageError(`--count must be from 1 to 100 (got ${count})`);
    const names = count === undefined ? [newName] : Array.from({ length: count }, (_, i) => `${newName}-${i + 1}`);
    const t = performance.now();
    const made = await cloneBox(rt, box, names, { snapshot });
    for (const r of made) out(r.name);
    err(`boxlite: ${made.length} clone${made.length > 1 ? 's' : ''} of ${box}${snapshot ? `@${snapshot}` : ''} in ${(performance.now() - t).toFixed(0)} ms, sharing its disk copy-on-write`);
    return 0;
  },

  async resize(rt, args, spec) {
    const p = parseArgs(args, spec, -1, 'resize');
    const mib = parseIntOpt(p.opts.disk, '--disk');
    if (p.positionals.length !== 1 || mib === undefined) throw new UsageError('resize: give --disk MIB and one BOX');
    await rt.get(p.positionals[0]).resize(mib);
    out(p.positionals[0]);
    return 0;
  },

  async export(rt, args, spec) {
    const p = parseArgs(args, spec, -1, 'export');
    if (p.positionals.length !== 2) throw new UsageError('export: give BOX and FILE');
    await exportBox(rt, p.positionals[0], p.positionals[1]);
    out(p.positionals[1]);
    return 0;
  },

  async import(rt, args, spec) {
    const p = parseArgs(args, spec, -1, 'import');
    if (p.positionals.length !== 1) throw new UsageError('import: give one FILE');
    const rec = await importBox(rt, p.positionals[0], { name: p.opts.name as string | undefined });
    out(rec.name);
    return 0;
  },

  async cp(rt, args, spec) {
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

  async port(rt, args, spec) {
    const p = parseArgs(args, spec, -1, 'port');
    if (p.positionals.length !== 1) throw new UsageError('port: name one BOX');
    for (const m of rt.get(p.positionals[0]).ports()) out(`${m.guestPort}/${m.protocol} -> ${m.hostIp.includes(':') ? `[${m.hostIp}]` : m.hostIp}:${m.hostPort || '(chosen at start)'}`);
    return 0;
  },

  async logs(rt, args, spec) {
    const p = parseArgs(args, spec, -1, 'logs');
    if (p.positionals.length !== 1) throw new UsageError('logs: name one BOX');
    const box = rt.get(p.positionals[0]);
    // A project box with a command: its output, as compose shows a service's; --console for the guest console.
    if (box.info().project?.applied.command && !p.opts.console) {
      const n = parseIntOpt(p.opts.tail, '--tail');
      const r = await box.exec(['/.boxlite/bin/busybox', 'sh', '-c', `[ -f ${COMMAND_LOG} ] && ${n !== undefined ? `tail -n ${n}` : 'cat'} ${COMMAND_LOG}; true`]);
      process.stdout.write(r.stdout);
      return 0;
    }
    const file = box.consolePath();
    let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    const n = parseIntOpt(p.opts.tail, '--tail');
    if (n !== undefined) text = text.split('\n').slice(-n - 1).join('\n');
    process.stdout.write(text);
    if (p.opts.follow) {
      let pos = fs.existsSync(file) ? fs.statSync(file).size : 0;
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        fs.watchFile(file, { interval: 200 }, (cur) => {
          if (cur.size > pos) {
            const fd = fs.openSync(file, 'r');
            const buf = Buffer.alloc(cur.size - pos);
            fs.readSync(fd, buf, 0, buf.length, pos);
            fs.closeSync(fd);
            pos = cur.size;
            process.stdout.write(buf);
          }
        });
      });
      fs.unwatchFile(file);
    }
    return 0;
  },

  async doctor(rt) {
    let ok = true;
    const line = (good: boolean, what: string, detail: string) => {
      if (!good) ok = false;
      out(`${good ? 'ok  ' : 'FIX '} ${what.padEnd(12)} ${detail}`);
    };
    const probe = probeHost();
    try {
      const a = rt.accel();
      line(true, 'accelerator', `${a.accel} — ${a.reason}`);
    } catch (e) {
      line(false, 'accelerator', (e as Error).message);
    }
    out(`     ${''.padEnd(12)} /dev/kvm: ${probe.kvmDevice}, kvm_pvm: ${probe.pvm ? 'loaded' : 'no'}, vmx/svm: ${probe.cpuVirtFlags ? 'yes' : 'no'}`);
    const qemuProblem = rt.engine.check();
    if (qemuProblem) line(false, 'qemu', qemuProblem);
    else {
      const v = await runCmd(qemuBinary(), ['--version']).catch(() => '?');
      line(true, 'qemu', v.split('\n')[0]);
    }
    const missing = missingPackages();
    line(missing.length === 0, 'packages', missing.length ? `missing ${missing.map((m) => m.pkg).join(', ')}: run 'boxlite setup'` : HOST_PACKAGES.map((p) => p.pkg).join(', '));
    try {
      const a = loadAssets(rt.home);
      line(true, 'assets', `kernel ${a.kernelVersion}, ${a.initImage}`);
    } catch (e) {
      line(false, 'assets', (e as Error).message);
    }
    line(true, 'home', rt.home.root);
    return ok ? 0 : 1;
  },
};

