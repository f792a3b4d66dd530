// The CLI as a user drives it: run with --rm, exit codes, stdin, an OCI image's config, an interactive terminal.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
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
