// Exec behaviour on one shared, really booted box: these tests only run commands, so sharing the box hides nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import * as tar from 'tar-stream';
import { cleanupHome, cli, makeRootfs, quietRuntime, testHome } from '../helpers.js';
import type { Box, Runtime } from '../../src/runtime/runtime.js';
import { ExecError, TimeoutError } from '../../src/core/errors.js';

let home: string;
let rt: Runtime;
let box: Box;

beforeAll(async () => {
  home = testHome();
  rt = quietRuntime(home);
  box = await rt.create({ rootfs: makeRootfs(), name: 'shared', env: { BOX_LEVEL: 'box' }, memoryMib: 256 });
  await box.start();
});

afterAll(async () => {
  rt?.close();
  if (home) await cleanupHome(home);
});

describe('exec in a real box', () => {
  it('runs in its own kernel and root filesystem', async () => {
    const r = await box.exec(['sh', '-c', 'uname -r; cat /proc/1/comm; hostname; ls /bin/busybox']);
    expect(r.exitCode).toBe(0);
    const [kernel, init, host, bb] = r.stdout.trim().split('\n');
    expect(kernel).toMatch(/cloud-amd64$/);
    expect(kernel).not.toBe(os.release());
    expect(init).toBe('tini');
    expect(host).toBe('shared');
    expect(bb).toBe('/bin/busybox');
  });

  it('streams stdout and stderr separately, in order, while the command runs', async () => {
    const ex = await box.spawn(['sh', '-c', 'for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.3; done']);
    const seen: { at: number; line: string }[] = [];
    const t0 = Date.now();
    ex.stdout.on('data', (d: Buffer) => seen.push({ at: Date.now() - t0, line: d.toString() }));
    let err = '';
    ex.stderr.on('data', (d: Buffer) => (err += d));
    const st = await ex.wait();
    expect(st.exitCode).toBe(0);
    expect(seen.map((s) => s.line).join('')).toBe('out1\nout2\nout3\n');
    expect(err).toBe('err1\nerr2\nerr3\n');
    // Live, not buffered to the end: the first line arrived well before the last.
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen.at(-1)!.at - seen[0].at).toBeGreaterThan(300);
  });

  it('keeps the bytes of a large output exactly', async () => {
    const r = await box.exec(['sh', '-c', 'seq 1 200000']);
    const expected = Array.from({ length: 200000 }, (_, i) => String(i + 1)).join('\n') + '\n';
    expect(r.stdout.length).toBe(expected.length);
    expect(r.stdout).toBe(expected);
  });

  it('round-trips stdin, including binary bytes and end of input', async () => {
    const data = Buffer.from(Array.from({ length: 70000 }, (_, i) => i % 256));
    const ex = await box.spawn(['sh', '-c', 'cat > /tmp/in.bin; wc -c < /tmp/in.bin; md5sum /tmp/in.bin'], { stdin: true });
    ex.stdin.end(data);
    let out = '';
    ex.stdout.on('data', (d) => (out += d));
    expect((await ex.wait()).exitCode).toBe(0);
    const md5 = execFileSync('md5sum', { input: data }).toString().split(' ')[0];
    expect(out.trim().split('\n')).toEqual(['70000', `${md5}  /tmp/in.bin`]);
  });

  it('passes env (box env overridden per exec), cwd and user', async () => {
    const r = await box.exec(['sh', '-c', 'echo $BOX_LEVEL $EXTRA; pwd; id -u; id -g; echo $HOME'], {
      env: { EXTRA: 'x y' },
      cwd: '/tmp',
      user: 'app',
    });
    expect(r.stdout.split('\n')).toEqual(['box x y', '/tmp', '1000', '1000', '/home/app', '']);
    const o = await box.exec(['sh', '-c', 'echo $BOX_LEVEL; id -u'], { env: { BOX_LEVEL: 'exec' }, user: '1234:55' });
    expect(o.stdout).toBe('exec\n1234\n');
    const root = await box.exec(['sh', '-c', 'pwd; id -un']);
    expect(root.stdout).toBe('/root\nroot\n');
  });

  it('reports exit codes and signals', async () => {
    expect((await box.exec(['sh', '-c', 'exit 42'])).exitCode).toBe(42);
    expect((await box.exec(['false'])).exitCode).toBe(1);
    const killed = await box.exec(['sh', '-c', 'kill -TERM $$']);
    expect(killed.signal).toBe('SIGTERM');
    expect(killed.exitCode).toBe(143);
  });

  it('answers a missing command like a shell: exit 127 and a message', async () => {
    const r = await box.exec(['no-such-command', 'arg']);
    expect(r.exitCode).toBe(127);
    expect(r.stderr).toBe('no-such-command: command not found\n');
    const p = await box.exec(['/tmp']);
    expect(p.exitCode).toBe(126);
    expect(p.stderr).toContain('is a directory');
  });

  it('refuses a missing working directory or an unknown user with a clear error', async () => {
    await expect(box.exec(['pwd'], { cwd: '/nope' })).rejects.toThrow(ExecError);
    await expect(box.exec(['pwd'], { cwd: '/nope' })).rejects.toThrow('working directory /nope does not exist in the box');
    await expect(box.exec(['id'], { user: 'ghost' })).rejects.toThrow(/user "ghost" not found in the box's \/etc\/passwd/);
  });

  it('kills a command at its timeout, children included', async () => {
    const t0 = Date.now();
    const err = await box.exec(['sh', '-c', 'sleep 30 & sleep 30; echo never'], { timeoutMs: 1500 }).catch((e) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect(err.result.timedOut).toBe(true);
    expect(err.result.signal).toBe('SIGKILL');
    expect(err.result.stdout).toBe('');
    expect(Date.now() - t0).toBeLessThan(20_000);
    const left = await box.exec(['sh', '-c', 'ps -o args | grep -c "^sleep 30" || true']);
    expect(left.stdout.trim()).toBe('0');
  });

  it('sends signals with kill', async () => {
    const ex = await box.spawn(['sh', '-c', 'trap "echo got-usr1; exit 3" USR1; echo ready; while true; do sleep 0.1; done']);
    let out = '';
    await new Promise<void>((resolve) => ex.stdout.on('data', (d) => ((out += d), out.includes('ready') && resolve())));
    await ex.kill('SIGUSR1');
    const st = await ex.wait();
    expect(out).toContain('got-usr1');
    expect(st.exitCode).toBe(3);
  });

  it('gives a tty: a terminal device, its size, and resize', async () => {
    const ex = await box.spawn(['sh', '-c', 'tty; stty size; read x; stty size'], { tty: true, rows: 30, cols: 100, stdin: true });
    let out = '';
    ex.stdout.on('data', (d) => (out += d));
    await new Promise<void>((resolve) => ex.stdout.on('data', () => out.includes('30 100') && resolve()));
    await ex.resize(50, 132);
    ex.stdin.write('go\n');
    const st = await ex.wait();
    expect(st.exitCode).toBe(0);
    const lines = out.split('\r\n');
    expect(lines[0]).toMatch(/^\/dev\/pts\/\d+$/);
    expect(lines[1]).toBe('30 100');
    expect(lines).toContain('50 132');
  });

  it('a tty is the controlling terminal: ^C interrupts, and it belongs to the exec user', async () => {
    const ex = await box.spawn(['sh', '-c', 'stat -c %U $(tty); echo waiting; sleep 60'], { tty: true, stdin: true, user: 'app' });
    let out = '';
    ex.stdout.on('data', (d) => (out += d));
    await new Promise<void>((resolve) => ex.stdout.on('data', () => out.includes('waiting') && resolve()));
    ex.stdin.write('\x03');
    const st = await ex.wait();
    expect(out.split('\r\n')[0]).toBe('app');
    expect(st.signal).toBe('SIGINT');
    expect(st.exitCode).toBe(130);
  });

  it('lets a second process reattach to the running box and exec in it', async () => {
    const r = await cli(home, ['exec', 'shared', '--', 'sh', '-c', 'echo from-cli; echo $BOX_LEVEL; exit 5']);
    expect(r.stdout).toBe('from-cli\nbox\n');
    expect(r.code).toBe(5);
    // And two processes at once, each on its own agent port.
    const [a, b] = await Promise.all([
      cli(home, ['exec', 'shared', '--', 'sh', '-c', 'sleep 1; echo a']),
      cli(home, ['exec', 'shared', '--', 'sh', '-c', 'sleep 1; echo b']),
    ]);
    expect([a.stdout, b.stdout]).toEqual(['a\n', 'b\n']);
  });

  it('reattaches to output of a process started by an earlier connection', async () => {
    const ex = await box.spawn(['sh', '-c', 'echo early; sleep 1; echo late']);
    const id = ex.id;
    // A separate runtime (as another process would) attaches by exec id.
    const other = quietRuntime(home);
    try {
      const again = await other.get('shared').attach(id);
      let out = '';
      again.stdout.on('data', (d) => (out += d));
      const st = await again.wait();
      expect(st.exitCode).toBe(0);
      expect(out).toContain('late');
    } finally {
      other.close();
    }
  });

  it('copies files in and out as tar streams, keeping modes', async () => {
    const pack = tar.pack();
    pack.entry({ name: 'up/hello.sh', mode: 0o755 }, '#!/bin/sh\necho uploaded\n');
    pack.entry({ name: 'up/data.txt', mode: 0o600 }, 'payload');
    pack.finalize();
    await box.uploadTar('/srv', pack as unknown as NodeJS.ReadableStream);
    const r = await box.exec(['sh', '-c', '/srv/up/hello.sh; stat -c %a /srv/up/data.txt']);
    expect(r.stdout).toBe('uploaded\n600\n');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-dl-'));
    const stream = await box.downloadTar('/srv/up');
    const extract = tar.extract();
    const got: Record<string, { mode?: number; body: string }> = {};
    extract.on('entry', (h, s, next) => {
      let body = '';
      s.on('data', (d) => (body += d));
      s.on('end', () => ((got[h.name] = { mode: h.mode, body }), next()));
    });
    await new Promise<void>((res, rej) => {
      extract.on('finish', () => res());
      extract.on('error', rej);
      stream.pipe(extract);
    });
    expect(got['up/hello.sh'].body).toBe('#!/bin/sh\necho uploaded\n');
    expect(got['up/hello.sh'].mode! & 0o777).toBe(0o755);
    expect(got['up/data.txt'].mode! & 0o777).toBe(0o600);
    fs.rmSync(dir, { recursive: true });
    await expect(box.downloadTar('/no/such/path').then((s) => new Promise((res, rej) => (s.on('error', rej), s.on('end', res), s.resume())))).rejects.toThrow(/\/no\/such\/path/);
  });

  it('boxlite cp copies folders and files both ways like docker cp, keeping modes and symlinks', async () => {
    const host = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-cp-'));
    try {
      const src = path.join(host, 'proj');
      fs.mkdirSync(path.join(src, 'bin'), { recursive: true });
      fs.writeFileSync(path.join(src, 'bin/run.sh'), '#!/bin/sh\necho ran\n', { mode: 0o755 });
      fs.writeFileSync(path.join(src, 'secret'), 'key', { mode: 0o600 });
      fs.symlinkSync('bin/run.sh', path.join(src, 'link'));
      fs.chmodSync(path.join(src, 'bin'), 0o750);
      // onto an existing folder: inside it
      await box.exec(['mkdir', '-p', '/srv']);
      const into = await cli(home, ['cp', src, 'shared:/srv']);
      expect(into.stderr).toBe('');
      expect(into.code).toBe(0);
      expect(await box.exec(['sh', '-c', '/srv/proj/link; stat -c "%a %u" /srv/proj/secret /srv/proj/bin; readlink /srv/proj/link'])).toMatchObject({
        stdout: 'ran\n600 0\n750 0\nbin/run.sh\n',
      });
      // to a new name: the copy takes it (also right under the root)
      expect((await cli(home, ['cp', path.join(src, 'secret'), 'shared:/srv/renamed'])).code).toBe(0);
      expect((await cli(home, ['cp', src, 'shared:/proj2'])).stderr).toBe('');
      expect((await box.exec(['cat', '/proj2/secret'])).stdout).toBe('key');
      expect((await box.exec(['cat', '/srv/renamed'])).stdout).toBe('key');
      // and back out, to a new name and into an existing folder
      await box.exec(['sh', '-c', 'echo made-in-box > /srv/proj/new.txt']);
      expect((await cli(home, ['cp', 'shared:/srv/proj', path.join(host, 'back')])).code).toBe(0);
      expect(fs.readFileSync(path.join(host, 'back/new.txt'), 'utf8')).toBe('made-in-box\n');
      expect(fs.statSync(path.join(host, 'back/secret')).mode & 0o777).toBe(0o600);
      expect(fs.statSync(path.join(host, 'back/bin')).mode & 0o777).toBe(0o750);
      expect(fs.statSync(path.join(host, 'back/bin/run.sh')).mode & 0o777).toBe(0o755);
      expect(fs.readlinkSync(path.join(host, 'back/link'))).toBe('bin/run.sh');
      fs.mkdirSync(path.join(host, 'into'));
      await box.copyOut('/srv/renamed', path.join(host, 'into'));
      expect(fs.readFileSync(path.join(host, 'into/renamed'), 'utf8')).toBe('key');
      expect(fs.readdirSync(host).filter((f) => f.startsWith('.boxlite-cp-'))).toEqual([]);
      // A box whose path is a file named like a host folder cannot empty that folder: nothing is removed.
      fs.mkdirSync(path.join(host, 'keep'));
      fs.writeFileSync(path.join(host, 'keep', 'mine'), 'host data');
      await box.exec(['sh', '-c', 'echo from-box > /srv/keep']);
      const over = await cli(home, ['cp', 'shared:/srv/keep', host]);
      expect(over.code).toBe(1);
      expect(over.stderr).toBe(`boxlite: cp: ${path.join(host, 'keep')} is a folder on the host and /srv/keep in box shared is not: nothing was copied; choose another destination\n`);
      expect(fs.readFileSync(path.join(host, 'keep', 'mine'), 'utf8')).toBe('host data');
      // bad input
      const missing = await cli(home, ['cp', 'shared:/no/such', host]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain('/no/such in box shared');
      const noHost = await cli(home, ['cp', path.join(host, 'absent'), 'shared:/srv']);
      expect(noHost.stderr).toContain('absent does not exist on the host');
      const noDir = await cli(home, ['cp', src, 'shared:/no/such/dir/x']);
      expect(noDir.stderr).toContain('folder /no/such/dir does not exist in box shared');
      const both = await cli(home, ['cp', src, host]);
      expect(both.stderr).toContain('exactly one of source and destination must be BOX:PATH');
    } finally {
      fs.rmSync(host, { recursive: true, force: true });
    }
  });
});
