// The Runtime: boxes over the home folder. No daemon: every operation reads the records, takes the locks it
// needs, and talks to the VM through its sockets; the VM process itself outlives the process that started it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type * as grpc from '@grpc/grpc-js';
import { Home } from './home.js';
import { loadAssets } from './assets.js';
// The agent client (grpc-js, protobufjs) is loaded when a box is first reached: commands that only read
// records, such as a `boxlite up` with nothing to do, start faster without it.
import type { AgentClient } from './agent-client.js';
import { AGENT_PORTS, CONSOLE_INIT_STARTED, CONSOLE_AGENT_EXITED, CONSOLE_CLEAN_SHUTDOWN, CONSOLE_ERROR_MARK } from './protocol.js';
import { buildDisk, isOciLayout, resolveDir, type Source } from './rootfs.js';
import { Images, createOverlay, type LayerProgress, type RegistryOptions } from './images/index.js';
import { findRecord, listRecords, readRecord, writeRecord, type BoxOptions, type BoxRecord, type BoxState, type BindMount, type ExitInfo, type LanConfig, type ProjectLabel } from './records.js';
import { Volumes, type VolumeMount } from './volumes.js';
import { BootError, BoxExistsError, BoxStateError, ExecError, ImageError, InvalidOptionError, QemuMissingError, TimeoutError } from './errors.js';
import { Execution, signalExitCode, type ExecOptions, type ExecResult } from './execution.js';
import type { VmEngine } from '../vmm/engine.js';
import { QemuEngine, waitGone } from '../vmm/qemu.js';
import { chooseAccel, noteAccel, parseAccel, probeHost, type AccelChoice, type AccelRequest } from '../vmm/accel.js';
import { passtPid, passtSocket, startPasst, stopPasst } from '../vmm/passt.js';
import { checkPorts, formatPort, GUEST_NET, parseDns, parsePort, type NetworkMode, type PortMapping } from './network.js';
import { reservePorts } from './ports.js';
import { relayPid, startRelay, stopRelay } from './udp-relay.js';
import { copyIn, copyOut } from './copy.js';
import { cloneBox, recoverFreeze, type CloneOptions } from './clone.js';
import { collectLayers } from './layers.js';
import { shareSocket, startShare, stopShares } from '../vmm/virtiofs.js';
import { Snapshots } from './snapshots.js';
import { ensureDir, tailLines } from '../util/fs.js';
import { run } from '../util/exec.js';
import { acquireLock, tryLock, withLock } from '../util/lock.js';

export { DEFAULTS, MIN_MEMORY_MIB } from './defaults.js';
import { DEFAULTS, MIN_MEMORY_MIB } from './defaults.js';
const GRPC_FAILED_PRECONDITION = 9;
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

export interface RuntimeOptions {
  home?: string;
  accel?: AccelRequest;
  engine?: VmEngine;
  /** Where one-line notices go (the software-emulation note); default stderr. */
  say?: (msg: string) => void;
  /** Registry credentials and plain-HTTP registries for pulls. */
  registry?: RegistryOptions;
}

export interface CreateOptions {
  /** An image reference (python:3.12-slim, ghcr.io/org/tool@sha256:…), pulled when it is not stored yet. */
  image?: string;
  /** A root filesystem folder or an OCI image layout folder. */
  rootfs?: string;
  /** When to pull the image: when it is missing from the store (default), always, or never. */
  pull?: 'missing' | 'always' | 'never';
  /** Progress of each layer while an image is pulled. */
  onPullProgress?: (p: LayerProgress) => void;
  /** default: outbound NAT with DNS, published ports; none: loopback only. */
  network?: NetworkMode;
  /** Forwards from the host: "8080:80", "127.0.0.1:5353:53/udp", "80" (host port chosen at start). */
  ports?: (string | PortMapping)[];
  /** DNS servers for the box; default: the host's resolver, through the network helper. */
  dns?: string[];
  name?: string;
  cpus?: number;
  memoryMib?: number;
  diskSizeMib?: number;
  env?: Record<string, string>;
  workingDir?: string;
  user?: string;
  /** Named volumes to mount ('boxlite volume create', or a project's volumes). */
  volumes?: VolumeMount[];
  /** The guest's host name; default the box's name. */
  hostname?: string;
  /** A NIC on a project's private LAN (null removes it). */
  lan?: LanConfig | null;
  /** Host folders and files to mount: { hostPath, target, readOnly }. */
  binds?: BindMount[];
  /** Set by the reconciler for a box that belongs to a project. */
  project?: ProjectLabel;
  autoRemove?: boolean;
}

/** What can change on an existing box: boot-time settings only while it is stopped. */
export type Reconfigure = Partial<Pick<CreateOptions, 'cpus' | 'memoryMib' | 'network' | 'ports' | 'dns' | 'volumes' | 'env' | 'workingDir' | 'user' | 'lan' | 'binds'>>;
const LIVE_FIELDS = new Set(['env', 'workingDir', 'user']);

export interface BoxStatus {
  state: BoxState;
  exit?: ExitInfo;
  pid?: number;
  /** For a running box with a network: degraded when its network helper is gone (restart the box). */
  network?: 'ok' | 'degraded' | 'none';
}

export interface NetworkStats {
  name: string;
  address: string;
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
}

export interface StopOptions {
  /** How long the guest gets to shut down before the VM is ended by force. */
  timeoutMs?: number;
}

/** A kernel reaches init in about 1 s under TCG; one that has not after this long has stalled. */
const initStallMs = (accel: string) => Number(process.env.BOXLITE_INIT_STALL_MS) || (accel === 'kvm' ? 10_000 : 30_000);
class InitStalled extends Error {}
const bootTimeoutMs = (accel: string) => Number(process.env.BOXLITE_BOOT_TIMEOUT_MS) || (accel === 'kvm' ? 30_000 : 120_000);

export class Runtime {
  readonly home: Home;
  readonly engine: VmEngine;
  private readonly accelRequest: AccelRequest;
  private readonly say: (m: string) => void;
  private clients = new Map<string, AgentClient>();
  readonly images: Images;
  readonly volumes: Volumes;

  constructor(opts: RuntimeOptions = {}) {
    this.home = new Home(opts.home);
    this.images = new Images(this.home, opts.registry);
    this.volumes = new Volumes(this.home);
    this.engine = opts.engine ?? new QemuEngine();
    this.accelRequest = opts.accel ?? parseAccel(process.env.BOXLITE_ACCEL);
    this.say = opts.say ?? ((m) => process.stderr.write(m + '\n'));
  }

  accel(): AccelChoice {
    return chooseAccel(this.accelRequest, probeHost());
  }

  // ---- records and state ------------------------------------------------------------------------------------

  private boxLock(id: string): string {
    return path.join(this.home.boxDir(id), 'lock');
  }

  /** The state as it is now: a record saying "running" whose VM is gone is reported exited, with the reason. */
  status(rec: BoxRecord): BoxStatus {
    if (rec.state !== 'running') return { state: rec.state, exit: rec.exit };
    const vm = this.engine.status(this.home.boxDir(rec.id));
    if (vm.kind === 'running') {
      const dir = this.home.boxDir(rec.id);
      const udp = (rec.ports ?? []).some((p) => p.protocol === 'udp');
      const network = rec.options.network === 'none' ? 'none' : passtPid(dir) && (!udp || relayPid(dir)) ? 'ok' : 'degraded';
      return { state: 'running', pid: vm.pid, network };
    }
    return { state: 'exited', exit: this.explainExit(rec, vm) };
  }

  private bootConsole(id: string, lines = 200): string[] {
    const all = tailLines(this.engine.consolePath(this.home.boxDir(id)), lines);
    const start = all.map((l) => l.startsWith('--- boxlite: boot at')).lastIndexOf(true);
    return start >= 0 ? all.slice(start + 1) : all;
  }

  private explainExit(rec: BoxRecord, vm: ReturnType<VmEngine['status']>): ExitInfo {
    const at = new Date().toISOString();
    const con = this.bootConsole(rec.id);
    if (vm.kind === 'ended' && vm.signal) return { reason: 'killed', detail: `the VM process was killed by ${vm.signal}`, at };
    // QEMU catches SIGTERM/SIGINT/SIGHUP, says so in its log and exits 0.
    const term = tailLines(path.join(this.home.boxDir(rec.id), 'qemu.log'), 5).find((l) => l.includes('terminating on signal'));
    if (term) return { reason: 'killed', detail: `the VM process was ${term.slice(term.indexOf('terminating'))}`, at };
    if (vm.kind === 'ended' && vm.code !== 0) {
      const log = tailLines(path.join(this.home.boxDir(rec.id), 'qemu.log'), 3).join(' ');
      return { reason: 'crash', detail: `QEMU exited with status ${vm.code}${log ? `: ${log}` : ''}`, at };
    }
    // The guest's own account of why it went down, when it gave one.
    const panic = con.find((l) => l.includes('Kernel panic'));
    if (panic) return { reason: 'crash', detail: `guest kernel panic: ${panic.replace(/^\[[^\]]*\]\s*/, '')}`, at };
    const agent = con.filter((l) => l.startsWith(CONSOLE_AGENT_EXITED)).at(-1);
    if (agent) return { reason: 'crash', detail: `the guest agent died (${agent.slice('boxlite-init: '.length)})`, at };
    const err = con.filter((l) => l.startsWith(CONSOLE_ERROR_MARK)).at(-1);
    if (err) return { reason: 'crash', detail: err.slice(CONSOLE_ERROR_MARK.length), at };
    if (con.some((l) => l.startsWith(CONSOLE_CLEAN_SHUTDOWN))) return { reason: 'exit', detail: 'the box shut down', at };
    if (vm.kind === 'gone') return { reason: 'killed', detail: 'the VM process ended without recording why', at };
    return { reason: 'exit', detail: 'the guest powered off', at };
  }

  list(): (BoxRecord & BoxStatus)[] {
    return listRecords(this.home).map((r) => ({ ...r, ...this.status(r) }));
  }

  /** Maps a name given by a person to a box's global name first (the CLI's project context: "web" → "demo.web"). */
  nameResolver?: (ref: string) => string | undefined;

  get(ref: string): Box {
    return new Box(this, findRecord(this.home, this.nameResolver?.(ref) ?? ref).id);
  }

  record(id: string): BoxRecord {
    const r = readRecord(this.home, id);
    if (!r) throw new BoxStateError(`box ${id} was removed`);
    return r;
  }

  // ---- lifecycle ----------------------------------------------------------------------------------------------

  /** Records a new box. Lazy: its disk is built and its VM booted by the first start. */
  async create(opts: CreateOptions): Promise<Box> {
    const options = validateOptions(opts);
    const source = await this.resolveSource(opts);
    if (source.kind === 'image' && options.diskSizeMib < source.baseSizeMib) {
      throw new InvalidOptionError(`disk size ${options.diskSizeMib} MiB is smaller than image ${source.reference} (${source.baseSizeMib} MiB): give a disk of at least ${source.baseSizeMib} MiB`);
    }
    if (opts.name !== undefined && !NAME_RE.test(opts.name)) {
      throw new InvalidOptionError(`box name "${opts.name}" is invalid: use letters, digits, '_', '.', '-' (up to 63, starting with a letter or digit)`);
    }
    for (const m of options.volumes ?? []) this.volumes.get(m.volume);
    ensureDir(this.home.boxesDir);
    return withLock(this.home.registryLock, `the box registry in ${this.home.root}`, async () => {
      await this.sweepInterrupted();
      const id = randomBytes(6).toString('hex');
      const name = opts.name ?? `box-${id.slice(0, 6)}`;
      const taken = listRecords(this.home).find((r) => r.name === name);
      if (taken) throw new BoxExistsError(`a box named "${name}" already exists (id ${taken.id}): choose another name or remove it with 'boxlite rm ${name}'`);
      ensureDir(this.home.boxDir(id));
      const rec: BoxRecord = { id, name, createdAt: new Date().toISOString(), source, options, state: 'created', autoRemove: opts.autoRemove, ...(opts.project ? { project: opts.project } : {}) };
      try {
        if (source.kind === 'image') await this.ensureDisk(rec); // a thin overlay: no image data is copied
      } catch (e) {
        fs.rmSync(this.home.boxDir(id), { recursive: true, force: true });
        throw e;
      }
      writeRecord(this.home, rec); // the record last: a folder without one is an interrupted create
      return new Box(this, id);
    });
  }

  /** Box folders without a record are creates or removes that were killed half way; under the registry lock
   *  none is in progress, so they are deleted (with any VM or helper a killed start left running in them). */
  private async sweepInterrupted(): Promise<void> {
    let names: string[] = [];
    try {
      names = fs.readdirSync(this.home.boxesDir);
    } catch {
      return;
    }
    for (const n of names) {
      const dir = this.home.boxDir(n);
      if (n.startsWith('.import-')) {
        // An import stages here, holding the folder's lock; a free lock means the import was killed.
        const l = fs.existsSync(path.join(dir, '.lock')) ? tryLock(path.join(dir, '.lock')) : null;
        const lockless = !fs.existsSync(path.join(dir, '.lock')) && Date.now() - fs.statSync(dir).mtimeMs > 60_000;
        if (l || lockless) fs.rmSync(dir, { recursive: true, force: true });
        l?.release();
        continue;
      }
      if (n.startsWith('.') || fs.existsSync(path.join(dir, 'box.json'))) continue;
      if (this.engine.status(dir).kind === 'running') await this.engine.kill(dir);
      stopPasst(dir);
      stopRelay(dir);
      stopShares(dir);
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    }
  }

  /** A folder stays a folder; an image (by reference, or an OCI layout folder) goes through the store and gets
   *  its shared base built, so that starting the box later only adds a thin overlay. */
  private async resolveSource(opts: CreateOptions): Promise<Source> {
    if ((opts.image === undefined) === (opts.rootfs === undefined)) {
      throw new InvalidOptionError('give a box either an image (a reference such as debian:12) or a rootfs (a folder), not both or neither');
    }
    const looksLikePath = (s: string) => /^(\/|\.\.?(\/|$)|~)/.test(s);
    const local = opts.rootfs ?? (looksLikePath(opts.image!) ? opts.image! : undefined);
    let rec;
    if (local !== undefined) {
      const abs = path.resolve(local);
      if (!isOciLayout(abs)) return resolveDir(abs);
      rec = await this.images.loadLayout(abs);
    } else {
      const ref = opts.image!;
      const pullOpts = { onLayer: opts.onPullProgress };
      if (opts.pull === 'always') rec = await this.images.pull(ref, pullOpts);
      else if (opts.pull === 'never') rec = this.images.get(ref);
      else rec = await this.images.ensure(ref, pullOpts);
    }
    if (rec.platform !== 'linux/amd64') {
      throw new ImageError(`image ${opts.image ?? opts.rootfs} is for ${rec.platform}, but boxes run linux/amd64: pull the linux/amd64 variant (--platform linux/amd64)`);
    }
    const base = await this.images.base(rec, this.say);
    return {
      kind: 'image',
      reference: local !== undefined ? path.resolve(local) : opts.image!,
      imageId: rec.id,
      manifestDigest: rec.manifestDigest,
      base: base.path,
      baseSizeMib: base.sizeMib,
      config: rec.config,
    };
  }

  /** Runs fn holding the box's lock (start, stop, snapshots: one at a time per box, across processes). */
  withBoxLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return withLock(this.boxLock(id), `box ${this.record(id).name}`, fn);
  }

  /** The box's disk, made if it is not there yet. */
  ensureDiskOf(rec: BoxRecord): Promise<{ path: string; format: 'raw' | 'qcow2' }> {
    return this.ensureDisk(rec);
  }

  /** The box's disk: always a qcow2 (snapshots live in it), over the image's shared base, or for a folder source
   *  over a full ext4 copy of the folder made for this box. */
  private async ensureDisk(rec: BoxRecord): Promise<{ path: string; format: 'raw' | 'qcow2' }> {
    const dir = this.home.boxDir(rec.id);
    const disk = path.join(dir, 'disk.qcow2');
    const vm = this.engine.status(dir);
    await recoverFreeze(dir, vm.kind === 'running' ? vm.pid : undefined); // a clone's live freeze a killed CLI left
    if (rec.source.kind === 'dir') {
      if (!fs.existsSync(disk)) {
        const base = path.join(dir, 'base.img');
        if (!fs.existsSync(base)) await buildDisk(resolveDir(rec.source.path), base, rec.options.diskSizeMib); // the folder may have gone since create
        await createOverlay({ path: base, sizeMib: rec.options.diskSizeMib }, disk, rec.options.diskSizeMib);
      }
      return { path: disk, format: 'qcow2' };
    }
    if (rec.source.kind === 'disk') {
      if (!fs.existsSync(disk)) throw new BoxStateError(`box ${rec.name}: its disk (${disk}) is missing: import the box again`);
      return { path: disk, format: 'qcow2' };
    }
    if (!fs.existsSync(disk)) {
      const src = rec.source;
      if (!fs.existsSync(src.base)) {
        throw new ImageError(`box ${rec.name}: the base of image ${src.reference} (${src.base}) is gone: pull or load the image again, then start the box`);
      }
      await createOverlay({ path: src.base, sizeMib: src.baseSizeMib }, disk, rec.options.diskSizeMib);
    }
    return { path: disk, format: 'qcow2' };
  }

  async start(id: string): Promise<void> {
    await withLock(this.boxLock(id), `box ${this.record(id).name}`, async () => {
      const rec = this.record(id);
      if (this.status(rec).state === 'running') return;
      const dir = this.home.boxDir(id);
      const assets = loadAssets(this.home);
      const problem = this.engine.check();
      if (problem) throw new QemuMissingError(problem);
      const disk = await this.ensureDisk(rec);
      // An image's base holds just its content: the guest grows the file system to the disk on first boot.
      // A folder box's file system is built at its disk's size; others start at their image's size. Either grows
      // when the disk has become larger than the file system (first boot, or after a resize).
      const grow = rec.fsSizeMib !== undefined ? rec.fsSizeMib !== rec.options.diskSizeMib : rec.source.kind !== 'dir';
      const accel = this.accel();
      noteAccel(accel, this.say);
      const net = rec.options.network !== 'none';
      // Host ports are checked (and the automatic ones chosen) before anything boots.
      const ports = net ? await reservePorts(rec.options.ports ?? [], rec.name) : [];
      const vols = this.volumeDisks(rec);
      const binds = rec.options.binds ?? [];
      const fsArg = binds.map((b, i) => ` boxlite.fs=fs${i},${b.target},${b.readOnly ? 'ro' : 'rw'},${fs.statSync(b.hostPath).isDirectory() ? 'dir' : 'file'}`).join('');
      const netArg = net ? ` boxlite.net=${GUEST_NET.address}/${GUEST_NET.prefix},${GUEST_NET.gateway},${(rec.options.dns?.length ? rec.options.dns : [GUEST_NET.dns]).join(',')}` : '';
      for (let attempt = 1; ; attempt++) {
        if (net) {
          try {
            await startPasst({ dir, ports, dns: rec.options.dns ?? [] });
          } catch (e) {
            throw new BootError(`box ${rec.name} cannot start: ${(e as Error).message}`);
          }
        }
        try {
          for (const [i, b] of binds.entries()) await startShare({ dir, index: i, source: b.hostPath, readOnly: b.readOnly });
        } catch (e) {
          stopPasst(dir);
          stopShares(dir);
          throw new BootError(`box ${rec.name} cannot start: ${(e as Error).message}`);
        }
        await this.engine.start({
          dir,
          cpus: rec.options.cpus,
          memoryMib: rec.options.memoryMib,
          kernel: assets.kernel,
          initrd: assets.initrd,
          cmdline: `console=ttyS0 ${process.env.BOXLITE_GUEST_DEBUG ? 'loglevel=7' : 'quiet loglevel=3'} panic=-1 boxlite.hostname=${rec.options.hostname ?? rec.name}${grow ? ' boxlite.grow=1' : ''}${netArg}${vols.cmdline}${fsArg}${rec.options.lan ? ` boxlite.lan=${rec.options.lan.address}/24,${rec.options.lan.mac}` : ''}`,
          disks: [
            { path: assets.initImage, format: 'raw', readonly: true },
            { path: disk.path, format: disk.format, readonly: false },
            ...vols.disks,
          ],
          agentPorts: AGENT_PORTS,
          accel: accel.accel,
          netSocket: net ? passtSocket(dir) : undefined,
          lan: rec.options.lan ? { mcast: rec.options.lan.mcast, mac: rec.options.lan.mac } : undefined,
          shares: binds.map((_, i) => ({ socket: shareSocket(dir, i), tag: `fs${i}` })),
        });
        writeRecord(this.home, { ...rec, state: 'running', exit: undefined, startedAt: new Date().toISOString(), accel: accel.accel, ports });
        try {
          const client = await this.connectBooting(rec.name, dir, bootTimeoutMs(accel.accel), initStallMs(accel.accel));
          this.clients.set(id, client);
          const udp = ports.filter((p) => p.protocol === 'udp');
          if (udp.length) await startRelay(dir, rec.name, udp);
          if (grow) writeRecord(this.home, { ...this.record(id), fsSizeMib: rec.options.diskSizeMib });
          return;
        } catch (e) {
          const vm = this.engine.status(dir);
          const exit = vm.kind === 'running' ? null : this.explainExit(rec, vm);
          await this.engine.kill(dir);
          stopPasst(dir);
          stopRelay(dir);
          stopShares(dir);
          if (e instanceof InitStalled && attempt === 1) {
            // Seen rarely under TCG: the kernel stalls silently before init. A second boot goes through.
            this.say(`boxlite: box ${rec.name}: ${e.message}; booting it again`);
            continue;
          }
          const tail = this.bootConsole(id, 400).filter((l) => l.trim()).slice(-15);
          const reason = exit?.detail ?? (e as Error).message;
          writeRecord(this.home, { ...this.record(id), state: 'exited', exit: { reason: 'crash', detail: `boot failed: ${reason}`, at: new Date().toISOString() } });
          throw new BootError(
            `box ${rec.name} failed to boot: ${reason}\n--- last lines of the guest console (boxlite logs ${rec.name}) ---\n${tail.join('\n') || '(empty)'}`,
            tail,
          );
        }
      }
    });
  }

  /** The named volumes of a box as extra disks, found by the guest through their serial (vol0, vol1, …). */
  private volumeDisks(rec: BoxRecord): { disks: { path: string; format: 'raw'; readonly: boolean; serial: string }[]; cmdline: string } {
    const mounts = rec.options.volumes ?? [];
    const disks = mounts.map((m, i) => {
      this.volumes.get(m.volume);
      const other = listRecords(this.home).find((r) => r.id !== rec.id && (r.options.volumes ?? []).some((o) => o.volume === m.volume) && this.status(r).state === 'running');
      if (other) throw new BoxStateError(`box ${rec.name} cannot start: volume ${m.volume} is mounted by running box ${other.name} (a volume belongs to one running box at a time): stop ${other.name} first`);
      // Attached writable even for a read-only mount (the guest mounts it ro): ext4 must be able to replay its
      // journal after a box that used the volume was killed, and it cannot on a read-only device.
      return { path: this.volumes.diskPath(m.volume), format: 'raw' as const, readonly: false, serial: `vol${i}` };
    });
    return { disks, cmdline: mounts.map((m, i) => ` boxlite.vol=vol${i},${m.target},${m.readOnly ? 'ro' : 'rw'}`).join('') };
  }

  /** Changes a box's settings. Boot-time ones (cpus, memory, network, ports, dns, volumes) need it stopped. */
  async reconfigure(id: string, change: Reconfigure): Promise<void> {
    await this.withBoxLock(id, async () => {
      const rec = this.record(id);
      const bootTime = Object.keys(change).filter((k) => !LIVE_FIELDS.has(k) && (change as Record<string, unknown>)[k] !== undefined);
      if (bootTime.length && this.status(rec).state === 'running') {
        throw new BoxStateError(`box ${rec.name} is running: ${bootTime.join(', ')} can only change while it is stopped ('boxlite stop ${rec.name}')`);
      }
      const o = rec.options;
      const merged = validateOptions({
        cpus: o.cpus, memoryMib: o.memoryMib, diskSizeMib: o.diskSizeMib, env: o.env, workingDir: o.workingDir, user: o.user,
        network: o.network, ports: o.ports, dns: o.dns, volumes: o.volumes, hostname: o.hostname, lan: o.lan, binds: o.binds, name: rec.name,
        ...Object.fromEntries(Object.entries(change).filter(([, v]) => v !== undefined)),
      });
      for (const m of merged.volumes ?? []) this.volumes.get(m.volume);
      writeRecord(this.home, { ...this.record(id), options: merged });
    });
  }

  /** Updates a box's project label (the reconciler's bookkeeping). */
  async setProjectLabel(id: string, update: (l: ProjectLabel | undefined) => ProjectLabel | undefined): Promise<void> {
    await withLock(this.home.registryLock, `the box registry in ${this.home.root}`, () => {
      const rec = this.record(id);
      writeRecord(this.home, { ...rec, project: update(rec.project) });
    });
  }

  /** Renames a box (names stay unique). */
  async rename(id: string, name: string): Promise<void> {
    if (!NAME_RE.test(name)) throw new InvalidOptionError(`box name "${name}" is invalid: use letters, digits, '_', '.', '-' (up to 63, starting with a letter or digit)`);
    await withLock(this.home.registryLock, `the box registry in ${this.home.root}`, () => {
      const taken = listRecords(this.home).find((r) => r.name === name && r.id !== id);
      if (taken) throw new BoxExistsError(`a box named "${name}" already exists (id ${taken.id})`);
      writeRecord(this.home, { ...this.record(id), name });
    });
  }

  /** Waits for the agent of a booting VM, giving up early when the VM dies, the guest init reports an error, or
   *  the kernel never reaches init. */
  private async connectBooting(name: string, dir: string, timeoutMs: number, stallMs = 0): Promise<AgentClient> {
    const id = path.basename(dir);
    const since = Date.now();
    let stalled = false;
    try {
      const { AgentClient } = await import('./agent-client.js');
      return await AgentClient.connect(dir, name, {
        timeoutMs,
        check: () => {
          const vm = this.engine.status(dir);
          if (vm.kind !== 'running') return this.explainExit(this.record(id), vm).detail;
          const con = this.bootConsole(id);
          const err = con.find((l) => l.startsWith(CONSOLE_ERROR_MARK));
          if (err) return err.slice(CONSOLE_ERROR_MARK.length);
          if (stallMs && Date.now() - since > stallMs && !con.some((l) => l.startsWith(CONSOLE_INIT_STARTED))) {
            stalled = true;
            return `the guest kernel did not reach init within ${stallMs / 1000}s`;
          }
          return null;
        },
      });
    } catch (e) {
      throw stalled ? new InitStalled((e as Error).message) : e;
    }
  }

  /** An agent connection for a running box (reattaching when this process did not start it). */
  async client(id: string): Promise<AgentClient> {
    const rec = this.record(id);
    const st = this.status(rec);
    const cached = this.clients.get(id);
    if (st.state !== 'running') {
      cached?.close();
      this.clients.delete(id);
      throw new BoxStateError(
        `box ${rec.name} is ${st.state}${st.exit ? ` (${st.exit.reason}: ${st.exit.detail})` : ''}: start it with 'boxlite start ${rec.name}'`,
      );
    }
    if (cached) return cached;
    const c = await this.connectBooting(rec.name, this.home.boxDir(id), 30_000);
    this.clients.set(id, c);
    return c;
  }

  async stop(id: string, opts: StopOptions = {}): Promise<{ forced: boolean }> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    return withLock(this.boxLock(id), `box ${this.record(id).name}`, async () => {
      const rec = this.record(id);
      const dir = this.home.boxDir(id);
      const st = this.status(rec);
      if (st.state !== 'running') {
        if (rec.state === 'running') writeRecord(this.home, { ...rec, state: 'exited', exit: st.exit });
        return { forced: false };
      }
      let forced = false;
      const deadline = Date.now() + timeoutMs;
      try {
        const c = await Promise.race([
          this.client(id),
          new Promise<never>((_, rej) => setTimeout(() => rej(new Error('agent did not answer')), Math.max(1, timeoutMs / 2))),
        ]);
        await c.call('guest', 'shutdown', {}, Math.max(1, deadline - Date.now()));
      } catch {
        // A hung or dead agent: the VM is ended by force below.
      }
      if (!(await waitGone(this.engine, dir, Math.max(0, deadline - Date.now())))) {
        forced = true;
        await this.engine.kill(dir);
      }
      // The VM's supervisor ends the network helpers when QEMU goes (virtiofsd ends with its socket); this covers
      // one that did not go.
      stopPasst(dir);
      stopRelay(dir);
      stopShares(dir);
      this.dropClient(id);
      writeRecord(this.home, { ...this.record(id), state: 'stopped', exit: undefined, stoppedAt: new Date().toISOString() });
      return { forced };
    });
  }

  private dropClient(id: string): void {
    this.clients.get(id)?.close();
    this.clients.delete(id);
  }

  async remove(id: string, opts: { force?: boolean } = {}): Promise<void> {
    const rec = this.record(id);
    if (this.status(rec).state === 'running') {
      if (!opts.force) throw new BoxStateError(`box ${rec.name} is running: stop it first ('boxlite stop ${rec.name}') or remove it with 'boxlite rm -f ${rec.name}'`);
    }
    const lock = await acquireLock(this.boxLock(id), `box ${rec.name}`);
    try {
      // The engine, not the record, says whether a VM runs: a start killed before it wrote the record leaves one.
      if (this.engine.status(this.home.boxDir(id)).kind === 'running') await this.engine.kill(this.home.boxDir(id));
      stopPasst(this.home.boxDir(id));
      stopRelay(this.home.boxDir(id));
      stopShares(this.home.boxDir(id));
      this.dropClient(id);
      await this.engine.settle(this.home.boxDir(id));
      await withLock(this.home.registryLock, `the box registry in ${this.home.root}`, async () => {
        // The record goes first, so an interrupted remove leaves no half box visible.
        fs.rmSync(path.join(this.home.boxDir(id), 'box.json'), { force: true });
        // Retries: the VM's supervisor may still be writing its exit file.
        fs.rmSync(this.home.boxDir(id), { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
        await collectLayers(this.home); // shared disk layers no box reads from any more
      });
    } finally {
      lock.release();
    }
  }

  // ---- exec ---------------------------------------------------------------------------------------------------

  async spawn(id: string, argv: string[], opts: ExecOptions = {}): Promise<Execution> {
    const { client, execId, pid } = await this.startProcess(id, argv, opts);
    return new Execution(client, execId, pid, !!opts.stdin);
  }

  /** Starts a process and leaves it running in the box, unwatched (its exec id can be attached to later). */
  async startDetached(id: string, argv: string[], opts: ExecOptions = {}): Promise<{ execId: string; pid: number }> {
    const { execId, pid } = await this.startProcess(id, argv, { ...opts, stdin: false, tty: false });
    return { execId, pid };
  }

  /** Whether a process started in the box is still running; its exit status when it is not. */
  async processState(id: string, execId: string): Promise<{ running: boolean; exitCode?: number }> {
    const client = await this.client(id);
    const r = (await client.call('execution', 'list', {}, 10_000)) as { processes: { execId: string; running: boolean }[] };
    const p = r.processes.find((x) => x.execId === execId);
    if (!p) return { running: false };
    if (p.running) return { running: true };
    const s = await client.call<{ exitCode: number; signal: string }>('execution', 'wait', { execId }, 10_000);
    return { running: false, exitCode: s.signal ? signalExitCode(s.signal) : s.exitCode };
  }

  private async startProcess(id: string, argv: string[], opts: ExecOptions): Promise<{ client: AgentClient; execId: string; pid: number }> {
    if (argv.length === 0) throw new ExecError('no command given');
    const rec = this.record(id);
    const client = await this.client(id);
    const env: Record<string, string> = {};
    for (const kv of rec.source.config.env) {
      const i = kv.indexOf('=');
      if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
    }
    Object.assign(env, rec.options.env, opts.env);
    let res: { execId: string; pid: number };
    try {
      res = await client.call('execution', 'exec', {
        argv,
        env,
        cwd: opts.cwd || rec.options.workingDir || rec.source.config.workingDir || '',
        user: opts.user || rec.options.user || rec.source.config.user || '',
        tty: !!opts.tty,
        rows: opts.rows ?? 24,
        cols: opts.cols ?? 80,
        stdin: !!opts.stdin,
        timeoutMs: opts.timeoutMs ?? 0,
      });
    } catch (e) {
      const err = e as grpc.ServiceError;
      if (err.code === GRPC_FAILED_PRECONDITION) throw new ExecError(`box ${rec.name}: ${err.details}`);
      throw e;
    }
    return { client, execId: res.execId, pid: res.pid };
  }

  /** Attaches to a process started earlier (by this or another process) by its exec id. */
  async attach(id: string, execId: string): Promise<Execution> {
    return new Execution(await this.client(id), execId, 0, false);
  }

  async exec(id: string, argv: string[], opts: ExecOptions & { input?: string | Buffer } = {}): Promise<ExecResult> {
    const ex = await this.spawn(id, argv, { ...opts, stdin: opts.input !== undefined || opts.stdin });
    if (opts.input !== undefined) ex.stdin.end(opts.input);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    ex.stdout.on('data', (d: Buffer) => out.push(d));
    ex.stderr.on('data', (d: Buffer) => err.push(d));
    const status = await ex.wait();
    const result = { ...status, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
    if (status.timedOut) {
      throw Object.assign(new TimeoutError(`${argv.join(' ')} was killed after the ${opts.timeoutMs} ms timeout`), { result });
    }
    return result;
  }

  /** Unpacks a tar stream into dest (a directory in the box), keeping modes and owners. */
  async uploadTar(id: string, dest: string, tarStream: NodeJS.ReadableStream): Promise<void> {
    const client = await this.client(id);
    await new Promise<void>((resolve, reject) => {
      const call = client.files.upload((err: Error | null) => (err ? reject(new ExecError(`upload to ${dest}: ${(err as grpc.ServiceError).details ?? err.message}`)) : resolve()));
      call.write({ dest });
      tarStream.on('data', (d: Buffer) => {
        if (!call.write({ dest, data: d })) {
          tarStream.pause();
          call.once('drain', () => tarStream.resume());
        }
      });
      tarStream.on('end', () => call.end());
      tarStream.on('error', (e: Error) => {
        call.cancel();
        reject(e);
      });
    });
  }

  /** A tar stream of a file or directory in the box. */
  async downloadTar(id: string, boxPath: string): Promise<NodeJS.ReadableStream> {
    const client = await this.client(id);
    const call = client.files.download({ path: boxPath });
    const out = new PassThrough();
    call.on('data', (m: { data: Buffer }) => out.write(m.data));
    call.on('end', () => out.end());
    call.on('error', (e: grpc.ServiceError) => out.destroy(new ExecError(`download of ${boxPath}: ${e.details ?? e.message}`)));
    return out;
  }

  /** Grows a stopped box's disk; the guest grows its file system to match at the next boot. */
  async resize(id: string, diskSizeMib: number): Promise<void> {
    await this.withBoxLock(id, async () => {
      const rec = this.record(id);
      if (!Number.isInteger(diskSizeMib) || diskSizeMib < 64) throw new InvalidOptionError(`disk size must be a whole number of MiB, at least 64 (got ${diskSizeMib})`);
      if (diskSizeMib < rec.options.diskSizeMib) {
        throw new InvalidOptionError(`box ${rec.name}: disks only grow (it has ${rec.options.diskSizeMib} MiB, asked for ${diskSizeMib} MiB)`);
      }
      if (this.status(rec).state === 'running') throw new BoxStateError(`box ${rec.name} is running: stop it first ('boxlite stop ${rec.name}'), then resize`);
      if (diskSizeMib === rec.options.diskSizeMib) return;
      const disk = await this.ensureDisk(rec);
      await run('qemu-img', ['resize', '-q', disk.path, `${diskSizeMib}M`]);
      const fsSizeMib = rec.fsSizeMib ?? (rec.source.kind === 'dir' ? rec.options.diskSizeMib : undefined);
      writeRecord(this.home, { ...this.record(id), options: { ...rec.options, diskSizeMib }, fsSizeMib });
    });
  }

  /** Counters of the box's network interfaces, read in the guest. */
  async networkStats(id: string): Promise<NetworkStats[]> {
    const client = await this.client(id);
    const r = (await client.call('guest', 'netStats', {}, 10_000)) as { interfaces: NetworkStats[] };
    return r.interfaces;
  }

  /** Closes this process's agent connections; boxes keep running. */
  close(): void {
    for (const id of [...this.clients.keys()]) this.dropClient(id);
  }
}

function validateOptions(o: CreateOptions): BoxOptions {
  const cpus = o.cpus ?? DEFAULTS.cpus;
  const memoryMib = o.memoryMib ?? DEFAULTS.memoryMib;
  const diskSizeMib = o.diskSizeMib ?? DEFAULTS.diskSizeMib;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 64) throw new InvalidOptionError(`cpus must be a whole number from 1 to 64 (got ${o.cpus})`);
  if (!Number.isInteger(memoryMib) || memoryMib < MIN_MEMORY_MIB) {
    throw new InvalidOptionError(`memory must be at least ${MIN_MEMORY_MIB} MiB (got ${o.memoryMib}): the guest kernel and agent need it`);
  }
  if (!Number.isInteger(diskSizeMib) || diskSizeMib < 64) throw new InvalidOptionError(`disk size must be at least 64 MiB (got ${o.diskSizeMib})`);
  for (const k of Object.keys(o.env ?? {})) {
    if (!k || k.includes('=')) throw new InvalidOptionError(`environment variable name "${k}" is invalid: use NAME=value`);
  }
  const network = o.network ?? 'default';
  if (network !== 'default' && network !== 'none') throw new InvalidOptionError(`network must be "default" or "none" (got "${o.network}")`);
  const ports = (o.ports ?? []).map((p) => (typeof p === 'string' ? parsePort(p) : { ...p }));
  if (network === 'none' && ports.length) throw new InvalidOptionError(`a box with network "none" cannot publish ports (${ports.map(formatPort).join(', ')})`);
  checkPorts(ports, o.name ?? 'new box');
  const dns = parseDns(o.dns ?? []);
  const volumes = (o.volumes ?? []).map((m) => {
    if (!/^\/[^\s,]*$/.test(m.target) || m.target === '/' || m.target.split('/').includes('..')) {
      throw new InvalidOptionError(`volume ${m.volume}: mount point "${m.target}" must be an absolute path below / without spaces, commas or ".."`);
    }
    return { volume: m.volume, target: m.target.replace(/\/+$/, ''), readOnly: !!m.readOnly };
  });
  const binds = (o.binds ?? []).map((b) => {
    if (!path.isAbsolute(b.hostPath)) throw new InvalidOptionError(`host path "${b.hostPath}" must be absolute`);
    if (!fs.existsSync(b.hostPath)) throw new InvalidOptionError(`host path ${b.hostPath} does not exist: create it, or fix the volume`);
    if (!/^\/[^\s,]*$/.test(b.target) || b.target === '/' || b.target.split('/').includes('..')) {
      throw new InvalidOptionError(`mount point "${b.target}" for ${b.hostPath} must be an absolute path below / without spaces, commas or ".."`);
    }
    if (b.target.endsWith('/') && !fs.statSync(b.hostPath).isDirectory()) {
      throw new InvalidOptionError(`host path ${b.hostPath} is a file, but the mount point ${b.target} names a folder: drop the trailing '/' to mount the file there`);
    }
    return { hostPath: b.hostPath, target: b.target.replace(/\/+$/, ''), readOnly: !!b.readOnly };
  });
  const targets = [...volumes.map((v) => v.target), ...binds.map((b) => b.target)];
  const dup = targets.find((t, i) => targets.indexOf(t) !== i);
  if (dup) throw new InvalidOptionError(`two volumes are mounted at ${dup}`);
  if (o.hostname !== undefined && !/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/.test(o.hostname)) throw new InvalidOptionError(`host name "${o.hostname}" is invalid: use letters, digits and '-'`);
  return {
    cpus, memoryMib, diskSizeMib, env: { ...(o.env ?? {}) }, workingDir: o.workingDir ?? '', user: o.user ?? '', network, ports, dns,
    ...(volumes.length ? { volumes } : {}),
    ...(o.hostname ? { hostname: o.hostname } : {}),
    ...(o.lan && network !== 'none' ? { lan: { ...o.lan } } : {}),
    ...(binds.length ? { binds } : {}),
  };
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
  start(): Promise<void> {
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
  exec(argv: string[], opts?: ExecOptions & { input?: string | Buffer }): Promise<ExecResult> {
    return this.runtime.exec(this.id, argv, opts);
  }
  spawn(argv: string[], opts?: ExecOptions): Promise<Execution> {
    return this.runtime.spawn(this.id, argv, opts);
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
  /** Copies a host file or folder into the box (into boxPath when it is a folder, else as boxPath). */
  copyIn(hostPath: string, boxPath: string): Promise<void> {
    return copyIn(this, hostPath, boxPath);
  }
  /** Copies a file or folder of the box to the host (into hostPath when it is a folder, else as hostPath). */
  copyOut(boxPath: string, hostPath: string): Promise<void> {
    return copyOut(this, boxPath, hostPath);
  }
  /** New boxes sharing this one's disk copy-on-write (at a snapshot with { snapshot }). */
  clone(names: string | string[], opts: CloneOptions = {}): Promise<Box[]> {
    return cloneBox(this.runtime, this.id, Array.isArray(names) ? names : [names], opts).then((rs) => rs.map((r) => new Box(this.runtime, r.id)));
  }

  resize(diskSizeMib: number): Promise<void> {
    return this.runtime.resize(this.id, diskSizeMib);
  }
  /** Snapshots of the box's disk: create, list, restore, remove. */
  get snapshots(): Snapshots {
    return new Snapshots(this.runtime, this.id);
  }
  /** Published ports, with the host ports chosen at the last start. */
  ports(): PortMapping[] {
    const r = this.runtime.record(this.id);
    return r.ports ?? r.options.ports;
  }
  networkStats(): Promise<NetworkStats[]> {
    return this.runtime.networkStats(this.id);
  }
}
