// `replicas: N`: N boxes of one definition, named NAME-1 … NAME-N as compose names a scaled service's containers.
// The file is expanded here, so plan, apply, the LAN (each replica is reachable by its name), watch and the k8s
// renderer see ordinary boxes; a box that depends on NAME depends on every replica of it. What cannot be given to
// several boxes at once — a fixed host port, a named volume — is refused where it is written.
import type { BoxSpec } from './types.js';

const BOX_NAME = /^[a-z0-9][a-z0-9_-]{0,39}$/;

/** The replica names of a box. */
export const replicaNames = (box: string, n: number) => Array.from({ length: n }, (_, i) => `${box}-${i + 1}`);

/** Replaces each replicated box by its replicas, in place of it, and points dependencies on it at all of them. */
export function expandReplicas(
  boxes: Record<string, BoxSpec>,
  replicas: Record<string, number>,
  at: (segs: (string | number)[], message: string) => void,
): Record<string, BoxSpec> {
  for (const [bn, n] of Object.entries(replicas)) {
    const b = boxes[bn];
    const P = (...s: (string | number)[]) => ['boxes', bn, ...s];
    b.ports.forEach((p, i) => {
      if (p.hostPort && n > 1) at(P('ports', i), `box ${bn} has ${n} replicas, which cannot share a fixed host port: give only the box's port ("${p.guestPort}${p.protocol === 'udp' ? '/udp' : ''}") for a host port chosen at each start`);
    });
    b.volumes.forEach((m, i) => {
      if (m.type === 'volume' && n > 1) at(P('volumes', i), `box ${bn} has ${n} replicas, and volume ${m.source} is a disk that belongs to one running box at a time: share a host folder instead, or keep the data in each replica's own disk`);
    });
    for (const r of replicaNames(bn, n)) {
      if (boxes[r]) at(P('replicas'), `replica ${r} of box ${bn} has the name of another box: rename one of them`);
      else if (!BOX_NAME.test(r)) at(P('replicas'), `replica ${r} of box ${bn} is not a valid box name (up to 40 characters): shorten the box's name`);
    }
  }
  const out: Record<string, BoxSpec> = {};
  const dependsOn = (d: BoxSpec['dependsOn']) =>
    Object.fromEntries(Object.entries(d).flatMap(([dep, cond]) => (Object.hasOwn(replicas, dep) ? replicaNames(dep, replicas[dep]).map((r) => [r, cond] as const) : [[dep, cond] as const])));
  for (const [bn, b] of Object.entries(boxes)) {
    const made = Object.hasOwn(replicas, bn) ? replicaNames(bn, replicas[bn]).map((r) => ({ ...b, name: r, replicaOf: bn })) : [b];
    for (const m of made) out[m.name] = { ...m, dependsOn: dependsOn(m.dependsOn) };
  }
  return out;
}
