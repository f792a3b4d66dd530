// The projects in examples/, each brought up for real. Their images come from a registry on 127.0.0.1 (the Debian
// bookworm image with python3 the tests build), and the Python workspace installs its packages from a package
// index served by a test host in a network namespace: the examples' variables point them there.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, cli, scaled, testHome } from '../helpers.js';
import { debianLayout, freePort, push, startRegistry, type Registry } from '../registry.js';
import { startTestHost, type TestHost } from '../netns.js';
import { REPO } from '../paths.js';

let reg: Registry;
let home: string;
let image: string;
const example = (name: string) => path.join(REPO, 'examples', name, 'boxlite.yaml');

beforeAll(async () => {
  reg = await startRegistry();
  home = testHome();
  await push(reg, debianLayout(), 'debian:bookworm-python');
  image = `${reg.host}/debian:bookworm-python`;
});

afterAll(async () => {
  await cleanupHome(home);
  await reg?.stop();
});

describe('examples/web-server', () => {
  it('comes up healthy and serves its page on the published port; logs show the requests', async () => {
    const port = await freePort();
    const env = { PYTHON_IMAGE: image, WEB_PORT: String(port) };
    const up = await cli(home, ['-f', example('web-server'), 'up', '--trust', '--wait'], { env, timeoutMs: scaled(400_000) });
    expect(up.code, up.stdout + up.stderr).toBe(0);
    expect(up.stdout).toMatch(/site: create — healthy/);
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('<h1>Hello from a boxlite box</h1>\n');
    const logs = await cli(home, ['-f', example('web-server'), 'logs', 'site'], { env });
    expect(logs.stdout).toMatch(/"GET \/ HTTP\/1\.1" 200/);
    const again = await cli(home, ['-f', example('web-server'), 'up', '--trust'], { env });
    expect(again.stdout).toBe('project web-server: up to date (1 box running)\n');
    expect((await cli(home, ['-f', example('web-server'), 'down', '--remove'], { env })).code).toBe(0);
  }, scaled(420_000)); // image pulls, boots and setup under emulation take minutes
});

describe('examples/notes', () => {
  it('starts the API once the store is healthy; the API reaches the store by name; notes outlive the boxes', async () => {
    const port = await freePort();
    const env = { PYTHON_IMAGE: image, API_PORT: String(port) };
    const up = await cli(home, ['-f', example('notes'), 'up', '--trust', '--wait'], { env, timeoutMs: scaled(600_000) });
    expect(up.code, up.stdout + up.stderr).toBe(0);
    const rt = JSON.parse((await cli(home, ['ps', '-a', '--json'])).stdout) as { project: { box: string; health?: { since: string } }; startedAt: string }[];
    const store = rt.find((r) => r.project.box === 'store')!;
    const api = rt.find((r) => r.project.box === 'api')!;
    // After store became healthy (its first passing check; later checks, and ps's own, move its `at` on).
    expect(Date.parse(api.startedAt)).toBeGreaterThanOrEqual(Date.parse(store.project.health!.since) - 1000);

    const put = await fetch(`http://127.0.0.1:${port}/notes/today`, { method: 'PUT', body: 'buy milk' });
    expect(await put.json()).toEqual({ stored: 'today' });
    expect(await (await fetch(`http://127.0.0.1:${port}/notes/today`)).json()).toEqual({ value: 'buy milk' });
    expect((await fetch(`http://127.0.0.1:${port}/notes/nothing`)).status).toBe(404);

    expect((await cli(home, ['-f', example('notes'), 'down', '--remove'], { env })).code).toBe(0);
    const again = await cli(home, ['-f', example('notes'), 'up', '--trust', '--wait'], { env, timeoutMs: scaled(600_000) });
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(await (await fetch(`http://127.0.0.1:${port}/notes/today`)).json()).toEqual({ value: 'buy milk' });
    expect((await cli(home, ['-f', example('notes'), 'down', '--remove', '--volumes'], { env })).code).toBe(0);
  }, scaled(900_000)); // image pulls, boots and setup under emulation take minutes
});

describe('examples/python-agent', () => {
  let host: TestHost;
  let index: string;
  const token = `probe-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    // A package index with one wheel, built here: the box's setup installs it with pip, as it would from PyPI.
    index = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-index-'));
    const wheel = 'boxlite_probe-1.0-py3-none-any.whl';
    fs.mkdirSync(path.join(index, 'files'));
    fs.mkdirSync(path.join(index, 'simple', 'boxlite-probe'), { recursive: true });
    execFileSync('python3', [
      '-c',
      `import zipfile, hashlib, base64, sys
files = {'boxlite_probe/__init__.py': "TOKEN = '${token}'\\n",
         'boxlite_probe-1.0.dist-info/METADATA': 'Metadata-Version: 2.1\\nName: boxlite-probe\\nVersion: 1.0\\n',
         'boxlite_probe-1.0.dist-info/WHEEL': 'Wheel-Version: 1.0\\nGenerator: boxlite-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n'}
record = ''.join('%s,sha256=%s,%d\\n' % (n, base64.urlsafe_b64encode(hashlib.sha256(d.encode()).digest()).rstrip(b'=').decode(), len(d)) for n, d in files.items())
files['boxlite_probe-1.0.dist-info/RECORD'] = record + 'boxlite_probe-1.0.dist-info/RECORD,,\\n'
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    for n, d in files.items(): z.writestr(n, d)`,
      path.join(index, 'files', wheel),
    ]);
    const sha = createHash('sha256').update(fs.readFileSync(path.join(index, 'files', wheel))).digest('hex');
    fs.writeFileSync(path.join(index, 'simple', 'boxlite-probe', 'index.html'), `<html><body><a href="/files/${wheel}#sha256=${sha}">${wheel}</a></body></html>\n`);
    host = await startTestHost({ files: index });
  });

  afterAll(() => {
    host?.stop();
    fs.rmSync(index, { recursive: true, force: true });
  });

  it('runs its setup once: a virtualenv with the packages pip installed from the index', async () => {
    const env = { PYTHON_IMAGE: image, PIP_INDEX_URL: `http://${host.ip}:8080/simple`, PIP_TRUSTED_HOST: host.ip, AGENT_PACKAGES: 'boxlite-probe' };
    const up = await cli(home, ['-f', example('python-agent'), 'up', '--trust'], { env, timeoutMs: scaled(900_000) });
    expect(up.code, up.stdout + up.stderr).toBe(0);
    expect(up.stdout).toMatch(/agent: setup 2\/2: \/opt\/agent\/bin\/pip install --no-cache-dir boxlite-probe/);
    expect(up.stdout).toMatch(/agent: Successfully installed boxlite-probe-1\.0/);
    const r = await cli(home, ['-f', example('python-agent'), 'exec', 'agent', 'sh', '-c', 'python -c "import boxlite_probe; print(boxlite_probe.TOKEN)"; pwd; grep -c " /work " /proc/mounts'], { env });
    expect(r.stdout).toBe(`${token}\n/work\n1\n`);
    // Unchanged: the next up does not provision again.
    const again = await cli(home, ['-f', example('python-agent'), 'up', '--trust'], { env });
    expect(again.stdout).toBe('project python-agent: up to date (1 box running)\n');
    expect((await cli(home, ['-f', example('python-agent'), 'down', '--remove', '--volumes'], { env })).code).toBe(0);
  }, scaled(900_000)); // image pulls, boots and setup under emulation take minutes
});
