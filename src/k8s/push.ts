// render --push REGISTRY: each box of the project, as `boxlite up` provisioned it here, committed and pushed to
// REGISTRY/PROJECT/BOX:CONFIGHASH, so the cluster runs what setup made (setup is then baked, not refused). The
// render names each image by its digest, so the cluster runs exactly what was pushed.
import { InvalidOptionError } from '../core/errors.js';
import type { Runtime } from '../runtime/runtime.js';
import type { ProjectSpec } from '../spec/types.js';
import { projectLabel } from '../reconciler/label.js';
import { clusterName, configHash } from './names.js';

export async function pushBoxes(rt: Runtime, spec: ProjectSpec, registry: string, say: (m: string) => void): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const prefix = registry.replace(/\/+$/, '');
  for (const [bn, b] of Object.entries(spec.boxes)) {
    const rec = rt.records.list().find((r) => {
      const l = projectLabel(r);
      return !!l && l.project === spec.name && l.box === bn && !l.retiredAt;
    });
    const label = rec && projectLabel(rec);
    if (!rec || !label) throw new InvalidOptionError(`box ${bn} of project ${spec.name} has not been made on this machine: run 'boxlite up' first (render --push commits each box as provisioned)`);
    if (label.setup !== 'done') throw new InvalidOptionError(`box ${bn}'s setup is ${label.setup}: run 'boxlite up' until it succeeds, then render --push`);
    const ref = `${prefix}/${clusterName(spec.name) ?? 'project'}/${clusterName(bn) ?? 'box'}:${configHash(b)}`;
    say(`committing box ${bn} as ${ref}`);
    await rt.commit(rec.id, ref, { command: b.command, message: `box ${bn} of project ${spec.name}` });
    const pushed = await rt.push(ref);
    const pinned = `${ref.replace(/:[^:/]+$/, '')}@${pushed.digest}`;
    say(`pushed ${pinned}`);
    out[bn] = pinned;
  }
  return out;
}
