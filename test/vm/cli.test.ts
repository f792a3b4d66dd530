// The CLI as a user drives it: run with --rm, exit codes, stdin, an OCI image's config, an interactive terminal.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { cleanupHome, cli, makeOciLayout, makeRootfs, testHome } from '../helpers.js';
import { CLI } from '../paths.js';

let home: string;
let rootfs: string;
let image: string;

beforeAll(() => {
  home = testHome();
  rootfs = makeRootfs();
  fs.mkdirSync(path.join(rootfs, 'app'));
  fs.writeFileSync(path.join(rootfs, 'app/greet.sh'), '#!/bin/sh\necho "hello from $GREETING in $(pwd) as $(id -un)"\n', { mode: 0o755 });
  image = makeOciLayout(rootfs, {
    Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'GREETING=image'],
    Cmd: ['/app/greet.sh'],
    WorkingDir: '/app',
    User: 'app',
  });
});

afterAll(async () => {
  if (home) await cleanupHome(home);
});

describe('boxlite run', () => {
  it('shows live output, returns the command exit code, and --rm leaves nothing behind', async () => {
    const r = await cli(home, ['run', '--rm', '--name', 'once', rootfs, '--', 'sh', '-c', 'echo to-out; echo to-err >&2; exit 3']);
    expect(r.stdout).toBe('to-out\n');
    expect(r.stderr).toContain('to-err\n');
    expect(r.code).toBe(3);
    expect(JSON.parse((await cli(home, ['ps', '-a', '--json'])).stdout)).toEqual([]);
    expect(fs.readdirSync(path.join(home, 'boxes'))).toEqual([]);
  });

  it('uses the OCI image config, which options override like docker run', async () => {
    const byImage = await cli(home, ['run', '--rm', image]);
    expect(byImage.stdout).toBe('hello from image in /app as app\n');
    expect(byImage.code).toBe(0);
    const overridden = await cli(home, ['run', '--rm', '-e', 'GREETING=cli', '-w', '/tmp', '-u', 'root', image, '--', '/app/greet.sh']);
    expect(overridden.stdout).toBe('hello from cli in /tmp as root\n');
    const noCmd = await cli(home, ['run', '--rm', rootfs]);
    expect(noCmd.code).toBe(125);
    expect(noCmd.stderr).toContain('no command given');
  });

  it('-i sends stdin; exec --timeout ends with 124; -it gives a real terminal', async () => {
    expect((await cli(home, ['create', '--name', 'term', rootfs])).code).toBe(0);
    expect((await cli(home, ['start', 'term'])).code).toBe(0);
    const piped = await cli(home, ['exec', '-i', 'term', '--', 'sh', '-c', 'tr a-z A-Z; echo done'], { input: 'shout\n' });
    expect(piped.stdout).toBe('SHOUT\ndone\n');
    const slow = await cli(home, ['exec', '--timeout', '1', 'term', '--', 'sleep', '20']);
    expect(slow.code).toBe(124);
    expect(slow.stderr).toContain('killed after the 1 s timeout');

    // A terminal on the host side too: script(1) gives the CLI a pty, as a person's terminal would.
    const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
      const child = spawn('script', ['-qfec', `${process.execPath} ${CLI} exec -it term -- sh`, '/dev/null'], {
        env: { ...process.env, BOXLITE_HOME: home },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let text = '';
      let typed = false;
      child.stdout.on('data', (d) => {
        text += d;
        // Type once the shell in the box shows its prompt ("~ # ", then busybox asks where the cursor is), as a
        // person would.
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
    expect((await cli(home, ['rm', '-f', 'term'])).code).toBe(0);
  });
});

describe("the command line: what is boxlite's and what is the box's", () => {
  it('-h and --help after the box belong to its command; before it, to boxlite', async () => {
    expect((await cli(home, ['create', '--name', 'args', rootfs])).code).toBe(0);
    expect((await cli(home, ['start', 'args'])).code).toBe(0);
    // The command's own -h: busybox's ls -h (human sizes), not boxlite's help.
    const lsH = await cli(home, ['exec', 'args', '--', 'ls', '-h', '-d', '/']);
    expect(lsH.stdout).toBe('/\n');
    expect(lsH.code).toBe(0);
    const noDash = await cli(home, ['exec', 'args', 'sh', '-c', 'echo "$@"', 'sh', '--help', '-h']);
    expect(noDash.stdout).toBe('--help -h\n');
    const dfH = await cli(home, ['run', '--rm', rootfs, '--', 'df', '-h', '/']);
    expect(dfH.code).toBe(0);
    expect(dfH.stdout).toMatch(/^Filesystem\s+Size/);
    // boxlite's own help, before the box.
    const help = await cli(home, ['exec', '-h']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: boxlite exec [OPTIONS] BOX [--] CMD…');
    expect(help.stdout).toMatch(/-d, --detach/);
    const bad = await cli(home, ['exec', '--detahc', 'args', 'true']);
    expect(bad.code).toBe(125);
    expect(bad.stderr).toContain('exec: unknown option --detahc (did you mean --detach?)');
  });

  it('stats --no-stream: a row per running box; --json and inspect give its metrics, boot stages included', async () => {
    for (let i = 0; i < 3; i++) expect((await cli(home, ['exec', 'args', 'true'])).code).toBe(0);
    const t = await cli(home, ['stats', '--no-stream']);
    expect(t.code, t.stderr).toBe(0);
    const [head, ...rows] = t.stdout.trimEnd().split('\n');
    expect(head).toMatch(/^NAME\s+STATE\s+CPU %\s+MEM USAGE \/ LIMIT\s+VMM RSS\s+NET I\/O\s+BLOCK I\/O\s+PIDS$/);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatch(/^args\s+running\s+\d+\.\d\d%\s+\S+MiB \/ 512MiB\s+\S+MiB\s+\S+ \/ \S+\s+\S+ \/ \S+\s+\d+$/);
    const j = await cli(home, ['stats', '--no-stream', '--json', 'args']);
    const [r] = JSON.parse(j.stdout);
    expect(r.name).toBe('args');
    expect(r.cpuPercent).toBeGreaterThanOrEqual(0);
    const m = r.metrics;
    expect(m.memoryLimitBytes).toBe(512 * 2 ** 20);
    expect(m.vmm.rssBytes).toBeGreaterThan(16 * 2 ** 20);
    expect(m.vmm.cpuSeconds).toBeGreaterThan(0);
    expect(m.guest.memUsedBytes).toBeGreaterThan(0);
    expect(m.guest.memUsedBytes).toBeLessThan(m.guest.memTotalBytes);
    expect(m.guest.processes).toBeGreaterThan(1);
    expect(m.guest.diskReadBytes).toBeGreaterThan(0);
    // The execs above (and the first test's), counted across CLI processes.
    expect(m.execs.total).toBeGreaterThanOrEqual(5);
    expect(m.execs.errors).toBe(0);
    expect(m.lastStart.kind).toBe('boot');
    for (const k of ['totalMs', 'diskMs', 'helpersMs', 'vmSpawnMs', 'agentReadyMs', 'kernelToInitMs', 'initToAgentMs']) expect(m.lastStart[k], k).toBeGreaterThan(0);
    expect(m.lastStart.totalMs).toBeGreaterThanOrEqual(m.lastStart.diskMs + m.lastStart.vmSpawnMs + m.lastStart.agentReadyMs);
    const inspect = JSON.parse((await cli(home, ['inspect', 'args'])).stdout);
    expect(inspect.metrics.execs.total).toBe(m.execs.total);
    // A stopped box: no rows unless named, and then without live figures.
    const none = await cli(home, ['stats', '--no-stream', 'nosuchbox']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('nosuchbox');
  });

  it('exec -d and run -d leave the command running and return at once', async () => {
    // The command outlives the CLI that started it; its output (more than the agent would buffer) goes nowhere.
    const d = await cli(home, ['exec', '-d', 'args', '--', 'sh', '-c', 'head -c 3000000 /dev/zero; echo $$ > /tmp/bg.pid; exec sleep 1000']);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toBe('');
    const alive = await cli(home, ['exec', 'args', 'sh', '-c', 'while [ ! -s /tmp/bg.pid ]; do usleep 100000; done; kill -0 $(cat /tmp/bg.pid) && echo running']);
    expect(alive.stdout).toBe('running\n');
    expect((await cli(home, ['rm', '-f', 'args'])).code).toBe(0);

    const run = await cli(home, ['run', '-d', '--name', 'server', rootfs, '--', 'sh', '-c', 'echo up > /tmp/up; exec httpd -f -p 8080 -h /tmp']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe('server\n');
    const served = await cli(home, ['exec', 'server', 'sh', '-c', 'while [ ! -e /tmp/up ]; do usleep 100000; done; wget -q -O - http://127.0.0.1:8080/up']);
    expect(served.stdout).toBe('up\n');
    const both = await cli(home, ['run', '-d', '--rm', rootfs, '--', 'true']);
    expect(both.code).toBe(125);
    expect(both.stderr).toContain('-d and --rm cannot go together');
    // What the agent refuses is said in its words, naming the box: no gRPC stack trace.
    const ghost = await cli(home, ['exec', '-u', 'ghost', 'server', 'true']);
    expect(ghost.code).toBe(125);
    expect(ghost.stderr.split('\n').filter((l) => l && !/software emulation/.test(l))).toEqual([
      `boxlite: box server: user "ghost" not found in the box's /etc/passwd; use a uid (e.g. 1000) or add the user`,
    ]);
    expect((await cli(home, ['rm', '-f', 'server'])).code).toBe(0);
  });
});

describe('shell completion', () => {
  it('bash completes commands, the options of the command typed, and box names; zsh loads the same', async () => {
    expect((await cli(home, ['create', '--name', 'completed', rootfs])).code).toBe(0); // recorded, not booted
    const script = (await cli(home, ['completion', 'bash'])).stdout;
    // The script calls `boxlite` as an installed one is called.
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-bin-'));
    fs.writeFileSync(path.join(bin, 'boxlite'), `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`, { mode: 0o755 });
    const complete = (words: string[]) =>
      execFileSync('bash', ['-c', `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _boxlite; printf '%s\\n' "\${COMPREPLY[@]}"`], {
        env: { ...process.env, BOXLITE_HOME: home, PATH: `${bin}:${process.env.PATH}` },
      }).toString().trim().split('\n');
    expect(complete(['boxlite', 'sta'])).toEqual(['start', 'stats']);
    expect(complete(['boxlite', 'exec', '--de'])).toEqual(['--detach']);
    expect(complete(['boxlite', 'start', 'comp'])).toEqual(['completed']);
    expect((await cli(home, ['completion', 'zsh'])).stdout).toContain('bashcompinit');
    const none = await cli(home, ['completion']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('boxlite completion bash');
    expect((await cli(home, ['rm', 'completed'])).code).toBe(0);
    fs.rmSync(bin, { recursive: true, force: true });
  });
});
