// What plan can tell before anything is made, so that `plan` does not promise a create that `up` would fail after
// booting, and `up` fails before a box exists (leaving nothing behind): an image neither stored nor pullable, a
// root filesystem or OCI layout that is not there, a host port another box or another process holds, a secret whose
// variable is not set or whose file cannot be read.
import * as fs from 'node:fs';
import type { Runtime } from '../runtime/runtime.js';
import type { ProjectSpec } from '../spec/types.js';
import type { PortMapping } from '../core/network.js';
import { BoxliteError } from '../core/errors.js';
import { portFree, portHolder } from '../util/port-holder.js';
import { checkSecretSource } from '../runtime/secrets.js';
import type { Plan } from './plan.js';

export interface PlanProblem {
  box: string;
  message: string;
}

/** up's refusal: every problem, each on its line. */
export class PlanProblemsError extends BoxliteError {
  constructor(readonly problems: PlanProblem[]) {
    super(`${problems.map((p) => `${p.box}: ${p.message}`).join('\nboxlite: ')}\nboxlite: nothing was changed: fix ${problems.length === 1 ? 'it' : 'them'} and run 'boxlite up' again`);
  }
}

const overlaps = (a: PortMapping, b: PortMapping) =>
  a.hostPort === b.hostPort && a.protocol === b.protocol && (a.hostIp === b.hostIp || a.hostIp === '0.0.0.0' || b.hostIp === '0.0.0.0');

/** secrets: check that each secret can be read; only for a file whose reach is approved (an unapproved one must
 *  not make boxlite open host files or look up variables it names, even to say they are missing). */
export async function preflight(rt: Runtime, project: ProjectSpec, pl: Plan, opts: { secrets: boolean }): Promise<PlanProblem[]> {
  const problems: PlanProblem[] = [];
  const ours = new Set(pl.boxes.map((b) => b.id).filter(Boolean));
  const records = rt.list();
  const others = records.filter((r) => !ours.has(r.id) && (r.state === 'running' || r.state === 'paused'));
  const claimed: { box: string; port: PortMapping }[] = [];
  const pausedIds = new Set(records.filter((r) => r.state === 'paused').map((r) => r.id));
  const paused = (id: string | undefined) => !!id && pausedIds.has(id);
  for (const b of pl.boxes) {
    const spec = b.spec;
    if (!spec || !['create', 'recreate', 'restart', 'start'].includes(b.action)) continue;
    if (b.action === 'create' || b.action === 'recreate') {
      if (spec.image.startsWith('/')) {
        if (!fs.existsSync(spec.image)) problems.push({ box: b.box, message: `image ${spec.image} does not exist: give a root filesystem folder or an OCI layout there, or an image reference` });
      } else {
        try {
          await rt.images.available(spec.image);
        } catch (e) {
          problems.push({ box: b.box, message: `image ${spec.image} is not stored and cannot be pulled: ${(e as Error).message.split('\n')[0]}` });
        }
      }
    }
    for (const sec of opts.secrets ? (spec.secrets ?? []) : []) {
      const problem = checkSecretSource(sec.name, sec.source);
      if (problem) problems.push({ box: b.box, message: problem });
    }
    for (const p of spec.ports.filter((x) => x.hostPort > 0)) {
      const port = `host port ${p.hostPort}${p.protocol === 'udp' ? '/udp' : ''}`;
      const sibling = claimed.find((c) => overlaps(c.port, p));
      const box = others.find((r) => (r.ports ?? r.options.ports ?? []).some((q) => overlaps(q, p)));
      if (sibling) problems.push({ box: b.box, message: `${port} is also declared by ${sibling.box}: give one of them another host port` });
      else if (box) problems.push({ box: b.box, message: `${port} is held by box ${box.name} (${box.state}): stop it (boxlite stop ${box.name}) or pick another host port` });
      // A box being restarted or recreated holds its own port until then, and a paused one's port is held for its
      // wake-up (by whoever paused it): only a box that is stopped or new is checked here.
      else if ((b.action === 'create' || (b.action === 'start' && !paused(b.id))) && !(await portFree(p.hostIp, p.hostPort, p.protocol))) {
        const holder = portHolder(p.hostPort, p.protocol);
        problems.push({ box: b.box, message: `${port} is held by ${holder ? `another process: ${holder}` : 'another process (one this user cannot look into)'}: stop it or pick another host port` });
      }
      claimed.push({ box: b.box, port: p });
    }
  }
  return problems;
}
