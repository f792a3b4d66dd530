// What boxlite's objects are called on a cluster: names, the labels every object carries (so plan, apply, prune and
// down find the project's objects and nothing else) and the annotations apply reads back.
import { createHash } from 'node:crypto';
import type { BoxSpec } from '../spec/types.js';
import { hashGroups } from '../reconciler/plan.js';

export const MANAGED_BY = 'app.kubernetes.io/managed-by';
export const PART_OF = 'app.kubernetes.io/part-of';
export const BOX_LABEL = 'app.kubernetes.io/name';
/** Pods on the project's LAN: every box but those with network "none". */
export const LAN_LABEL = 'boxlite.dev/lan';
export const CONFIG_HASH = 'boxlite.dev/config-hash';
/** "store=healthy,cache=started": what apply waits for before it applies this box. */
export const DEPENDS_ON = 'boxlite.dev/depends-on';
/** The boxlite restart policy, kept because restartPolicy cannot say "unless-stopped". */
export const RESTART = 'boxlite.dev/restart';

/** A DNS label (RFC 1035): what a Service name, and so a box's name on the cluster, must be. */
const DNS_LABEL = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** A DNS subdomain (RFC 1123): most other object names. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export const isDnsLabel = (s: string) => DNS_LABEL.test(s);
export const isDnsSubdomain = (s: string) => s.length <= 253 && DNS_SUBDOMAIN.test(s);

/** The cluster name of a box or volume: lower case, '_' and '.' as '-'; null when no valid name comes of it. */
export function clusterName(name: string): string | null {
  const n = name.toLowerCase().replace(/[_.]/g, '-');
  return isDnsLabel(n) ? n : null;
}

/** A label value: at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends. */
export function labelValue(s: string): string {
  return s.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 63).replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
}

export function projectLabels(project: string): Record<string, string> {
  return { [MANAGED_BY]: 'boxlite', [PART_OF]: labelValue(project) };
}

export function boxLabels(project: string, box: string): Record<string, string> {
  return { ...projectLabels(project), [BOX_LABEL]: labelValue(box) };
}

/** One hash of everything boxlite hashes per field group (the config hash compose puts on its containers). */
export function configHash(spec: BoxSpec): string {
  const groups = hashGroups(spec);
  const h = createHash('sha256');
  for (const k of Object.keys(groups).sort()) h.update(`${k}=${groups[k as keyof typeof groups]};`);
  return h.digest('hex').slice(0, 16);
}

export function formatDependsOn(deps: Record<string, string>, nameOf: (box: string) => string): string {
  return Object.entries(deps)
    .map(([b, c]) => `${nameOf(b)}=${c}`)
    .sort()
    .join(',');
}

export function parseDependsOn(v: string | undefined): Record<string, 'started' | 'healthy'> {
  const out: Record<string, 'started' | 'healthy'> = {};
  for (const part of (v ?? '').split(',').filter(Boolean)) {
    const [b, c] = part.split('=');
    out[b] = c === 'healthy' ? 'healthy' : 'started';
  }
  return out;
}
