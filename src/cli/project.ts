// The declarative commands: plan, up, down, config, watch, and the project context that lets exec/logs/stop/…
// name a box by its name in boxlite.yaml.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Runtime } from '../runtime/runtime.js';
import { findProjectFile, loadProject, NoProjectError } from '../spec/load.js';
import type { Project } from '../spec/types.js';
import { plan, renderPlan, type Plan } from '../reconciler/plan.js';
import { lockProject, observe, volumeName } from '../reconciler/project.js';
import { parseArgs, UsageError, type OptionSpec } from './args.js';

const out = (s: string) => process.stdout.write(s + '\n');
const err = (s: string) => process.stderr.write(s + '\n');

/** -f/-p given before the command (boxlite -f x.yaml -p demo up), compose style. */
export interface ProjectContext {
  file?: string;
  project?: string;
}

export const PROJECT_OPTS: Record<string, OptionSpec> = {
  file: { short: 'f', value: true, help: 'the project file (default: boxlite.yaml here or in a folder above)' },
  project: { short: 'p', value: true, help: 'the project name (default: name: in the file, else the folder name)' },
};

/** Strips the global options that come before the command. */
export function globalOptions(argv: string[]): { ctx: ProjectContext; rest: string[] } {
  const ctx: ProjectContext = {};
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    const m = /^(?:-f|--file)(?:=(.*))?$/.exec(a) ?? /^(?:-p|--project)(?:=(.*))?$/.exec(a);
    if (!m) break;
    const v = m[1] ?? argv[++i];
    if (v === undefined) throw new UsageError(`${a} needs a value`);
    if (a.startsWith('-f') || a.startsWith('--file')) ctx.file = v;
    else ctx.project = v;
  }
  return { ctx, rest: argv.slice(i) };
}

function load(ctx: ProjectContext): Project {
  const file = findProjectFile({ file: ctx.file });
  const p = loadProject(file, { projectName: ctx.project });
  for (const w of p.warnings) err(`boxlite: warning: ${w}`);
  return p;
}

/** The project's name for name lookups: from the file when there is one (even an invalid one), else -p. */
export function contextProjectName(ctx: ProjectContext): string | undefined {
  if (ctx.project) return ctx.project;
  let file: string;
  try {
    file = findProjectFile({ file: ctx.file });
  } catch {
    return undefined;
  }
  try {
    return loadProject(file, { env: { ...process.env } }).name;
  } catch {
    const m = /^name:\s*["']?([a-z0-9][a-z0-9_-]*)/m.exec(fs.readFileSync(file, 'utf8'));
    return m?.[1] ?? path.basename(path.dirname(file)).toLowerCase().replace(/[^a-z0-9_-]/g, '');
  }
}

/** Lets `boxlite exec web …` find the project's box "web" inside a project folder. */
export function installNameResolver(rt: Runtime, ctx: ProjectContext): void {
  let name: string | undefined | null = null;
  rt.nameResolver = (ref) => {
    if (ref.includes('.')) return undefined;
    if (name === null) name = contextProjectName(ctx);
    if (!name) return undefined;
    const rec = rt.list().find((r) => r.project?.project === name && r.project?.box === ref && !r.project?.retiredAt);
    return rec?.name;
  };
}

export const PROJECT_COMMANDS: Record<string, { usage: string; help: string; opts: Record<string, OptionSpec> }> = {
  plan: {
    usage: 'plan [-f FILE] [-p NAME] [--json] [--remove-orphans]',
    help: "show what 'up' would change (exit 0: nothing, 2: changes, 1: error)",
    opts: { ...PROJECT_OPTS, json: { help: 'print the plan as JSON' }, 'remove-orphans': { help: 'plan the removal of boxes no longer declared' } },
  },
  up: {
    usage: 'up [-f FILE] [-p NAME] [--wait] [--watch] [--remove-orphans]',
    help: 'make the boxes match boxlite.yaml (create, start, update, recreate) and leave them running',
    opts: {
      ...PROJECT_OPTS,
      wait: { help: 'return when every box with a healthcheck is healthy (or fail with its output)' },
      'wait-timeout': { value: true, help: 'seconds --wait waits at most (default 600)' },
      watch: { help: 'then keep watching: apply edits of boxlite.yaml and .env, bring back boxes per restart policy' },
      'remove-orphans': { help: 'remove boxes of the project that are no longer declared' },
      detach: { short: 'd', help: 'return once applied (the default: boxes keep running)' },
    },
  },
  down: {
    usage: 'down [-f FILE] [-p NAME] [--remove] [--volumes]',
    help: "stop the project's boxes (--remove: delete them; --volumes: also its named volumes)",
    opts: { ...PROJECT_OPTS, remove: { help: 'remove the boxes and their disks' }, volumes: { short: 'v', help: "also remove the project's named volumes (with --remove)" }, time: { short: 't', value: true, help: 'seconds to wait for a clean shutdown (default 10)' } },
  },
  config: { usage: 'config [-f FILE] [-p NAME]', help: 'print the validated, interpolated, normalised project as JSON', opts: PROJECT_OPTS },
  watch: { usage: 'watch [-f FILE] [-p NAME] [--remove-orphans]', help: "'up', then keep the boxes converged (same as up --watch)", opts: { ...PROJECT_OPTS, 'remove-orphans': { help: 'remove boxes no longer declared' } } },
};

async function makePlan(rt: Runtime, project: Project, removeOrphans: boolean): Promise<Plan> {
  const o = await observe(rt, project.name);
  return plan(project, o.boxes, o.volumes, { removeOrphans });
}

export const PROJECT_IMPL: Record<string, (rt: Runtime, args: string[], spec: Record<string, OptionSpec>, g: ProjectContext) => Promise<number>> = {
  async plan(rt, args, spec, g) {
    const p = parseArgs(args, spec, -1, 'plan');
    const ctx = { file: (p.opts.file as string) ?? g.file, project: (p.opts.project as string) ?? g.project };
    const project = load(ctx);
    const pl = await makePlan(rt, project, !!p.opts['remove-orphans']);
    if (p.opts.json) out(JSON.stringify({ ...pl, boxes: pl.boxes.map(({ spec: _s, ...b }) => b) }, null, 2));
    else out(renderPlan(pl));
    return pl.changed ? 2 : 0;
  },

  async up(rt, args, spec, g) {
    const p = parseArgs(args, spec, -1, 'up');
    const ctx = { file: (p.opts.file as string) ?? g.file, project: (p.opts.project as string) ?? g.project };
    const project = load(ctx);
    const ok = await upOnce(rt, project, { wait: !!p.opts.wait, waitTimeoutS: p.opts['wait-timeout'] as string | undefined, removeOrphans: !!p.opts['remove-orphans'] });
    if (!p.opts.watch) return ok ? 0 : 1;
    return watchUntilInterrupted(rt, project, ctx, !!p.opts['remove-orphans']);
  },

  async watch(rt, args, spec, g) {
    const p = parseArgs(args, spec, -1, 'watch');
    const ctx = { file: (p.opts.file as string) ?? g.file, project: (p.opts.project as string) ?? g.project };
    const project = load(ctx);
    await upOnce(rt, project, { removeOrphans: !!p.opts['remove-orphans'] });
    return watchUntilInterrupted(rt, project, ctx, !!p.opts['remove-orphans']);
  },

  async down(rt, args, spec, g) {
    const p = parseArgs(args, spec, -1, 'down');
    const ctx = { file: (p.opts.file as string) ?? g.file, project: (p.opts.project as string) ?? g.project };
    // down works from the records, so it also works when the file is gone or broken, given -p.
    let name = ctx.project;
    if (!name) {
      try {
        name = load(ctx).name;
      } catch (e) {
        if (e instanceof NoProjectError) throw e;
        const fromRecords = contextProjectName(ctx);
        if (!fromRecords) throw e;
        name = fromRecords;
        err(`boxlite: the project file has problems; taking down project ${name} from its records:\n${(e as Error).message}`);
      }
    }
    if (p.opts.volumes && !p.opts.remove) throw new UsageError('down: --volumes removes the named volumes, so it needs --remove (a stopped box still uses its volumes)');
    const timeoutMs = p.opts.time !== undefined ? Number(p.opts.time) * 1000 : undefined;
    const lock = await lockProject(rt, name, err);
    try {
      const o = await observe(rt, name);
      if (!o.boxes.length && !(p.opts.volumes && o.volumes.length)) {
        out(`project ${name} has no boxes`);
        return 0;
      }
      await Promise.all(
        o.boxes.map(async (b) => {
          if (p.opts.remove) {
            // Stopped cleanly before it goes, as compose does: what it wrote to named volumes is kept.
            await rt.stop(b.id, { timeoutMs });
            await rt.remove(b.id, { force: true });
            out(`${b.label.box}: removed${b.label.retiredAt ? ` (${b.name}, kept aside by a snapshot policy)` : ''}`);
          } else if (rt.status(rt.record(b.id)).state === 'running') {
            const r = await rt.stop(b.id, { timeoutMs });
            out(`${b.label.box}: stopped${r.forced ? ' (forced after the timeout)' : ''}`);
          }
        }),
      );
      if (p.opts.volumes) {
        for (const v of o.volumes) {
          await rt.volumes.remove(volumeName(name, v.name));
          out(`volume ${v.name}: removed`);
        }
      }
    } finally {
      lock.release();
    }
    return 0;
  },

  async config(_rt, args, spec, g) {
    const p = parseArgs(args, spec, -1, 'config');
    const project = load({ file: (p.opts.file as string) ?? g.file, project: (p.opts.project as string) ?? g.project });
    const { warnings: _w, ...rest } = project;
    out(JSON.stringify(rest, null, 2));
    return 0;
  },
};

async function upOnce(rt: Runtime, project: Project, o: { wait?: boolean; waitTimeoutS?: string; removeOrphans?: boolean }): Promise<boolean> {
  const waitTimeoutMs = o.waitTimeoutS !== undefined ? Number(o.waitTimeoutS) * 1000 : undefined;
  if (waitTimeoutMs !== undefined && !(waitTimeoutMs > 0)) throw new UsageError(`--wait-timeout must be a positive number of seconds (got "${o.waitTimeoutS}")`);
  const lock = await lockProject(rt, project.name, err);
  try {
    const pl = await makePlan(rt, project, !!o.removeOrphans);
    const orphans = pl.boxes.filter((b) => b.action === 'orphan');
    if (orphans.length) err(`boxlite: boxes no longer declared in ${path.basename(project.file)}: ${orphans.map((b) => b.box).join(', ')} (kept; 'boxlite up --remove-orphans' removes them)`);
    const needsWork = pl.changed || (o.wait && Object.values(project.boxes).some((b) => b.healthcheck));
    if (!needsWork) {
      out(`project ${project.name}: up to date (${Object.keys(project.boxes).length} box${Object.keys(project.boxes).length === 1 ? '' : 'es'} running)`);
      return true;
    }
    if (pl.changed) out(renderPlan(pl));
    // Loaded only when there is work: an up with nothing to do starts without listr2 and the agent client.
    const { applyPlan } = await import('../reconciler/apply.js');
    const r = await applyPlan(rt, project, pl, { wait: o.wait, waitTimeoutMs, renderer: process.stdout.isTTY && !process.env.CI ? 'default' : 'simple' });
    if (!r.ok) {
      for (const e of r.errors) err(`boxlite: ${e.box ? `${e.box}: ` : ''}${e.message}`);
      return false;
    }
    return true;
  } finally {
    lock.release();
  }
}

async function watchUntilInterrupted(rt: Runtime, project: Project, ctx: { project?: string }, removeOrphans: boolean): Promise<number> {
  const { Watcher } = await import('../reconciler/watch.js');
  const w = new Watcher(rt, project, {
    say: (l) => out(`[${new Date().toTimeString().slice(0, 8)}] ${l}`),
    projectName: ctx.project,
    removeOrphans,
    pollMs: Number(process.env.BOXLITE_WATCH_POLL_MS) || undefined,
  });
  w.start();
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await w.stop();
  out('watch ended; the boxes keep running');
  return 0;
}

/** Columns `ps` adds for a project's boxes. */
export function describeProjectBox(label: NonNullable<import('../runtime/records.js').BoxRecord['project']>): string {
  if (label.retiredAt) return `${label.project}/${label.box} (kept aside)`;
  const health = label.health ? ` ${label.health.status}` : '';
  const setup = label.setup === 'done' ? '' : ` setup ${label.setup}`;
  return `${label.project}/${label.box}${setup}${health}`;
}

