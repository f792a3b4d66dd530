// Booting a box: its disk, its helpers (network, host folders), the VM, then the agent's first answer. A kernel
// that stalls before init is booted once more; any other failure stops everything that was started and reports
// the reason with the guest console's last lines.
import * as fs from 'node:fs';
import { AGENT_PORTS } from '../core/protocol.js';
import { GUEST_NET } from '../core/network.js';
import { BootError, BoxStateError, QemuMissingError } from '../core/errors.js';
import { noteAccel } from '../vmm/accel.js';
import { boxLimits, prepareBoxCgroup } from '../vmm/cgroup.js';
import { startPasst } from '../vmm/passt.js';
import { configureEgress, startEgress } from '../vmm/egress/gateway.js';
import { gatewaySettings } from './secrets.js';
import { needsGateway } from './options.js';
import { shareSocket, startShare } from '../vmm/virtiofs.js';
import { startRelay } from '../vmm/udp-relay.js';
import { startGuard } from '../vmm/netguard/guard.js';
import { stopHelpers } from '../vmm/helpers.js';
import { NET_MAC, type DiskSpec, type VmSpec } from '../vmm/engine.js';
import type { AgentInfo } from '../vmm/agent-client.js';
import { loadAssets } from './assets.js';
import { reservePorts } from './ports.js';
import { diskPath, dropTopAliases, ensureDisk } from './disks.js';
import { ensureDir } from '../util/fs.js';
import { createTop, isEmptyTop } from './layers.js';
import { dropTemplate, findTemplate, lockTemplate, takeTemplate, templateKey } from './templates.js';
import { InitStalled, connectAgent } from './channel.js';
import { bootConsole, boxStatus, explainExit } from './status.js';
import { withBoxLock, withRegistryLock, type RuntimeContext } from './context.js';
import { confine } from './confine.js';
import { abandonUnfinishedRestore, forgetPause, markRestoring, restoredRequest, stateMismatch, wakePaused } from './memory.js';
import { failpoint } from '../util/failpoint.js';
import { collectStates } from './states.js';
import type { BoxRecord, SavedState, StartTimings } from './types.js';

/** A kernel reaches init after about 1 s of CPU under TCG; one that has used this much without has stalled. */
const initCpuMs = (accel: string) => Number(process.env.BOXLITE_INIT_STALL_MS) || (accel === 'kvm' ? 10_000 : 30_000);
/** A boot waits as long as the guest moves (console output, CPU used): a loaded host makes it slow, not failed. */
const stallMs = (accel: string) => Number(process.env.BOXLITE_STALL_MS) || (accel === 'kvm' ? 20_000 : 30_000);
/** The most a boot may take in any case. */
const bootTimeoutMs = (accel: string) => Number(process.env.BOXLITE_BOOT_TIMEOUT_MS) || (accel === 'kvm' ? 120_000 : 600_000);

export interface StartOptions {
  /** A paused box: discard its saved memory and boot it from its disk. */
  cold?: boolean;
}

/** Boots a box that is not running (nothing to do for one that is), continuing a paused box or a fork from its
 *  saved memory; then, after a boot from the disk, runs the afterStart hook (a continued box's processes, its
 *  command among them, are still running). */
export async function startBox(ctx: RuntimeContext, id: string, opts: StartOptions = {}): Promise<void> {
  const booted = await withBoxLock(ctx, id, async () => {
    await abandonUnfinishedRestore(ctx, id);
    const rec = ctx.records.get(id);
    if (rec.state === 'paused') {
      const wake = await wakePaused(ctx, rec, !!opts.cold);
      if (wake.kind === 'continued') return false;
      if (wake.kind === 'restore') {
        await boot(ctx, rec, { state: wake.state, hostname: rec.options.hostname ?? rec.name });
        await forgetPause(ctx, id);
        return false;
      }
      if (wake.why) ctx.say(`boxlite: box ${rec.name} starts from its disk: ${wake.why}`);
      await boot(ctx, ctx.records.get(id));
      return true;
    }
    if (boxStatus(ctx, rec).state === 'running') return false;
    if (rec.restoreFrom) {
      // A fork's (or a warm start's) first start continues from the memory it was made with.
      const bad = stateMismatch(ctx, rec, rec.restoreFrom, false);
      if (!bad) {
        await boot(ctx, rec, { state: rec.restoreFrom, hostname: rec.options.hostname ?? rec.name });
        await ctx.records.update(id, (r) => ({ ...r, restoreFrom: undefined }));
        await collectStates(ctx);
        return false;
      }
      ctx.say(`boxlite: box ${rec.name} starts from its disk: ${bad}`);
      await ctx.records.update(id, (r) => ({ ...r, restoreFrom: undefined }));
    }
    const key = (await neverBooted(ctx, rec)) ? templateKey(ctx, rec) : null;
    if (key) await firstStart(ctx, rec, key);
    else await boot(ctx, ctx.records.get(id));
    return true;
  });
  // Outside the box's lock: a hook may run commands in the box, or take the lock itself.
  if (booted && ctx.hooks.afterStart) await ctx.hooks.afterStart(id);
}

/** A box's first start: from its image's warm-start template when there is one; otherwise cold, and the boot then
 *  leaves the template (while boxes of the same key wait for it rather than all booting cold). */
async function firstStart(ctx: RuntimeContext, rec: BoxRecord, key: string): Promise<void> {
  if (await warmStart(ctx, rec, key)) return;
  const lock = await lockTemplate(ctx, key);
  try {
    if (await warmStart(ctx, rec, key)) return; // made while this box waited
    await boot(ctx, ctx.records.get(rec.id));
    try {
      await takeTemplate(ctx, ctx.records.get(rec.id), key);
    } catch (e) {
      ctx.say(`boxlite: box ${rec.name} runs, but no warm-start template was left for its image (${(e as Error).message})`);
    }
  } finally {
    lock.release();
  }
}

/** A box that has not booted yet, its disk (an image box has one from create) holding nothing of its own. */
async function neverBooted(ctx: RuntimeContext, rec: BoxRecord): Promise<boolean> {
  if (rec.startedAt || rec.snapshots?.length) return false;
  const disk = diskPath(ctx, rec.id);
  return !fs.existsSync(disk) || (await isEmptyTop(disk));
}

/** Continues the template's memory on a new disk over its layer; false when there is no template, or it failed
 *  (the box is then as before: no disk). */
async function warmStart(ctx: RuntimeContext, rec: BoxRecord, key: string): Promise<boolean> {
  const t = findTemplate(ctx, rec, key);
  if (!t) return false;
  const disk = diskPath(ctx, rec.id);
  try {
    await withRegistryLock(ctx, () => createTop(t.layer, disk, rec.options.diskSizeMib)); // in place of the empty one
    // The template's file system was grown to this disk size already.
    const now = await ctx.records.update(rec.id, (r) => ({ ...r, fsSizeMib: r.options.diskSizeMib }));
    await boot(ctx, now, { state: t.state, hostname: rec.options.hostname ?? rec.name, lan: rec.options.lan });
    return true;
  } catch (e) {
    ctx.say(`boxlite: box ${rec.name}: the warm start failed (${(e as Error).message.split('\n')[0]}); it boots cold`);
    dropTemplate(ctx, key);
    fs.rmSync(disk, { force: true }); // made again over the image by the cold boot
    await ctx.records.update(rec.id, (r) => ({ ...r, fsSizeMib: undefined, state: 'created', exit: undefined, startedAt: undefined }));
    return false;
  }
}

/** The named volumes of a box as extra disks, found by the guest through their serial (vol0, vol1, …). */
function volumeDisks(ctx: RuntimeContext, rec: BoxRecord): { disks: DiskSpec[]; cmdline: string } {
  const mounts = rec.options.volumes ?? [];
  const disks = mounts.map((m, i) => {
    ctx.volumes.get(m.volume);
    const other = ctx.records.list().find((r) => r.id !== rec.id && (r.options.volumes ?? []).some((o) => o.volume === m.volume) && boxStatus(ctx, r).state === 'running');
    if (other) throw new BoxStateError(`box ${rec.name} cannot start: volume ${m.volume} is mounted by running box ${other.name} (a volume belongs to one running box at a time): stop ${other.name} first`);
    // Attached writable even for a read-only mount (the guest mounts it ro): ext4 must be able to replay its
    // journal after a box that used the volume was killed, and it cannot on a read-only device.
    return { path: ctx.volumes.diskPath(m.volume), format: 'raw' as const, readonly: false, serial: `vol${i}` };
  });
  return { disks, cmdline: mounts.map((m, i) => ` boxlite.vol=vol${i},${m.target},${m.readOnly ? 'ro' : 'rw'}`).join('') };
}

/** The kernel command line: how the guest's init learns its host name, network, disks and mounts. */
function kernelCmdline(rec: BoxRecord, grow: boolean, volumes: string, accel: string): string {
  const o = rec.options;
  const net = o.network !== 'none' ? ` boxlite.net=${GUEST_NET.address}/${GUEST_NET.prefix},${GUEST_NET.gateway},${(o.dns?.length ? o.dns : [GUEST_NET.dns]).join(',')}` : '';
  const shares = (o.binds ?? []).map((b, i) => ` boxlite.fs=fs${i},${b.target},${b.readOnly ? 'ro' : 'rw'},${fs.statSync(b.hostPath).isDirectory() ? 'dir' : 'file'}`).join('');
  const lan = o.lan ? ` boxlite.lan=${o.lan.address}/24,${o.lan.mac}` : '';
  const debug = process.env.BOXLITE_GUEST_DEBUG ? 'loglevel=7' : 'quiet loglevel=3';
  // Under TCG the agent runs without V8's JIT (see start.sh).
  const jit = accel === 'tcg' ? ' boxlite.jit=off' : '';
  return `console=ttyS0 ${debug} panic=-1 init_on_free=1 boxlite.hostname=${o.hostname ?? rec.name}${grow ? ' boxlite.grow=1' : ''}${net}${volumes}${shares}${lan}${jit}`;
}

/** Call holding the box's lock. With incoming, the VM continues from a saved state instead of booting. */
async function boot(ctx: RuntimeContext, rec: BoxRecord, incoming?: { state: SavedState; hostname: string; lan?: { address: string; mac: string } }): Promise<void> {
  const id = rec.id;
  const dir = ctx.home.boxDir(id);
  const t0 = performance.now();
  const stage: Record<'disk' | 'helpers' | 'vmSpawn', number> = { disk: 0, helpers: 0, vmSpawn: 0 };
  const assets = loadAssets(ctx.home);
  const problem = ctx.engine.check();
  if (problem) throw new QemuMissingError(problem);
  const disk = await ensureDisk(ctx, rec);
  stage.disk = performance.now() - t0;
  // An image's base holds just its content: the guest grows the file system to the disk on first boot. A folder
  // box's file system is built at its disk's size; others start at their image's size. Either grows when the
  // disk has become larger than the file system (first boot, or after a resize).
  const grow = rec.fsSizeMib !== undefined ? rec.fsSizeMib !== rec.options.diskSizeMib : rec.source.kind !== 'dir';
  const accel = ctx.accel();
  noteAccel(accel, ctx.say);
  const net = rec.options.network !== 'none';
  // Host ports are checked (and the automatic ones chosen) before anything boots.
  const ports = net ? await reservePorts(rec.options.ports ?? [], rec.name, incoming ? rec.ports : []) : [];
  const vols = volumeDisks(ctx, rec);
  const binds = rec.options.binds ?? [];
  const box = await confine(ctx, rec, { assets, disk, volumes: vols.disks.map((d) => d.path), kvm: accel.accel === 'kvm' });
  // Secrets' values are read before anything starts: one that cannot be read fails the start, and says why.
  const settings = net && needsGateway(rec.options) ? gatewaySettings(dir, rec) : null;
  for (let attempt = 1; ; attempt++) {
    await ctx.engine.settle(dir); // the last run's supervisor ends that run's helpers: it must be gone first
    dropTopAliases(dir); // names only the last run's VM used
    let guard: { ready: Promise<number> } | null = null;
    try {
      const passt = { dir, ports, dns: rec.options.dns ?? [], socket: box.passtSocket, runAs: box.as };
      const lan = rec.options.lan;
      // The guard (in front of every NIC) reaches passt only once QEMU connects, and its sockets exist at once:
      // it starts beside passt and QEMU, and is waited for once the VM runs.
      guard = net || lan
        ? startGuard(dir, {
            name: rec.name,
            uplink: net ? { listen: box.netSocket, helper: box.passtSocket, mac: NET_MAC, address: GUEST_NET.address, policed: !!settings } : undefined,
            lan: lan ? { listen: box.lanSocket, box: id, mac: lan.mac, address: lan.address, folder: ensureDir(ctx.home.lanDir(lan.segment), 0o700) } : undefined,
            as: box.as ?? null,
          })
        : null;
      guard?.ready.catch(() => {}); // awaited below; a helper that failed first must not leave this one unhandled
      if (net && settings) {
        await startEgress({ dir, box: rec.name, policy: settings.policy, passt });
        if (settings.secrets) await configureEgress(dir, settings);
      } else if (net) await startPasst(passt);
      for (const [i, b] of binds.entries()) await startShare({ dir, index: i, source: b.hostPath, readOnly: b.readOnly, vmm: box.as });
    } catch (e) {
      stopHelpers(dir);
      throw new BootError(`box ${rec.name} cannot start: ${(e as Error).message}`);
    }
    const tSpawn = performance.now();
    stage.helpers = tSpawn - t0 - stage.disk;
    const vm: VmSpec = {
      dir,
      cpus: rec.options.cpus,
      memoryMib: rec.options.memoryMib,
      kernel: assets.kernel,
      initrd: assets.initrd,
      cmdline: kernelCmdline(rec, grow, vols.cmdline, accel.accel),
      disks: [{ path: assets.initImage, format: 'raw', readonly: true }, { path: disk, format: 'qcow2', readonly: false }, ...vols.disks],
      agentPorts: AGENT_PORTS,
      accel: accel.accel,
      netSocket: net ? box.netSocket : undefined,
      lan: rec.options.lan ? { socket: box.lanSocket, mac: rec.options.lan.mac } : undefined,
      shares: binds.map((_, i) => ({ socket: shareSocket(dir, i), tag: `fs${i}` })),
      jail: box.jail,
      incoming: incoming?.state.file,
      cgroupProcs: prepareBoxCgroup(dir, id, boxLimits(rec.options.memoryMib, rec.options.cpus, accel.accel))?.procs,
    };
    if (incoming) markRestoring(ctx, id, true);
    try {
      await ctx.engine.start(vm);
      await guard?.ready;
    } catch (e) {
      await ctx.engine.kill(dir);
      stopHelpers(dir);
      markRestoring(ctx, id, false);
      throw new BootError(`box ${rec.name} cannot start: ${(e as Error).message}`);
    }
    stage.vmSpawn = performance.now() - tSpawn;
    await ctx.records.update(id, (r) => ({ ...r, state: 'running', exit: undefined, startedAt: new Date().toISOString(), accel: accel.accel, ports }));
    if (incoming) failpoint('restore:spawned');
    try {
      const client = await connectAgent(ctx, id, {
        timeoutMs: bootTimeoutMs(accel.accel),
        stallMs: stallMs(accel.accel),
        initCpuMs: incoming ? 0 : initCpuMs(accel.accel),
        restored: incoming ? () => restoredRequest(incoming.hostname, incoming.lan) : undefined,
      });
      ctx.clients.set(id, client);
      if (incoming) markRestoring(ctx, id, false); // the guest knows it is this box now
      const udp = ports.filter((p) => p.protocol === 'udp');
      if (udp.length) await startRelay(dir, rec.name, ctx.engine.peerPid(dir), udp, box.as);
      const lastStart = timings(t0, tSpawn, stage, incoming ? null : client.info);
      await ctx.records.update(id, (r) => ({ ...r, lastStart, ...(grow && !incoming ? { fsSizeMib: rec.options.diskSizeMib } : {}) }));
      return;
    } catch (e) {
      const vm = ctx.engine.status(dir);
      const exit = vm.kind === 'running' ? null : explainExit(ctx, rec, vm);
      await ctx.engine.kill(dir);
      stopHelpers(dir);
      markRestoring(ctx, id, false);
      if (e instanceof InitStalled && attempt === 1 && !incoming) {
        ctx.say(`boxlite: box ${rec.name}: ${e.message}; booting it again`);
        continue;
      }
      const tail = bootConsole(ctx, id, 400).filter((l) => l.trim()).slice(-15);
      const reason = exit?.detail ?? (e as Error).message;
      await ctx.records.update(id, (r) => ({ ...r, state: 'exited', exit: { reason: 'crash', detail: `boot failed: ${reason}`, at: new Date().toISOString() } }));
      throw new BootError(`box ${rec.name} failed to boot: ${reason}\n--- last lines of the guest console (boxlite logs ${rec.name}) ---\n${tail.join('\n') || '(empty)'}`, tail);
    }
  }
}

function timings(t0: number, tSpawn: number, stage: { disk: number; helpers: number; vmSpawn: number }, booted: AgentInfo | null): StartTimings {
  const now = performance.now();
  const round = (n: number) => Math.round(n);
  return {
    at: new Date().toISOString(),
    kind: booted ? 'boot' : 'restore',
    totalMs: round(now - t0),
    diskMs: round(stage.disk),
    helpersMs: round(stage.helpers),
    vmSpawnMs: round(stage.vmSpawn),
    agentReadyMs: round(now - tSpawn - stage.vmSpawn),
    ...(booted?.nodeStartMs ? { kernelToInitMs: round(booted.nodeStartMs), initToAgentMs: round(booted.bootMs - booted.nodeStartMs) } : {}),
  };
}
