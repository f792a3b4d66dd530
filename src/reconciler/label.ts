// What a project keeps with each of its boxes: the runtime stores it as the box's opaque label, and only the
// reconciler reads or writes it.
import type { BoxRecord } from '../runtime/types.js';
import type { Runtime } from '../runtime/runtime.js';

export interface HealthState {
  status: 'starting' | 'healthy' | 'unhealthy';
  failingStreak: number;
  /** The output of the last failing check. */
  output?: string;
  /** When the last check ran. */
  at: string;
  /** When the box came to this status in this run (the first passing check, for healthy). */
  since?: string;
  /** The start (the record's startedAt) of the run whose checks these are. */
  run?: string;
}

export interface ProjectLabel {
  project: string;
  /** The box's name in the project. */
  box: string;
  /** The project file the box was last applied from. */
  file: string;
  /** The normalised box spec it was last made to match (src/spec BoxSpec). */
  applied: Record<string, unknown>;
  /** A hash per field group of `applied` (compose's config hash, per group so the action can be told apart). */
  hash: Record<string, string>;
  /** Provisioning: pending until every setup command has succeeded. */
  setup: 'pending' | 'done' | 'failed';
  setupError?: string;
  /** The long-running command started with the box. */
  command?: { execId: string; startedAt: string };
  health?: HealthState;
  /** Set on a box kept aside by a snapshot policy when its project box was recreated. */
  retiredAt?: string;
}

/** The project label of a box, when a project made it. */
export function projectLabel(rec: Pick<BoxRecord, 'label'>): ProjectLabel | undefined {
  const l = rec.label as Partial<ProjectLabel> | undefined;
  return l && typeof l.project === 'string' && typeof l.box === 'string' ? (l as ProjectLabel) : undefined;
}

/** Changes a project box's label (nothing for a box no project made, unless the change makes one). */
export function updateProjectLabel(rt: Runtime, id: string, change: (l: ProjectLabel | undefined) => ProjectLabel | undefined): Promise<void> {
  return rt.updateLabel(id, (l) => change(projectLabel({ label: l })) as unknown as Record<string, unknown> | undefined);
}

/** The recorded health if a check of the box's current run made it: one from an earlier run says nothing now. */
export function healthOfRun(label: ProjectLabel | undefined, rec: Pick<BoxRecord, 'state' | 'startedAt'>): HealthState | undefined {
  const h = label?.health;
  if (!h || (rec.state !== 'running' && rec.state !== 'paused')) return undefined;
  return h.run === rec.startedAt ? h : undefined;
}

/** The box's health as ps tells it: none unless it runs, `starting` until a check of this run has said otherwise. */
export function currentHealth(label: ProjectLabel, rec: Pick<BoxRecord, 'state' | 'startedAt'>): HealthState | undefined {
  if (rec.state !== 'running' && rec.state !== 'paused') return undefined;
  const checked = (label.applied as { healthcheck?: unknown }).healthcheck !== undefined;
  return healthOfRun(label, rec) ?? (checked ? { status: 'starting', failingStreak: 0, at: rec.startedAt ?? '' } : undefined);
}

/** What `ps` shows for a project box: unhealthy with the first line of the last check's output. */
export function describeProjectBox(label: ProjectLabel, rec: Pick<BoxRecord, 'state' | 'startedAt'>): string {
  if (label.retiredAt) return `${label.project}/${label.box} (kept aside)`;
  const h = currentHealth(label, rec);
  const said = h?.output?.split('\n')[0] ?? '';
  const health = !h ? '' : h.status === 'unhealthy' && said ? ` unhealthy (${said.length > 80 ? `${said.slice(0, 79)}…` : said})` : ` ${h.status}`;
  const setup = label.setup === 'done' ? '' : ` setup ${label.setup}`;
  return `${label.project}/${label.box}${setup}${health}`;
}
