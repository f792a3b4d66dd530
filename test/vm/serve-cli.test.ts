// The CLI against a server (--host URL, or BOXLITE_HOST): ps, create, start, exec (piped stdin, a timeout, -it
// under a real pty), cp both ways, logs, stop, rm — the boxes living in the server's home, none in the CLI's.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, cli, makeOciLayout, makeRootfs, quietRuntime, testHome } from '../helpers.js';
import { push, startRegistry, type Registry } from '../registry.js';
import { CLI } from '../paths.js';
import { BoxliteServer } from '../../src/server/server.js';
import type { Runtime } from '../../src/runtime/runtime.js';

const KEY = 'cli-key-0123456789abcdef';
let serverHome: string;
let clientHome: string;
let rt: Runtime;
let reg: Registry;
let server: BoxliteServer;
let image: string;
let tmp: string;
const env = () => ({ BOXLITE_HOST: server.url, BOXLITE_API_KEY: KEY });

beforeAll(async () => {
  serverHome = testHome();
  clientHome = testHome();
  rt = quietRuntime(serverHome);
  reg = await startRegistry();
  await push(reg, makeOciLayout(makeRootfs(), { Env: ['PATH=/usr/bin:/bin'] }), 'alpine:latest');
  image = `${reg.host}/alpine:latest`;
  server = await BoxliteServer.start({ runtime: rt, listen: '127.0.0.1:0', apiKeys: [KEY] });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-cli-remote-'));
});

afterAll(async () => {
  await server?.close();
  rt?.close();
  await reg?.stop();
  for (const h of [serverHome, clientHome]) if (h) await cleanupHome(h);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('the CLI with --host', () => {
  it('create, start, ps, exec, cp, logs, stop, rm on the server', async () => {
    const c = (args: string[], o: { input?: string } = {}) => cli(clientHome, args, { env: env(), ...o });
    expect(await c(['create', '--name', 'far', '-m', '256', '-e', 'WHERE=server', image])).toMatchObject({ code: 0, stdout: 'far\n' });
    expect(await c(['start', 'far'])).toMatchObject({ code: 0 });
    expect((await cli(clientHome, ['--host', server.url, 'ps'], { env: { BOXLITE_API_KEY: KEY } })).stdout).toMatch(/far\s+running/);
    expect(rt.get('far').info().state).toBe('running'); // in the server's home
    expect(quietRuntime(clientHome).list()).toEqual([]); // and not in the client's
    const r = await c(['exec', 'far', '--', 'sh', '-c', 'echo $WHERE; echo oops >&2; exit 3']);
    expect([r.code, r.stdout, r.stderr]).toEqual([3, 'server\n', 'oops\n']);
    expect((await c(['exec', '-i', 'far', '--', 'sh', '-c', 'tr a-z A-Z; echo done'], { input: 'shout\n' })).stdout).toBe('SHOUT\ndone\n');
    const slow = await c(['exec', '--timeout', '1', 'far', '--', 'sleep', '30']);
    expect(slow.code).toBe(124);
    // cp in and out, docker's rules.
    fs.mkdirSync(path.join(tmp, 'src'));
    fs.writeFileSync(path.join(tmp, 'src', 'a.txt'), 'alpha\n');
    expect((await c(['cp', path.join(tmp, 'src'), 'far:/srv'])).code).toBe(0);
    expect((await c(['exec', 'far', '--', 'cat', '/srv/a.txt'])).stdout).toBe('alpha\n');
    expect((await c(['cp', 'far:/srv', path.join(tmp, 'back')])).code).toBe(0);
    expect(fs.readFileSync(path.join(tmp, 'back', 'a.txt'), 'utf8')).toBe('alpha\n');
    expect((await c(['logs', '-n', '5', 'far'])).code).toBe(0);
    // -it under a real pty (script(1)), as a person's terminal.
    const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
      const child = spawn('script', ['-qfec', `${process.execPath} ${CLI} exec -it far -- sh`, '/dev/null'], { env: { ...process.env, ...env(), BOXLITE_HOME: clientHome }, stdio: ['pipe', 'pipe', 'pipe'] });
      let text = '';
      let typed = false;
      child.stdout.on('data', (d) => {
        text += d;
        if (!typed && /[#$] (\x1b\[6n)?$/.test(text)) {
          typed = true;
          child.stdin.write('tty; echo answer=$((6*7)); exit 7\n');
        }
      });
      child.on('close', (code) => resolve({ code, text }));
    });
    expect(out.text).toMatch(/\/dev\/pts\/\d+/);
    expect(out.text).toContain('answer=42');
    expect(out.code).toBe(7);
    // What a server does not do is said, and a wrong key is refused.
    const snap = await c(['snapshot', 'ls', 'far']);
    expect(snap.code).toBe(1);
    expect(snap.stderr).toContain('does not work against a server');
    const bad = await cli(clientHome, ['--host', server.url, 'ps'], { env: { BOXLITE_API_KEY: 'wrong' } });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('invalid or missing API key');
    expect(await c(['stop', 'far'])).toMatchObject({ code: 0 });
    expect(await c(['rm', 'far'])).toMatchObject({ code: 0 });
    expect(rt.list()).toEqual([]);
  });
});
