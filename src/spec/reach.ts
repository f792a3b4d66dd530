// What a project file reaches outside its own folder: the parts a cloned boxlite.yaml must not be trusted with
// until the user says so (`boxlite trust`, like `direnv allow`). A project that keeps to its folder, its named
// volumes and loopback ports, and reads nothing of the host's, reaches nothing and needs no approval.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import type { ProjectSpec } from './types.js';

export interface ReachPart {
  /** The box, or '' for the file as a whole (a variable read while interpolating outside any box). */
  box: string;
  /** Where in the file: volumes[0], image, secrets.TOKEN, ports[1], env.KEY… */
  field: string;
  /** What on the host it touches, in words: "host folder /etc (read-write)". */
  touches: string;
}

/** The path with every symbolic link resolved, as far as it exists (a link inside the project may lead out). */
function real(p: string): string {
  let head = path.resolve(p);
  const tail: string[] = [];
  for (;;) {
    try {
      return path.join(fs.realpathSync(head), ...tail);
    } catch {
      const up = path.dirname(head);
      if (up === head) return path.join(head, ...tail);
      tail.unshift(path.basename(head));
      head = up;
    }
  }
}

function inside(dir: string, p: string): boolean {
  const rel = path.relative(real(dir), real(p));
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

const LOOPBACK = /^127\./;

/** Where a path really leads, and by which link when that is not where it says. */
function via(p: string): string {
  const to = real(p);
  return to === p ? p : `${to} (by the link ${p})`;
}

/** Every part of the project that reaches outside its folder, in a stable order. */
export function reachParts(spec: ProjectSpec): ReachPart[] {
  const parts: ReachPart[] = [];
  for (const v of spec.hostVariables ?? []) parts.push({ box: v.box, field: v.field, touches: `the host's variable ${v.name}` });
  const seen = new Set<string>();
  for (const spec_ of Object.values(spec.boxes)) {
    // Replicas are one definition: one approval covers them at any scale, so scaling under watch needs none.
    const b = { ...spec_, name: spec_.replicaOf ?? spec_.name };
    if (seen.has(b.name)) continue;
    seen.add(b.name);
    if (path.isAbsolute(b.image) && !inside(spec.dir, b.image)) parts.push({ box: b.name, field: 'image', touches: `host folder ${via(b.image)} (read, as the box's root)` });
    b.volumes.forEach((m, i) => {
      if (m.type !== 'bind' || inside(spec.dir, m.source)) return;
      const kind = fs.statSync(m.source, { throwIfNoEntry: false })?.isDirectory() === false ? 'file' : 'folder';
      parts.push({ box: b.name, field: `volumes[${i}]`, touches: `host ${kind} ${via(m.source)} (${m.readOnly ? 'read-only' : 'read-write'})` });
    });
    for (const s of b.secrets ?? []) {
      if ('env' in s.source) parts.push({ box: b.name, field: `secrets.${s.name}`, touches: `the host's variable ${s.source.env} (sent to ${s.hosts.join(', ')})` });
      else if (!inside(spec.dir, s.source.file)) parts.push({ box: b.name, field: `secrets.${s.name}`, touches: `host file ${s.source.file} (sent to ${s.hosts.join(', ')})` });
    }
    b.ports.forEach((p, i) => {
      if (!LOOPBACK.test(p.hostIp)) parts.push({ box: b.name, field: `ports[${i}]`, touches: `port ${p.hostPort || '(any)'}/${p.protocol} open on ${p.hostIp === '0.0.0.0' ? 'every address of the host' : p.hostIp}` });
    });
  }
  return parts.sort((a, b) => a.box.localeCompare(b.box) || a.field.localeCompare(b.field, 'en', { numeric: true }));
}

/** The hash an approval is recorded against: exactly these parts (not the rest of the file), so editing a
 *  command needs no new approval and adding a host folder does. */
export function reachHash(parts: ReachPart[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(JSON.stringify([p.box, p.field, p.touches])).update('\n');
  return h.digest('hex').slice(0, 16);
}

export function describePart(p: ReachPart): string {
  return `${p.box ? `${p.box}: ` : ''}${p.field} → ${p.touches}`;
}
