// Builds the guest assets once for the whole run (installing Debian packages if missing) into the shared test
// assets folder; each test file gets its own BOXLITE_HOME that links to it (see helpers.ts).
import * as fs from 'node:fs';
import { setup } from '../src/runtime/assets.js';
import { Home } from '../src/runtime/home.js';
import { TEST_ASSETS_HOME } from './paths.js';

export default async function () {
  if (!fs.existsSync('dist/agent-bundle/agent.cjs')) {
    throw new Error("the agent bundle is missing: run the tests with 'npm test' (it builds first)");
  }
  await setup(new Home(TEST_ASSETS_HOME), { ifMissing: true, say: (m) => process.stderr.write(`[setup] ${m}\n`) });
}
