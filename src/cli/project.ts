// The declarative commands — plan, up, down, config, watch — over the project API (src/reconciler/project.ts), and
// the project context that lets exec/logs/stop/… name a box by its name in boxlite.yaml.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Runtime } from '../runtime/runtime.js';
import { findProjectFile, loadProject, NoProjectError } from '../spec/load.js';
import { Project, downProject, type DownResult } from '../reconciler/project.js';
import { failedSummary, renderPlan } from '../reconciler/plan.js';
import { PlanProblemsError, type PlanProblem } from '../reconciler/preflight.js';
import { projectLabel } from '../reconciler/label.js';
import { profileList } from '../reconciler/select.js';
import type { TrustState } from '../reconciler/trust.js';
import { describePart } from '../spec/reach.js';
import { parseArgs, UsageError, type OptionSpec } from './args.js';
import type { Cli, Command, ProjectContext } from './command.js';

const PROJECT_OPTS: Record<string, OptionSpec> = {
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

/** The project's name for name lookups: from the file when there is one (even an invalid one), else -p. */
export function contextProjectName(ctx: ProjectContext): string | undefined {
  if (ctx.project) return ctx.project;
  let file: string;
  try {
    file = findProjectFile({ file: ctx.file });
  } catch {
    return undefined;
  }
  const quick = quickName(fs.readFileSync(file, 'utf8'), path.dirname(file));
  if (quick) return quick;
  try {
    return loadProject(file, { env: { ...process.env } }).name;
  } catch {
    const m = /^name:\s*["']?([a-z0-9][a-z0-9_-]*)/m.exec(fs.readFileSync(file, 'utf8'));
    return m?.[1] ?? path.basename(path.dirname(file)).toLowerCase().replace(/[^a-z0-9_-]/g, '');
  }
}

/** The project's name from a plain block-style file without the YAML parser, which would cost a CLI that only
 *  looks up a box (ps, exec, logs) about 100 ms: its one top-level `name:` line, or the folder's name when it has
 *  none. Only when every top-level line is a plain `name:`, `boxes:` or `volumes:` key (or a comment): anything
 *  else (a byte-order mark, an interpolated, quoted, anchored, tagged or explicit key, flow style, a name written
 *  twice) is left to the parser, so this never names another project than `up` would. */
export function quickName(text: string, dir: string): string | undefined {
  // Indentation is spaces (YAML allows no tabs there); any other first character makes a top-level line.
  const top = text.split('\n').filter((l) => !/^[ \r]*$/.test(l) && !l.startsWith(' ') && !l.startsWith('#'));
  if (!top.length || !top.every((l) => /^(name|boxes|volumes):(\s|$)/.test(l))) return undefined;
  if (!top.some((l) => l.startsWith('boxes:'))) return undefined;
  const names = top.filter((l) => l.startsWith('name:'));
  if (!names.length) {
    const folder = path.basename(dir).toLowerCase().replace(/[^a-z0-9_-]/g, ''); // as the file's loader names it
    return /^[a-z0-9]/.test(folder) ? folder : undefined;
  }
  const m = names.length === 1 ? /^name:[ \t]+([a-z0-9][a-z0-9_-]{0,39})[ \t]*(#.*)?\r?$/.exec(names[0]) : null;
  return m?.[1];
}

/** Lets `boxlite exec web …` find the project's box "web" inside a project folder. */
export function installNameResolver(rt: Runtime, ctx: ProjectContext): void {
  let name: string | undefined | null = null;
  rt.nameResolver = (ref) => {
    if (ref.includes('.')) return undefined;
    if (name === null) name = contextProjectName(ctx);
    if (!name) return undefined;
    const rec = rt.records.list().find((r) => {
      const l = projectLabel(r);
      return !!l && l.project === name && l.box === ref && !l.retiredAt;
    });
    return rec?.name;
  };
}

/** -f/-p after the command win over those before it. */
function context(cli: Cli, opts: Record<string, unknown>): ProjectContext {
  return { file: (opts.file as string) ?? cli.project.file, project: (opts.project as string) ?? cli.project.project };
}

function open(cli: Cli, ctx: ProjectContext, locked = false, opts: Record<string, unknown> = {}): Project {
  return Project.load({ file: ctx.file, projectName: ctx.project, runtime: cli.rt, say: cli.err, locked, profiles: profilesOf(opts) });
}

const PROFILE: OptionSpec = { value: true, multiple: true, help: "also the boxes of this profile (repeat it, or a comma list; '*' for all; default $BOXLITE_PROFILES)" };

/** --profile a --profile b,c → [a, b, c]; none given: undefined, so $BOXLITE_PROFILES applies. */
function profilesOf(opts: Record<string, unknown>): string[] | undefined {
  const given = opts.profile as string[] | undefined;
  return given?.length ? profileList(given) : undefined;
}

/** plan's marks for what the file reaches outside its folder: each part, and whether it is approved here. */
function renderReach(s: TrustState): string {
  if (!s.parts.length) return '';
  const head = s.approved ? `reaches outside the project (approved on this machine, ${s.hash}):` : `reaches outside the project — up refuses until approved with 'boxlite trust' (${s.hash}):`;
  const fresh = new Set(s.unapproved);
  return `\n\n${head}\n${s.parts.map((p) => `  ${fresh.has(p) ? '!' : ' '} ${describePart(p)}`).join('\n')}`;
}

const TRUST = { help: "approve what the file reaches outside its folder (as 'boxlite trust' does) and go on" };

/** What the plan found up would fail on, a line each, and a last line saying so. */
function sayProblems(cli: Cli, project: string, problems: PlanProblem[], outcome: string): void {
  for (const x of problems) cli.err(`✖ ${x.box}: ${x.message}`);
  cli.err(`✖ project ${project}: ${outcome} (${problems.length} problem${problems.length === 1 ? '' : 's'} found by the plan)`);
}

async function upOnce(cli: Cli, project: Project, o: { wait?: boolean; waitTimeoutS?: string; removeOrphans?: boolean; boxes?: string[]; trust?: boolean }): Promise<boolean> {
  const waitTimeoutMs = o.waitTimeoutS !== undefined ? Number(o.waitTimeoutS) * 1000 : undefined;
  if (waitTimeoutMs !== undefined && !(waitTimeoutMs > 0)) throw new UsageError(`--wait-timeout must be a positive number of seconds (got "${o.waitTimeoutS}")`);
  let r: Awaited<ReturnType<Project['up']>>;
  try {
    r = await project.up({
      wait: o.wait,
      waitTimeoutMs,
      removeOrphans: o.removeOrphans,
      boxes: o.boxes,
      trust: o.trust || undefined,
      renderer: process.stdout.isTTY && !process.env.CI ? 'default' : 'simple',
      onPlan: (p) => {
        const orphans = p.boxes.filter((b) => b.action === 'orphan').map((b) => b.box);
        if (orphans.length) cli.err(`boxlite: boxes no longer declared in ${path.basename(project.file)}: ${orphans.join(', ')} (kept; 'boxlite up --remove-orphans' removes them)`);
        if (p.changed) cli.out(renderPlan(p));
      },
    });
  } catch (e) {
    if (!(e instanceof PlanProblemsError)) throw e;
    sayProblems(cli, project.name, e.problems, 'nothing was made');
    return false;
  }
  if (r.upToDate) {
    const n = r.plan.boxes.filter((b) => b.spec).length;
    cli.out(`project ${project.name}: up to date (${n} box${n === 1 ? '' : 'es'} running)`);
  }
  // Each box's failure was shown on its own line by the progress renderer; what failed outside the boxes was not.
  for (const e of r.errors.filter((x) => !x.box)) cli.err(`boxlite: ${e.message}`);
  if (!r.ok) {
    const failed = [...new Set(r.errors.filter((e) => e.box).map((e) => e.box))];
    const of = r.plan.boxes.filter((b) => b.spec).length;
    // The last line says it: a failed up never ends under a tick.
    cli.err(`✖ project ${project.name}: ${failed.length ? `${failedSummary(failed.length, of)} (${failed.join(', ')})` : 'up failed'}`);
  }
  return r.ok;
}

async function watchUntilInterrupted(cli: Cli, project: Project, removeOrphans: boolean): Promise<number> {
  const w = await project.watch({
    say: (l) => cli.out(`[${new Date().toTimeString().slice(0, 8)}] ${l}`),
    removeOrphans,
    renderer: 'simple',
    pollMs: Number(process.env.BOXLITE_WATCH_POLL_MS) || undefined,
  });
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await w.stop();
  cli.out('watch ended; the boxes keep running');
  return 0;
}

function printDown(cli: Cli, name: string, r: DownResult): void {
  if (!r.found && !r.volumes.length) cli.out(`project ${name} has no boxes`);
  for (const b of r.boxes) {
    if (b.action === 'removed') cli.out(`${b.box}: removed${b.keptAside ? ` (${b.keptAside}, kept aside by a snapshot policy)` : ''}`);
    else cli.out(`${b.box}: stopped${b.forced ? ' (forced after the timeout)' : ''}`);
  }
  for (const v of r.volumes) cli.out(`volume ${v}: removed`);
}

const LOCKED = { help: 'every image reference must be pinned by boxlite.lock (fail, naming the box, if one is not)' };

export const PROJECT_COMMANDS: Record<string, Command> = {
  plan: {
    usage: 'plan [-f FILE] [-p NAME] [--profile P] [--json] [--remove-orphans] [--locked]',
    help: "show what 'up' would change (exit 0: nothing, 2: changes, 1: error)",
    opts: { ...PROJECT_OPTS, profile: PROFILE, json: { help: 'print the plan as JSON' }, 'remove-orphans': { help: 'plan the removal of boxes no longer declared' }, locked: LOCKED },
    async run(cli, args, spec) {
      const p = parseArgs(args, spec, -1, 'plan');
      const project = open(cli, context(cli, p.opts), !!p.opts.locked, p.opts);
      const pl = await project.plan({ removeOrphans: !!p.opts['remove-orphans'] });
      const t = project.trustState();
      if (p.opts.json) cli.out(JSON.stringify({ ...pl, boxes: pl.boxes.map(({ spec: _s, ...b }) => b), trust: t }, null, 2));
      else cli.out(renderPlan(pl) + (pl.changed || !t.approved ? renderReach(t) : ''));
      // What up would fail on: said after the plan, and the exit status is an error's.
      if (pl.problems) sayProblems(cli, pl.project, pl.problems, "'up' would fail");
      return pl.problems ? 1 : pl.changed ? 2 : 0;
    },
  },

  up: {
    usage: 'up [-f FILE] [-p NAME] [--profile P] [--wait] [--watch] [--remove-orphans] [--locked] [--trust] [BOX…]',
    help: 'make the boxes match boxlite.yaml (create, start, update, recreate) and leave them running',
    opts: {
      ...PROJECT_OPTS,
      profile: PROFILE,
      wait: { help: 'return when every box with a healthcheck is healthy (or fail with its output)' },
      'wait-timeout': { value: true, help: 'seconds --wait waits at most (default 600)' },
      watch: { help: 'then keep watching: apply edits of boxlite.yaml and .env, bring back boxes per restart policy' },
      'remove-orphans': { help: 'remove boxes of the project that are no longer declared' },
      detach: { short: 'd', help: 'return once applied (the default: boxes keep running)' },
      locked: LOCKED,
      trust: TRUST,
    },
    async run(cli, args, spec) {
      const p = parseArgs(args, spec, -1, 'up');
      const boxes = p.positionals.length ? p.positionals : undefined;
      if (boxes && p.opts.watch) throw new UsageError('up BOX… --watch: a watch keeps the whole project; drop the boxes or --watch');
      if (boxes && p.opts['remove-orphans']) throw new UsageError('up BOX… --remove-orphans: orphans are found over the whole project; drop the boxes or --remove-orphans');
      const project = open(cli, context(cli, p.opts), !!p.opts.locked, p.opts);
      const ok = await upOnce(cli, project, { wait: !!p.opts.wait, waitTimeoutS: p.opts['wait-timeout'] as string | undefined, removeOrphans: !!p.opts['remove-orphans'], boxes, trust: !!p.opts.trust });
      if (!p.opts.watch) return ok ? 0 : 1;
      return watchUntilInterrupted(cli, project, !!p.opts['remove-orphans']);
    },
  },

  watch: {
    usage: 'watch [-f FILE] [-p NAME] [--profile P] [--remove-orphans] [--trust]',
    help: "'up', then keep the boxes converged (same as up --watch)",
    opts: { ...PROJECT_OPTS, profile: PROFILE, 'remove-orphans': { help: 'remove boxes no longer declared' }, trust: TRUST },
    async run(cli, args, spec) {
      const p = parseArgs(args, spec, -1, 'watch');
      const project = open(cli, context(cli, p.opts), false, p.opts);
      await upOnce(cli, project, { removeOrphans: !!p.opts['remove-orphans'], trust: !!p.opts.trust });
      return watchUntilInterrupted(cli, project, !!p.opts['remove-orphans']);
    },
  },

  down: {
    usage: 'down [-f FILE] [-p NAME] [--remove] [--volumes] [BOX…]',
    help: "stop the project's boxes (--remove: delete them; --volumes: also its named volumes)",
    opts: { ...PROJECT_OPTS, remove: { help: 'remove the boxes and their disks' }, volumes: { short: 'v', help: "also remove the project's named volumes (with --remove)" }, time: { short: 't', value: true, help: 'seconds to wait for a clean shutdown (default 10)' } },
    async run(cli, args, spec) {
      const p = parseArgs(args, spec, -1, 'down');
      const ctx = context(cli, p.opts);
      // down works from the records, so it also works when the file is gone or broken, given -p.
      let name = ctx.project;
      if (!name) {
        try {
          name = open(cli, ctx).name;
        } catch (e) {
          if (e instanceof NoProjectError) throw e;
          const fromRecords = contextProjectName(ctx);
          if (!fromRecords) throw e;
          name = fromRecords;
          cli.err(`boxlite: the project file has problems; taking down project ${name} from its records:\n${(e as Error).message}`);
        }
      }
      if (p.opts.volumes && !p.opts.remove) throw new UsageError('down: --volumes removes the named volumes, so it needs --remove (a stopped box still uses its volumes)');
      const timeoutMs = p.opts.time !== undefined ? Number(p.opts.time) * 1000 : undefined;
      const boxes = p.positionals.length ? p.positionals : undefined;
      printDown(cli, name, await downProject(cli.rt, name, { remove: !!p.opts.remove, volumes: !!p.opts.volumes, timeoutMs, boxes }, cli.err));
      return 0;
    },
  },

  lock: {
    usage: 'lock [-f FILE] [-p NAME] [--update]',
    help: 'pin each image reference of boxlite.yaml to its digest in boxlite.lock (commit it beside the file)',
    opts: { ...PROJECT_OPTS, update: { help: 'resolve references already locked again (take moved tags)' } },
    async run(cli, args, spec) {
      const p = parseArgs(args, spec, -1, 'lock');
      const ctx = context(cli, p.opts);
      const project = Project.load({ file: ctx.file, projectName: ctx.project, runtime: cli.rt, say: cli.err, locked: 'ignore' });
      const r = await project.lock({ update: !!p.opts.update });
      for (const i of r.images) cli.out(`${i.reference}: ${i.digest} (${i.change})`);
      for (const ref of r.removed) cli.out(`${ref}: no box uses it any more (removed)`);
      if (!r.images.length) cli.out('no image references to lock (folders and OCI layouts are not locked)');
      cli.out(`wrote ${path.relative(process.cwd(), r.file) || r.file}`);
      return 0;
    },
  },

  trust: {
    usage: 'trust [-f FILE] [-p NAME] [--revoke]',
    help: 'approve what boxlite.yaml reaches outside its folder (host folders and files, host secrets and variables, ports beyond loopback)',
    opts: { ...PROJECT_OPTS, revoke: { help: 'forget the approval: up refuses again until the next trust' } },
    async run(cli, args, spec) {
      const p = parseArgs(args, spec, -1, 'trust');
      const project = open(cli, context(cli, p.opts));
      const shown = project.shownFile;
      if (p.opts.revoke) {
        const s = project.trust({ revoke: true });
        cli.out(s.parts.length ? `${shown}: approval forgotten; up refuses until 'boxlite trust' again` : `${shown} reaches nothing outside its folder: it needs no approval`);
        return 0;
      }
      const s = project.trust();
      if (!s.parts.length) cli.out(`${shown} reaches nothing outside its folder: it needs no approval`);
      else cli.out(`approved for ${shown} on this machine (${s.hash}):\n${s.parts.map((x) => `  ${describePart(x)}`).join('\n')}\nan edit that reaches further needs 'boxlite trust' again`);
      return 0;
    },
  },

  config: {
    usage: 'config [-f FILE] [-p NAME]',
    help: 'print the validated, interpolated, normalised project as JSON',
    opts: PROJECT_OPTS,
    async run(cli, args, spec) {
      const p = parseArgs(args, spec, -1, 'config');
      const { warnings: _w, ...rest } = open(cli, context(cli, p.opts)).spec;
      cli.out(JSON.stringify(rest, null, 2));
      return 0;
    },
  },
};
