// Watch: keeps a project converged. chokidar watches boxlite.yaml and .env; an edit is debounced, planned, and only
// the difference applied. Between edits a drift loop looks at the boxes: one that died or was stopped behind the
// project's back is brought back per its restart policy (with backoff), a command that ended likewise, health
// checks run at their intervals, and the snapshot policy's `every` is honoured. An invalid edit is reported and the
// last good project stays in force. stop() ends the watch and leaves the boxes running.
import { printable } from '../util/printable.js';
import * as path from 'node:path';
import { watch as chokidarWatch, type FSWatcher } from 'chokidar';
import type { EgressEvent, IdlePauser, Runtime } from '../runtime/runtime.js';
import type { ProjectSpec, RestartPolicy } from '../spec/types.js';
import type { ExitReason } from '../runtime/types.js';
import { loadProject, type LoadOptions } from '../spec/load.js';
import { requireTrust, UntrustedProjectError } from './trust.js';
import { applyLock, LOCK_FILE, lockPathOf, readLock } from './lock.js';
import { applyPlan } from './apply.js';
import { preflight } from './preflight.js';
import { selectBoxes, type Selection } from './select.js';
import { plan, policyDue, renderPlan, type Plan } from './plan.js';
import { lockProject, observe } from './names.js';
import { checkOnce, nextHealth } from './health.js';
import { startCommand } from './command.js';
import { healthOfRun, projectLabel, updateProjectLabel } from './label.js';

/** What a watch reports, typed for programs; `message` is the line the CLI prints. */
export type WatchEvent =
  | { type: 'watching'; file: string; message: string }
  | { type: 'invalid-edit' | 'valid-again' | 'warning' | 'error' | 'idle'; message: string }
  | { type: 'plan'; why: string; plan: Plan | null; message: string } // null: nothing to change
  | { type: 'applied'; ok: boolean; errors: { box?: string; message: string }[]; message: string }
  | { type: 'restarting'; box: string; attempt: number; message: string }
  | { type: 'restarted'; box: string; message: string }
  | { type: 'restart-failed'; box: string; retryInMs: number; message: string }
  | { type: 'health'; box: string; status: string; output?: string; message: string }
  | { type: 'snapshot'; box: string; snapshot: string; action: 'taken' | 'removed'; message: string }
  | { type: 'denied'; box: string; event: EgressEvent; message: string };

export interface WatchOptions extends LoadOptions {
  /** One line per event. */
  say?: (line: string) => void;
  /** Each event, typed. */
  onEvent?: (e: WatchEvent) => void;
  debounceMs?: number;
  /** How often the boxes are looked at. */
  pollMs?: number;
  removeOrphans?: boolean;
  /** up --locked: an edit must keep every image pinned by boxlite.lock. */
  locked?: boolean;
  /** listr2's renderer for an edit's apply: silent (default) or simple (lines, as the CLI shows them). */
  renderer?: 'simple' | 'silent';
  /** A hash of reaching parts accepted for this watch (BOXLITE_TRUST); others need `boxlite trust`. */
  trustAccept?: string;
  /** Profiles whose boxes are kept converged too; fromEnv: they came from $BOXLITE_PROFILES. */
  profiles?: { names: string[]; fromEnv: boolean };
}

/** Whether a policy brings back a box (or command) that stopped: `stopped` says it was stopped by a person. */
export function shouldRestart(policy: RestartPolicy, how: { stopped: boolean; reason?: ExitReason | 'exit-code'; exitCode?: number }): boolean {
  switch (policy) {
    case 'no':
      return false;
    case 'always':
      return true;
    case 'unless-stopped':
      return !how.stopped;
    case 'on-failure':
      return !how.stopped && (how.reason === 'crash' || how.reason === 'killed' || (how.reason === 'exit-code' && (how.exitCode ?? 0) !== 0));
  }
}

/** 1 s, 2 s, 4 s … up to 60 s between attempts for the same box. */
export const backoffMs = (attempt: number) => Math.min(60_000, 1000 * 2 ** Math.max(0, attempt - 1));

export class Watcher {
  private project: ProjectSpec;
  /** The boxes the watch keeps converged (the project's, less those its profiles keep out). */
  private selection: Selection;
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private poller: NodeJS.Timeout | null = null;
  private busy: Promise<void> = Promise.resolve();
  private stopped = false;
  /** The last edit was not valid: the next valid one says so. */
  private invalid = false;
  private attempts = new Map<string, { n: number; next: number }>();
  private nextHealthAt = new Map<string, number>();
  /** Per box id: how far its denial events have been reported. */
  private denialCursor = new Map<string, number>();
  private idle: IdlePauser;

  constructor(private readonly rt: Runtime, project: ProjectSpec, private readonly opts: WatchOptions) {
    this.project = project;
    this.selection = this.select(project);
    this.idle = rt.idlePauser((message) => this.emit({ type: 'idle', message }));
  }

  /** A listener that throws must not stop a converge or a restart half way. */
  private emit(e: WatchEvent): void {
    try {
      this.opts.onEvent?.(e);
    } catch {}
    try {
      this.opts.say?.(e.message);
    } catch {}
  }

  private select(project: ProjectSpec): Selection {
    const p = this.opts.profiles;
    return selectBoxes(project, { profiles: p?.names, lenient: p?.fromEnv ?? true });
  }

  /** Watches until stop(); the first apply has been done by the caller (boxlite up). Resolves once the files
   *  are watched: an edit made after that is seen. */
  async start(): Promise<void> {
    const files = [this.project.file, path.join(this.project.dir, '.env'), path.join(this.project.dir, LOCK_FILE)];
    this.watcher = chokidarWatch(files, { ignoreInitial: true, awaitWriteFinish: { stabilityThreshold: 100, pollInterval: 50 } });
    const onChange = () => {
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(() => this.enqueue(() => this.reload()), this.opts.debounceMs ?? 300);
    };
    this.watcher.on('add', onChange).on('change', onChange).on('unlink', onChange);
    const poll = () => {
      if (this.stopped) return;
      this.enqueue(() => this.drift()).finally(() => {
        if (!this.stopped) this.poller = setTimeout(poll, this.opts.pollMs ?? 2000);
      });
    };
    this.poller = setTimeout(poll, this.opts.pollMs ?? 2000);
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
    const file = path.relative(process.cwd(), this.project.file) || this.project.file;
    this.emit({ type: 'watching', file: this.project.file, message: `watching ${file} (and .env); Ctrl-C ends the watch and leaves the boxes running` });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.poller) clearTimeout(this.poller);
    await this.watcher?.close();
    await this.busy.catch(() => {});
    await this.idle.stop();
  }

  /** One thing at a time: an apply and a drift pass never overlap. */
  private enqueue(f: () => Promise<void>): Promise<void> {
    this.busy = this.busy.then(f, f).catch((e) => this.emit({ type: 'error', message: `error: ${(e as Error).message}` }));
    return this.busy;
  }

  private async reload(): Promise<void> {
    if (this.stopped) return;
    let next: ProjectSpec;
    try {
      const written = loadProject(this.project.file, this.opts);
      next = applyLock(written, readLock(lockPathOf(written)), { locked: this.opts.locked });
    } catch (e) {
      // The file's own lines indented under the watch's stamped line, so they read as part of it.
      const said = (e as Error).message.replace(/^boxlite: /, '').split('\n').map((l) => `  ${l}`).join('\n');
      this.refuse(`the edit is not valid; the boxes stay as they are:\n${said}`);
      return;
    }
    try {
      requireTrust(this.rt.home.root, next, this.opts.trustAccept);
    } catch (e) {
      if (!(e instanceof UntrustedProjectError)) throw e;
      this.refuse(`the edit is not applied; the boxes stay as they are:\n${e.message}`);
      return;
    }
    let selection: Selection;
    try {
      selection = this.select(next);
    } catch (e) {
      this.refuse(`the edit is not valid; the boxes stay as they are:\n  ${(e as Error).message}`);
      return;
    }
    if (next.name !== this.project.name) {
      this.emit({ type: 'invalid-edit', message: `the project name changed (${this.project.name} → ${next.name}): run 'boxlite down' for the old one and 'boxlite up' again; the watch keeps ${this.project.name}` });
      return;
    }
    await this.converge('the project file changed', next, selection);
  }

  private refuse(message: string): void {
    this.invalid = true;
    this.emit({ type: 'invalid-edit', message });
  }

  /** Plans the edited project and applies it, unless up would refuse it (an image that cannot be had, a port
   *  held, a secret not readable): then the last good project stays in force, as for an invalid file. */
  private async converge(why: string, next: ProjectSpec, selection: Selection): Promise<void> {
    const lock = await lockProject(this.rt, next.name, (message) => this.emit({ type: 'warning', message }));
    try {
      const o = await observe(this.rt, next.name);
      const observed = o.boxes.filter((b) => !selection.inactive.includes(b.label.box)); // kept out by a profile: not orphans
      const p = plan(selection.spec, observed, o.volumes, { removeOrphans: this.opts.removeOrphans });
      const problems = await preflight(this.rt, selection.spec, p, { secrets: true }); // its reach is approved (reload)
      if (problems.length) {
        this.refuse(`the edit is not applied; 'up' would fail, so the boxes stay as they are:\n${problems.map((q) => `  ✖ ${q.box}: ${q.message}`).join('\n')}`);
        return;
      }
      if (this.invalid) this.emit({ type: 'valid-again', message: `${path.basename(next.file)} is valid again` });
      this.invalid = false;
      const said = new Set(this.project.warnings);
      this.project = next;
      this.selection = selection;
      for (const w of next.warnings) if (!said.has(w)) this.emit({ type: 'warning', message: `warning: ${w}` }); // once, not at every edit
      if (!p.changed) {
        this.emit({ type: 'plan', why, plan: null, message: `${why}: no changes` });
        return;
      }
      this.emit({ type: 'plan', why, plan: p, message: `${why}:\n${renderPlan(p)}` });
      const r = await applyPlan(this.rt, selection.spec, p, { renderer: this.opts.renderer ?? 'silent' });
      this.emit({ type: 'applied', ok: r.ok, errors: r.errors, message: r.ok ? 'applied' : `applied with errors:\n${r.errors.map((e) => `  ${e.box}: ${e.message}`).join('\n')}` });
    } finally {
      lock.release();
    }
  }

  /** Brings back what stopped behind the project's back, runs due health checks and snapshots, pauses idle boxes. */
  private async drift(): Promise<void> {
    if (this.stopped) return;
    const o = await observe(this.rt, this.project.name);
    const now = Date.now();
    const idle = Object.values(this.selection.spec.boxes).flatMap((spec) => {
      const box = o.boxes.find((b) => b.label.box === spec.name && !b.label.retiredAt);
      return box && spec.pauseAfterMs && box.label.setup === 'done' ? [{ id: box.id, name: spec.name, afterMs: spec.pauseAfterMs }] : [];
    });
    if (idle.length) await this.idle.sweep(idle);
    for (const spec of Object.values(this.selection.spec.boxes)) {
      const box = o.boxes.find((b) => b.label.box === spec.name && !b.label.retiredAt);
      if (!box || box.label.setup !== 'done') continue; // missing or unprovisioned: only an edit or `up` makes it
      const rec = this.rt.record(box.id);
      const st = this.rt.status(rec);
      const attempt = this.attempts.get(spec.name);
      if (st.state === 'paused') continue; // paused on purpose: woken by a use, not by a restart policy
      if (st.state !== 'running') {
        const stopped = st.state === 'stopped';
        if (!shouldRestart(spec.restart, { stopped, reason: st.exit?.reason })) continue;
        if (attempt && now < attempt.next) continue;
        const n = (attempt?.n ?? 0) + 1;
        this.attempts.set(spec.name, { n, next: now + backoffMs(n) });
        this.emit({ type: 'restarting', box: spec.name, attempt: n, message: `${spec.name}: ${stopped ? 'was stopped' : `exited (${st.exit?.reason ?? 'unknown'}: ${st.exit?.detail ?? ''})`}; restart: ${spec.restart} → starting it (attempt ${n})` });
        try {
          await this.rt.start(box.id); // the project's hook writes its LAN names and starts its command
          this.emit({ type: 'restarted', box: spec.name, message: `${spec.name}: running again` });
        } catch (e) {
          this.emit({ type: 'restart-failed', box: spec.name, retryInMs: backoffMs(n), message: `${spec.name}: could not start: ${(e as Error).message.split('\n')[0]}; next try in ${backoffMs(n) / 1000}s` });
        }
        continue;
      }
      // Running: its outbound denials, the command, then health, then the snapshot policy.
      if (rec.options.egress) {
        const handle = this.rt.get(box.id);
        const seen = handle.eventsSince(this.denialCursor.get(box.id) ?? -1);
        this.denialCursor.set(box.id, seen.cursor);
        for (const e of seen.events) this.emit({ type: 'denied', box: spec.name, event: e, message: printable(`${spec.name}: denied ${e.kind} to ${e.destination} (${e.rule})`, false) });
      }
      const label = projectLabel(rec);
      if (spec.command && label?.command) {
        const ps = await this.rt.processState(box.id, label.command.execId).catch(() => null);
        if (ps && !ps.running && shouldRestart(spec.restart, { stopped: false, reason: 'exit-code', exitCode: ps.exitCode })) {
          if (!attempt || now >= attempt.next) {
            const n = (attempt?.n ?? 0) + 1;
            this.attempts.set(spec.name, { n, next: now + backoffMs(n) });
            this.emit({ type: 'restarting', box: spec.name, attempt: n, message: `${spec.name}: its command exited with status ${ps.exitCode}; restart: ${spec.restart} → starting it again (attempt ${n})` });
            await startCommand(this.rt, box.id, spec.command).catch((e) => this.emit({ type: 'error', message: `${spec.name}: ${(e as Error).message}` }));
          }
        } else if (ps?.running && attempt && now - (attempt.next - backoffMs(attempt.n)) > 60_000) {
          this.attempts.delete(spec.name); // up for a minute: the backoff starts over
        }
      }
      if (spec.healthcheck && now >= (this.nextHealthAt.get(spec.name) ?? 0)) {
        this.nextHealthAt.set(spec.name, now + spec.healthcheck.intervalMs);
        const r = await checkOnce(this.rt, box.id, spec.healthcheck);
        const prev = healthOfRun(label, rec); // a result of an earlier run says nothing now
        const h = nextHealth(prev, r, spec.healthcheck, Date.parse(rec.startedAt ?? '') || now);
        if (prev?.status !== h.status) this.emit({ type: 'health', box: spec.name, status: h.status, output: h.output, message: `${spec.name}: ${h.status}${h.status === 'unhealthy' ? ` (${h.output})` : ''}` });
        await updateProjectLabel(this.rt, box.id, (l) => l && { ...l, health: h });
      }
      // The snapshot policy's `every`, decided as plan decides it.
      if (spec.snapshots?.everyMs) {
        const due = policyDue(spec.snapshots, rec.snapshots ?? [], rec.createdAt, new Date(now));
        if (due.snapshot) {
          const snaps = this.rt.snapshots(box.id);
          await snaps.create(due.snapshot.name, { auto: true });
          this.emit({ type: 'snapshot', box: spec.name, snapshot: due.snapshot.name, action: 'taken', message: `${spec.name}: snapshot ${due.snapshot.name} (${due.snapshot.why})` });
          for (const name of due.prune) {
            await snaps.remove(name);
            this.emit({ type: 'snapshot', box: spec.name, snapshot: name, action: 'removed', message: `${spec.name}: removed snapshot ${name} (beyond keep: ${spec.snapshots.keep})` });
          }
        }
      }
    }
  }
}
