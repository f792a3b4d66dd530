// Apply: carries out a plan. Boxes go in dependency order, independent ones in parallel with boots bounded by the
// host's cores. Every step leaves the home consistent, so a killed `up` is finished by the next one:
//   - a box's record (with its project label) is written by create; the label says "setup pending" until every
//     setup command has succeeded, and the next plan recreates a box whose setup never finished;
//   - the applied spec and its hashes are written last, after the box matches them.
import * as os from 'node:os';
import { Listr, type ListrTask } from 'listr2';
import type { Runtime } from '../runtime/runtime.js';
import type { BoxSpec, ProjectSpec } from '../spec/types.js';
import { failedSummary, hashGroups, type BoxPlan, type Plan } from './plan.js';
import { boxName, runtimeOptions, volumeName } from './names.js';
import { lastCheckSaid, waitHealthy } from './health.js';
import { BoxliteError } from '../core/errors.js';
import { BUSYBOX } from '../core/guest.js';
import { failpoint } from '../util/failpoint.js';
import pLimit, { type LimitFunction } from 'p-limit';
import { allocateLan, lanSettled, syncHosts } from './lan.js';
import { startCommand } from './command.js';
import { updateProjectLabel, type ProjectLabel } from './label.js';

export class SetupError extends BoxliteError {}
export class DependencyError extends BoxliteError {}

export interface ApplyOptions {
  /** After applying, wait until every box with a healthcheck is healthy. */
  wait?: boolean;
  waitTimeoutMs?: number;
  /** listr2's renderer: default (a terminal), simple (lines), silent. */
  renderer?: 'default' | 'simple' | 'silent';
  /** Boots at once; default: the host's cores. */
  parallel?: number;
}

export interface ApplyResult {
  ok: boolean;
  errors: { box: string; message: string }[];
}

function labelFor(project: ProjectSpec, spec: BoxSpec, setup: ProjectLabel['setup']): ProjectLabel {
  return { project: project.name, box: spec.name, file: project.file, applied: spec as unknown as Record<string, unknown>, hash: hashGroups(spec), setup };
}

export async function applyPlan(rt: Runtime, project: ProjectSpec, plan: Plan, opts: ApplyOptions = {}): Promise<ApplyResult> {
  const limit = pLimit(Math.max(1, opts.parallel ?? os.cpus().length));
  const errors: ApplyResult['errors'] = [];
  const deadline = Date.now() + (opts.waitTimeoutMs ?? 600_000);

  // Each declared box resolves `started` once it runs as declared, and `healthy` on demand.
  const started = new Map<string, Promise<string>>();
  const healthy = new Map<string, Promise<void>>();
  const resolvers = new Map<string, { ok: (id: string) => void; fail: (e: Error) => void }>();
  for (const b of Object.keys(project.boxes)) {
    const p = new Promise<string>((ok, fail) => resolvers.set(b, { ok, fail }));
    p.catch(() => {});
    started.set(b, p);
  }
  const health = (box: string): Promise<void> => {
    let h = healthy.get(box);
    if (!h) {
      h = started.get(box)!.then((id) => {
        const spec = project.boxes[box];
        const rec = rt.record(id);
        return waitHealthy(rt, id, box, spec.healthcheck!, {
          startedAt: Date.parse(rec.startedAt ?? '') || Date.now(),
          deadline,
          onState: (s) => updateProjectLabel(rt, id, (l) => l && { ...l, health: s }),
        });
      });
      h.catch(() => {});
      healthy.set(box, h);
    }
    return h;
  };

  const volumeTasks: ListrTask[] = plan.volumes
    .filter((v) => v.action === 'create')
    .map((v) => ({
      title: `volume ${v.name}: create (${v.sizeMib} MiB)`,
      task: async () => {
        const name = volumeName(project.name, v.name);
        if (!rt.volumes.find(name)) await rt.volumes.create(name, v.sizeMib, { project: project.name });
      },
    }));

  const removals: ListrTask[] = plan.boxes
    .filter((b) => b.action === 'remove')
    .map((b) => ({
      title: `${b.box}: remove${b.notes.length ? ` (${b.notes[0]})` : ''}`,
      task: async () => {
        await rt.stop(b.id!);
        await rt.remove(b.id!, { force: true });
      },
    }));

  const boxTask = (b: BoxPlan): ListrTask => ({
    title: title(b),
    task: async (_ctx, task) => {
      const spec = b.spec!;
      try {
        // Dependencies first, each by its condition.
        for (const [dep, cond] of Object.entries(spec.dependsOn)) {
          task.output = `${b.box}: waiting for ${dep} to be ${cond}`;
          try {
            await (cond === 'healthy' ? health(dep) : started.get(dep));
          } catch (e) {
            // The dependency's own failure is reported on its own line; only a health check's verdict is news here.
            const own = errors.some((x) => x.box === dep);
            const why = own || cond !== 'healthy' ? 'failed' : `did not become healthy${lastCheckSaid(e)}`;
            throw new DependencyError(`not started: it depends on ${dep}, which ${why}`);
          }
        }
        const id = await applyBox(rt, project, b, limit, (line) => (task.output = `${b.box}: ${line}`));
        resolvers.get(b.box)!.ok(id);
        if (opts.wait && spec.healthcheck) {
          task.output = `${b.box}: waiting until healthy`;
          await health(b.box);
          task.title = `${title(b)} — healthy`;
        }
      } catch (e) {
        resolvers.get(b.box)!.fail(e as Error);
        errors.push({ box: b.box, message: (e as Error).message });
        throw e; // shown on the box's own line, whose title names the box

      }
    },
    rendererOptions: { persistentOutput: b.spec!.setup.length > 0 },
  });

  const declared = plan.boxes.filter((b) => b.spec);
  const listr = new Listr(
    [
      ...(volumeTasks.length ? [{ title: 'volumes', task: (_: unknown, t: any) => t.newListr(volumeTasks, { concurrent: false }) }] : []),
      ...(removals.length ? [{ title: 'removals', task: (_: unknown, t: any) => t.newListr(removals, { concurrent: true, exitOnError: false }) }] : []),
      {
        title: `project ${project.name}`,
        task: async (_: unknown, t: any) => {
          await t.newListr(declared.map(boxTask), { concurrent: true, exitOnError: false }).run().catch(() => {});
          const failed = errors.filter((e) => e.box).length;
          if (!failed) return;
          // A failed project must not end with a tick: its own line says how many boxes failed (an empty error
          // adds no "[FAILED: …]" of its own; the boxes' lines carry the reasons).
          t.title = `project ${project.name}: ${failedSummary(failed, declared.length)}`;
          throw new Error('');
        },
      },
    ],
    {
      concurrent: false,
      exitOnError: true,
      renderer: opts.renderer ?? 'default',
      fallbackRenderer: 'simple',
      rendererOptions: { collapseSubtasks: false, showErrorMessage: true } as any,
      fallbackRendererOptions: {} as any,
      collectErrors: 'minimal',
    } as any,
  );
  try {
    await listr.run();
  } catch (e) {
    if (!errors.length && (e as Error).message) errors.push({ box: '', message: (e as Error).message });
  }
  // Boxes made in this run are now known to the ones that were already running.
  if (plan.boxes.some((b) => b.action === 'create' || b.action === 'recreate' || b.action === 'remove')) await syncHosts(rt, project.name);
  return { ok: errors.length === 0, errors };
}

function title(b: BoxPlan): string {
  const what: Record<string, string> = { create: 'create', recreate: 'recreate', restart: 'restart', update: 'update', start: 'start', noop: 'up to date' };
  const extra = [b.snapshot ? `snapshot ${b.snapshot.name}` : '', b.prune.length ? `prune ${b.prune.length} snapshot${b.prune.length > 1 ? 's' : ''}` : ''].filter(Boolean);
  return `${b.box}: ${what[b.action] ?? b.action}${extra.length ? ` (${extra.join(', ')})` : ''}`;
}

/** Makes one box match its spec; returns its id. */
async function applyBox(rt: Runtime, project: ProjectSpec, b: BoxPlan, limit: LimitFunction, say: (l: string) => void): Promise<string> {
  const spec = b.spec!;
  const opts = runtimeOptions(project, spec);
  let id = b.id;
  // The applied spec goes into the label once the box's settings match it; the project's afterStart hook (run by
  // every start) reads the command to start from there.
  const finish = async (bid: string) => {
    await updateProjectLabel(rt, bid, (l) => ({ ...labelFor(project, spec, 'done'), ...(l?.command ? { command: l.command } : {}), ...(l?.health ? { health: l.health } : {}) }));
  };

  if (b.action === 'recreate') {
    if (b.keepAs) {
      say(`taking snapshot ${b.snapshot!.name} and keeping the old box as ${b.keepAs}`);
      await rt.snapshots(id!).create(b.snapshot!.name, { auto: true });
      await rt.stop(id!);
      await rt.rename(id!, b.keepAs);
      // It lets go of what the new box takes over: its volumes, published ports and LAN address.
      await rt.reconfigure(id!, { volumes: [], ports: [], lan: null });
      await updateProjectLabel(rt, id!, (l) => l && { ...l, retiredAt: new Date().toISOString() });
    } else {
      say('removing the old box');
      await rt.stop(id!); // a clean shutdown first: its named volumes keep what it wrote
      await rt.remove(id!, { force: true });
    }
    id = undefined;
  }

  if (b.action === 'create' || b.action === 'recreate') {
    say(spec.image.startsWith('/') ? `creating from ${spec.image}` : `creating from image ${spec.image} (pulled if missing)`);
    const lan = spec.network === 'none' ? undefined : allocateLan(rt, project.name, spec.name);
    const box = await rt
      .create({
        image: spec.image,
        name: boxName(project.name, spec.name),
        hostname: spec.name,
        diskSizeMib: spec.diskMib,
        ...opts,
        lan,
        label: labelFor(project, spec, spec.setup.length ? 'pending' : 'done') as unknown as Record<string, unknown>,
      })
      .finally(() => lanSettled(rt, project.name, lan));
    id = box.id;
    failpoint('up:created');
    say('booting');
    try {
      await limit(() => rt.start(box.id)); // the project's hook writes its LAN names (and starts a command that needs no setup)
    } catch (e) {
      await neverStarted(rt, box.id, e as Error);
    }
    failpoint('up:booted');
    for (const [i, argv] of spec.setup.entries()) {
      const shown = argv[0] === 'sh' && argv[1] === '-c' ? argv[2] : argv.join(' ');
      say(`setup ${i + 1}/${spec.setup.length}: ${shown}`);
      const ex = await rt.spawn(box.id, argv);
      failpoint('up:setup-running');
      // The last line each stream printed: a failure is told by its command's own words (stderr's, else stdout's).
      const last = { out: '', err: '' };
      const reader = (which: 'out' | 'err') => {
        let partial = '';
        return {
          data: (d: Buffer) => {
            const lines = (partial + d.toString()).split('\n');
            partial = lines.pop()!;
            for (const l of lines) {
              say(l);
              if (l.trim()) last[which] = l.trim();
            }
          },
          end: () => {
            if (partial) say(partial);
            if (partial.trim()) last[which] = partial.trim();
          },
        };
      };
      const out = reader('out');
      const err = reader('err');
      ex.stdout.on('data', out.data);
      ex.stderr.on('data', err.data);
      const st = await ex.wait();
      out.end();
      err.end();
      if (st.exitCode !== 0) {
        const said = last.err || last.out;
        const why = `setup command ${i + 1} (${shown}) failed with exit status ${st.exitCode}${said ? `: ${said.slice(0, 300)}` : ''}`;
        await updateProjectLabel(rt, box.id, (l) => l && { ...l, setup: 'failed', setupError: why });
        throw new SetupError(`${why}. The box is left running for inspection: boxlite exec ${spec.name} sh — the next 'boxlite up' makes it again from scratch`);
      }
    }
    // What setup made is flushed to the disk before the box counts as provisioned: a crash later cannot undo it.
    if (spec.setup.length) await rt.exec(box.id, [BUSYBOX, 'sync'], { user: '0' });
    await finish(box.id);
    if (spec.command && spec.setup.length) await startCommand(rt, box.id, spec.command);
  } else if (b.action === 'restart' || b.action === 'start') {
    if (b.action === 'restart') {
      say('stopping');
      await rt.stop(id!);
    }
    await rt.reconfigure(id!, opts);
    const rec = rt.record(id!);
    if (spec.diskMib > rec.options.diskSizeMib) await rt.resize(id!, spec.diskMib);
    for (const m of spec.volumes) {
      const want = project.volumes[m.type === 'volume' ? m.source : '']?.sizeMib;
      const name = volumeName(project.name, m.source);
      if (m.type === 'volume' && want && want > (rt.volumes.find(name)?.sizeMib ?? want)) {
        say(`growing volume ${m.source}`);
        await rt.growVolume(name, want);
      }
    }
    await finish(id!);
    say('booting');
    await limit(() => rt.start(id!));
  } else if (b.action === 'update') {
    await rt.reconfigure(id!, { env: opts.env, workingDir: opts.workingDir, user: opts.user, egress: opts.egress });
    await finish(id!);
  }

  if (b.snapshot && b.action !== 'recreate') {
    say(`taking snapshot ${b.snapshot.name}`);
    await rt.snapshots(id!).create(b.snapshot.name, { auto: true });
  }
  for (const s of b.prune) {
    say(`removing snapshot ${s}`);
    await rt.snapshots(id!).remove(s);
  }
  return id!;
}

/** A box whose first boot failed holds nothing worth keeping: it goes, so a failed up leaves no record behind
 *  (compose leaves no container of a failed create either), and the error says so on its first line. */
async function neverStarted(rt: Runtime, id: string, e: Error): Promise<never> {
  await rt.remove(id, { force: true }).catch(() => {}); // a failed removal leaves a stopped box, which the next up starts
  const [first, ...rest] = e.message.split('\n');
  e.message = [`${first} (the box never started, so it was removed: 'boxlite up' makes it again)`, ...rest].join('\n');
  throw e;
}
