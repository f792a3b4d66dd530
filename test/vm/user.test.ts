// A normal user gets every feature: a box with a published port, a UDP forward, a host folder (virtiofsd runs in a
// user namespace of its own), a named volume, a snapshot of the running box, cp both ways — run by a user made for
// the test (useradd), with a home of their own. Their QEMU runs jailed as them (no_new_privs, seccomp,
// namespaces), and what the box's root writes in the shared folder belongs to them.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRootfs, scaled, waitUntil, type CliResult } from '../helpers.js';
import { CLI, TEST_ASSETS_HOME } from '../paths.js';
import { startEgressHosts } from '../egress-host.js';

const USER = 'boxlite-test';
let uid: number;
let gid: number;
let root: string;
let home: string;

/** The CLI run as the test user, with their own home. */
function cliAs(args: string[], timeoutMs = scaled(150_000), env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', process.execPath, CLI, ...args], {
      cwd: root,
      env: { PATH: process.env.PATH!, HOME: root, BOXLITE_HOME: home, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`boxlite ${args.join(' ')} (as ${USER}) did not finish in time; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

beforeAll(() => {
  try {
    execFileSync('id', ['-u', USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', USER]);
  }
  uid = Number(execFileSync('id', ['-u', USER]).toString());
  gid = Number(execFileSync('id', ['-g', USER]).toString());
  // A folder of the user's own: their boxlite home (with a copy of the guest assets), a root file system, a share.
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-user-'));
  home = path.join(root, 'home');
  const assets = path.join(home, 'assets');
  fs.mkdirSync(assets, { recursive: true });
  const current = JSON.parse(fs.readFileSync(path.join(TEST_ASSETS_HOME, 'assets', 'current.json'), 'utf8'));
  for (const k of ['kernel', 'initrd', 'initImage']) {
    const copy = path.join(assets, path.basename(current[k]));
    fs.copyFileSync(current[k], copy);
    current[k] = copy;
  }
  fs.writeFileSync(path.join(assets, 'current.json'), JSON.stringify(current));
  makeRootfs(path.join(root, 'rootfs'));
  fs.mkdirSync(path.join(root, 'share'));
  fs.writeFileSync(path.join(root, 'share', 'from-host'), 'hello box\n');
  execFileSync('chown', ['-R', `${uid}:${gid}`, root]);
});

afterAll(async () => {
  await cliAs(['rm', '-f', 'mine']).catch(() => {});
  await cliAs(['rm', '-f', 'policed']).catch(() => {});
  await cliAs(['volume', 'rm', 'notes']).catch(() => {});
  fs.rmSync(root, { recursive: true, force: true });
});

function statusOf(pid: number): Record<string, string> {
  return Object.fromEntries(fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
}

describe('as a normal user', () => {
  it('boxes with ports, a UDP forward, a host folder, a named volume, snapshots and cp all work, jailed as that user', async () => {
    expect((await cliAs(['volume', 'create', '--size', '32MiB', 'notes'])).code).toBe(0);
    const create = await cliAs(['create', '--name', 'mine', '-m', '192', '--disk', '128', '-p', '8000', '-p', '53/udp', '-v', `${root}/share:/mnt/share`, '-v', 'notes:/notes', path.join(root, 'rootfs')]);
    expect(create.code, create.stderr).toBe(0);
    const start = await cliAs(['start', 'mine']);
    expect(start.code, start.stderr).toBe(0);
    const r = await cliAs(['exec', 'mine', 'sh', '-c', 'cat /mnt/share/from-host; echo from-box > /mnt/share/made; mkdir /mnt/share/d; echo n > /notes/n; id -u; ip addr show eth0 | grep -c 10.0.2.15']);
    expect(r.stdout, r.stderr).toBe('hello box\n0\n1\n');
    // The box's root wrote as the user: the files are theirs on the host.
    expect(fs.statSync(path.join(root, 'share', 'made')).uid).toBe(uid);
    expect(fs.statSync(path.join(root, 'share', 'd')).uid).toBe(uid);
    // The VMM runs as the user, jailed; so do its helpers.
    const ps = execFileSync('ps', ['-o', 'pid=,uid=,args=', '-e']).toString().split('\n').filter((l) => l.includes(home));
    const qemu = ps.find((l) => /^\s*\d+\s+\d+\s+qemu-system/.test(l));
    expect(qemu, ps.join('\n')).toBeDefined();
    const [pid, quid] = qemu!.trim().split(/\s+/).map(Number);
    expect(quid).toBe(uid);
    const s = statusOf(pid);
    expect(s.NoNewPrivs).toBe('1');
    expect(s.Seccomp).toBe('2');
    expect(s.CapEff).toBe('0000000000000000');
    expect(fs.readlinkSync(`/proc/${pid}/ns/pid`)).not.toBe(fs.readlinkSync('/proc/self/ns/pid'));
    for (const helper of ['/usr/bin/passt', '--boxlite-udp-relay', '/usr/lib/qemu/virtiofsd']) {
      const line = ps.find((l) => l.includes(helper));
      expect(line, `${helper} in\n${ps.join('\n')}`).toBeDefined();
      expect(Number(line!.trim().split(/\s+/)[1])).toBe(uid);
    }
    // A snapshot of the running box, and cp both ways.
    expect((await cliAs(['snapshot', 'create', 'mine', 'snap'])).code).toBe(0);
    fs.writeFileSync(path.join(root, 'in.txt'), 'copied in\n');
    expect((await cliAs(['cp', path.join(root, 'in.txt'), 'mine:/root/'])).code).toBe(0);
    expect((await cliAs(['cp', 'mine:/root/in.txt', path.join(root, 'out.txt')])).code).toBe(0);
    expect(fs.readFileSync(path.join(root, 'out.txt'), 'utf8')).toBe('copied in\n');
    const restore = await cliAs(['snapshot', 'restore', 'mine', 'snap']);
    expect(restore.code, restore.stderr).toBe(0);
    expect((await cliAs(['exec', 'mine', 'sh', '-c', 'ls /root/in.txt 2>/dev/null; cat /notes/n'])).stdout).toBe('n\n'); // the disk went back; the volume did not
    expect((await cliAs(['rm', '-f', 'mine'])).code).toBe(0);
    // Its helpers were told to end: none is left behind.
    const left = () => execFileSync('ps', ['-o', 'pid=,args=', '-e']).toString().split('\n').filter((l) => l.includes(home));
    await waitUntil(() => left().length === 0, `no process of the box is left:\n${left().join('\n')}`, 15_000).catch((e) => {
      throw new Error(`${(e as Error).message}\nstill running:\n${left().join('\n')}`);
    });
  }, scaled(400_000));

  it('an outbound policy and a secret hold for a box of a normal user: its gateway runs as them, in a user namespace', async () => {
    const eh = await startEgressHosts();
    try {
      eh.setNames({ 'api.user.test': [eh.ips[0], 60] });
      const create = await cliAs(['create', '--name', 'policed', '-m', '192', '--disk', '128', '--dns', eh.dns, '--net-allow', `${eh.ips[0]}:8080`, '--net-allow', 'api.user.test:80', '--secret', 'USER_KEY@api.user.test', path.join(root, 'rootfs')]);
      expect(create.code, create.stderr).toBe(0);
      // The secret's value comes from the environment of the command that starts the box.
      const start = await cliAs(['start', 'policed'], scaled(150_000), { USER_KEY: 'user-secret-value' });
      expect(start.code, start.stderr).toBe(0);
      const r = await cliAs(['exec', 'policed', 'sh', '-c', `timeout 8 wget -qO- http://${eh.ips[0]}:8080/; timeout 8 wget -qO- http://${eh.ips[1]}:8080/ 2>/dev/null || echo denied`]);
      expect(r.stdout, r.stderr).toBe(`host ${eh.ips[0]}\ndenied\n`);
      const echo = await cliAs(['exec', 'policed', 'sh', '-c', 'echo $USER_KEY; timeout 8 wget -qO- --header "X-Key: $USER_KEY" http://api.user.test/echo']);
      const [placeholder, body] = echo.stdout.split('\n');
      expect(placeholder, echo.stderr).toMatch(/^boxlite-secret-USER_KEY-/);
      expect(body, echo.stderr).toContain('"x-key":"*****************"'); // echoed back masked
      expect(eh.seen().at(-1)?.headers['x-key']).toBe('user-secret-value');
      const events = await cliAs(['events', '--json', 'policed']);
      expect(events.stdout.trim().split('\n').map((l) => JSON.parse(l))).toEqual([expect.objectContaining({ destination: `${eh.ips[1]}:8080`, kind: 'connection' })]);
      const gateway = execFileSync('ps', ['-o', 'pid=,uid=,args=', '-e']).toString().split('\n').find((l) => l.includes('--boxlite-egress') && l.includes(home));
      expect(gateway).toBeDefined();
      expect(Number(gateway!.trim().split(/\s+/)[1])).toBe(uid);
      expect((await cliAs(['rm', '-f', 'policed'])).code).toBe(0);
    } finally {
      eh.stop();
    }
  }, scaled(300_000));
});
