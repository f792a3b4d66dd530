// The parts of an image's config that a box honours, the way `docker run` does.
import type { ImageConfig } from '../types.js';

export function imageConfigOf(doc: any): ImageConfig {
  const c = doc?.config ?? {};
  return {
    env: Array.isArray(c.Env) ? c.Env : [],
    entrypoint: Array.isArray(c.Entrypoint) ? c.Entrypoint : [],
    cmd: Array.isArray(c.Cmd) ? c.Cmd : [],
    workingDir: typeof c.WorkingDir === 'string' ? c.WorkingDir : '',
    user: typeof c.User === 'string' ? c.User : '',
  };
}
