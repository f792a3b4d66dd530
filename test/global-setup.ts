// Builds the guest assets once for the whole run (installing Debian packages if missing) into the shared test
// assets folder; each test file gets its own BOXLITE_HOME that links to it (see helpers.ts). Also installs what
// the image tests need (a registry server, skopeo) and builds the cached Debian test image.
import * as fs from 'node:fs';
import { setup, installDebianPackages } from '../src/runtime/assets.js';
import { Home } from '../src/runtime/home.js';
import { TEST_ASSETS_HOME } from './paths.js';
import { TEST_PACKAGES, debianLayout } from './registry.js';

export default async function () {
  if (!fs.existsSync('dist/agent-bundle/agent.cjs')) {
    throw new Error("the agent bundle is missing: run the tests with 'npm test' (it builds first)");
  }
  const say = (m: string) => process.stderr.write(`[setup] ${m}\n`);
  await setup(new Home(TEST_ASSETS_HOME), { ifMissing: true, say });
  const missing = TEST_PACKAGES.filter((p) => !fs.existsSync(p.file));
  if (missing.length) {
    say(`installing test packages: ${missing.map((p) => p.pkg).join(', ')}`);
    await installDebianPackages(missing);
  }
  const t = Date.now();
  debianLayout();
  if (Date.now() - t > 1000) say(`built the Debian test image in ${((Date.now() - t) / 1000).toFixed(0)} s (cached for later runs)`);
}
