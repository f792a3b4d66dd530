// Boxes that keep their memory. A pause saves the VM's memory and devices into the box's folder and ends QEMU:
// a paused box holds no CPU and no host memory, and its next start continues every process where it was. The
// order makes a pause killed at any moment leave the box running or paused, never neither:
//   1. the record says paused (pending)     killed here: the VM still runs; a start lets it continue
//   2. the state is saved (the VM stops)      killed here: the VM is alive, stopped; a start continues it
//   3. the record holds the state             killed here: a start continues the VM, or restores the state
//   4. QEMU ends
// A state continues only on the disk it was saved with and with the same devices; otherwise the start is refused,
// naming --cold, which boots the box from its disk.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { BoxStateError } from '../core/errors.js';
import { AGENT_PORTS } from '../core/protocol.js';
import { ensureDir, renameDurable } from '../util/fs.js';
import { failpoint } from '../util/failpoint.js';
import { stopHelpers } from '../vmm/helpers.js';
import type { AgentClient } from '../vmm/agent-client.js';
import type { RestoredRequest } from '../core/protocol.js';
import { BUSYBOX } from '../core/guest.js';
import { Execution } from './execution.js';
import { loadAssets } from './assets.js';
import { diskPath } from './disks.js';
import { boxStatus } from './status.js';
import { agentClient } from './channel.js';
import { dropClient, withBoxLock, type RuntimeContext } from './context.js';
import type { BoxRecord, SavedState } from './types.js';

/** What a saved state must be continued with: the devices QEMU had (their number, kinds and identities), the
 *  accelerator, the guest kernel. Paths may differ (a fork's disk is its own). */
export function deviceShape(ctx: RuntimeContext, rec: BoxRecord, opts: { anyLanMac?: boolean } = {}): string {
  const o = rec.options;
  const shape = {
    cpus: o.cpus,
    memoryMib: o.memoryMib,
    agentPorts: AGENT_PORTS,
    logPort: true, // the box's log (a virtio-serial port): memory saved before it existed cannot continue
    net: o.network !== 'none',
    // A template's memory may continue in a box with another LAN MAC: the guest is told its own at restore.
    lanMac: o.lan ? (opts.anyLanMac ? 'any' : o.lan.mac) : null,
    volumes: (o.volumes ?? []).map((v) => ctx.volumes.find(v.volume)?.sizeMib ?? 0),
    shares: (o.binds ?? []).length,
    accel: ctx.accel().accel,
    assets: loadAssets(ctx.home).key,
  };
  return createHash('sha256').update(JSON.stringify(shape)).digest('hex').slice(0, 16);
}

export function diskIdentity(file: string): SavedState['disk'] {
  const st = fs.statSync(file);
  return { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
}

export const stateDir = (ctx: RuntimeContext, id: string) => path.join(ctx.home.boxDir(id), 'state');
/** The box's saved memory while it is paused (its memory snapshots are beside it). */
const pauseFile = (ctx: RuntimeContext, id: string) => path.join(stateDir(ctx, id), 'pause.state');

/** Why a saved state cannot continue this box, or null when it can. */
export function stateMismatch(ctx: RuntimeContext, rec: BoxRecord, s: SavedState, disk: boolean, shape = deviceShape(ctx, rec)): string | null {
  if (!fs.existsSync(s.file)) return `its saved memory (${s.file}) is gone`;
  if (s.shape !== shape) return 'its devices changed since its memory was saved (cpus, memory, volumes, network or the guest kernel)';
  if (disk && s.disk) {
    const now = diskIdentity(diskPath(ctx, rec.id));
    if (now?.ino !== s.disk.ino || now.size !== s.disk.size || now.mtimeMs !== s.disk.mtimeMs) return 'its disk changed since its memory was saved';
  }
  return null;
}

/** Saves a running box's memory and ends its VM. Boxes sharing host folders cannot be paused: virtiofs has no
 *  state QEMU can save. */
export async function pauseBox(ctx: RuntimeContext, id: string, opts: { idle?: boolean } = {}): Promise<void> {
  await withBoxLock(ctx, id, async () => {
    const rec = ctx.records.get(id);
    const dir = ctx.home.boxDir(id);
    if (rec.state === 'paused') return;
    const st = boxStatus(ctx, rec);
    if (st.state !== 'running') throw new BoxStateError(`box ${rec.name} is ${st.state}: only a running box can be paused`);
    if (rec.options.binds?.length) {
      throw new BoxStateError(`box ${rec.name} shares host folders, whose state cannot be saved (virtiofs): stop it instead ('boxlite stop ${rec.name}')`);
    }
    await prepareForSave(ctx, id);
    const at = new Date().toISOString();
    await ctx.records.update(id, (r) => ({ ...r, state: 'paused', paused: { at, pending: true, ...(opts.idle ? { idle: true } : {}) } }));
    failpoint('pause:marked');
    ensureDir(stateDir(ctx, id), 0o700);
    const file = pauseFile(ctx, id);
    try {
      await ctx.engine.saveState(dir, `${file}.part`);
    } catch (e) {
      fs.rmSync(`${file}.part`, { force: true });
      await ctx.engine.resume(dir).catch(() => {});
      await ctx.records.update(id, (r) => ({ ...r, state: 'running', paused: undefined }));
      throw new BoxStateError(`box ${rec.name} could not be paused (${(e as Error).message}); it keeps running`);
    }
    renameDurable(`${file}.part`, file);
    failpoint('pause:saved');
    // The migration has flushed the disk and QEMU writes it no more: its identity now is the state's.
    const state: SavedState = { file, shape: deviceShape(ctx, rec), disk: diskIdentity(diskPath(ctx, id)) };
    await ctx.records.update(id, (r) => ({ ...r, paused: { at, pending: false, state, ...(opts.idle ? { idle: true } : {}) } }));
    failpoint('pause:recorded');
    await ctx.engine.kill(dir);
    stopHelpers(dir);
    dropClient(ctx, id);
  });
}

/** Asks the guest to load what its restore will need (best effort: a guest that cannot answer is saved as it is).
 *  With warm (a template: memory many boxes continue from, saved before anything ran), one command first runs
 *  through the whole exec path, so that the guest's runtime compiles that code once, into the saved memory, rather
 *  than in every box restored from it (measured under TCG: a warm start's first exec took 0.55 s of CPU, and 0.4 s
 *  with this). */
export async function prepareForSave(ctx: RuntimeContext, id: string, opts: { warm?: boolean } = {}): Promise<void> {
  let client: AgentClient;
  try {
    client = await agentClient(ctx, id);
  } catch {
    return;
  }
  if (opts.warm) await runOnce(client, [BUSYBOX, 'true'], 15_000).catch(() => {});
  await client.call('guest', 'prepare', {}, 15_000).catch(() => {});
}

/** Runs argv in the box to its end, or gives up after timeoutMs (a guest that never answers holds up nothing). */
async function runOnce(client: AgentClient, argv: string[], timeoutMs: number): Promise<void> {
  const req = { argv, env: {}, cwd: '/', user: '', tty: false, rows: 24, cols: 80, stdin: false, timeoutMs, detach: false };
  const { execId, pid } = await client.call<{ execId: string; pid: number }>('execution', 'exec', req, timeoutMs);
  const ex = new Execution(client, execId, pid, false);
  ex.stdout.resume();
  ex.stderr.resume();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('no end in time')), timeoutMs)));
  try {
    await Promise.race([ex.wait(), late]);
  } catch (e) {
    await ex.kill().catch(() => {});
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** What a guest whose memory was restored is told with its first handshake: the host's clock, fresh entropy (its
 *  random state is shared with every other copy of that memory), its name and LAN identity. It also thaws the file
 *  system a fork's or a template's memory was saved with frozen (freeze.ts). */
export function restoredRequest(hostname: string, lan?: { address: string; mac: string }): RestoredRequest {
  const lanFields = lan ? { lanAddress: `${lan.address}/24`, lanMac: lan.mac } : {};
  return { unixMs: Date.now(), entropy: randomBytes(64), hostname, ...lanFields };
}

/** What a start of a paused box does: continue a VM a pause left alive, or restore the saved state, or (a pause
 *  that never finished, or --cold) boot from the disk. Call holding the box's lock. */
export type Wake = { kind: 'continued' } | { kind: 'restore'; state: SavedState } | { kind: 'boot'; why?: string };

export async function wakePaused(ctx: RuntimeContext, rec: BoxRecord, cold: boolean): Promise<Wake> {
  const dir = ctx.home.boxDir(rec.id);
  const p = rec.paused;
  const discard = async () => {
    fs.rmSync(pauseFile(ctx, rec.id), { force: true });
    await ctx.records.update(rec.id, (r) => ({ ...r, state: 'stopped', paused: undefined }));
  };
  if (ctx.engine.status(dir).kind === 'running') {
    // The pause was interrupted: the VM still holds the memory. Let it go on.
    if ((await ctx.engine.runState(dir).catch(() => 'running')) !== 'running') await ctx.engine.resume(dir);
    fs.rmSync(pauseFile(ctx, rec.id), { force: true });
    await ctx.records.update(rec.id, (r) => ({ ...r, state: 'running', paused: undefined }));
    return { kind: 'continued' };
  }
  if (cold) {
    await discard();
    return { kind: 'boot', why: 'its saved memory was discarded (--cold)' };
  }
  if (!p || p.pending || !p.state) {
    await discard();
    return { kind: 'boot', why: 'its pause did not finish, so nothing of its memory was kept' };
  }
  const bad = stateMismatch(ctx, rec, p.state, true);
  if (bad) throw new BoxStateError(`box ${rec.name} is paused, but ${bad}: start it from its disk with 'boxlite start --cold ${rec.name}' (its memory is then lost)`);
  return { kind: 'restore', state: p.state };
}

/** Present from a restore's spawn until its guest has been told it was restored: QEMU loads the state by itself,
 *  so a CLI killed in between leaves a VM that runs on as the saved box, with its clock, entropy and name. */
const restoringMarker = (ctx: RuntimeContext, id: string) => path.join(ctx.home.boxDir(id), 'restoring');

export function markRestoring(ctx: RuntimeContext, id: string, on: boolean): void {
  if (on) fs.writeFileSync(restoringMarker(ctx, id), '', { mode: 0o600 });
  else fs.rmSync(restoringMarker(ctx, id), { force: true });
}

export function restoreUnfinished(ctx: RuntimeContext, id: string): boolean {
  return fs.existsSync(restoringMarker(ctx, id));
}

/** Ends the VM of a restore that was never finished, so that the start which calls this restores it again (its
 *  saved state is still there: it is forgotten only after a restore succeeds). Call holding the box's lock. */
export async function abandonUnfinishedRestore(ctx: RuntimeContext, id: string): Promise<void> {
  if (!restoreUnfinished(ctx, id)) return;
  const dir = ctx.home.boxDir(id);
  await ctx.engine.kill(dir);
  stopHelpers(dir);
  dropClient(ctx, id);
  // A resume's record already said running: it is paused again, with the state it still holds.
  if (ctx.records.get(id).paused?.state) await ctx.records.update(id, (r) => ({ ...r, state: 'paused' }));
  markRestoring(ctx, id, false);
}

/** After a restore: the pause is over. */
export async function forgetPause(ctx: RuntimeContext, id: string): Promise<void> {
  await ctx.records.update(id, (r) => ({ ...r, paused: undefined }));
  fs.rmSync(pauseFile(ctx, id), { force: true });
}
