// The parts of an image's config that a box honours, the way `docker run` does.
import type { ImageConfig } from '../types.js';

/** An image config's lists hold strings; anything else in them is left out rather than carried to the guest. */
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

export function imageConfigOf(doc: any): ImageConfig {
  const c = doc?.config ?? {};
  return {
    env: strings(c.Env),
    entrypoint: strings(c.Entrypoint),
    cmd: strings(c.Cmd),
    workingDir: typeof c.WorkingDir === 'string' ? c.WorkingDir : '',
    user: typeof c.User === 'string' ? c.User : '',
  };
}
