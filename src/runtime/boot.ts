// Booting a box: its disk, its helpers (network, host folders), the VM, then the agent's first answer. A kernel
// that stalls before init is booted once more; any other failure stops everything that was started and reports
// the reason with the guest console's last lines.
import * as fs from 'node:fs';
import { AGENT_PORTS } from '../core/protocol.js';
import { GUEST_NET } from '../core/network.js';
import { BootError, BoxStateError, QemuMissingError } from '../core/errors.js';
import { noteAccel } from '../vmm/accel.js';
import { startPasst } from '../vmm/passt.js';
import { shareSocket, startShare } from '../vmm/virtiofs.js';
import { startRelay } from '../vmm/udp-relay.js';
import { stopHelpers } from '../vmm/helpers.js';
import type { DiskSpec } from '../vmm/engine.js';
import { loadAssets } from './assets.js';
import { reservePorts } from './ports.js';
import { ensureDisk } from './disks.js';
import { InitStalled, connectAgent } from './channel.js';
import { bootConsole, boxStatus, explainExit } from './status.js';
import { withBoxLock, type RuntimeContext } from './context.js';
import { confine } from './confine.js';
import type { BoxRecord } from './types.js';

/** A kernel reaches init in about 1 s under TCG; one that has not after this long has stalled. */
const initStallMs = (accel: string) => Number(process.env.BOXLITE_INIT_STALL_MS) || (accel === 'kvm' ? 10_000 : 30_000);
const bootTimeoutMs = (accel: string) => Number(process.env.BOXLITE_BOOT_TIMEOUT_MS) || (accel === 'kvm' ? 30_000 : 120_000);

/** Boots a box that is not running (nothing to do for one that is), then runs the afterStart hook. */
export async function startBox(ctx: RuntimeContext, id: string): Promise<void> {
  const booted = await withBoxLock(ctx, id, async () => {
    const rec = ctx.records.get(id);
    if (boxStatus(ctx, rec).state === 'running') return false;
    await boot(ctx, rec);
    return true;
  });
  // Outside the box's lock: a hook may run commands in the box, or take the lock itself.
  if (booted && ctx.hooks.afterStart) await ctx.hooks.afterStart(id);
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
function kernelCmdline(rec: BoxRecord, grow: boolean, volumes: string): string {
  const o = rec.options;
  const net = o.network !== 'none' ? ` boxlite.net=${GUEST_NET.address}/${GUEST_NET.prefix},${GUEST_NET.gateway},${(o.dns?.length ? o.dns : [GUEST_NET.dns]).join(',')}` : '';
  const shares = (o.binds ?? []).map((b, i) => ` boxlite.fs=fs${i},${b.target},${b.readOnly ? 'ro' : 'rw'},${fs.statSync(b.hostPath).isDirectory() ? 'dir' : 'file'}`).join('');
  const lan = o.lan ? ` boxlite.lan=${o.lan.address}/24,${o.lan.mac}` : '';
  const debug = process.env.BOXLITE_GUEST_DEBUG ? 'loglevel=7' : 'quiet loglevel=3';
  return `console=ttyS0 ${debug} panic=-1 boxlite.hostname=${o.hostname ?? rec.name}${grow ? ' boxlite.grow=1' : ''}${net}${volumes}${shares}${lan}`;
}

/** Call holding the box's lock. */
async function boot(ctx: RuntimeContext, rec: BoxRecord): Promise<void> {
  const id = rec.id;
  const dir = ctx.home.boxDir(id);
  const assets = loadAssets(ctx.home);
  const problem = ctx.engine.check();
  if (problem) throw new QemuMissingError(problem);
  const disk = await ensureDisk(ctx, rec);
  // An image's base holds just its content: the guest grows the file system to the disk on first boot. A folder
  // box's file system is built at its disk's size; others start at their image's size. Either grows when the
  // disk has become larger than the file system (first boot, or after a resize).
  const grow = rec.fsSizeMib !== undefined ? rec.fsSizeMib !== rec.options.diskSizeMib : rec.source.kind !== 'dir';
  const accel = ctx.accel();
  noteAccel(accel, ctx.say);
  const net = rec.options.network !== 'none';
  // Host ports are checked (and the automatic ones chosen) before anything boots.
  const ports = net ? await reservePorts(rec.options.ports ?? [], rec.name) : [];
  const vols = volumeDisks(ctx, rec);
  const binds = rec.options.binds ?? [];
  const box = await confine(ctx, rec, { assets, disk, volumes: vols.disks.map((d) => d.path), kvm: accel.accel === 'kvm' });
  for (let attempt = 1; ; attempt++) {
    await ctx.engine.settle(dir); // the last run's supervisor ends that run's helpers: it must be gone first
    try {
      if (net) await startPasst({ dir, ports, dns: rec.options.dns ?? [], socket: box.netSocket, runAs: box.as });
      for (const [i, b] of binds.entries()) await startShare({ dir, index: i, source: b.hostPath, readOnly: b.readOnly, vmm: box.as });
    } catch (e) {
      stopHelpers(dir);
      throw new BootError(`box ${rec.name} cannot start: ${(e as Error).message}`);
    }
    await ctx.engine.start({
      dir,
      cpus: rec.options.cpus,
      memoryMib: rec.options.memoryMib,
      kernel: assets.kernel,
      initrd: assets.initrd,
      cmdline: kernelCmdline(rec, grow, vols.cmdline),
      disks: [{ path: assets.initImage, format: 'raw', readonly: true }, { path: disk, format: 'qcow2', readonly: false }, ...vols.disks],
      agentPorts: AGENT_PORTS,
      accel: accel.accel,
      netSocket: net ? box.netSocket : undefined,
      lan: rec.options.lan ? { mcast: rec.options.lan.mcast, mac: rec.options.lan.mac } : undefined,
      shares: binds.map((_, i) => ({ socket: shareSocket(dir, i), tag: `fs${i}` })),
      jail: box.jail,
    });
    await ctx.records.update(id, (r) => ({ ...r, state: 'running', exit: undefined, startedAt: new Date().toISOString(), accel: accel.accel, ports }));
    try {
      const client = await connectAgent(ctx, id, { timeoutMs: bootTimeoutMs(accel.accel), stallMs: initStallMs(accel.accel) });
      ctx.clients.set(id, client);
      const udp = ports.filter((p) => p.protocol === 'udp');
      if (udp.length) await startRelay(dir, rec.name, udp, box.as);
      if (grow) await ctx.records.update(id, (r) => ({ ...r, fsSizeMib: rec.options.diskSizeMib }));
      return;
    } catch (e) {
      const vm = ctx.engine.status(dir);
      const exit = vm.kind === 'running' ? null : explainExit(ctx, rec, vm);
      await ctx.engine.kill(dir);
      stopHelpers(dir);
      if (e instanceof InitStalled && attempt === 1) {
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
