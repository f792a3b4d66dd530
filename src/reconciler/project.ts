// The project API: what `boxlite plan | up | down | watch` do, for the CLI and for programs alike.
//   const p = Project.load({ file: 'boxlite.yaml' });
//   const plan = await p.plan();           // what up would change (pure: nothing is touched)
//   const r = await p.up({ wait: true });  // make the boxes match; r.ok, r.errors
//   await p.down({ remove: true });
import * as path from 'node:path';
import { Runtime } from '../runtime/runtime.js';
import { findProjectFile, loadProject, type LoadOptions } from '../spec/load.js';
import { PlanProblemsError, preflight } from './preflight.js';
import type { ProjectSpec } from '../spec/types.js';
import { InvalidOptionError } from '../core/errors.js';
import { plan as makePlan, type Plan } from './plan.js';
import { lockProject, observe, volumeName } from './names.js';
import { projectHooks } from './hooks.js';
import type { ApplyResult } from './apply.js';
import type { Watcher, WatchOptions } from './watch.js';
import { applyLock, lockPathOf, readLock, writeLock, type LockResult } from './lock.js';
import { loadAssets } from '../runtime/assets.js';
import { profilesFromEnv, selectBoxes, type Selection } from './select.js';
import { approve, requireTrust, revoke, trustState, type TrustState } from './trust.js';

export interface ProjectOptions extends LoadOptions {
  /** The project file; default boxlite.yaml in dir (or the working folder) or the nearest folder above. */
  file?: string;
  dir?: string;
  /** The runtime to work in; default one over $BOXLITE_HOME with the project's hooks. */
  runtime?: Runtime;
  /** One-line notices: warnings of the file, waiting for another process's lock, policy snapshots. */
  say?: (m: string) => void;
  /** Every image reference must be pinned by boxlite.lock (up --locked); 'ignore': the file as written (lock). */
  locked?: boolean | 'ignore';
  /** Profiles whose boxes plan, up and watch act on too (default $BOXLITE_PROFILES); '*' for all. */
  profiles?: string[];
}

export interface UpOptions {
  /** Return once every box with a healthcheck is healthy (or fail with its output). */
  wait?: boolean;
  waitTimeoutMs?: number;
  /** Remove boxes of the project that are no longer declared. */
  removeOrphans?: boolean;
  /** listr2's renderer for progress: default (a terminal), simple (lines), silent (default here). */
  renderer?: 'default' | 'simple' | 'silent';
  /** Called with the plan before anything is applied. */
  onPlan?: (p: Plan) => void;
  /** What the file reaches outside its folder must be approved (boxlite trust): true approves it now; a hash
   *  accepts exactly that set for this run (default: $BOXLITE_TRUST). */
  trust?: boolean | string;
  /** Only these boxes (and what they depend on). */
  boxes?: string[];
}

export interface UpResult extends ApplyResult {
  plan: Plan;
  /** Nothing needed doing. */
  upToDate: boolean;
  /** Boxes no longer declared, kept (up without removeOrphans). */
  orphans: string[];
}

export interface DownOptions {
  /** Remove the boxes (and their disks), after a clean shutdown. */
  remove?: boolean;
  /** Also remove the project's named volumes (needs remove). */
  volumes?: boolean;
  timeoutMs?: number;
  /** Only these boxes of the project (not what they depend on, as compose does). */
  boxes?: string[];
}

export interface DownResult {
  /** Boxes the project had (running or not). */
  found: number;
  boxes: { box: string; action: 'stopped' | 'removed'; forced?: boolean; keptAside?: string }[];
  volumes: string[];
}

/** A runtime whose box operations carry a project's policy (its boxes' commands and snapshot policy). */
export function projectRuntime(opts: { home?: string; say?: (m: string) => void } = {}): Runtime {
  return new Runtime({ home: opts.home, say: opts.say, hooks: projectHooks(opts.say) });
}

export class Project {
  private constructor(
    /** The project as it runs: locked references pinned to their digest. */
    readonly spec: ProjectSpec,
    /** The project as its file says. */
    private readonly written: ProjectSpec,
    readonly runtime: Runtime,
    private readonly say: (m: string) => void,
    private readonly ownsRuntime: boolean,
    private readonly locked: boolean,
    /** The profiles asked for, and whether they came from $BOXLITE_PROFILES (where another project's are no error). */
    readonly profiles: { names: string[]; fromEnv: boolean },
  ) {}

  /** Finds, reads and validates the project file (a SpecError lists every problem with file:line:col). */
  static load(opts: ProjectOptions | string = {}): Project {
    const o = typeof opts === 'string' ? { file: opts } : opts;
    const say = o.say ?? (() => {});
    const written = loadProject(findProjectFile({ file: o.file, dir: o.dir }), o);
    for (const w of written.warnings) say(`boxlite: warning: ${w}`);
    // A locked reference runs its locked digest: a tag moved since changes nothing until the lock is updated.
    const spec = o.locked === 'ignore' ? written : applyLock(written, readLock(lockPathOf(written)), { locked: o.locked });
    const profiles = o.profiles ? { names: o.profiles, fromEnv: false } : { names: profilesFromEnv(), fromEnv: true };
    // Which boxes a command acts on is decided by plan, up and watch (with the boxes named): trust, lock and config
    // take the whole file whatever its profiles.
    return new Project(spec, written, o.runtime ?? projectRuntime({ say }), say, !o.runtime, o.locked === true, profiles);
  }

  /** Writes boxlite.lock beside the file: each image reference's digest (pulled to learn it); update re-resolves
   *  references already locked. */
  lock(opts: { update?: boolean } = {}): Promise<LockResult> {
    let kernel: string | undefined;
    try {
      kernel = loadAssets(this.runtime.home).kernelVersion;
    } catch {} // no assets yet: the lock still pins the images
    return writeLock(this.runtime, this.written, { update: opts.update, kernel, say: this.say });
  }

  get name(): string {
    return this.spec.name;
  }
  get file(): string {
    return this.spec.file;
  }

  /** What up would do, field by field (a pure function of the file and the boxes as they are); boxes: only these
   *  and what they depend on, as `docker compose up web` does (the others are not orphans then). */
  async plan(opts: { removeOrphans?: boolean; boxes?: string[]; trusted?: boolean } = {}): Promise<Plan> {
    const { spec, inactive } = this.select(opts.boxes);
    const o = await observe(this.runtime, this.name);
    // Boxes named leave the others alone; boxes a profile keeps out are not orphans.
    const observed = opts.boxes ? o.boxes.filter((b) => spec.boxes[b.label.box]) : o.boxes.filter((b) => !inactive.includes(b.label.box));
    const pl = makePlan(spec, observed, o.volumes, { removeOrphans: opts.removeOrphans && !opts.boxes });
    const problems = await preflight(this.runtime, spec, pl, { secrets: opts.trusted ?? this.trustState().approved });
    return problems.length ? { ...pl, problems } : pl;
  }

  /** The boxes this project acts on: its profiles asked for, or the boxes named and what they depend on. */
  select(boxes?: string[]): Selection {
    return selectBoxes(this.spec, { profiles: this.profiles.names, boxes, lenient: this.profiles.fromEnv });
  }

  /** Makes the boxes match the file: create, start, update, restart or recreate what differs. */
  async up(opts: UpOptions = {}): Promise<UpResult> {
    if (opts.waitTimeoutMs !== undefined && !(opts.waitTimeoutMs > 0)) throw new InvalidOptionError(`the wait timeout must be a positive number of seconds (got ${opts.waitTimeoutMs / 1000})`);
    if (opts.trust === true) approve(this.runtime.home.root, this.spec);
    else requireTrust(this.runtime.home.root, this.spec, acceptedHash(opts.trust));
    const lock = await lockProject(this.runtime, this.name, this.say);
    try {
      const { spec } = this.select(opts.boxes);
      const pl = await this.plan({ removeOrphans: opts.removeOrphans, boxes: opts.boxes, trusted: true }); // approved just above
      // Nothing is made when the plan already knows it would fail.
      if (pl.problems) throw new PlanProblemsError(pl.problems);
      const orphans = pl.boxes.filter((b) => b.action === 'orphan').map((b) => b.box);
      opts.onPlan?.(pl);
      const needsWork = pl.changed || (opts.wait && Object.values(spec.boxes).some((b) => b.healthcheck));
      if (!needsWork) return { plan: pl, upToDate: true, orphans, ok: true, errors: [] };
      // Loaded only when there is work: an up with nothing to do starts without listr2 and the agent client.
      const { applyPlan } = await import('./apply.js');
      const r = await applyPlan(this.runtime, spec, pl, { wait: opts.wait, waitTimeoutMs: opts.waitTimeoutMs, renderer: opts.renderer ?? 'silent' });
      return { plan: pl, upToDate: false, orphans, ...r };
    } finally {
      lock.release();
    }
  }

  /** Stops the project's boxes; remove deletes them (after a clean shutdown), volumes its named volumes too. */
  down(opts: DownOptions = {}): Promise<DownResult> {
    return downProject(this.runtime, this.name, opts, this.say);
  }

  /** Keeps the project converged until stop(): file edits are applied, boxes brought back per restart policy.
   *  onEvent gets each event typed (plan, applied, restarting, health, snapshot, idle…); say gets its line. */
  async watch(opts: Omit<WatchOptions, keyof LoadOptions> = {}): Promise<Watcher> {
    const { Watcher } = await import('./watch.js');
    // An edit that reaches further than approved is not applied: a box that can write its own project folder
    // cannot widen its reach. Only the set approved (or accepted) when the watch began, or approved since, is.
    requireTrust(this.runtime.home.root, this.spec, acceptedHash(opts.trustAccept));
    const w = new Watcher(this.runtime, this.spec, { ...opts, env: undefined, projectName: this.spec.name, locked: this.locked, trustAccept: acceptedHash(opts.trustAccept), profiles: this.profiles });
    await w.start();
    return w;
  }

  /** What the file reaches outside its folder, and whether that is approved on this machine. */
  trustState(): TrustState {
    return trustState(this.runtime.home.root, this.spec, acceptedHash(undefined));
  }

  /** Approves what the file reaches outside its folder now (boxlite trust); revoke forgets the approval. */
  trust(opts: { revoke?: boolean } = {}): TrustState {
    if (opts.revoke) {
      revoke(this.runtime.home.root, this.file);
      return trustState(this.runtime.home.root, this.spec);
    }
    return approve(this.runtime.home.root, this.spec);
  }

  /** The file's path relative to the working folder, for messages. */
  get shownFile(): string {
    return path.relative(process.cwd(), this.file) || this.file;
  }

  close(): void {
    if (this.ownsRuntime) this.runtime.close();
  }
}

/** A hash accepted for this run: given, or $BOXLITE_TRUST (CI's non-interactive approval). */
function acceptedHash(given: boolean | string | undefined): string | undefined {
  return typeof given === 'string' ? given : process.env.BOXLITE_TRUST || undefined;
}

/** down by project name: works from the records, so also when the project file is gone or broken. */
export async function downProject(rt: Runtime, name: string, opts: DownOptions = {}, say: (m: string) => void = () => {}): Promise<DownResult> {
  if (opts.volumes && !opts.remove) throw new InvalidOptionError('down: removing the named volumes needs remove too (a stopped box still uses its volumes)');
  if (opts.volumes && opts.boxes) throw new InvalidOptionError("down BOX…: the named volumes are the project's, not a box's: drop -v, or take the whole project down");
  const lock = await lockProject(rt, name, say);
  const result: DownResult = { found: 0, boxes: [], volumes: [] };
  try {
    const o = await observe(rt, name);
    let boxes = o.boxes;
    if (opts.boxes) {
      const live = o.boxes.filter((b) => !b.label.retiredAt);
      const missing = opts.boxes.filter((n) => !live.some((b) => b.label.box === n));
      if (missing.length) throw new InvalidOptionError(`no box ${missing.map((m) => `"${m}"`).join(', ')} in project ${name}: its boxes are ${live.map((b) => b.label.box).join(', ') || 'none'}`);
      boxes = live.filter((b) => opts.boxes!.includes(b.label.box));
    }
    result.found = boxes.length;
    await Promise.all(
      boxes.map(async (b) => {
        if (opts.remove) {
          // Stopped cleanly before it goes, as compose does: what it wrote to named volumes is kept.
          await rt.stop(b.id, { timeoutMs: opts.timeoutMs });
          await rt.remove(b.id, { force: true });
          result.boxes.push({ box: b.label.box, action: 'removed', ...(b.label.retiredAt ? { keptAside: b.name } : {}) });
        } else if (rt.status(rt.record(b.id)).state === 'running') {
          const r = await rt.stop(b.id, { timeoutMs: opts.timeoutMs });
          result.boxes.push({ box: b.label.box, action: 'stopped', forced: r.forced });
        }
      }),
    );
    if (opts.volumes) {
      for (const v of o.volumes) {
        await rt.volumes.remove(volumeName(name, v.name));
        result.volumes.push(v.name);
      }
    }
  } finally {
    lock.release();
  }
  return result;
}
