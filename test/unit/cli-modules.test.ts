// A CLI command that only looks at records must not pay for loading what other commands need: `--version`, `help`,
// `ps` and `logs` (inside a project folder, where the project's name is read) load none of the heavy modules. Told
// by the list of modules each process loaded (ES modules and CommonJS alike), never by time.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const CLI = path.join(ROOT, 'bin/boxlite.js');
const TRACE = path.join(ROOT, 'test/module-trace');
/** What only plan/up/watch, pulls, progress bars, the agent channel, serve, --host or k8s need. */
const HEAVY = ['yaml', 'ajv', 'listr2', '@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs', 'ws', 'undici', 'chokidar', '@kubernetes/client-node', 'kubernetes-models'];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-modules-'));
const home = path.join(dir, 'home');
const project = path.join(dir, 'shop');
fs.mkdirSync(project);
fs.writeFileSync(path.join(project, 'boxlite.yaml'), 'name: shop\nboxes:\n  web:\n    image: debian:12\n');

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The packages a CLI process loaded, and its exit status. */
function loaded(args: string[]): { packages: string[]; status: number | null; stdout: string } {
  const trace = path.join(dir, `trace-${args.join('-').replace(/\W/g, '')}`);
  fs.writeFileSync(trace, '');
  const r = spawnSync(process.execPath, ['--require', path.join(TRACE, 'require.cjs'), '--import', path.join(TRACE, 'register.mjs'), CLI, ...args], {
    cwd: project,
    env: { ...process.env, BOXLITE_HOME: home, MODULE_TRACE: trace },
    encoding: 'utf8',
  });
  const files = fs.readFileSync(trace, 'utf8').split('\n').filter(Boolean);
  const packages = new Set(files.map((f) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f)?.[1]).filter((p): p is string => !!p));
  return { packages: [...packages].sort(), status: r.status, stdout: r.stdout };
}

describe('what a CLI command loads', () => {
  it.each([['--version'], ['help'], ['ps'], ['logs']])('boxlite %s loads none of the heavy modules', (cmd) => {
    const r = loaded([cmd]);
    expect(r.packages.filter((p) => HEAVY.includes(p))).toEqual([]);
    if (cmd !== 'logs') expect(r.status).toBe(0); // logs of a project with no boxes says so, and fails
  });

  it('--version is package.json\'s, and loads next to nothing', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    const r = loaded(['--version']);
    expect(r.stdout).toBe(`boxlite ${pkg.version}\n`);
    expect(r.packages).toEqual([]);
  });

  it('the trace sees what a command that needs them loads (plan: the YAML parser)', () => {
    const r = loaded(['plan']);
    expect(r.packages).toContain('yaml');
    expect(r.stdout).toMatch(/\+\s+web: create/);
  });

  it('reads the project name as the parser would, without it', async () => {
    const { quickName } = await import('../../src/cli/project.js');
    expect(quickName('name: shop # the shop\nboxes:\n  web: {}\n', '/x/y')).toBe('shop');
    expect(quickName('name: "shop"\nboxes: {}\n', '/x/y')).toBeUndefined(); // quoted: parsed
    expect(quickName('boxes:\n  web:\n    name: inner\n', '/srv/My Shop')).toBe('myshop');
    expect(quickName('name: ${PROJECT}\nboxes: {}\n', '/x/y')).toBeUndefined(); // interpolated: parsed
    expect(quickName('{name: shop, boxes: {}}\n', '/x/y')).toBeUndefined(); // flow style: parsed
    expect(quickName('name: a\nname: b\nboxes: {}\n', '/x/y')).toBeUndefined(); // twice: the parser's error
    // Keys the parser reads as name but a line match would not: each left to the parser (else the folder's name
    // would be taken, and a box of another project found).
    for (const text of ['\uFEFFname: foo\nboxes: {}\n', '? name\n: foo\nboxes: {}\n', '&k name: foo\nboxes: {}\n', '!!str name: foo\nboxes: {}\n', '"n\\x61me": foo\nboxes: {}\n']) {
      expect(quickName(text, '/srv/bar'), JSON.stringify(text)).toBeUndefined();
    }
    expect(execFileSync(process.execPath, [CLI, 'config'], { cwd: project, env: { ...process.env, BOXLITE_HOME: home } }).toString()).toContain('"name": "shop"');
  });
});
