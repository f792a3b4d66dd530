// Health checks: the declared test run in the box with the agent, as docker runs HEALTHCHECK. There is no daemon,
// so checks run while someone is looking: `up --wait`, a depends_on with condition healthy, and watch (which
// records the status for `ps`).
import type { Runtime } from '../runtime/runtime.js';
import type { HealthcheckSpec } from '../spec/types.js';
import { healthOfRun, projectLabel, updateProjectLabel, type HealthState } from './label.js';
import type { BoxRecord } from '../runtime/types.js';
import { BoxliteError } from '../core/errors.js';

export class UnhealthyError extends BoxliteError {
  constructor(message: string, readonly lastOutput = '') {
    super(message);
  }
}

/** " (its last check said: …)" for a dependency that did not become healthy, or nothing when there was no check. */
export function lastCheckSaid(e: unknown): string {
  return e instanceof UnhealthyError && e.lastOutput ? ` (its last check said: ${e.lastOutput.split('\n')[0]})` : '';
}

export async function checkOnce(rt: Runtime, id: string, h: HealthcheckSpec): Promise<{ ok: boolean; output: string }> {
  try {
    const r = await rt.exec(id, h.test, { timeoutMs: h.timeoutMs, countsAsUse: false }); // not a use, for pause_after
    const output = (r.stdout + r.stderr).trim().slice(-1000);
    return { ok: r.exitCode === 0, output: r.exitCode === 0 ? output : `exit status ${r.exitCode}${output ? `: ${output}` : ''}` };
  } catch (e) {
    return { ok: false, output: (e as Error).message.split('\n')[0] };
  }
}

/** One check, folded into the box's health as docker does: failures during start_period do not count, `retries`
 *  failures in a row make it unhealthy, one success makes it healthy. */
export function nextHealth(prev: HealthState | undefined, result: { ok: boolean; output: string }, h: HealthcheckSpec, startedAt: number, now = Date.now()): HealthState {
  const at = new Date(now).toISOString();
  const run = new Date(startedAt).toISOString();
  // Since when the box has been in this state in this run (checks run on, and `ps` runs one itself: at moves).
  const since = (status: HealthState['status']) => (prev && prev.run === run && prev.status === status ? (prev.since ?? prev.at) : at);
  if (result.ok) return { status: 'healthy', failingStreak: 0, at, since: since('healthy'), run };
  const inGrace = now - startedAt < h.startPeriodMs;
  const streak = inGrace ? (prev?.failingStreak ?? 0) : (prev?.failingStreak ?? 0) + 1;
  const status = streak >= h.retries ? 'unhealthy' : prev?.status === 'healthy' ? 'healthy' : 'starting';
  return { status, failingStreak: streak, output: result.output, at, since: since(status), run };
}

/** Checks until healthy (resolves) or unhealthy / past the deadline (throws with the failing output). */
export async function waitHealthy(
  rt: Runtime,
  id: string,
  box: string,
  h: HealthcheckSpec,
  opts: { startedAt: number; deadline: number; onState?: (s: HealthState) => Promise<void> | void },
): Promise<void> {
  let state: HealthState | undefined;
  for (;;) {
    const r = await checkOnce(rt, id, h);
    state = nextHealth(state, r, h, opts.startedAt);
    await opts.onState?.(state);
    if (state.status === 'healthy') return;
    if (state.status === 'unhealthy') throw new UnhealthyError(`box ${box} is unhealthy: ${state.failingStreak} checks failed in a row; the last said: ${state.output}`, state.output);
    if (Date.now() + h.intervalMs > opts.deadline) {
      throw new UnhealthyError(`box ${box} did not become healthy in time; the last check said: ${state.output}`, state.output);
    }
    await new Promise((r) => setTimeout(r, h.intervalMs));
  }
}

/** With no daemon to run checks, `ps` runs one for a running box whose last check of this run is older than its
 *  interval (or missing), and records it, so what it shows is no staler than the box's own interval. */
export async function refreshHealth(rt: Runtime, rec: BoxRecord, now = Date.now()): Promise<void> {
  const label = projectLabel(rec);
  const h = (label?.applied as { healthcheck?: HealthcheckSpec } | undefined)?.healthcheck;
  if (!label || label.retiredAt || !h || rec.state !== 'running') return;
  const prev = healthOfRun(label, rec);
  if (prev && now - Date.parse(prev.at) < h.intervalMs) return;
  const next = nextHealth(prev, await checkOnce(rt, rec.id, h), h, Date.parse(rec.startedAt ?? '') || now, now);
  await updateProjectLabel(rt, rec.id, (l) => l && { ...l, health: next });
}
