// A normal user gets every feature — run as people log in: `runuser -l` (a login shell, with the user's
// supplementary groups set by initgroups, kvm and a team group among them), a home of their own. Ports and UDP,
// host folders and files (read-write, read-only through a group's permission), a named volume, disk and memory
// snapshots, a clone, cp, an outbound rule and a secret, a project on a LAN under `up --watch`, and the network
// guard between a box's root and the host's loopback. Their QEMU and its helpers run jailed as them.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRootfs, scaled, waitUntil, type CliResult } from '../helpers.js';
import { CLI, TEST_ASSETS_HOME } from '../paths.js';
import { startEgressHosts } from '../egress-host.js';
import { debianLayout } from '../registry.js';
import { RAW_FRAMES_PY } from '../raw-frames.js';
import { GUEST_NET } from '../../src/core/network.js';

const USER = 'boxlite-test';
const TEAM = 'boxlite-team';
let uid: number;
let gid: number;
let root: string;
let home: string;

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The command line a login shell of the user runs: the CLI, with the environment given (and BOXLITE_HOME). */
function loginCommand(args: string[], env: Record<string, string>): string[] {
  const vars = Object.entries({ BOXLITE_HOME: home, ...env }).map(([k, v]) => `${k}=${quote(v)}`);
  return ['runuser', '-l', USER, '-c', `cd ${quote(root)} && exec env ${vars.join(' ')} ${quote(process.execPath)} ${quote(CLI)} ${args.map(quote).join(' ')}`];
}

/** The CLI run by the user, in a login session. */
function cliAs(args: string[], timeoutMs = scaled(150_000), env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const [cmd, ...rest] = loginCommand(args, env);
    const child = spawn(cmd, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
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

const psOfHome = () => execFileSync('ps', ['-o', 'pid=,uid=,args=', '-e']).toString().split('\n').filter((l) => l.includes(home));

function statusOf(pid: number): Record<string, string> {
  return Object.fromEntries(fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
}

beforeAll(() => {
  try {
    execFileSync('id', ['-u', USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', USER]);
  }
  // kvm is made by udev on most hosts (not in every container): a login that has it is what is tested.
  for (const [group, system] of [['kvm', true], [TEAM, false]] as const) {
    try {
      execFileSync('getent', ['group', group], { stdio: 'ignore' });
    } catch {
      execFileSync('groupadd', [...(system ? ['--system'] : []), group]);
    }
  }
  // Groups as a real user has them: kvm (to use /dev/kvm where it works) and a team's group that owns a folder.
  execFileSync('usermod', ['-aG', `kvm,${TEAM}`, USER]);
  uid = Number(execFileSync('id', ['-u', USER]).toString());
  gid = Number(execFileSync('id', ['-g', USER]).toString());
  // A folder of the user's own: their boxlite home (with a copy of the guest assets), images, folders to share.
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
  execFileSync('cp', ['-a', debianLayout(), path.join(root, 'debian')]);
  fs.mkdirSync(path.join(root, 'share'));
  fs.writeFileSync(path.join(root, 'share', 'from-host'), 'hello box\n');
  fs.writeFileSync(path.join(root, 'single.txt'), 'one file\n');
  fs.mkdirSync(path.join(root, 'project'));
  execFileSync('chown', ['-R', `${uid}:${gid}`, root]);
  // The team's folder: readable by the user only through the group.
  const team = path.join(root, 'team');
  fs.mkdirSync(team);
  fs.writeFileSync(path.join(team, 'plan'), 'team plan\n');
  execFileSync('chown', ['-R', `0:${TEAM}`, team]);
  fs.chmodSync(team, 0o2750);
  fs.chmodSync(path.join(team, 'plan'), 0o640);
});

afterAll(async () => {
  for (const b of ['mine', 'mine-copy', 'policed', 'raw']) await cliAs(['rm', '-f', b]).catch(() => {});
  await cliAs(['-f', path.join(root, 'project', 'boxlite.yaml'), 'down', '--remove']).catch(() => {});
  await cliAs(['volume', 'rm', 'notes']).catch(() => {});
  fs.rmSync(root, { recursive: true, force: true });
});

describe('as a normal user in a login session', () => {
  it('has the groups of a login, and boxes with ports, UDP, host folders and files, a volume, snapshots, a clone and cp work, jailed as them', async () => {
    const groups = execFileSync('runuser', ['-l', USER, '-c', 'id -Gn']).toString();
    expect(groups.split(/\s+/)).toEqual(expect.arrayContaining(['kvm', TEAM]));
    expect((await cliAs(['volume', 'create', '--size', '32MiB', 'notes'])).code).toBe(0);
    const create = await cliAs([
      'create', '--name', 'mine', '-m', '192', '--disk', '128', '-p', '8000', '-p', '53/udp',
      '-v', `${root}/share:/mnt/share`, '-v', `${root}/team:/mnt/team:ro`, '-v', `${root}/single.txt:/etc/single.txt`, '-v', 'notes:/notes',
      path.join(root, 'rootfs'),
    ]);
    expect(create.code, create.stderr).toBe(0);
    const start = await cliAs(['start', 'mine']);
    expect(start.code, start.stderr).toBe(0);
    const r = await cliAs(['exec', 'mine', 'sh', '-c', [
      'cat /mnt/share/from-host /mnt/team/plan /etc/single.txt',
      'echo from-box > /mnt/share/made; mkdir /mnt/share/d; echo n > /notes/n; echo more >> /etc/single.txt',
      'echo x > /mnt/team/new 2>/dev/null || echo team-is-read-only',
      'id -u; ip addr show eth0 | grep -c 10.0.2.15',
    ].join('; ')]);
    expect(r.stdout, r.stderr).toBe('hello box\nteam plan\none file\nteam-is-read-only\n0\n1\n');
    // The box's root wrote as the user: the files are theirs on the host.
    for (const f of ['made', 'd']) expect(fs.statSync(path.join(root, 'share', f)).uid).toBe(uid);
    expect(fs.readFileSync(path.join(root, 'single.txt'), 'utf8')).toBe('one file\nmore\n');
    expect(fs.existsSync(path.join(root, 'team', 'new'))).toBe(false);
    // The VMM runs as the user, jailed; so do its helpers.
    const ps = psOfHome();
    const qemu = ps.find((l) => /^\s*\d+\s+\d+\s+qemu-system/.test(l));
    expect(qemu, ps.join('\n')).toBeDefined();
    const [pid, quid] = qemu!.trim().split(/\s+/).map(Number);
    expect(quid).toBe(uid);
    const s = statusOf(pid);
    expect(s.NoNewPrivs).toBe('1');
    expect(s.Seccomp).toBe('2');
    expect(s.CapEff).toBe('0000000000000000');
    expect(fs.readlinkSync(`/proc/${pid}/ns/pid`)).not.toBe(fs.readlinkSync('/proc/self/ns/pid'));
    expect(fs.readlinkSync(`/proc/${pid}/ns/net`)).not.toBe(fs.readlinkSync('/proc/self/ns/net'));
    for (const helper of ['/usr/bin/passt', '--boxlite-netguard', '--boxlite-udp-relay', '/usr/lib/qemu/virtiofsd']) {
      const line = ps.find((l) => l.includes(helper));
      expect(line, `${helper} in\n${ps.join('\n')}`).toBeDefined();
      expect(Number(line!.trim().split(/\s+/)[1])).toBe(uid);
    }
    // The published TCP port answers from the box.
    const port = JSON.parse((await cliAs(['inspect', 'mine'])).stdout).ports.find((p: { guestPort: number }) => p.guestPort === 8000).hostPort;
    await cliAs(['exec', 'mine', 'sh', '-c', 'mkdir -p /www && echo served > /www/index.html && httpd -p 8000 -h /www']);
    expect(execFileSync('wget', ['-qO-', `http://127.0.0.1:${port}/`]).toString()).toBe('served\n');
    // A disk snapshot of the running box, cp both ways, and a restore.
    expect((await cliAs(['snapshot', 'create', 'mine', 'snap'])).code).toBe(0);
    fs.writeFileSync(path.join(root, 'in.txt'), 'copied in\n');
    fs.chownSync(path.join(root, 'in.txt'), uid, gid);
    expect((await cliAs(['cp', path.join(root, 'in.txt'), 'mine:/root/'])).code).toBe(0);
    expect((await cliAs(['cp', 'mine:/root/in.txt', path.join(root, 'out.txt')])).code).toBe(0);
    expect(fs.readFileSync(path.join(root, 'out.txt'), 'utf8')).toBe('copied in\n');
    expect(fs.statSync(path.join(root, 'out.txt')).uid).toBe(uid);
    const restore = await cliAs(['snapshot', 'restore', 'mine', 'snap']);
    expect(restore.code, restore.stderr).toBe(0);
    expect((await cliAs(['exec', 'mine', 'sh', '-c', 'ls /root/in.txt 2>/dev/null; cat /notes/n'])).stdout).toBe('n\n'); // the disk went back; the volume did not
    // A clone shares the disk: it sees what the box had (its named volume is not carried over).
    const clone = await cliAs(['clone', 'mine', 'mine-copy']);
    expect(clone.code, clone.stderr).toBe(0);
    expect((await cliAs(['start', 'mine-copy'])).code).toBe(0);
    expect((await cliAs(['exec', 'mine-copy', 'cat', '/www/index.html'])).stdout).toBe('served\n');
    for (const b of ['mine-copy', 'mine']) expect((await cliAs(['rm', '-f', b])).code).toBe(0);
    // Its helpers were told to end: none is left behind.
    await waitUntil(() => psOfHome().length === 0, 'no process of the boxes is left', 15_000).catch((e) => {
      throw new Error(`${(e as Error).message}\nstill running:\n${psOfHome().join('\n')}`);
    });
  }, scaled(600_000));

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
      const gateway = psOfHome().find((l) => l.includes('--boxlite-egress'));
      expect(gateway).toBeDefined();
      expect(Number(gateway!.trim().split(/\s+/)[1])).toBe(uid);
      expect((await cliAs(['rm', '-f', 'policed'])).code).toBe(0);
    } finally {
      eh.stop();
    }
  }, scaled(300_000));

  it('a project of two boxes on a LAN comes up, and up --watch applies an edit', async () => {
    const dir = path.join(root, 'project');
    const file = path.join(dir, 'boxlite.yaml');
    const yaml = (mode: string) =>
      `name: mine\nboxes:\n  web:\n    image: ../rootfs\n    memory: 192MiB\n    disk: 128MiB\n    env: {MODE: ${mode}}\n    setup: ["mkdir -p /www && echo from-web > /www/index.html"]\n    command: httpd -f -p 80 -h /www\n  client:\n    image: ../rootfs\n    memory: 192MiB\n    disk: 128MiB\n    depends_on: [web]\n`;
    fs.writeFileSync(file, yaml('first'));
    fs.chownSync(file, uid, gid);
    const [cmd, ...rest] = loginCommand(['-f', file, 'up', '--trust', '--watch'], {});
    const watch: ChildProcess = spawn(cmd, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    watch.stdout!.on('data', (d) => (out += d));
    watch.stderr!.on('data', (d) => (out += d));
    const seen = (re: RegExp, from = 0) => waitUntil(() => re.test(out.slice(from)), `${re} in the watch's output:\n${out}`, 200_000);
    try {
      await seen(/watching \S*boxlite\.yaml/);
      let page = '';
      for (let i = 0; i < 30 && page !== 'from-web\n'; i++) page = (await cliAs(['-f', file, 'exec', 'client', 'sh', '-c', 'timeout 5 wget -qO- http://web/ || sleep 1'])).stdout;
      expect(page).toBe('from-web\n');
      const mark = out.length;
      fs.writeFileSync(file, yaml('watched'));
      await seen(/env\.MODE: "first" → "watched"[\s\S]*applied/, mark);
      expect((await cliAs(['-f', file, 'exec', 'web', 'sh', '-c', 'echo $MODE'])).stdout).toBe('watched\n');
    } finally {
      // The login shell's child is the watching CLI: it is told to stop as Ctrl-C would.
      const cliPid = execFileSync('ps', ['-o', 'pid=,args=', '-e']).toString().split('\n').find((l) => l.trim().split(/\s+/)[1] === process.execPath && l.includes(file) && l.includes('--watch'));
      expect(cliPid, out).toBeDefined();
      process.kill(Number(cliPid!.trim().split(/\s+/)[0]), 'SIGINT');
      await new Promise((r) => watch.once('exit', r));
    }
    expect((await cliAs(['-f', file, 'down', '--remove'])).code).toBe(0);
  }, scaled(600_000));

  it("a box's root cannot reach the host's loopback with frames of its own (the denial is in its events); memory snapshots and pause", async () => {
    const got: number[] = [];
    const server = net.createServer((c) => (got.push(c.remotePort!), c.destroy()));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const eh = await startEgressHosts();
    try {
      const create = await cliAs(['create', '--name', 'raw', '-m', '384', '--dns', eh.dns, path.join(root, 'debian')]);
      expect(create.code, create.stderr).toBe(0);
      expect((await cliAs(['start', 'raw'])).code).toBe(0);
      const r = await cliAs(['exec', 'raw', '--', 'python3', '-c', RAW_FRAMES_PY, 'eth0', GUEST_NET.address, GUEST_NET.gateway, `dns:${eh.dns}`, `tcp:127.0.0.1:${port}`, `tcp:0.0.0.0:${port}`]);
      expect(r.stdout, r.stderr).toBe('sent 2\ncontrol answered\n');
      // A connection of the test's own comes first unless the box's got through before it.
      const own = net.connect(port, '127.0.0.1');
      await new Promise((res) => own.once('connect', res));
      const ownPort = own.localPort!;
      own.destroy();
      await waitUntil(() => got.includes(ownPort), 'our own connection accepted', 10_000);
      expect(got).toEqual([ownPort]);
      const events = (await cliAs(['events', '--json', 'raw'])).stdout.trim().split('\n').map((l) => JSON.parse(l));
      expect(events).toContainEqual(expect.objectContaining({ kind: 'connection', destination: `127.0.0.1:${port}`, rule: "the host's loopback" }));
      // A memory snapshot, and a pause: what was in memory at the snapshot comes back; a paused box continues.
      await cliAs(['exec', 'raw', 'sh', '-c', 'echo before > /dev/shm/mark']);
      const msnap = await cliAs(['snapshot', 'create', '--memory', 'raw', 'live']);
      expect(msnap.code, msnap.stderr).toBe(0);
      await cliAs(['exec', 'raw', 'sh', '-c', 'echo after > /dev/shm/mark']);
      const mrestore = await cliAs(['snapshot', 'restore', 'raw', 'live']);
      expect(mrestore.code, mrestore.stderr).toBe(0);
      expect((await cliAs(['exec', 'raw', 'cat', '/dev/shm/mark'])).stdout).toBe('before\n');
      expect((await cliAs(['pause', 'raw'])).code).toBe(0);
      expect((await cliAs(['resume', 'raw'])).code).toBe(0);
      expect((await cliAs(['exec', 'raw', 'cat', '/dev/shm/mark'])).stdout).toBe('before\n');
      expect((await cliAs(['rm', '-f', 'raw'])).code).toBe(0);
    } finally {
      server.close();
      eh.stop();
    }
  }, scaled(300_000));
});
