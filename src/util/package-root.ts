// The package's folder, found from this file whether it runs compiled (dist/src/…) or from source (src/…).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'proto/agent.proto')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();

/** The compiled file of a module, also when the code runs from its TypeScript source (tests): dist/<rel>.js. */
export function compiledModule(tsOrJsFile: string): string {
  if (!tsOrJsFile.endsWith('.ts')) return tsOrJsFile;
  return path.join(PACKAGE_ROOT, 'dist', path.relative(PACKAGE_ROOT, tsOrJsFile).replace(/\.ts$/, '.js'));
}
