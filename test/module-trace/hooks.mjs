// Module hooks (registered by register.mjs): append every ES module the process loads to $MODULE_TRACE.
import * as fs from 'node:fs';
export async function load(url, context, next) {
  if (!url.startsWith('node:')) fs.appendFileSync(process.env.MODULE_TRACE, `${url}\n`);
  return next(url, context);
}
