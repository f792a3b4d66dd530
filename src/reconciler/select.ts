// Which of a project's boxes a command acts on, as compose chooses services: boxes without profiles always, a box
// with profiles when one of them is asked for (--profile, BOXLITE_PROFILES; '*' asks for all), a box named on the
// command line whatever its profiles, and what the chosen boxes depend on. A dependency a profile keeps out is an
// error that names the profile to add, not a box started silently.
import * as path from 'node:path';
import type { ProjectSpec } from '../spec/types.js';
import { InvalidOptionError } from '../core/errors.js';

export interface Selection {
  /** The project with only the chosen boxes. */
  spec: ProjectSpec;
  /** Declared boxes left out by their profiles: not orphans, and left as they are. */
  inactive: string[];
}

export interface SelectOptions {
  /** Profiles asked for. */
  profiles?: string[];
  /** Only these boxes, and what they depend on (up web). */
  boxes?: string[];
  /** The profiles came from the environment: one this file does not declare is not an error (another project's). */
  lenient?: boolean;
}

/** Profiles as given: each value may be a comma-separated list (--profile a,b; COMPOSE_PROFILES's form). */
export function profileList(values: string[]): string[] {
  return values.flatMap((v) => v.split(',')).map((p) => p.trim()).filter(Boolean);
}

/** The profiles asked for by $BOXLITE_PROFILES. */
export function profilesFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  return profileList([env.BOXLITE_PROFILES ?? '']);
}

export function selectBoxes(project: ProjectSpec, opts: SelectOptions = {}): Selection {
  const all = project.boxes;
  const file = path.basename(project.file);
  const declared = new Set(Object.values(all).flatMap((b) => b.profiles ?? []));
  const asked = new Set(opts.profiles ?? []);
  if (!opts.lenient) {
    const unknown = [...asked].filter((p) => p !== '*' && !declared.has(p));
    if (unknown.length) {
      const have = declared.size ? `its profiles are ${[...declared].sort().join(', ')}` : 'no box of it has profiles';
      throw new InvalidOptionError(`no profile ${unknown.map((p) => `"${p}"`).join(', ')} in ${file}: ${have}`);
    }
  }
  const active = (n: string) => !all[n].profiles?.length || asked.has('*') || all[n].profiles!.some((p) => asked.has(p));

  const keep = new Set<string>();
  if (opts.boxes?.length) {
    // Named boxes come with what they depend on, whatever their profiles: naming a box asks for it (a box with
    // replicas, for all of them).
    const add = (name: string) => {
      if (keep.has(name)) return;
      const declared = Object.hasOwn(all, name); // not a name Object.prototype has (constructor, toString)
      if (!declared && project.replicas && Object.hasOwn(project.replicas, name)) return void Object.values(all).filter((b) => b.replicaOf === name).forEach((b) => add(b.name));
      if (!declared) throw new InvalidOptionError(`no box "${name}" in ${file}: its boxes are ${Object.keys(all).join(', ')}`);
      keep.add(name);
      for (const d of Object.keys(all[name].dependsOn)) add(d);
    };
    for (const b of opts.boxes) add(b);
  } else {
    for (const n of Object.keys(all)) if (active(n)) keep.add(n);
    for (const n of keep) {
      for (const d of Object.keys(all[n].dependsOn)) {
        if (keep.has(d)) continue;
        const only = all[d].profiles!;
        throw new InvalidOptionError(`box ${n} depends on ${d}, which is only in profile${only.length > 1 ? 's' : ''} ${only.join(', ')}: add --profile ${only[0]}, or take ${d} out of its profiles`);
      }
    }
    if (!keep.size) {
      throw new InvalidOptionError(`no box of ${file} is selected: every box has profiles and none of them was asked for (add --profile ${[...declared].sort()[0]}, or name a box)`);
    }
  }
  const inactive = Object.keys(all).filter((n) => !keep.has(n));
  return { spec: { ...project, boxes: Object.fromEntries(Object.entries(all).filter(([n]) => keep.has(n))) }, inactive };
}
