import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Guest assets shared by every test file's home. */
export const TEST_ASSETS_HOME = path.join(REPO, '.boxlite-test', 'assets-home');
export const CLI = path.join(REPO, 'bin', 'boxlite.js');
