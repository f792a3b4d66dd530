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
import { parsePolicy } from '../core/egress.js';

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
  /** With allowNet (BoxLite's outbound allow-list: domains, *.domains, IPs, CIDRs, each with an optional :port). */
  network?: NetworkMode | { mode: 'enabled' | 'disabled'; allowNet?: string[] };
  /** boxlite's outbound policy: allow and deny rules. */
  egress?: CreateOptions['egress'];
  /** BoxLite's secrets: [{ name, value, hosts }]; the box sees a placeholder, the value goes only to the hosts. */
  secrets?: CreateOptions['secrets'];
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
  /** This machine's runtime (default), or BoxLite's JsBoxlite, local or a server's (JsBoxlite.rest). */
  runtime?: Runtime | SimpleRuntime;
}

/** What SimpleBox does through a runtime other than this machine's (a server's: see src/client). */
export interface SimpleDelegate {
  readonly id: string | undefined;
  readonly name: string | undefined;
  readonly created: boolean;
  start(): Promise<void>;
  exec(argv: string[], opts: SimpleExecOptions): Promise<ExecResult>;
  copyIn(hostPath: string, boxPath: string): Promise<void>;
  copyOut(boxPath: string, hostPath: string): Promise<void>;
  info(): SimpleBoxInfo;
  metrics(): Promise<SimpleBoxMetrics>;
  stop(): Promise<void>;
}

/** BoxLite's JsBoxlite as SimpleBox sees it: this machine's runtime, or a maker of delegates. */
export interface SimpleRuntime {
  readonly localRuntime: Runtime | null;
  simpleDelegate(create: CreateOptions, o: { autoRemove: boolean; reuseExisting: boolean }): SimpleDelegate;
}

const KNOWN = new Set(['image', 'rootfsPath', 'name', 'cpus', 'memoryMib', 'diskSizeGb', 'diskSizeMib', 'env', 'workingDir', 'user', 'hostname', 'volumes', 'binds', 'ports', 'network', 'egress', 'secrets', 'dns', 'pull', 'autoRemove', 'keep', 'reuseExisting', 'detach', 'runtime']);
/** BoxLite options with no counterpart here yet: refused by name rather than silently ignored. */
const NOT_HERE: Record<string, string> = {
  security: "the jail is always on here (see 'boxlite doctor'); its limits are not set per box",
  entrypoint: 'a box has no main process here: run it with exec (or a project box\'s command)',
  cmd: 'a box has no main process here: run it with exec (or a project box\'s command)',
  advanced: 'capabilities are not set per box here',
};

/** BoxLite's option shapes turned into create's; anything unknown or without a counterpart is refused by name. */
export function createOptions(o: SimpleBoxOptions): CreateOptions {
  for (const k of Object.keys(o)) {
    if (Object.hasOwn(NOT_HERE, k)) throw new InvalidOptionError(`SimpleBox option "${k}": ${NOT_HERE[k]}; remove it`);
    if (!KNOWN.has(k)) throw new InvalidOptionError(`SimpleBox: unknown option "${k}" (known: ${[...KNOWN].join(', ')})`);
  }
  if (!o.image === !o.rootfsPath) throw new InvalidOptionError('SimpleBox: give image (a reference, a root filesystem folder or an OCI layout) or rootfsPath, one of them');
  if (o.diskSizeGb !== undefined && o.diskSizeMib !== undefined) throw new InvalidOptionError('SimpleBox: give diskSizeGb or diskSizeMib, not both');
  const volumes: VolumeMount[] = [];
  const binds: BindMount[] = [...(o.binds ?? [])];
  if (o.volumes !== undefined && !Array.isArray(o.volumes)) throw new InvalidOptionError('SimpleBox option volumes must be a list of { hostPath, guestPath, readOnly } or { volume, target, readOnly }');
  for (const v of o.volumes ?? []) {
    if (typeof v !== 'object' || v === null) throw new InvalidOptionError(`SimpleBox option volumes: ${JSON.stringify(v)} is not { hostPath, guestPath, readOnly } or { volume, target, readOnly }`);
    if ('hostPath' in v) binds.push({ hostPath: v.hostPath, target: v.guestPath, readOnly: !!v.readOnly });
    else volumes.push({ volume: v.volume, target: v.target, readOnly: !!v.readOnly });
  }
  let network: NetworkMode | undefined;
  let allow: string[] = [];
  if (typeof o.network === 'object' && o.network !== null) {
    if (o.network.allowNet !== undefined && !Array.isArray(o.network.allowNet)) throw new InvalidOptionError('SimpleBox option network.allowNet must be a list of rules ("api.example.com", "*.example.com", "203.0.113.0/24:443")');
    allow = o.network.allowNet ?? [];
    if (o.network.mode !== 'enabled' && o.network.mode !== 'disabled') throw new InvalidOptionError(`SimpleBox option network.mode must be "enabled" or "disabled" (got ${JSON.stringify(o.network.mode)})`);
    network = o.network.mode === 'enabled' ? 'default' : 'none';
  } else network = o.network;
  // Objects become create's "[HOST_IP:]HOST_PORT:BOX_PORT[/udp]" (host port 0: chosen at start).
  if (o.ports !== undefined && !Array.isArray(o.ports)) throw new InvalidOptionError('SimpleBox option ports must be a list of "HOST:BOX" strings or { hostPort, guestPort, protocol }');
  const ports = o.ports?.map((p) => {
    if (typeof p === 'string') return p;
    if (typeof p !== 'object' || p === null) throw new InvalidOptionError(`SimpleBox option ports: ${JSON.stringify(p)} is not a port spec or { hostPort, guestPort, protocol }`);
    if (p.protocol !== undefined && p.protocol !== 'tcp' && p.protocol !== 'udp') throw new InvalidOptionError(`SimpleBox option ports: protocol ${JSON.stringify(p.protocol)} is not "tcp" or "udp"`);
    return `${p.hostIp ? `${p.hostIp}:` : ''}${p.hostPort ?? 0}:${p.guestPort}${p.protocol === 'udp' ? '/udp' : ''}`;
  });
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
    ...(ports ? { ports } : {}),
    network,
    // BoxLite's allowNet is the allow list; boxlite's own egress option adds deny rules.
    egress: parsePolicy({ allow: [...allow, ...(o.egress?.allow ?? [])], deny: o.egress?.deny ?? [] }),
    ...(o.secrets ? { secrets: o.secrets } : {}),
    dns: o.dns,
    pull: o.pull,
  };
}

/** What exec takes besides the command: BoxLite's { cwd, user, timeoutSecs } and boxlite's ExecOptions. */
export type SimpleExecOptions = ExecOptions & { input?: string | Buffer; timeoutSecs?: number };

/** exec's call forms, BoxLite's: exec(cmd, ...args), exec(cmd, ...args, env), exec(cmd, args, env) and
 *  exec(cmd, args, env, opts). An object in the env place is always the environment, whatever its keys: options
 *  come only in the last place, so data can never become an option (a user, stdin). */
export function execCall(rest: unknown[]): { args: string[]; opts: SimpleExecOptions } {
  const bad = (i: number, what: string) => new InvalidOptionError(`exec: argument ${i + 2} must be ${what}`);
  const object = (o: unknown, i: number, what: string) => {
    if (o === undefined || o === null) return undefined;
    if (typeof o !== 'object' || Array.isArray(o)) throw bad(i, what);
    return o;
  };
  let args: string[];
  let env: Record<string, string> | undefined;
  let opts: SimpleExecOptions = {};
  if (Array.isArray(rest[0])) {
    if (rest.length > 3) throw new InvalidOptionError('exec: too many arguments: exec(cmd, args, env, options)');
    args = rest[0].map((a, i) => {
      if (typeof a !== 'string') throw bad(0, `a list of strings (item ${i} is ${typeof a})`);
      return a;
    });
    env = object(rest[1], 1, 'the environment, an object of strings (or undefined)') as Record<string, string> | undefined;
    opts = (object(rest[2], 2, 'the options, an object') as SimpleExecOptions | undefined) ?? {};
  } else {
    const last = rest.length && typeof rest[rest.length - 1] !== 'string' ? rest.length - 1 : rest.length;
    args = rest.slice(0, last).map((a, i) => {
      if (typeof a !== 'string') throw bad(i, 'a string');
      return a;
    });
    if (last < rest.length) env = object(rest[last], last, 'a string, or the environment as the last argument') as Record<string, string> | undefined;
  }
  for (const [k, v] of Object.entries(env ?? {})) if (typeof v !== 'string') throw new InvalidOptionError(`exec: environment variable ${k} must be a string (got ${typeof v})`);
  const { timeoutSecs, ...own } = opts;
  if (timeoutSecs !== undefined && !(Number.isFinite(timeoutSecs) && timeoutSecs >= 0.001 && timeoutSecs * 1000 <= 0xffffffff)) {
    throw new InvalidOptionError(`exec: timeoutSecs must be a number of seconds from 0.001 to ${Math.floor(0xffffffff / 1000)} (got ${timeoutSecs})`);
  }
  return { args, opts: { ...own, ...(timeoutSecs !== undefined ? { timeoutMs: Math.round(timeoutSecs * 1000) } : {}), ...(env ? { env: { ...own.env, ...env } } : {}) } };
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
  /** boxlite's full record (a box of this machine's runtime; absent for a server's). */
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
  /** Whether this object made its box (reuseExisting may find one it did not: that one is never removed). */
  private made = false;
  protected readonly runtime: Runtime;
  private readonly ownsRuntime: boolean;
  private readonly delegate: SimpleDelegate | null = null;
  private readonly create: CreateOptions;
  private readonly autoRemove: boolean;

  constructor(private readonly opts: SimpleBoxOptions) {
    this.create = createOptions(opts);
    this.autoRemove = opts.keep ? false : opts.autoRemove ?? true;
    this.ownsRuntime = !opts.runtime;
    const given = opts.runtime;
    if (given && !(given instanceof Runtime) && !given.localRuntime) {
      this.delegate = given.simpleDelegate(this.create, { autoRemove: this.autoRemove, reuseExisting: !!opts.reuseExisting });
      this.runtime = null as unknown as Runtime; // never used: the delegate does it all
    } else this.runtime = given instanceof Runtime ? given : given?.localRuntime ?? new Runtime();
  }

  /** Whether this object made its box (false when reuseExisting found one). */
  get created(): boolean {
    return this.delegate ? this.delegate.created : this.made;
  }

  /** Creates (or, with reuseExisting, finds) and boots the box if that has not happened yet. */
  start(): Promise<Box> {
    this.starting ??= (async () => {
      let box: Box | undefined;
      if (this.opts.reuseExisting && this.opts.name) box = this.runtime.list().some((r) => r.name === this.opts.name) ? this.runtime.get(this.opts.name) : undefined;
      if (!box) {
        box = await this.runtime.create(this.create);
        this.made = true;
      }
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
    if (this.delegate?.id) return this.delegate.id;
    if (!this.box) throw new BoxStateError('this SimpleBox has no box yet: it is made by the first exec(), or await getId()');
    return this.box.id;
  }

  async getId(): Promise<string> {
    if (this.delegate) {
      await this.delegate.start();
      return this.delegate.id!;
    }
    return (await this.start()).id;
  }

  get name(): string | undefined {
    if (this.delegate) return this.delegate.name ?? this.opts.name;
    return this.box?.name ?? this.opts.name;
  }

  /** Runs a command to completion: exec('ls', '-l'), exec('sh', '-c', 'echo $X', { X: '1' }),
   *  exec('pwd', [], undefined, { cwd: '/tmp', timeoutSecs: 30 }). */
  async exec(cmd: string, ...rest: (string | string[] | Record<string, string> | SimpleExecOptions | undefined)[]): Promise<ExecResult> {
    if (typeof cmd !== 'string' || !cmd) throw new InvalidOptionError('exec: the command must be a non-empty string');
    const { args, opts } = execCall(rest);
    if (this.delegate) return this.delegate.exec([cmd, ...args], opts);
    const box = await this.start();
    if (box.info().state !== 'running') await box.start(); // stopped by someone else meanwhile
    return box.exec([cmd, ...args], opts);
  }

  /** Starts a command and returns its streaming handle (stdout, stderr, stdin, wait, kill). */
  async spawn(argv: string[], opts?: ExecOptions): Promise<Execution> {
    if (this.delegate) throw new InvalidOptionError("SimpleBox.spawn is for this machine's boxes: on a server, use JsBoxlite's box.exec() for a streaming execution");
    return (await this.start()).spawn(argv, opts);
  }

  async copyIn(hostPath: string, boxPath: string): Promise<void> {
    if (this.delegate) return this.delegate.copyIn(hostPath, boxPath);
    await (await this.start()).copyIn(hostPath, boxPath);
  }

  async copyOut(boxPath: string, hostPath: string): Promise<void> {
    if (this.delegate) return this.delegate.copyOut(boxPath, hostPath);
    await (await this.start()).copyOut(boxPath, hostPath);
  }

  info(): SimpleBoxInfo {
    if (this.delegate) return this.delegate.info();
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
    if (this.delegate) {
      await this.delegate.start();
      return this.delegate.info();
    }
    await this.start();
    return this.info();
  }

  /** Its figures now; CPU % over the time since the last metrics() call (or since the box started). */
  async metrics(): Promise<SimpleBoxMetrics> {
    if (this.delegate) return this.delegate.metrics();
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

  /** Stops the box; with autoRemove (the default) a box this object made is removed too, and a later exec makes
   *  a new one. A box found by reuseExisting is only stopped. */
  async stop(): Promise<void> {
    if (this.delegate) return this.delegate.stop();
    if (this.starting) await this.starting.catch(() => {});
    const box = this.box;
    if (!box) return;
    if (this.autoRemove && this.made) {
      await box.remove({ force: true });
      this.box = null;
      this.starting = null;
    } else if (box.info().state === 'running' || box.info().state === 'paused') await box.stop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      if (!this.opts.detach) await this.stop();
    } finally {
      if (this.ownsRuntime) this.runtime?.close();
    }
  }
}
