// When a box was last used (an exec, a copy): the mtime of its `active` file, read by the idle pause (idle.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RuntimeContext } from './context.js';

export const activeFile = (ctx: RuntimeContext, id: string) => path.join(ctx.home.boxDir(id), 'active');

/** Notes a use of the box now (an exec, a copy). */
export function markActive(ctx: RuntimeContext, id: string): void {
  const f = activeFile(ctx, id);
  const now = new Date();
  try {
    fs.utimesSync(f, now, now);
  } catch {
    try {
      fs.writeFileSync(f, '', { mode: 0o600 });
    } catch {} // the box is going away
  }
}

/** Counts an exec (ok: it started; else it could not) in the box's `execs` file, one byte each: appends from any
 *  number of processes need no lock, and a count is the file's size. */
export function countExec(ctx: RuntimeContext, id: string, ok: boolean): void {
  try {
    fs.appendFileSync(path.join(ctx.home.boxDir(id), 'execs'), ok ? '.' : '!', { mode: 0o600 });
  } catch {} // the box is going away
}

/** Execs started and execs that could not start, since the box was made. */
export function execCounts(ctx: RuntimeContext, id: string): { total: number; errors: number } {
  let text = '';
  try {
    text = fs.readFileSync(path.join(ctx.home.boxDir(id), 'execs'), 'latin1');
  } catch {}
  let errors = 0;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 33) errors++;
  return { total: text.length, errors };
}
