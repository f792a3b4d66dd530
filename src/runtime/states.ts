// Saved VM states shared by boxes (a fork's first start, a warm start's template) live under home/states/, never
// written again once saved; a state no record and no template needs any more is deleted.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ensureDir } from '../util/fs.js';
import { templateRefs } from './template-refs.js';
import type { RuntimeContext } from './context.js';

export const statesDir = (ctx: RuntimeContext) => path.join(ctx.home.root, 'states');
export const newStatePath = (ctx: RuntimeContext) => path.join(ensureDir(statesDir(ctx), 0o700), `${randomBytes(8).toString('hex')}.state`);

/** Deletes shared states nothing refers to (call holding the registry lock, or where a leftover does no harm). */
export async function collectStates(ctx: RuntimeContext, keep: string[] = []): Promise<void> {
  const dir = statesDir(ctx);
  if (!fs.existsSync(dir)) return;
  const used = new Set(keep.map((k) => path.resolve(k)));
  for (const r of ctx.records.list()) if (r.restoreFrom) used.add(path.resolve(r.restoreFrom.file));
  for (const t of templateRefs(ctx.home.root)) used.add(t.state);
  for (const n of fs.readdirSync(dir)) {
    const f = path.join(dir, n);
    if (!used.has(f) && !n.endsWith('.part')) fs.rmSync(f, { force: true });
  }
}
