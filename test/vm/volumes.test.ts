// Volumes on real boxes: host folders and single files (virtiofs), read-write and read-only, seen from both sides
// with owners checked; named volumes that outlive their box; and the errors for bad paths.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, cli, makeRootfs, testHome } from '../helpers.js';

let home: string;
let rootfs: string;
let host: string;

beforeAll(() => {
  home = testHome();
  rootfs = makeRootfs();
  host = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-vol-'));
  for (const d of ['rw', 'ro', 'files']) fs.mkdirSync(path.join(host, d));
  fs.writeFileSync(path.join(host, 'rw', 'from-host.txt'), 'written on the host\n');
  fs.writeFileSync(path.join(host, 'ro', 'config.ini'), 'mode=readonly\n');
  fs.writeFileSync(path.join(host, 'files', 'settings.json'), '{"a":1}\n');
  fs.writeFileSync(path.join(host, 'files', 'secret.txt'), 'a sibling the box must not see\n');
  fs.writeFileSync(path.join(host, 'files', 'motd'), 'read-only file\n');
});

afterAll(async () => {
  await cleanupHome(home);
  fs.rmSync(rootfs, { recursive: true, force: true });
  fs.rmSync(host, { recursive: true, force: true });
});

describe('host folders and files', () => {
  const name = 'binds';

  it('mounts folders and files read-write and read-only, from both sides', async () => {
    const create = await cli(home, [
      'create', '--name', name, '-m', '192', '--disk', '128',
      '-v', `${host}/rw:/mnt/rw`,
      '-v', `${host}/ro:/etc/app:ro`,
      '-v', `${host}/files/settings.json:/etc/settings.json`,
      '-v', `${host}/files/motd:/etc/motd:ro`,
      rootfs,
    ]);
    expect(create.code, create.stderr).toBe(0);
    expect((await cli(home, ['start', name])).code).toBe(0);

    // Host → box.
    const seen = await cli(home, ['exec', name, 'sh', '-c', 'cat /mnt/rw/from-host.txt /etc/app/config.ini /etc/settings.json /etc/motd; ls -a /etc | grep -c secret']);
    expect(seen.stdout).toBe('written on the host\nmode=readonly\n{"a":1}\nread-only file\n0\n');

    // Box → host, with the host user (this process's) as owner.
    const w = await cli(home, ['exec', name, 'sh', '-c', 'mkdir /mnt/rw/made-in-box && echo from the box > /mnt/rw/made-in-box/f && chmod 640 /mnt/rw/made-in-box/f && echo changed > /etc/settings.json']);
    expect(w.code, w.stderr).toBe(0);
    const made = path.join(host, 'rw', 'made-in-box', 'f');
    expect(fs.readFileSync(made, 'utf8')).toBe('from the box\n');
    expect(fs.statSync(made).uid).toBe(process.getuid!());
    expect(fs.statSync(made).mode & 0o777).toBe(0o640);
    expect(fs.readFileSync(path.join(host, 'files', 'settings.json'), 'utf8')).toBe('changed\n');

    // Read-only: EROFS in the box, and the host's copy is untouched even after a remount attempt by the box's root.
    const ro = await cli(home, ['exec', name, 'sh', '-c', 'echo x > /etc/app/config.ini; echo x > /etc/motd; mount -o remount,rw /etc/app 2>/dev/null; echo y > /etc/app/new 2>&1; true']);
    expect(ro.stderr).toMatch(/can't create \/etc\/app\/config\.ini: Read-only file system/);
    expect(ro.stderr).toMatch(/can't create \/etc\/motd: Read-only file system/);
    expect(fs.readFileSync(path.join(host, 'ro', 'config.ini'), 'utf8')).toBe('mode=readonly\n');
    expect(fs.existsSync(path.join(host, 'ro', 'new'))).toBe(false);
    expect(fs.readFileSync(path.join(host, 'files', 'motd'), 'utf8')).toBe('read-only file\n');

    // Across a restart the mounts come back.
    expect((await cli(home, ['restart', name])).code).toBe(0);
    expect((await cli(home, ['exec', name, 'cat', '/mnt/rw/made-in-box/f'])).stdout).toBe('from the box\n');
    expect((await cli(home, ['rm', '-f', name])).code).toBe(0);
    expect(fs.existsSync(made)).toBe(true); // the host's files stay
  });

  it('refuses a missing host path, and a file where a folder is meant, before anything boots', async () => {
    const missing = await cli(home, ['create', '-v', `${host}/nothere:/x`, rootfs]);
    expect(missing.stderr).toContain(`host path ${host}/nothere does not exist: create it, or fix the volume`);
    expect(missing.code).toBe(1);
    const fileAsDir = await cli(home, ['create', '-v', `${host}/files/motd:/etc/motd.d/`, rootfs]);
    expect(fileAsDir.stderr).toContain(`host path ${host}/files/motd is a file, but the mount point /etc/motd.d/ names a folder`);
    const bad = await cli(home, ['create', '-v', 'nocolon', rootfs]);
    expect(bad.stderr).toContain('--volume "nocolon": expected NAME:/path[:ro] or /host/path:/path[:ro]');
  });
});

describe('named volumes', () => {
  it('outlive their box, are seen by a new one, refuse rm while in use, and fail writes when mounted ro', async () => {
    expect((await cli(home, ['volume', 'create', '--size', '64MiB', 'cache'])).stdout).toBe('cache\n');
    const dup = await cli(home, ['volume', 'create', 'cache']);
    expect(dup.stderr).toContain('a volume named "cache" already exists');
    const w = await cli(home, ['run', '--name', 'writer', '-m', '192', '--disk', '128', '-v', 'cache:/cache', rootfs, '--', 'sh', '-c', 'echo kept > /cache/data; ls -A /cache; df -m /cache | tail -1 | awk "{print (\\$2 > 50)}"']);
    expect(w.stdout).toBe('data\n1\n'); // an empty folder at first (no lost+found), about 64 MiB
    const inUse = await cli(home, ['volume', 'rm', 'cache']);
    expect(inUse.stderr).toContain('volume cache is in use by box writer: remove that box first');
    expect((await cli(home, ['stop', 'writer'])).code).toBe(0);
    expect((await cli(home, ['rm', 'writer'])).code).toBe(0);
    const r = await cli(home, ['run', '--rm', '-m', '192', '--disk', '128', '-v', 'cache:/cache:ro', rootfs, '--', 'sh', '-c', 'cat /cache/data; echo x > /cache/other']);
    expect(r.stdout).toBe('kept\n');
    expect(r.stderr).toContain("can't create /cache/other: Read-only file system");
    const unknown = await cli(home, ['create', '-v', 'nosuch:/x', rootfs]);
    expect(unknown.stderr).toContain('no volume named "nosuch"');
    const inspect = JSON.parse((await cli(home, ['volume', 'inspect', 'cache'])).stdout);
    expect(inspect).toMatchObject({ name: 'cache', sizeMib: 64, usedBy: [] });
    expect((await cli(home, ['volume', 'rm', 'cache'])).code).toBe(0);
    expect((await cli(home, ['volume', 'ls'])).stdout).toBe('NAME  SIZE  ON HOST  PROJECT  USED BY\n');
  });
});

describe('in a project', () => {
  it('mounts ./folders relative to the project file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-proj-vol-'));
    try {
      fs.mkdirSync(path.join(dir, 'src'));
      fs.writeFileSync(path.join(dir, 'src', 'main.sh'), 'echo running from the host folder\n');
      fs.symlinkSync(rootfs, path.join(dir, 'rootfs'));
      fs.writeFileSync(path.join(dir, 'boxlite.yaml'), 'name: vols\nboxes:\n  dev:\n    image: ./rootfs\n    memory: 192MiB\n    disk: 128MiB\n    volumes: ["./src:/work:ro"]\n    working_dir: /work\n');
      const up = await cli(home, ['up', '--trust'], { cwd: dir });
      expect(up.code, up.stdout + up.stderr).toBe(0);
      expect((await cli(home, ['exec', 'dev', 'sh', 'main.sh'], { cwd: dir })).stdout).toBe('running from the host folder\n');
      expect((await cli(home, ['down', '--remove'], { cwd: dir })).code).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
