// Builds the guest assets once for the whole run (installing Debian packages if missing) into the shared test
// assets folder; each test file gets its own BOXLITE_HOME that links to it (see helpers.ts). Also installs what
// the image tests need (a registry server, skopeo), builds the cached Debian test image, and measures this
// machine's floor, by which every test scales its timeouts.
import * as fs from 'node:fs';
import type { TestProject } from 'vitest/node';
import { setup, installDebianPackages } from '../src/runtime/assets.js';
import { Home } from '../src/runtime/home.js';
import { chooseAccel, parseAccel, probeHost } from '../src/vmm/accel.js';
import { TEST_ASSETS_HOME } from './paths.js';
import { TEST_PACKAGES, debianLayout } from './registry.js';
import { measureFloor, REFERENCE_FLOOR_MS } from './floor.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** This machine's floor (a boot to an init that powers off at once), in ms. */
    floorMs: number;
  }
}

export default async function (project: TestProject) {
  if (!fs.existsSync('dist/agent-bundle/agent.cjs')) {
    throw new Error("the agent bundle is missing: run the tests with 'npm test' (it builds first)");
  }
  const say = (m: string) => process.stderr.write(`[setup] ${m}\n`);
  const assets = await setup(new Home(TEST_ASSETS_HOME), { ifMissing: true, say });
  const missing = TEST_PACKAGES.filter((p) => !fs.existsSync(p.file));
  if (missing.length) {
    say(`installing test packages: ${missing.map((p) => p.pkg).join(', ')}`);
    await installDebianPackages(missing);
  }
  const t = Date.now();
  debianLayout();
  if (Date.now() - t > 1000) say(`built the Debian test image in ${((Date.now() - t) / 1000).toFixed(0)} s (cached for later runs)`);
  const accel = chooseAccel(parseAccel(process.env.BOXLITE_ACCEL), probeHost()).accel;
  const floorMs = Math.min(...(await measureFloor(assets.kernel, accel, 2)));
  say(`floor of this machine (${accel}): ${floorMs.toFixed(0)} ms; timeouts are scaled by ${Math.max(1, floorMs / REFERENCE_FLOOR_MS).toFixed(2)}`);
  project.provide('floorMs', floorMs);
}
