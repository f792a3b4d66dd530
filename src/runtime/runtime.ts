// The Runtime: boxes over the home folder, and Box, a handle on one of them. No daemon: every operation reads the
// records, takes the locks it needs, and talks to the VM through its sockets; the VM process itself outlives the
// process that started it. This file only wires the modules that do the work (create, boot, lifecycle, exec,
// snapshots, clone, transfer, copy) to one context; none of them imports it.
import * as os from 'node:os';
import pLimit from 'p-limit';
import { BoxStateError } from '../core/errors.js';
import { Home } from './home.js';
import { RecordStore } from './records.js';
import { Images, type PruneResult, type RegistryOptions } from './images/index.js';
import { pruneTemplates } from './templates.js';
import { IdlePauser } from './idle.js';
export { IdlePauser } from './idle.js';
import { Volumes } from './volumes.js';
import { dropClient, type BoxHooks, type RuntimeContext } from './context.js';
import { boxMetrics, type BoxMetrics } from './metrics.js';
import { execCounts } from './activity.js';
import { boxStatus, type BoxStatus } from './status.js';
import { createBox } from './create.js';
import { startBox, type StartOptions } from './boot.js';
import { installGuestCa } from './guest-ca.js';
import { pauseBox } from './memory.js';
import { growVolume, reconfigureBox, removeBox, renameBox, resizeBox, stopBox, updateLabel, type StopOptions } from './lifecycle.js';
import { attachTo, downloadTar, execIn, networkStats, processState, spawnIn, startDetached, uploadTar, type ExecInput, type NetworkStats } from './exec.js';
import { Snapshots } from './snapshots.js';
import { cloneBox, type CloneOptions } from './clone.js';
import { commitBox, type CommitOptions, type CommitResult } from './commit.js';
import { pushImage, type PushOptions, type PushResult } from './images/push.js';
import { exportBox, importBox, type ImportOptions } from './transfer.js';
import { copyIn, copyOut } from './copy.js';
import type { CreateOptions, Reconfigure } from './options.js';
import type { ExecOptions, ExecResult, Execution } from './execution.js';
import type { BoxRecord, Label } from './types.js';
import type { PortMapping } from '../core/network.js';
import type { VmEngine } from '../vmm/engine.js';
import type { AgentClient } from '../vmm/agent-client.js';
import { QemuEngine } from '../vmm/qemu.js';
import { jailWanted } from '../vmm/jail.js';
import { chooseAccel, parseAccel, probeHost, type AccelChoice, type AccelRequest } from '../vmm/accel.js';

export { DEFAULTS, MIN_MEMORY_MIB } from '../core/defaults.js';
export type { BoxStatus } from './status.js';
export type { StopOptions } from './lifecycle.js';
export type { StartOptions } from './boot.js';
export type { NetworkStats } from './exec.js';
import { boxEvents, eventsSince, type EgressEvent, type EventsOptions } from './egress-events.js';
export type { EgressEvent, EventsOptions } from './egress-events.js';
export type { CreateOptions, Reconfigure } from './options.js';

/** Policy run around box operations, whoever calls them: see reconciler/hooks.ts for a project's. */
export interface RuntimeHooks {
  afterStart?(rt: Runtime, id: string): Promise<void>;
  beforeRestore?(rt: Runtime, id: string, snapshot: string): Promise<void>;
}

export interface RuntimeOptions {
  home?: string;
  accel?: AccelRequest;
  engine?: VmEngine;
  /** Where one-line notices go (the software-emulation note); default stderr. */
  say?: (msg: string) => void;
  /** Registry credentials and plain-HTTP registries for pulls. */
  registry?: RegistryOptions;
  hooks?: RuntimeHooks;
  /** Run each box's VMM jailed (the default; BOXLITE_JAIL=off turns it off). Off gives up the host boundary's
   *  last layer: QEMU then runs as the caller with everything the caller can reach. */
  jail?: boolean;
}

export class Runtime {
  readonly home: Home;
  readonly engine: VmEngine;
  readonly records: RecordStore;
  readonly images: Images;
  readonly volumes: Volumes;
  private readonly ctx: RuntimeContext;
  /** Maps a name given by a person to a box's global name first (the CLI's project context: "web" → "demo.web"). */
  nameResolver?: (ref: string) => string | undefined;

  constructor(opts: RuntimeOptions = {}) {
    const say = opts.say ?? ((m: string) => process.stderr.write(m + '\n'));
    this.home = new Home(opts.home);
    this.home.secure();
    this.records = new RecordStore(this.home, say);
    this.images = new Images(this.home, this.records, opts.registry);
    this.volumes = new Volumes(this.home, this.records);
    this.engine = opts.engine ?? new QemuEngine();
    const accelRequest = opts.accel ?? parseAccel(process.env.BOXLITE_ACCEL);
    const hooks: BoxHooks = {};
    const h = opts.hooks;
    if (h?.afterStart) hooks.afterStart = (id) => h.afterStart!(this, id);
    if (h?.beforeRestore) hooks.beforeRestore = (id, snapshot) => h.beforeRestore!(this, id, snapshot);
    this.ctx = {
      home: this.home,
      records: this.records,
      engine: this.engine,
      images: this.images,
      volumes: this.volumes,
      say,
      clients: new Map<string, AgentClient>(),
      hooks,
      jail: opts.jail ?? jailWanted(),
      accel: () => chooseAccel(accelRequest, probeHost()),
    };
  }

  accel(): AccelChoice {
    return this.ctx.accel();
  }

  /** The state as it is now: a record saying "running" whose VM is gone is reported exited, with the reason. */
  status(rec: BoxRecord): BoxStatus {
    return boxStatus(this.ctx, rec);
  }

  list(): (BoxRecord & BoxStatus)[] {
    return this.records.list().map((r) => ({ ...r, ...this.status(r) }));
  }

  get(ref: string): Box {
    return new Box(this, this.records.find(this.nameResolver?.(ref) ?? ref).id);
  }

  record(id: string): BoxRecord {
    return this.records.get(id);
  }

  /** Records a new box. Lazy: its disk is built and its VM booted by the first start. */
  async create(opts: CreateOptions): Promise<Box> {
    return new Box(this, (await createBox(this.ctx, opts)).id);
  }

  /** Boots a box, or continues a paused one from its saved memory (cold: boot it from its disk instead). */
  async start(id: string, opts: StartOptions = {}): Promise<void> {
    await startBox(this.ctx, id, opts);
    await installGuestCa(this.ctx, id);
  }

  /** Saves a running box's memory and ends its VM; start (or an exec) continues it where it was. */
  pause(id: string): Promise<void> {
    return pauseBox(this.ctx, id);
  }

  stop(id: string, opts: StopOptions = {}): Promise<{ forced: boolean }> {
    return stopBox(this.ctx, id, opts);
  }

  remove(id: string, opts: { force?: boolean } = {}): Promise<void> {
    return removeBox(this.ctx, id, opts);
  }

  /** Changes a box's settings. Boot-time ones (cpus, memory, network, ports, dns, volumes) need it stopped. */
  async reconfigure(id: string, change: Reconfigure): Promise<void> {
    await reconfigureBox(this.ctx, id, change);
    // Secrets given to a running box: its guest trusts the box's CA from now on.
    if (change.secrets?.length && this.status(this.record(id)).state === 'running') await installGuestCa(this.ctx, id);
  }

  rename(id: string, name: string): Promise<void> {
    return renameBox(this.ctx, id, name);
  }

  /** Updates the label kept with a box for its maker; the runtime stores it and reads none of it. */
  updateLabel(id: string, change: (l: Label | undefined) => Label | undefined): Promise<void> {
    return updateLabel(this.ctx, id, change);
  }

  /** Grows a stopped box's disk; the guest grows its file system to match at the next boot. */
  resize(id: string, diskSizeMib: number): Promise<void> {
    return resizeBox(this.ctx, id, diskSizeMib);
  }

  /** Grows a named volume no running box mounts. */
  growVolume(name: string, sizeMib: number): Promise<void> {
    return growVolume(this.ctx, name, sizeMib);
  }

  spawn(id: string, argv: string[], opts: ExecOptions = {}): Promise<Execution> {
    return spawnIn(this.ctx, id, argv, opts);
  }

  /** Starts a process and leaves it running in the box, unwatched (its exec id can be attached to later). */
  metrics(id: string): Promise<BoxMetrics> {
    return boxMetrics(this.ctx, id);
  }

  /** Execs started in the box and those that could not start, since it was made (no agent call). */
  execCounts(id: string): { total: number; errors: number } {
    return execCounts(this.ctx, id);
  }

  startDetached(id: string, argv: string[], opts: ExecOptions = {}): Promise<{ execId: string; pid: number }> {
    return startDetached(this.ctx, id, argv, opts);
  }

  /** Whether a process started in the box is still running; its exit status when it is not. */
  processState(id: string, execId: string): Promise<{ running: boolean; exitCode?: number }> {
    return processState(this.ctx, id, execId);
  }

  /** Attaches to a process started earlier (by this or another process) by its exec id. */
  attach(id: string, execId: string): Promise<Execution> {
    return attachTo(this.ctx, id, execId);
  }

  exec(id: string, argv: string[], opts: ExecInput = {}): Promise<ExecResult> {
    return execIn(this.ctx, id, argv, opts);
  }

  uploadTar(id: string, dest: string, tarStream: NodeJS.ReadableStream): Promise<void> {
    return uploadTar(this.ctx, id, dest, tarStream);
  }

  downloadTar(id: string, boxPath: string): Promise<NodeJS.ReadableStream> {
    return downloadTar(this.ctx, id, boxPath);
  }

  networkStats(id: string): Promise<NetworkStats[]> {
    return networkStats(this.ctx, id);
  }

  snapshots(id: string): Snapshots {
    return new Snapshots(this.ctx, id);
  }

  /** New boxes sharing a box's disk copy-on-write (at a snapshot with { snapshot }). */
  async clone(id: string, names: string[], opts: CloneOptions = {}): Promise<Box[]> {
    return (await cloneBox(this.ctx, id, names, opts)).map((r) => new Box(this, r.id));
  }

  /** The box's disk as an image in the store, named reference (a running box is frozen for that instant). */
  commit(id: string, reference: string, opts: CommitOptions = {}): Promise<CommitResult> {
    return commitBox(this.ctx, id, reference, opts);
  }

  /** Pushes a stored image to the registry its reference names (with the credentials pull uses). */
  push(reference: string, opts: PushOptions = {}): Promise<PushResult> {
    return pushImage(this.images, reference, opts);
  }

  /** New boxes continuing a running box's processes from one instant (its memory and disk), each on its own; they
   *  are started unless { start: false }, a few at a time. */
  async fork(id: string, names: string[], opts: { start?: boolean } = {}): Promise<Box[]> {
    const boxes = (await cloneBox(this.ctx, id, names, { memory: true })).map((r) => new Box(this, r.id));
    if (opts.start !== false) {
      const limit = pLimit(Math.max(1, os.cpus().length));
      await Promise.all(boxes.map((b) => limit(() => b.start())));
    }
    return boxes;
  }

  /** What pauses idle boxes and wakes them on a connection (see idle.ts); `up --watch` drives one. */
  idlePauser(say: (line: string) => void): IdlePauser {
    return new IdlePauser(this.ctx, say);
  }

  /** Pauses the given boxes once idle for afterMs (no exec, no network traffic), looking every pollMs, and wakes
   *  them on their next use, for as long as this process runs and until stop(). */
  pauseWhenIdle(opts: { afterMs: number; boxes: string[]; pollMs?: number; say?: (line: string) => void }): { stop: () => Promise<void> } {
    const pauser = new IdlePauser(this.ctx, opts.say ?? this.ctx.say);
    const boxes = opts.boxes.map((ref) => this.get(ref)).map((b) => ({ id: b.id, name: b.name, afterMs: opts.afterMs }));
    let stopped = false;
    let timer: NodeJS.Timeout | null = null;
    let running: Promise<void> = Promise.resolve();
    const tick = () => {
      running = pauser.sweep(boxes).catch((e) => (opts.say ?? this.ctx.say)(`boxlite: idle pause: ${(e as Error).message}`)).finally(() => {
        if (!stopped) timer = setTimeout(tick, opts.pollMs ?? 5000);
      });
    };
    timer = setTimeout(tick, opts.pollMs ?? 5000);
    return {
      stop: async () => {
        stopped = true;
        if (timer) clearTimeout(timer);
        await running;
        await pauser.stop();
      },
    };
  }

  /** images.prune, then the warm-start templates of bases that went (all templates with all), and what they kept. */
  async pruneImages(opts: { all?: boolean } = {}): Promise<PruneResult & { templates: number }> {
    const r = await this.images.prune(opts);
    return { ...r, templates: await pruneTemplates(this.ctx, !!opts.all) };
  }

  /** Writes a stopped box (options and disk, checksummed) to one archive. */
  exportBox(id: string, file: string): Promise<void> {
    return exportBox(this.ctx, id, file);
  }

  /** Makes a box from an archive written by exportBox; notes say what of the archive's options was dropped
   *  (host folders, named volumes, fixed host ports: give them again in opts). */
  async importBox(file: string, opts: ImportOptions = {}): Promise<Box & { notes: string[] }> {
    const r = await importBox(this.ctx, file, opts);
    return Object.assign(new Box(this, r.record.id), { notes: r.notes });
  }

  copyIn(id: string, hostPath: string, boxPath: string): Promise<void> {
    return copyIn(this.ctx, id, hostPath, boxPath);
  }

  copyOut(id: string, boxPath: string, hostPath: string): Promise<void> {
    return copyOut(this.ctx, id, boxPath, hostPath);
  }

  /** Closes this process's agent connections; boxes keep running. */
  close(): void {
    for (const id of [...this.ctx.clients.keys()]) dropClient(this.ctx, id);
  }
}

/** A handle on one box of a runtime. */
export class Box {
  constructor(
    readonly runtime: Runtime,
    readonly id: string,
  ) {}
  get name(): string {
    return this.runtime.record(this.id).name;
  }
  info(): BoxRecord & BoxStatus {
    const r = this.runtime.record(this.id);
    return { ...r, ...this.runtime.status(r) };
  }
  start(opts?: StartOptions): Promise<void> {
    return this.runtime.start(this.id, opts);
  }
  /** Saves its memory and ends its VM: no CPU, no host memory until resume (or the next exec). */
  pause(): Promise<void> {
    return this.runtime.pause(this.id);
  }
  /** Continues a paused box where it was. */
  resume(): Promise<void> {
    const st = this.info().state;
    if (st !== 'paused') return Promise.reject(new BoxStateError(`box ${this.name} is not paused (it is ${st}): start it instead`));
    return this.runtime.start(this.id);
  }
  stop(opts?: StopOptions): Promise<{ forced: boolean }> {
    return this.runtime.stop(this.id, opts);
  }
  async restart(opts?: StopOptions): Promise<void> {
    await this.stop(opts);
    await this.start();
  }
  remove(opts?: { force?: boolean }): Promise<void> {
    return this.runtime.remove(this.id, opts);
  }
  exec(argv: string[], opts?: ExecInput): Promise<ExecResult> {
    return this.runtime.exec(this.id, argv, opts);
  }
  spawn(argv: string[], opts?: ExecOptions): Promise<Execution> {
    return this.runtime.spawn(this.id, argv, opts);
  }
  /** Starts a command and leaves it running (docker exec -d): its output is discarded; attach(execId) and wait
   *  for its exit status. */
  spawnDetached(argv: string[], opts?: ExecOptions): Promise<{ execId: string; pid: number }> {
    return this.runtime.startDetached(this.id, argv, opts);
  }

  attach(execId: string): Promise<Execution> {
    return this.runtime.attach(this.id, execId);
  }
  uploadTar(dest: string, tarStream: NodeJS.ReadableStream): Promise<void> {
    return this.runtime.uploadTar(this.id, dest, tarStream);
  }
  downloadTar(boxPath: string): Promise<NodeJS.ReadableStream> {
    return this.runtime.downloadTar(this.id, boxPath);
  }
  consolePath(): string {
    return this.runtime.engine.consolePath(this.runtime.home.boxDir(this.id));
  }
  /** The box's log on the host: what its declared command printed, each line stamped (readable in any state). */
  logPath(): string {
    return this.runtime.engine.logPath(this.runtime.home.boxDir(this.id));
  }
  /** What its outbound policy denied (connections, datagrams, DNS names); with follow, also what comes next. */
  events(opts?: EventsOptions): AsyncGenerator<EgressEvent> {
    return boxEvents(this.runtime.home.boxDir(this.id), opts);
  }
  /** Denials since a cursor (-1: none, only the cursor of now), for pollers such as `up --watch`. */
  eventsSince(cursor: number): { events: EgressEvent[]; cursor: number } {
    const dir = this.runtime.home.boxDir(this.id);
    return cursor < 0 ? { events: [], cursor: eventsSince(dir, Number.MAX_SAFE_INTEGER).cursor } : eventsSince(dir, cursor);
  }
  /** Copies a host file or folder into the box (into boxPath when it is a folder, else as boxPath). */
  copyIn(hostPath: string, boxPath: string): Promise<void> {
    return this.runtime.copyIn(this.id, hostPath, boxPath);
  }
  /** Copies a file or folder of the box to the host (into hostPath when it is a folder, else as hostPath). */
  copyOut(boxPath: string, hostPath: string): Promise<void> {
    return this.runtime.copyOut(this.id, boxPath, hostPath);
  }
  /** New boxes sharing this one's disk copy-on-write (at a snapshot with { snapshot }). */
  clone(names: string | string[], opts: CloneOptions = {}): Promise<Box[]> {
    return this.runtime.clone(this.id, Array.isArray(names) ? names : [names], opts);
  }
  /** This box's disk as an image named reference: its image's layers and one of what it changed. */
  commit(reference: string, opts: CommitOptions = {}): Promise<CommitResult> {
    return this.runtime.commit(this.id, reference, opts);
  }
  /** New boxes that continue this running box's processes from this instant (see Runtime.fork). */
  fork(names: string | string[], opts: { start?: boolean } = {}): Promise<Box[]> {
    return this.runtime.fork(this.id, Array.isArray(names) ? names : [names], opts);
  }
  resize(diskSizeMib: number): Promise<void> {
    return this.runtime.resize(this.id, diskSizeMib);
  }
  /** Snapshots of the box's disk: create, list, restore, remove. */
  get snapshots(): Snapshots {
    return this.runtime.snapshots(this.id);
  }
  /** Published ports, with the host ports chosen at the last start. */
  ports(): PortMapping[] {
    const r = this.runtime.record(this.id);
    return r.ports ?? r.options.ports;
  }
  /** CPU and memory of its VMM, the guest's memory, processes, disk and network counters, its exec counts and
   *  the stages of its last start. */
  metrics(): Promise<BoxMetrics> {
    return this.runtime.metrics(this.id);
  }

  networkStats(): Promise<NetworkStats[]> {
    return this.runtime.networkStats(this.id);
  }
  /** Writes the stopped box to an archive (boxlite export). */
  export(file: string): Promise<void> {
    return this.runtime.exportBox(this.id, file);
  }
}
