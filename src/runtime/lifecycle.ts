// Stopping, removing and changing a box. Each takes the box's operation lock (one at a time per box) and changes
// its record only through RecordStore.update, so nothing another process wrote meanwhile is lost.
import { runTool } from '../vmm/tool-jail.js';
import { dropBoxCgroup } from '../vmm/cgroup.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BoxExistsError, BoxStateError, InvalidOptionError, VolumeInUseError } from '../core/errors.js';
import { MIN_DISK_MIB } from '../core/defaults.js';
import { checkName } from '../core/names.js';
import { acquireLock, type Lock } from '../util/lock.js';
import { stopHelpers } from '../vmm/helpers.js';
import { collectLayers, dependentsOf, diskToolFiles } from './layers.js';
import { unconfine } from './confine.js';
import { ensureDisk } from './disks.js';
import { asCreateOptions, EGRESS_FIELDS, LIVE_FIELDS, needsGateway, validateOptions, type Reconfigure } from './options.js';
import { configureEgress } from '../vmm/egress/gateway.js';
import { gatewaySettings, rememberValues } from './secrets.js';

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
import { boxStatus, isRunning } from './status.js';
import { agentClient } from './channel.js';
import { dropClient, withBoxLock, withRegistryLock, type RuntimeContext } from './context.js';
import { forgetPause } from './memory.js';
import { collectStates } from './states.js';
import type { Label } from './types.js';

export interface StopOptions {
  /** How long the guest gets to shut down before the VM is ended by force. */
  timeoutMs?: number;
}

/** Shuts a box down cleanly (the agent syncs and powers off), by force after the timeout. */
export async function stopBox(ctx: RuntimeContext, id: string, opts: StopOptions = {}): Promise<{ forced: boolean }> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return withBoxLock(ctx, id, async () => {
    const rec = ctx.records.get(id);
    const dir = ctx.home.boxDir(id);
    const st = boxStatus(ctx, rec);
    if (rec.state === 'paused') {
      // Stopped, a paused box forgets its memory (as a shutdown would); a VM a pause left behind is ended.
      if (ctx.engine.status(dir).kind === 'running') await ctx.engine.kill(dir);
      stopHelpers(dir);
      dropClient(ctx, id);
      await forgetPause(ctx, id);
      await ctx.records.update(id, (r) => ({ ...r, state: 'stopped', stoppedAt: new Date().toISOString() }));
      return { forced: false };
    }
    if (st.state !== 'running') {
      if (rec.state === 'running') await ctx.records.update(id, (r) => ({ ...r, state: 'exited', exit: st.exit }));
      return { forced: false };
    }
    let forced = false;
    const deadline = Date.now() + timeoutMs;
    try {
      const c = await Promise.race([
        agentClient(ctx, id),
        new Promise<never>((_, rej) => setTimeout(() => rej(new Error('agent did not answer')), Math.max(1, timeoutMs / 2)).unref()),
      ]);
      await c.call('guest', 'shutdown', {}, Math.max(1, deadline - Date.now()));
    } catch {
      // A hung or dead agent: the VM is ended by force below.
    }
    if (!(await ctx.engine.waitGone(dir, Math.max(0, deadline - Date.now())))) {
      forced = true;
      await ctx.engine.kill(dir);
    }
    // The VM's supervisor ends the helpers when QEMU goes (virtiofsd ends with its socket); this covers one that did not.
    stopHelpers(dir);
    dropClient(ctx, id);
    await ctx.records.update(id, (r) => ({ ...r, state: 'stopped', exit: undefined, stoppedAt: new Date().toISOString() }));
    return { forced };
  });
}

export async function removeBox(ctx: RuntimeContext, id: string, opts: { force?: boolean } = {}): Promise<void> {
  const rec = ctx.records.get(id);
  if (boxStatus(ctx, rec).state === 'running' && !opts.force) {
    throw new BoxStateError(`box ${rec.name} is running: stop it first ('boxlite stop ${rec.name}') or remove it with 'boxlite rm -f ${rec.name}'`);
  }
  const dir = ctx.home.boxDir(id);
  // Boxes made before folder copies became layers keep theirs in the box's folder, where clones may read it.
  const legacyBase = path.join(dir, 'base.img');
  if (fs.existsSync(legacyBase)) {
    const readers = (await dependentsOf(ctx.home, ctx.records, legacyBase)).filter((n) => n !== rec.name);
    if (readers.length) throw new BoxStateError(`box ${rec.name} holds the disk base that ${readers.join(', ')} ${readers.length > 1 ? 'are' : 'is'} made from (a clone): remove ${readers.length > 1 ? 'them' : 'it'} first`);
  }
  await withBoxLock(ctx, id, async () => {
    // The engine, not the record, says whether a VM runs: a start killed before it wrote the record leaves one.
    if (ctx.engine.status(dir).kind === 'running') await ctx.engine.kill(dir);
    stopHelpers(dir);
    dropClient(ctx, id);
    await ctx.engine.settle(dir);
    await dropBoxCgroup(dir);
    unconfine(ctx, id);
    await withRegistryLock(ctx, async () => {
      ctx.records.forget(id);
      // Retries: the VM's supervisor may still be writing its exit file.
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
      const c = await collectLayers(ctx.home, ctx.records); // shared disk layers no box reads from any more
      await collectStates(ctx); // and saved memory no box will continue from (a fork never started)
      if (c.kept) ctx.say(`boxlite: unused disk layers were kept: ${c.kept}`);
    });
  });
}

/** Changes a box's settings. Boot-time ones (cpus, memory, network, ports, dns, volumes) need it stopped. */
export async function reconfigureBox(ctx: RuntimeContext, id: string, change: Reconfigure): Promise<void> {
  rememberValues(id, change.secrets);
  await withBoxLock(ctx, id, async () => {
    const rec = ctx.records.get(id);
    const given = Object.entries(change).filter(([, v]) => v !== undefined);
    const running = boxStatus(ctx, rec).state === 'running';
    // A secret the box had keeps its placeholder: its guest's processes already hold it.
    const had = new Map((rec.options.secrets ?? []).map((s) => [s.name, s.placeholder]));
    if (change.secrets) change = { ...change, secrets: change.secrets.map((s) => ({ ...s, placeholder: s.placeholder ?? had.get(s.name) })) };
    const merged = validateOptions({ ...asCreateOptions(rec.name, rec.options), ...Object.fromEntries(Object.entries(change).filter(([, v]) => v !== undefined)) });
    // Rules and secrets change in place when the box's gateway runs; the first of them, or the removal of the last,
    // needs a restart, since only then does its network go through (or around) a gateway.
    const gatewayLive = running && needsGateway(rec.options) && needsGateway(merged);
    const same = (k: string) => sameJson((rec.options as unknown as Record<string, unknown>)[k], (merged as unknown as Record<string, unknown>)[k]);
    const bootTime = given.map(([k]) => k).filter((k) => !LIVE_FIELDS.has(k) && !(EGRESS_FIELDS.has(k) && (gatewayLive || same(k))));
    if (bootTime.length && running) {
      throw new BoxStateError(`box ${rec.name} is running: ${bootTime.join(', ')} can only change while it is stopped ('boxlite stop ${rec.name}')`);
    }
    for (const m of merged.volumes ?? []) ctx.volumes.get(m.volume);
    rememberValues(id, change.secrets);
    const next = { ...rec, options: merged };
    // The gateway is told first: a secret whose value cannot be read here changes nothing.
    if (gatewayLive && !(same('egress') && same('secrets'))) await configureEgress(ctx.home.boxDir(id), gatewaySettings(ctx.home.boxDir(id), next));
    await ctx.records.update(id, (r) => ({ ...r, options: merged }));
  });
}

/** Renames a box (names stay unique). */
export async function renameBox(ctx: RuntimeContext, id: string, name: string): Promise<void> {
  checkName('box', name);
  await withRegistryLock(ctx, async () => {
    const taken = ctx.records.list().find((r) => r.name === name && r.id !== id);
    if (taken) throw new BoxExistsError(`a box named "${name}" already exists (id ${taken.id})`);
    await ctx.records.update(id, (r) => ({ ...r, name }));
  });
}

/** Updates the label a box's maker keeps with it (opaque to the runtime). */
export async function updateLabel(ctx: RuntimeContext, id: string, change: (l: Label | undefined) => Label | undefined): Promise<void> {
  await ctx.records.update(id, (r) => ({ ...r, label: change(r.label) }));
}

/** Grows a stopped box's disk; the guest grows its file system to match at the next boot. */
export async function resizeBox(ctx: RuntimeContext, id: string, diskSizeMib: number): Promise<void> {
  await withBoxLock(ctx, id, async () => {
    const rec = ctx.records.get(id);
    if (!Number.isInteger(diskSizeMib) || diskSizeMib < MIN_DISK_MIB) throw new InvalidOptionError(`disk size must be a whole number of MiB, at least ${MIN_DISK_MIB} (got ${diskSizeMib})`);
    if (diskSizeMib < rec.options.diskSizeMib) {
      throw new InvalidOptionError(`box ${rec.name}: disks only grow (it has ${rec.options.diskSizeMib} MiB, asked for ${diskSizeMib} MiB)`);
    }
    if (boxStatus(ctx, rec).state === 'running') throw new BoxStateError(`box ${rec.name} is running: stop it first ('boxlite stop ${rec.name}'), then resize`);
    if (diskSizeMib === rec.options.diskSizeMib) return;
    const disk = await ensureDisk(ctx, rec);
    await runTool('qemu-img', ['resize', '-q', disk, `${diskSizeMib}M`], diskToolFiles(ctx.home, disk));
    const fsSizeMib = rec.fsSizeMib ?? (rec.source.kind === 'dir' ? rec.options.diskSizeMib : undefined);
    await ctx.records.update(id, (r) => ({ ...r, options: { ...r.options, diskSizeMib }, fsSizeMib }));
  });
}

/** Grows a named volume. Holds the operation lock of every box that mounts it, so none can start meanwhile. */
export async function growVolume(ctx: RuntimeContext, name: string, sizeMib: number): Promise<void> {
  const users = ctx.volumes.users(name).sort((a, b) => a.id.localeCompare(b.id)); // one order: no deadlock
  const locks: Lock[] = [];
  try {
    for (const u of users) locks.push(await acquireLock(ctx.home.boxLock(u.id), `box ${u.name}`));
    const busy = users.filter((u) => isRunning(ctx, u.id)).map((u) => u.name);
    if (busy.length) throw new VolumeInUseError(`volume ${name} is mounted by running box ${busy.join(', ')}: stop it first`);
    await ctx.volumes.grow(name, sizeMib);
  } finally {
    for (const l of locks) l.release();
  }
}
