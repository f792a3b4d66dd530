// How a project's things are named and found in the home folder, and the lock that keeps two `up` of one project
// from interleaving.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Reconfigure, Runtime } from '../runtime/runtime.js';
import type { BoxSpec, ProjectSpec } from '../spec/types.js';
import type { ObservedBox, ObservedVolume } from './plan.js';
import { acquireLock, tryLock, type Lock } from '../util/lock.js';
import { ensureDir } from '../util/fs.js';
import { BoxliteError } from '../core/errors.js';
import { projectLabel } from './label.js';

/** A project box's global name. Project and box names cannot hold a '.', so two projects never collide. */
export const boxName = (project: string, box: string) => `${project}.${box}`;
/** A project volume's global name, as compose names them. */
export const volumeName = (project: string, volume: string) => `${project}_${volume}`;

/** The project's boxes and volumes as they are now. */
export async function observe(rt: Runtime, project: string): Promise<{ boxes: ObservedBox[]; volumes: ObservedVolume[] }> {
  const boxes = rt
    .list()
    .filter((r) => projectLabel(r)?.project === project)
    .map((r) => ({ id: r.id, name: r.name, state: r.state, createdAt: r.createdAt, label: projectLabel(r)!, snapshots: r.snapshots ?? [] }));
  const volumes = rt.volumes
    .list()
    .filter((v) => v.project === project)
    .map((v) => ({ name: v.name.slice(project.length + 1), sizeMib: v.sizeMib }));
  return { boxes, volumes };
}

/** The runtime settings a box spec asks for. */
export function runtimeOptions(project: ProjectSpec, spec: BoxSpec): Required<Omit<Reconfigure, 'volumes' | 'lan'>> & Pick<Reconfigure, 'volumes'> {
  return {
    cpus: spec.cpus,
    memoryMib: spec.memoryMib,
    network: spec.network,
    ports: spec.ports,
    dns: spec.dns,
    egress: spec.egress ?? { allow: [], deny: [] },
    secrets: (spec.secrets ?? []).map((s) => ({ name: s.name, hosts: s.hosts, ...s.source })),
    env: spec.env,
    workingDir: spec.workingDir,
    user: spec.user,
    volumes: spec.volumes.filter((m) => m.type === 'volume').map((m) => ({ volume: volumeName(project.name, m.source), target: m.target, readOnly: m.readOnly })),
    binds: spec.volumes.filter((m) => m.type === 'bind').map((m) => ({ hostPath: m.source, target: m.target, readOnly: m.readOnly })),
  };
}

export class ProjectBusyError extends BoxliteError {}

/** The pid the holder writes into the lock file just after it takes the lock (an instant late, maybe); the file is
 *  emptied before a lock is let go. */
async function lockHolder(file: string): Promise<string> {
  for (let i = 0; ; i++) {
    const pid = fs.readFileSync(file, 'utf8').trim();
    if (pid || i >= 50) return pid;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Holds the project's lock; another process changing the same project makes this one wait (saying so), then fail
 *  after timeoutMs. The lock dies with its process, so a killed `up` never blocks the next one. */
export async function lockProject(rt: Runtime, project: string, say: (m: string) => void, timeoutMs = Number(process.env.BOXLITE_PROJECT_LOCK_TIMEOUT_MS) || 300_000): Promise<Lock> {
  const file = path.join(ensureDir(path.join(rt.home.root, 'projects')), `${project}.lock`);
  let lock = tryLock(file);
  if (!lock) {
    const holder = await lockHolder(file);
    say(`boxlite: project ${project} is being changed by another boxlite process${holder ? ` (pid ${holder})` : ''}: waiting for it to finish`);
    try {
      lock = await acquireLock(file, `project ${project}`, timeoutMs);
    } catch {
      throw new ProjectBusyError(`project ${project} is still being changed by another boxlite process${holder ? ` (pid ${holder})` : ''} after ${Math.round(timeoutMs / 1000)}s: wait for it, or end it`);
    }
  }
  fs.writeFileSync(file, String(process.pid));
  const held = lock;
  return {
    release: () => {
      // Emptied before it is let go: a pid in the file is always the holder's, never a reused one's.
      try {
        fs.truncateSync(file, 0);
      } catch {}
      held.release();
    },
  };
}
