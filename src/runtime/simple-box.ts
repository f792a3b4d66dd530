// SimpleBox: the one-object way to use a box, shaped like BoxLite's SDK so that its programs run here unchanged.
//   await using box = new SimpleBox({ image: 'alpine:latest' });
//   const r = await box.exec('echo', 'hi');   // { exitCode, stdout, stderr }
// The box is created and booted on first use. As in BoxLite, autoRemove (default true) removes it when it stops;
// an exec after that makes a new one. boxlite's own option names (binds, diskSizeMib, keep, runtime…) work too.
import { BoxStateError, InvalidOptionError } from '../core/errors.js';
import { Runtime, type Box } from './runtime.js';
import type { CreateOptions } from './options.js';
import type { ExecOptions, ExecResult, Execution } from './execution.js';
import type { BindMount, BoxRecord, VolumeMount } from './types.js';
import type { BoxMetrics } from './metrics.js';
import type { NetworkMode } from '../core/network.js';

/** A host folder or file in the box, as BoxLite writes it. */
export interface HostVolume {
  hostPath: string;
  guestPath: string;
  readOnly?: boolean;
}
/** A forward from the host, as BoxLite writes it (hostPort left out: chosen at start). */
export interface PortForward {
  hostPort?: number;
  guestPort: number;
  protocol?: 'tcp' | 'udp';
  hostIp?: string;
}

export interface SimpleBoxOptions {
  /** An image reference (debian:12, ghcr.io/org/tool@sha256:…), or a path to a root filesystem folder or an OCI layout. */
  image?: string;
  /** A root filesystem folder (BoxLite's name for a local root). */
  rootfsPath?: string;
  name?: string;
  cpus?: number;
  memoryMib?: number;
  diskSizeGb?: number;
  diskSizeMib?: number;
  env?: Record<string, string>;
  workingDir?: string;
  user?: string;
  hostname?: string;
  /** Host folders ({ hostPath, guestPath, readOnly }) and named volumes ({ volume, target, readOnly }). */
  volumes?: (HostVolume | VolumeMount)[];
  binds?: BindMount[];
  ports?: (string | PortForward)[];
  /** boxlite's 'default' | 'none', or BoxLite's { mode: 'enabled' | 'disabled' }. */
  network?: NetworkMode | { mode: 'enabled' | 'disabled'; allowNet?: string[] };
  dns?: string[];
  pull?: CreateOptions['pull'];
  /** Remove the box when it stops (default true, as BoxLite). */
  autoRemove?: boolean;
  /** Keep the box (stopped) after disposal: autoRemove false. */
  keep?: boolean;
  /** Use the box of this name if it exists, instead of failing. */
  reuseExisting?: boolean;
  /** Leave the box running when this object is disposed (it outlives the program). */
  detach?: boolean;
  runtime?: Runtime;
}

const KNOWN = new Set(['image', 'rootfsPath', 'name', 'cpus', 'memoryMib', 'diskSizeGb', 'diskSizeMib', 'env', 'workingDir', 'user', 'hostname', 'volumes', 'binds', 'ports', 'network', 'dns', 'pull', 'autoRemove', 'keep', 'reuseExisting', 'detach', 'runtime']);
/** BoxLite options with no counterpart here yet: refused by name rather than silently ignored. */
const NOT_HERE: Record<string, string> = {
  secrets: 'secrets at the network boundary are not available in this boxlite yet',
  security: "the jail is always on here (see 'boxlite doctor'); its limits are not set per box",
  entrypoint: 'a box has no main process here: run it with exec (or a project box\'s command)',
  cmd: 'a box has no main process here: run it with exec (or a project box\'s command)',
  advanced: 'capabilities are not set per box here',
};

/** BoxLite's option shapes turned into create's; anything unknown or without a counterpart is refused by name. */
export function createOptions(o: SimpleBoxOptions): CreateOptions {
  for (const k of Object.keys(o)) {
    if (NOT_HERE[k]) throw new InvalidOptionError(`SimpleBox option "${k}": ${NOT_HERE[k]}; remove it`);
    if (!KNOWN.has(k)) throw new InvalidOptionError(`SimpleBox: unknown option "${k}" (known: ${[...KNOWN].join(', ')})`);
  }
  if (!o.image === !o.rootfsPath) throw new InvalidOptionError('SimpleBox: give image (a reference, a root filesystem folder or an OCI layout) or rootfsPath, one of them');
  if (o.diskSizeGb !== undefined && o.diskSizeMib !== undefined) throw new InvalidOptionError('SimpleBox: give diskSizeGb or diskSizeMib, not both');
  const volumes: VolumeMount[] = [];
  const binds: BindMount[] = [...(o.binds ?? [])];
  for (const v of o.volumes ?? []) {
    if ('hostPath' in v) binds.push({ hostPath: v.hostPath, target: v.guestPath, readOnly: !!v.readOnly });
    else volumes.push({ volume: v.volume, target: v.target, readOnly: !!v.readOnly });
  }
  let network: NetworkMode | undefined;
  if (typeof o.network === 'object' && o.network !== null) {
    if (o.network.allowNet?.length) throw new InvalidOptionError('SimpleBox option network.allowNet: outbound allow-lists are not available in this boxlite yet; remove it (the box reaches every address) or use mode: "disabled"');
    if (o.network.mode !== 'enabled' && o.network.mode !== 'disabled') throw new InvalidOptionError(`SimpleBox option network.mode must be "enabled" or "disabled" (got ${JSON.stringify(o.network.mode)})`);
    network = o.network.mode === 'enabled' ? 'default' : 'none';
  } else network = o.network;
  // Objects become create's "[HOST_IP:]HOST_PORT:BOX_PORT[/udp]" (host port 0: chosen at start).
  const ports = (o.ports ?? []).map((p) =>
    typeof p === 'string' ? p : `${p.hostIp ? `${p.hostIp}:` : ''}${p.hostPort ?? 0}:${p.guestPort}${p.protocol === 'udp' ? '/udp' : ''}`,
  );
  const source = o.rootfsPath ? { rootfs: o.rootfsPath } : { image: o.image };
  return {
    ...source,
    name: o.name,
    cpus: o.cpus,
    memoryMib: o.memoryMib,
    diskSizeMib: o.diskSizeGb !== undefined ? Math.round(o.diskSizeGb * 1024) : o.diskSizeMib,
    env: o.env,
    workingDir: o.workingDir,
    user: o.user,
    hostname: o.hostname,
    ...(volumes.length ? { volumes } : {}),
    ...(binds.length ? { binds } : {}),
    ports,
    network,
    dns: o.dns,
    pull: o.pull,
  };
}

/** What exec takes besides the command: BoxLite's { cwd, user, timeoutSecs } and boxlite's ExecOptions. */
export type SimpleExecOptions = ExecOptions & { input?: string | Buffer; timeoutSecs?: number };
const EXEC_KEYS = new Set(['cwd', 'user', 'timeoutSecs', 'timeoutMs', 'input', 'env', 'stdin', 'tty', 'rows', 'cols', 'countsAsUse']);

/** exec's call forms: exec(cmd, ...args), exec(cmd, ...args, env) and exec(cmd, args, env, opts) as BoxLite has
 *  them, and exec(cmd, args, opts). A lone trailing object is options when every key is an option's name, else env. */
export function execCall(rest: unknown[]): { args: string[]; opts: SimpleExecOptions } {
  const bad = (i: number) => new InvalidOptionError(`exec: argument ${i + 2} must be a string, a list of strings or an object`);
  let env: Record<string, string> | undefined;
  let opts: SimpleExecOptions = {};
  const trailing = (o: unknown, i: number) => {
    if (o === undefined) return;
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw bad(i);
    if (Object.keys(o).length && Object.keys(o).every((k) => EXEC_KEYS.has(k))) opts = o as SimpleExecOptions;
    else env = o as Record<string, string>;
  };
  let args: string[];
  if (Array.isArray(rest[0])) {
    args = rest[0].map(String);
    if (rest.length > 3) throw new InvalidOptionError('exec: too many arguments: exec(cmd, args, env, options)');
    if (rest.length === 3) {
      if (rest[1] !== undefined && (typeof rest[1] !== 'object' || rest[1] === null)) throw bad(1);
      env = rest[1] as Record<string, string> | undefined;
      if (rest[2] !== undefined && (typeof rest[2] !== 'object' || rest[2] === null)) throw bad(2);
      opts = (rest[2] as SimpleExecOptions | undefined) ?? {};
    } else trailing(rest[1], 1);
  } else {
    const last = rest.length && typeof rest[rest.length - 1] !== 'string' ? rest.length - 1 : rest.length;
    args = rest.slice(0, last).map((a, i) => {
      if (typeof a !== 'string') throw bad(i);
      return a;
    });
    if (last < rest.length) trailing(rest[last], last);
  }
  const { timeoutSecs, ...own } = opts;
  return { args, opts: { ...own, ...(timeoutSecs !== undefined ? { timeoutMs: timeoutSecs * 1000 } : {}), ...(env ? { env: { ...own.env, ...env } } : {}) } };
}

/** info() as BoxLite shapes it, with boxlite's record beside it. */
export interface SimpleBoxInfo {
  id: string;
  name: string;
  state: { status: string; running: boolean };
  createdAt: string;
  image: string;
  cpus: number;
  memoryMib: number;
  record: BoxRecord;
}

/** metrics() with BoxLite's names for the figures it has, beside boxlite's own. */
export type SimpleBoxMetrics = BoxMetrics & {
  commandsExecutedTotal: number;
  execErrorsTotal: number;
  bytesSentTotal: number;
  bytesReceivedTotal: number;
  networkBytesSent?: number;
  networkBytesReceived?: number;
  cpuPercent?: number;
  memoryBytes?: number;
  guestBootDurationMs?: number;
  totalCreateDurationMs?: number;
  stageBoxSpawnMs?: number;
};

export class SimpleBox implements AsyncDisposable {
  private box: Box | null = null;
  private starting: Promise<Box> | null = null;
  private lastMetrics: BoxMetrics | null = null;
  protected readonly runtime: Runtime;
  private readonly ownsRuntime: boolean;
  private readonly create: CreateOptions;
  private readonly autoRemove: boolean;

  constructor(private readonly opts: SimpleBoxOptions) {
    this.create = createOptions(opts);
    this.autoRemove = opts.keep ? false : opts.autoRemove ?? true;
    this.ownsRuntime = !opts.runtime;
    this.runtime = opts.runtime ?? new Runtime();
  }

  /** Creates (or, with reuseExisting, finds) and boots the box if that has not happened yet. */
  start(): Promise<Box> {
    this.starting ??= (async () => {
      let box: Box | undefined;
      if (this.opts.reuseExisting && this.opts.name) box = this.runtime.list().some((r) => r.name === this.opts.name) ? this.runtime.get(this.opts.name) : undefined;
      box ??= await this.runtime.create(this.create);
      this.box = box;
      const state = box.info().state;
      if (state !== 'running') await box.start();
      return box;
    })().catch((e) => {
      this.starting = null;
      throw e;
    });
    return this.starting;
  }

  /** The box's id; it exists once a first exec (or getId) made it. */
  get id(): string {
    if (!this.box) throw new BoxStateError('this SimpleBox has no box yet: it is made by the first exec(), or await getId()');
    return this.box.id;
  }

  async getId(): Promise<string> {
    return (await this.start()).id;
  }

  get name(): string | undefined {
    return this.box?.name ?? this.opts.name;
  }

  /** Runs a command to completion: exec('ls', '-l'), exec('sh', '-c', 'echo $X', { X: '1' }),
   *  exec('pwd', [], undefined, { cwd: '/tmp', timeoutSecs: 30 }) or exec('ls', ['-l'], { cwd: '/tmp' }). */
  async exec(cmd: string, ...rest: (string | string[] | Record<string, string> | SimpleExecOptions | undefined)[]): Promise<ExecResult> {
    const { args, opts } = execCall(rest);
    const box = await this.start();
    if (box.info().state !== 'running') await box.start(); // stopped by someone else meanwhile
    return box.exec([cmd, ...args], opts);
  }

  /** Starts a command and returns its streaming handle (stdout, stderr, stdin, wait, kill). */
  async spawn(argv: string[], opts?: ExecOptions): Promise<Execution> {
    return (await this.start()).spawn(argv, opts);
  }

  async copyIn(hostPath: string, boxPath: string): Promise<void> {
    await (await this.start()).copyIn(hostPath, boxPath);
  }

  async copyOut(boxPath: string, hostPath: string): Promise<void> {
    await (await this.start()).copyOut(boxPath, hostPath);
  }

  info(): SimpleBoxInfo {
    if (!this.box) throw new BoxStateError('this SimpleBox has no box yet: it is made by the first exec(), or await getInfo()');
    const r = this.box.info();
    return {
      id: r.id,
      name: r.name,
      state: { status: r.state, running: r.state === 'running' },
      createdAt: r.createdAt,
      image: r.source.kind === 'image' ? r.source.reference : r.source.kind === 'dir' ? r.source.path : 'imported',
      cpus: r.options.cpus,
      memoryMib: r.options.memoryMib,
      record: r,
    };
  }

  async getInfo(): Promise<SimpleBoxInfo> {
    await this.start();
    return this.info();
  }

  /** Its figures now; CPU % over the time since the last metrics() call (or since the box started). */
  async metrics(): Promise<SimpleBoxMetrics> {
    const box = await this.start();
    const m = await box.metrics();
    const before = this.lastMetrics;
    this.lastMetrics = m;
    const started = Date.parse(box.info().startedAt ?? '');
    const cpuPercent = m.vmm
      ? before?.vmm ? ((m.vmm.cpuSeconds - before.vmm.cpuSeconds) / ((m.at - before.at) / 1000)) * 100 : started ? (m.vmm.cpuSeconds / ((m.at - started) / 1000)) * 100 : undefined
      : undefined;
    const s = m.lastStart;
    return {
      ...m,
      commandsExecutedTotal: m.execs.total,
      execErrorsTotal: m.execs.errors,
      bytesSentTotal: m.guest?.netTxBytes ?? 0,
      bytesReceivedTotal: m.guest?.netRxBytes ?? 0,
      networkBytesSent: m.guest?.netTxBytes,
      networkBytesReceived: m.guest?.netRxBytes,
      cpuPercent,
      memoryBytes: m.guest?.memUsedBytes,
      guestBootDurationMs: s?.kernelToInitMs !== undefined && s.initToAgentMs !== undefined ? s.kernelToInitMs + s.initToAgentMs : undefined,
      totalCreateDurationMs: s?.totalMs,
      stageBoxSpawnMs: s?.vmSpawnMs,
    };
  }

  /** Stops the box; with autoRemove (the default) it is removed too, and a later exec makes a new one. */
  async stop(): Promise<void> {
    if (this.starting) await this.starting.catch(() => {});
    const box = this.box;
    if (!box) return;
    if (this.autoRemove) {
      await box.remove({ force: true });
      this.box = null;
      this.starting = null;
    } else if (box.info().state === 'running' || box.info().state === 'paused') await box.stop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      if (!this.opts.detach) await this.stop();
    } finally {
      if (this.ownsRuntime) this.runtime.close();
    }
  }
}
