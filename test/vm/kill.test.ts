// The CLI killed with SIGKILL in the middle of a snapshot and of an import: the next command finds a consistent
// state — the operation happened or it did not — and the box keeps working. And an export onto a full disk.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { cleanupHome, cli, cliKilledAt, makeRootfs, testHome } from '../helpers.js';
import { CLI } from '../paths.js';

let home: string;
let rootfs: string;
let tmp: string;

beforeAll(async () => {
  home = testHome();
  rootfs = makeRootfs();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-kill-'));
});

afterAll(async () => {
  await cleanupHome(home);
  fs.rmSync(rootfs, { recursive: true, force: true });
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('kill -9 of the CLI', () => {
  it('during a snapshot of a running box: the snapshot exists whole or not at all, and the box is not left frozen', async () => {
    expect((await cli(home, ['create', '--name', 'snap', '-m', '192', '--disk', '128', rootfs])).code).toBe(0);
    expect((await cli(home, ['start', 'snap'])).code).toBe(0);
    await cli(home, ['exec', 'snap', 'sh', '-c', 'echo before > /root/f; sync']);
    // Killed with the guest's file system frozen, with the snapshot taken but not yet recorded (nor the guest
    // thawed), and after the record (with the box's lock still held).
    for (const [i, point] of ['snapshot:frozen', 'snapshot:taken', 'snapshot:recorded'].entries()) {
      await cliKilledAt(home, ['snapshot', 'create', 'snap', `s${i}`], point);
      // The box writes again within the agent's freeze limit (10 s), however the CLI died.
      const w = await cli(home, ['exec', '--timeout', '20', 'snap', 'sh', '-c', `echo after-${i} > /root/g && sync && cat /root/g`]);
      expect(w.stdout, w.stderr).toBe(`after-${i}\n`);
      // Killed before the snapshot, it does not exist and taking it works; killed after, it exists whole.
      const again = await cli(home, ['snapshot', 'create', 'snap', `s${i}`]);
      if (point === 'snapshot:frozen') expect(again.code, again.stderr).toBe(0);
      else expect(again.stderr).toContain(`box snap already has a snapshot named "s${i}"`);
      expect((await cli(home, ['snapshot', 'ls', 'snap'])).stdout).toContain(`s${i}`);
    }
    // Each of them restores to a box that boots with its files.
    const r = await cli(home, ['snapshot', 'restore', 'snap', 's0']);
    expect(r.code, r.stderr).toBe(0);
    expect((await cli(home, ['exec', 'snap', 'cat', '/root/f'])).stdout).toBe('before\n');
    expect((await cli(home, ['rm', '-f', 'snap'])).code).toBe(0);
  });

  it('during an import: the box is imported whole or not at all, and nothing half-imported is left', async () => {
    expect((await cli(home, ['create', '--name', 'src', '-m', '192', '--disk', '128', rootfs])).code).toBe(0);
    expect((await cli(home, ['start', 'src'])).code).toBe(0);
    await cli(home, ['exec', 'src', 'sh', '-c', 'head -c 20000000 /dev/urandom > /root/blob; md5sum /root/blob > /root/blob.md5; sync']);
    expect((await cli(home, ['stop', 'src'])).code).toBe(0);
    const archive = path.join(tmp, 'src.tar');
    expect((await cli(home, ['export', 'src', archive])).code).toBe(0);
    // Killed while unpacking, once every part was checked, and with the folder in place but no record yet: each
    // time there is no box, and importing again works.
    for (const [i, point] of ['import:unpacking', 'import:checked', 'import:moved'].entries()) {
      await cliKilledAt(home, ['import', archive, '--name', `imp${i}`], point);
      expect(JSON.parse((await cli(home, ['ps', '-a', '--json'])).stdout).some((b: { name: string }) => b.name === `imp${i}`)).toBe(false);
      const again = await cli(home, ['import', archive, '--name', `imp${i}`]);
      expect(again.code, again.stderr).toBe(0);
      const ps = JSON.parse((await cli(home, ['ps', '-a', '--json'])).stdout) as { name: string }[];
      expect(ps.filter((b) => b.name === `imp${i}`)).toHaveLength(1);
    }
    // The next create sweeps what the killed imports staged.
    expect((await cli(home, ['create', '--name', 'after', '-m', '192', '--disk', '128', rootfs])).code).toBe(0);
    expect(fs.readdirSync(path.join(home, 'boxes')).filter((n) => n.startsWith('.import-'))).toEqual([]);
    // An imported box boots with the data intact.
    expect((await cli(home, ['start', 'imp0'])).code).toBe(0);
    expect((await cli(home, ['exec', 'imp0', 'md5sum', '-c', '/root/blob.md5'])).stdout).toBe('/root/blob: OK\n');
  });

  it('an export to a disk that fills up fails clearly and leaves nothing behind', () => {
    // A 4 MiB tmpfs, in a mount namespace of the CLI's own: the box has 20 MB of random data to export.
    const full = fs.mkdtempSync(path.join(tmp, 'full-'));
    const script = 'mount -t tmpfs -o size=4m boxlite-test "$1" || exit 9; "$2" "$3" export src "$1/src.tar" 2>&1; echo "exit=$?"; ls -A "$1"';
    const out = execFileSync('unshare', ['-m', 'sh', '-c', script, 'sh', full, process.execPath, CLI], { env: { ...process.env, BOXLITE_HOME: home } }).toString();
    expect(out).toBe(`boxlite: export of box src: no space left on the device holding ${full}; nothing was written\nexit=1\n`);
  });
});
