// The Python client (python/boxlite) against a `boxlite serve`: its unittest suite (python/tests) runs with
// Debian's python3 and python3-websockets, in BoxLite's Python shapes — the README quick start with the default
// runtime (BOXLITE_HOST), SimpleBox, CodeBox, the runtime calls, Execution streams, files, a wrong key.
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, makeOciLayout, makeRootfs, quietRuntime, testHome } from '../helpers.js';
import { debianLayout, push, startRegistry, type Registry } from '../registry.js';
import { REPO } from '../paths.js';
import { BoxliteServer } from '../../src/server/server.js';
import type { Runtime } from '../../src/runtime/runtime.js';

const KEY = 'python-key-0123456789abcdef';
let home: string;
let rt: Runtime;
let reg: Registry;
let server: BoxliteServer;
let image: string;

beforeAll(async () => {
  home = testHome();
  rt = quietRuntime(home);
  reg = await startRegistry();
  await push(reg, makeOciLayout(makeRootfs(), { Env: ['PATH=/usr/bin:/bin'] }), 'alpine:latest');
  image = `${reg.host}/alpine:latest`;
  // The Debian python image is an OCI layout folder on this machine: the server may boot it from there only.
  server = await BoxliteServer.start({ runtime: rt, listen: '127.0.0.1:0', apiKeys: [KEY], allowHostFolders: path.dirname(debianLayout()) });
});

afterAll(async () => {
  await server?.close();
  rt?.close();
  await reg?.stop();
  if (home) await cleanupHome(home);
});

describe('the Python client', () => {
  it('passes its unittest suite against the server', async () => {
    const env = { ...process.env, PYTHONPATH: path.join(REPO, 'python'), BOXLITE_HOST: server.url, BOXLITE_API_KEY: KEY, BOXLITE_TEST_IMAGE: image, BOXLITE_TEST_PY_IMAGE: debianLayout() };
    const child = spawn('/usr/bin/python3', ['-m', 'unittest', 'discover', '-v', '-s', path.join(REPO, 'python', 'tests')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    expect(out).toMatch(/Ran \d+ tests/);
    expect(out).not.toContain('skipped');
    expect({ code, out }).toMatchObject({ code: 0 });
    expect(rt.list()).toEqual([]); // every box the suite made is gone
  });
});
