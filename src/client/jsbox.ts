// BoxLite's box handle (JsBox): start, stop, info, exec → an Execution, metrics, copyIn/copyOut with BoxLite's
// copy options, snapshots, clone, export. Local boxes wrap the runtime's Box; remote ones call the server.
import * as fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { InvalidOptionError } from '../core/errors.js';
import type { Box } from '../runtime/runtime.js';
import type { BoxMetrics } from '../runtime/metrics.js';
import { copyFrom, copyInto, type CopyTarget } from '../runtime/copy.js';
import { LocalJsExecution, type JsExecution } from './execution.js';
import type { RemoteBoxes } from './remote.js';

export interface JsBoxInfo {
  id: string;
  name?: string;
  state: { status: string; running: boolean; pid?: number };
  createdAt: string;
  image: string;
  cpus: number;
  memoryMib: number;
  healthStatus: { state: 'None' | 'Starting' | 'Healthy' | 'Unhealthy'; failures: number; lastCheck?: string };
}

export interface JsBoxMetrics {
  commandsExecutedTotal: number;
  execErrorsTotal: number;
  bytesSentTotal: number;
  bytesReceivedTotal: number;
  totalCreateDurationMs?: number;
  guestBootDurationMs?: number;
  cpuPercent?: number;
  memoryBytes?: number;
  networkBytesSent?: number;
  networkBytesReceived?: number;
  stageBoxSpawnMs?: number;
}

export interface CopyOptions {
  recursive?: boolean;
  overwrite?: boolean;
  followSymlinks?: boolean;
  includeParent?: boolean;
}

export interface JsSnapshotInfo {
  id: string;
  boxId: string;
  name: string;
  createdAt: number;
  containerDiskBytes: number;
  sizeBytes: number;
}

/** BoxLite's status of a boxlite state. */
export function statusOf(state: string): string {
  return state === 'created' ? 'configured' : state === 'running' || state === 'paused' ? state : 'stopped';
}

/** BoxLite's copy options: the defaults are what boxlite's cp does; others are refused rather than ignored. */
function checkCopy(o: CopyOptions | null | undefined): void {
  if (o === null || o === undefined) return;
  if (typeof o !== 'object') throw new InvalidOptionError('copy options must be an object');
  const dflt: Record<string, boolean> = { recursive: true, overwrite: true, followSymlinks: false, includeParent: true };
  for (const [k, v] of Object.entries(o)) {
    if (!(k in dflt)) throw new InvalidOptionError(`copy option "${k}" is unknown (known: ${Object.keys(dflt).join(', ')})`);
    if (v !== undefined && v !== dflt[k]) throw new InvalidOptionError(`copy option ${k}: ${v} is not supported here (only ${dflt[k]}, as boxlite cp does)`);
  }
}

function metricsOf(m: BoxMetrics, before: BoxMetrics | undefined, startedAt?: string): JsBoxMetrics {
  const started = Date.parse(startedAt ?? '');
  const cpu = m.vmm ? (before?.vmm && m.at > before.at ? (m.vmm.cpuSeconds - before.vmm.cpuSeconds) / ((m.at - before.at) / 1000) : started ? m.vmm.cpuSeconds / ((m.at - started) / 1000) : undefined) : undefined;
  const s = m.lastStart;
  return {
    commandsExecutedTotal: m.execs.total,
    execErrorsTotal: m.execs.errors,
    bytesSentTotal: m.guest?.netTxBytes ?? 0,
    bytesReceivedTotal: m.guest?.netRxBytes ?? 0,
    ...(cpu !== undefined ? { cpuPercent: cpu * 100 } : {}),
    ...(m.guest ? { memoryBytes: m.guest.memUsedBytes, networkBytesSent: m.guest.netRxBytes, networkBytesReceived: m.guest.netTxBytes } : {}),
    ...(s ? { totalCreateDurationMs: s.totalMs, stageBoxSpawnMs: s.vmSpawnMs } : {}),
    ...(s?.kernelToInitMs !== undefined && s.initToAgentMs !== undefined ? { guestBootDurationMs: s.kernelToInitMs + s.initToAgentMs } : {}),
  };
}

export abstract class JsBox {
  abstract readonly id: string;
  abstract readonly name: string | null;
  abstract info(): JsBoxInfo;
  abstract start(): Promise<void>;
  abstract stop(): Promise<void>;
  abstract metrics(): Promise<JsBoxMetrics>;
  protected abstract spawn(argv: string[], o: { env?: Record<string, string>; tty: boolean; user?: string; timeoutMs?: number; cwd?: string }): Promise<JsExecution>;
  protected abstract target(): CopyTarget;
  abstract readonly snapshot: { create(name: string): Promise<JsSnapshotInfo>; list(): Promise<JsSnapshotInfo[]>; get(name: string): Promise<JsSnapshotInfo | null>; remove(name: string): Promise<void>; restore(name: string): Promise<void> };
  abstract cloneBox(options?: Record<string, never> | null, name?: string | null): Promise<JsBox>;
  abstract export(dest: string): Promise<string>;

  /** BoxLite's positional form: exec(command, args, env pairs, tty, user, timeoutSecs, workingDir). */
  async exec(command: string, args?: string[] | null, env?: [string, string][] | null, tty?: boolean | null, user?: string | null, timeoutSecs?: number | null, workingDir?: string | null): Promise<JsExecution> {
    if (typeof command !== 'string' || !command) throw new InvalidOptionError('exec: the command must be a non-empty string');
    if (args && (!Array.isArray(args) || args.some((a) => typeof a !== 'string'))) throw new InvalidOptionError('exec: args must be a list of strings');
    if (env && (!Array.isArray(env) || env.some((p) => !Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'string' || typeof p[1] !== 'string'))) throw new InvalidOptionError('exec: env must be a list of [name, value] pairs');
    if (timeoutSecs !== null && timeoutSecs !== undefined && !(timeoutSecs > 0)) throw new InvalidOptionError(`exec: timeoutSecs must be a positive number of seconds (got ${timeoutSecs})`);
    return this.spawn([command, ...(args ?? [])], {
      env: env ? Object.fromEntries(env) : undefined,
      tty: !!tty,
      user: user ?? undefined,
      timeoutMs: timeoutSecs ? Math.round(timeoutSecs * 1000) : undefined,
      cwd: workingDir ?? undefined,
    });
  }

  /** docker cp's rules: into containerDest when it is a folder, else as that name (a new folder holds the copy). */
  async copyIn(hostPath: string, containerDest: string, options?: CopyOptions | null): Promise<void> {
    checkCopy(options);
    return copyInto(this.target(), hostPath, containerDest);
  }

  async copyOut(containerSrc: string, hostDest: string, options?: CopyOptions | null): Promise<void> {
    checkCopy(options);
    return copyFrom(this.target(), containerSrc, hostDest);
  }
}

const snapInfo = (boxId: string, s: { name: string; createdAt: string }): JsSnapshotInfo => ({ id: `${boxId}@${s.name}`, boxId, name: s.name, createdAt: Math.floor(Date.parse(s.createdAt) / 1000), containerDiskBytes: 0, sizeBytes: 0 });

export class LocalJsBox extends JsBox {
  private last: BoxMetrics | undefined;
  constructor(readonly box: Box) {
    super();
  }
  get id(): string {
    return this.box.id;
  }
  get name(): string | null {
    return this.box.name;
  }
  info(): JsBoxInfo {
    const r = this.box.info();
    return {
      id: r.id, name: r.name, state: { status: statusOf(r.state), running: r.state === 'running', ...(r.pid ? { pid: r.pid } : {}) }, createdAt: r.createdAt,
      image: r.source.kind === 'image' ? r.source.reference : r.source.kind === 'dir' ? r.source.path : 'imported', cpus: r.options.cpus, memoryMib: r.options.memoryMib,
      healthStatus: { state: 'None', failures: 0 },
    };
  }
  async start(): Promise<void> {
    if (this.box.info().state !== 'running') await this.box.start();
  }
  async stop(): Promise<void> {
    const st = this.box.info().state;
    if (st === 'running' || st === 'paused') await this.box.stop();
  }
  async metrics(): Promise<JsBoxMetrics> {
    const m = await this.box.metrics();
    const r = metricsOf(m, this.last, this.box.info().startedAt);
    this.last = m;
    return r;
  }
  protected async spawn(argv: string[], o: { env?: Record<string, string>; tty: boolean; user?: string; timeoutMs?: number; cwd?: string }): Promise<JsExecution> {
    return new LocalJsExecution(await this.box.spawn(argv, { ...o, stdin: true }));
  }
  protected target(): CopyTarget {
    return { name: this.box.name, isDir: async (p) => (await this.box.exec(['/.boxlite/bin/busybox', 'test', '-d', p])).exitCode === 0, upload: (d, t) => this.box.uploadTar(d, t), download: async (p) => (await this.box.downloadTar(p)) as Readable };
  }
  get snapshot() {
    const s = this.box.snapshots;
    const id = this.box.id;
    return {
      create: async (name: string) => snapInfo(id, await s.create(name)),
      list: async () => (await s.list()).map((x) => snapInfo(id, x)),
      get: async (name: string) => {
        const x = (await s.list()).find((y) => y.name === name);
        return x ? snapInfo(id, x) : null;
      },
      remove: (name: string) => s.remove(name),
      restore: async (name: string) => void (await s.restore(name)),
    };
  }
  async cloneBox(_o?: Record<string, never> | null, name?: string | null): Promise<JsBox> {
    const [b] = await this.box.clone([name ?? `${this.box.name}-clone-${Date.now().toString(36)}`]);
    return new LocalJsBox(b);
  }
  async export(dest: string): Promise<string> {
    const file = fs.statSync(dest, { throwIfNoEntry: false })?.isDirectory() ? `${dest}/${this.box.name}.boxlite` : dest;
    await this.box.export(file);
    return file;
  }
}

export class RemoteJsBox extends JsBox {
  private last: any;
  constructor(
    private readonly remote: RemoteBoxes,
    json: any,
  ) {
    super();
    this.last = json;
  }
  get id(): string {
    return this.last.box_id;
  }
  get name(): string | null {
    return this.last.name ?? null;
  }
  /** As of the last answer from the server (each call on this handle refreshes it). */
  info(): JsBoxInfo {
    const j = this.last;
    return {
      id: j.box_id, name: j.name ?? undefined, state: { status: j.status, running: j.status === 'running', ...(j.pid ? { pid: j.pid } : {}) }, createdAt: j.created_at,
      image: j.image, cpus: j.cpus, memoryMib: j.memory_mib, healthStatus: { state: 'None', failures: 0 },
    };
  }
  async refresh(): Promise<JsBoxInfo> {
    this.last = (await this.remote.find(this.id)) ?? this.last;
    return this.info();
  }
  async start(): Promise<void> {
    this.last = await this.remote.start(this.id);
  }
  async stop(): Promise<void> {
    this.last = await this.remote.stop(this.id);
  }
  async metrics(): Promise<JsBoxMetrics> {
    const m = await this.remote.metrics(this.id);
    const t = m.boot_timing ?? {};
    const opt = (k: string, v: unknown) => (typeof v === 'number' ? { [k]: v } : {});
    return {
      commandsExecutedTotal: m.commands_executed_total, execErrorsTotal: m.exec_errors_total, bytesSentTotal: m.bytes_sent_total, bytesReceivedTotal: m.bytes_received_total,
      ...opt('cpuPercent', m.cpu_percent), ...opt('memoryBytes', m.memory_bytes), ...opt('networkBytesSent', m.network_bytes_sent), ...opt('networkBytesReceived', m.network_bytes_received),
      ...opt('totalCreateDurationMs', t.total_create_ms), ...opt('guestBootDurationMs', t.guest_boot_ms), ...opt('stageBoxSpawnMs', t.box_spawn_ms),
    };
  }
  protected spawn(argv: string[], o: { env?: Record<string, string>; tty: boolean; user?: string; timeoutMs?: number; cwd?: string }): Promise<JsExecution> {
    return this.remote.spawn(this.id, argv, o);
  }
  protected target(): CopyTarget {
    return this.remote.copyTarget(this.id, this.name ?? this.id);
  }
  get snapshot() {
    const c = this.remote.client;
    const base = `${c.box(this.id)}/snapshots`;
    const id = this.id;
    const conv = (s: any): JsSnapshotInfo => ({ id: s.id, boxId: s.box_id ?? id, name: s.name, createdAt: s.created_at, containerDiskBytes: s.container_disk_bytes, sizeBytes: s.size_bytes });
    return {
      create: async (name: string) => conv(await c.json('POST', base, { name })),
      list: async () => ((await c.json('GET', base)).snapshots as any[]).map(conv),
      get: async (name: string) => {
        const r = await c.request('GET', `${base}/${encodeURIComponent(name)}`, { ok: [404] });
        return r.status === 404 ? null : conv(await r.json());
      },
      remove: async (name: string) => void (await c.request('DELETE', `${base}/${encodeURIComponent(name)}`)),
      restore: async (name: string) => void (await c.request('POST', `${base}/${encodeURIComponent(name)}/restore`)),
    };
  }
  async cloneBox(_o?: Record<string, never> | null, name?: string | null): Promise<JsBox> {
    return new RemoteJsBox(this.remote, await this.remote.client.json('POST', `${this.remote.client.box(this.id)}/clone`, name ? { name } : {}));
  }
  async export(dest: string): Promise<string> {
    const file = fs.statSync(dest, { throwIfNoEntry: false })?.isDirectory() ? `${dest}/${this.name ?? this.id}.boxlite` : dest;
    const r = await this.remote.client.request('POST', `${this.remote.client.box(this.id)}/export`, { json: {} });
    await pipeline(Readable.fromWeb(r.body as never), fs.createWriteStream(file, { mode: 0o600 }));
    return file;
  }
}
