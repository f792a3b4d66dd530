import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Guest assets shared by every test file's home: the user's own (BOXLITE_HOME or ~/.boxlite), so the quick start
 *  and the tests build them once. Boxes made by tests live in homes of their own. */
export const TEST_ASSETS_HOME = path.resolve(process.env.BOXLITE_HOME ?? path.join(os.homedir(), '.boxlite'));
export const CLI = path.join(REPO, 'bin', 'boxlite.js');
