// What a box's VMM and helpers may touch, decided per boot (the jail itself is src/vmm/jail.ts). Run by root,
// each box gets a uid of its own: its QEMU, passt, network guard and UDP relay run as that uid, which owns only
// the box's run folder, its disk and its volumes while it runs; everything else they may read is bound in
// read-only. passt's socket is never in the VMM's view: a VMM that broke out reaches the network only through
// the guard.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { BootError } from '../core/errors.js';
import { ensureDir } from '../util/fs.js';
import { ctlDir, runDir } from '../vmm/engine.js';
import { JAIL_UID_BASE, JAIL_UIDS, probeJail, type JailIdentity, type JailSpec } from '../vmm/jail.js';
import type { Assets } from './assets.js';
import { checkedChain } from './layers.js';
import { withRegistryLock, type RuntimeContext } from './context.js';
import type { BoxRecord } from './types.js';

export interface Confinement {
  /** Absent when the jail is off. */
  jail?: JailSpec;
  /** The uid the VMM and helpers run as (root callers with the jail on). */
  as?: JailIdentity;
  /** The network guard's sockets QEMU's NICs connect to: somewhere the box's uid can reach (the home may be
   *  closed to it) and its VMM sees. */
  netSocket: string;
  lanSocket: string;
  /** Where passt makes its socket: reachable by the box's uid, but outside the VMM's view, so that only the guard
   *  speaks to passt. */
  passtSocket: string;
}

/** The box's own uid, allocated once: from its id, the next free one on a collision. */
async function vmmIdentity(ctx: RuntimeContext, rec: BoxRecord): Promise<JailIdentity> {
  if (rec.vmmUid) return { uid: rec.vmmUid, gid: rec.vmmUid };
  const uid = await withRegistryLock(ctx, async () => {
    const taken = new Set(ctx.records.list().map((r) => r.vmmUid));
    let slot = createHash('sha256').update(rec.id).digest().readUInt16BE(0) % JAIL_UIDS;
    for (let i = 0; i < JAIL_UIDS && taken.has(JAIL_UID_BASE + slot); i++) slot = (slot + 1) % JAIL_UIDS;
    const chosen = JAIL_UID_BASE + slot;
    await ctx.records.update(rec.id, (r) => ({ ...r, vmmUid: chosen }));
    return chosen;
  });
  return { uid, gid: uid };
}

/** A folder outside the home (which only its user may enter) for the sockets a box's uid makes itself; with
 *  `helpers`, the one for its helpers' own sockets, which the VMM never sees. */
export function netDirOf(ctx: RuntimeContext, id: string, helpers = false): string {
  return path.join('/run/boxlite', createHash('sha256').update(`${ctx.home.root}\0${id}`).digest('hex').slice(0, 16) + (helpers ? '-h' : ''));
}

/** The folder of a box's helpers' own sockets when the box's uid is the caller's (it is not in the VMM's view). */
const helperDirIn = (dir: string) => path.join(dir, 'net');

/** Prepares the box's run folder and files for its VMM, and says how to jail it. */
export async function confine(ctx: RuntimeContext, rec: BoxRecord, opts: { assets: Assets; disk: string; volumes: string[]; kvm: boolean }): Promise<Confinement> {
  const dir = ctx.home.boxDir(rec.id);
  const run = runDir(dir);
  ensureDir(run, 0o700);
  // Only boxlite writes ctl/; the VMM may open what is in it (traverse only).
  const ctl = ensureDir(ctlDir(dir), 0o711);
  fs.chmodSync(ctl, 0o711);
  if (!ctx.jail) {
    // A box that ran jailed before: what its VMM's own uid owned is the caller's again (passt, root without
    // capabilities here, could not make its socket in a run folder of another uid).
    if (process.getuid?.() === 0) {
      for (const f of [run, opts.disk, ...opts.volumes]) if (fs.lstatSync(f).uid !== 0) fs.lchownSync(f, 0, 0);
    }
    return { netSocket: path.join(run, 'net.sock'), lanSocket: path.join(run, 'lan.sock'), passtSocket: path.join(ensureDir(helperDirIn(dir), 0o700), 'passt.sock') };
  }
  const probe = probeJail();
  if (probe.problem) throw new BootError(`box ${rec.name} cannot start jailed: ${probe.problem}; or set BOXLITE_JAIL=off to run boxes unconfined (see 'boxlite doctor')`);
  const as = probe.root ? await vmmIdentity(ctx, rec) : undefined;
  let netDir = run;
  let helperDir = ensureDir(helperDirIn(dir), 0o700);
  if (as) {
    netDir = ensureDir(netDirOf(ctx, rec.id), 0o700);
    helperDir = ensureDir(netDirOf(ctx, rec.id, true), 0o700);
    fs.chmodSync(path.dirname(netDir), 0o711);
    for (const f of [run, netDir, helperDir, opts.disk, ...opts.volumes]) fs.lchownSync(f, as.uid, as.gid);
  }
  // Read-only: the guest assets and every image below the box's disk (its image's base, the layers it shares).
  const chain = (await checkedChain(ctx.home, opts.disk)).slice(1).map((c) => c.filename);
  const sizes = [rec.options.diskSizeMib, ...(rec.options.volumes ?? []).map((v) => ctx.volumes.find(v.volume)?.sizeMib ?? 0)];
  // A qcow2 grows past its virtual size by what its snapshots keep: room for that, sized to the box's disks.
  const fsizeMib = Math.max(...sizes) * (2 + (rec.snapshots?.length ?? 0)) + 512;
  return {
    as,
    netSocket: path.join(netDir, 'net.sock'),
    lanSocket: path.join(netDir, 'lan.sock'),
    passtSocket: path.join(helperDir, 'passt.sock'),
    jail: {
      as,
      ro: [...new Set([opts.assets.kernel, opts.assets.initrd, opts.assets.initImage, ...chain])],
      rw: [...new Set([run, ctl, opts.disk, ...opts.volumes, ...(netDir !== run ? [netDir] : [])])],
      devices: opts.kvm ? ['/dev/kvm'] : [],
      limits: { nofile: 1024, fsizeBytes: fsizeMib * 1024 * 1024, ...(as ? { nproc: 256 } : {}) },
      cwd: run,
    },
  };
}

/** Removes what a box left outside its folder. */
export function unconfine(ctx: RuntimeContext, id: string): void {
  fs.rmSync(netDirOf(ctx, id), { recursive: true, force: true });
  fs.rmSync(netDirOf(ctx, id, true), { recursive: true, force: true });
}
