// Box lifecycle on real VMs: lazy create, stop/start keeps the disk, restart, remove rules, crash recovery,
// a hung agent, and boot failures that say why.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { cleanupHome, cli, makeRootfs, quietRuntime, testHome, waitUntil } from '../helpers.js';
import type { Runtime } from '../../src/runtime/runtime.js';
import { BootError, BoxExistsError, BoxNotFoundError, BoxStateError, InvalidOptionError, RootfsError, QemuMissingError } from '../../src/core/errors.js';
import { Runtime as RuntimeClass } from '../../src/runtime/runtime.js';

let home: string;
let rt: Runtime;
let rootfs: string;

beforeAll(() => {
  home = testHome();
  rt = quietRuntime(home);
  rootfs = makeRootfs();
});

afterAll(async () => {
  rt?.close();
  if (home) await cleanupHome(home);
});

/** The host pid of a box's QEMU (jailed, its own pidfile holds its pid in its namespace). */
const qemuPid = (id: string) => {
  const st = rt.engine.status(path.join(home, 'boxes', id));
  if (st.kind !== 'running') throw new Error(`box ${id} has no VM running`);
  return st.pid;
};

describe('box lifecycle', () => {
  it('create is lazy; state survives stop/start; restart; rm is refused while running', async () => {
    const box = await rt.create({ rootfs, name: 'life', memoryMib: 256 });
    expect(box.info().state).toBe('created');
    expect(fs.existsSync(path.join(home, 'boxes', box.id, 'disk.qcow2'))).toBe(false);
    await box.start();
    expect(box.info().state).toBe('running');
    await box.exec(['sh', '-c', 'echo persisted > /root/note; mkdir -p /data && echo 42 > /data/x; sync']);
    const stop = await box.stop();
    expect(stop.forced).toBe(false); // the agent shut the guest down cleanly
    expect(box.info().state).toBe('stopped');
    expect(rt.engine.status(path.join(home, 'boxes', box.id)).kind).not.toBe('running');
    await box.start();
    expect((await box.exec(['cat', '/root/note', '/data/x'])).stdout).toBe('persisted\n42\n');
    const before = qemuPid(box.id);
    await box.restart();
    expect(qemuPid(box.id)).not.toBe(before);
    expect((await box.exec(['cat', '/root/note'])).stdout).toBe('persisted\n');
    await expect(box.remove()).rejects.toThrow(BoxStateError);
    await expect(box.remove()).rejects.toThrow(/is running: stop it first .* or remove it with 'boxlite rm -f life'/);
    await box.remove({ force: true });
    expect(fs.existsSync(path.join(home, 'boxes', box.id))).toBe(false);
    expect(() => rt.get('life')).toThrow(BoxNotFoundError);
  });

  it('a box started by one process keeps running after it exits, and is reattached by the next', async () => {
    expect((await cli(home, ['create', '--name', 'detached', '-m', '256', '-e', 'WHO=cli', rootfs])).stdout).toBe('detached\n');
    const start = await cli(home, ['start', 'detached']);
    expect(start.code).toBe(0);
    expect(start.stderr).toContain('software emulation');
    const ps = JSON.parse((await cli(home, ['ps', '--json'])).stdout);
    expect(ps.map((b: { name: string; state: string }) => [b.name, b.state])).toContainEqual(['detached', 'running']);
    const r = await cli(home, ['exec', 'detached', '--', 'sh', '-c', 'echo $WHO; hostname']);
    expect(r.stdout).toBe('cli\ndetached\n');
    const logs = await cli(home, ['logs', 'detached']);
    expect(logs.stdout).toContain('boxlite-agent: ready');
    const inspect = JSON.parse((await cli(home, ['inspect', 'detached'])).stdout);
    expect(inspect.state).toBe('running');
    expect(inspect.options.memoryMib).toBe(256);
    const stop = await cli(home, ['stop', 'detached']);
    expect(stop.code).toBe(0);
    expect(JSON.parse((await cli(home, ['inspect', 'detached'])).stdout).state).toBe('stopped');
    expect((await cli(home, ['rm', 'detached'])).code).toBe(0);
  });

  it('a VM killed with SIGKILL shows exited (killed); start brings it back with its disk intact', async () => {
    const box = await rt.create({ rootfs, name: 'crashy', memoryMib: 256 });
    await box.start();
    await box.exec(['sh', '-c', 'echo survived > /root/file; sync']);
    process.kill(qemuPid(box.id), 'SIGKILL');
    // The VM's supervisor records the exit in the box's folder: wait for that file, not for a while.
    await waitUntil(() => fs.existsSync(path.join(home, 'boxes', box.id, 'vm.exit')), "the VM's exit is recorded");
    const info = box.info();
    expect(info.state).toBe('exited');
    expect(info.exit?.reason).toBe('killed');
    expect(info.exit?.detail).toContain('SIGKILL');
    const ps = await cli(home, ['ps', '-a']);
    expect(ps.stdout).toMatch(/crashy\s+exited \(killed\)/);
    await expect(box.exec(['true'])).rejects.toThrow(/box crashy is exited \(killed: .*\): start it with 'boxlite start crashy'/);
    await box.start();
    expect((await box.exec(['cat', '/root/file'])).stdout).toBe('survived\n');
    await box.remove({ force: true });
  });

  it('stop of a box whose agent hangs is forced after the timeout', async () => {
    const box = await rt.create({ rootfs, name: 'hung', memoryMib: 256 });
    await box.start();
    // Freeze the agent (SIGSTOP) and then say so on the console: once the line is there, the agent is stopped (this
    // exec never gets its answer, which is the point).
    const console = box.consolePath();
    const seen = fs.readFileSync(console, 'utf8').length;
    void box.exec(['sh', '-c', 'pid=$(pidof boxlite-agent) && kill -STOP $pid && echo boxlite-test: agent frozen > /dev/console']).catch(() => {});
    await waitUntil(() => fs.readFileSync(console, 'utf8').slice(seen).includes('boxlite-test: agent frozen'), 'the agent is frozen');
    const t0 = Date.now();
    const r = await box.stop({ timeoutMs: 3000 });
    expect(r.forced).toBe(true);
    expect(Date.now() - t0).toBeLessThan(15_000); // bounded: the timeout plus the forced quit
    expect(box.info().state).toBe('stopped');
    await box.remove();
  });

  it('a box that cannot boot fails within bounded time, naming the reason and showing the console', async () => {
    const box = await rt.create({ rootfs, name: 'broken', memoryMib: 256 });
    await box.start();
    await box.stop();
    // Destroy the file system on the box's disk: the guest init cannot mount it.
    const disk = path.join(home, 'boxes', box.id, 'disk.qcow2');
    execFileSync('qemu-io', ['-c', 'write -z 0 4M', disk], { stdio: 'ignore' });
    const t0 = Date.now();
    const err = await box.start().catch((e) => e);
    expect(err).toBeInstanceOf(BootError);
    expect(err.message).toContain("box broken failed to boot: cannot mount the box's disk (/dev/vdb)");
    expect(err.message).toContain('last lines of the guest console');
    expect(err.consoleTail.join('\n')).toContain('boxlite-init: error:');
    expect(Date.now() - t0).toBeLessThan(60_000);
    expect(box.info().state).toBe('exited');
    expect(box.info().exit?.reason).toBe('crash');
    expect(rt.engine.status(path.join(home, 'boxes', box.id)).kind).not.toBe('running');
    await box.remove();
  });
});

describe('boot watchdog', () => {
  it('a kernel that never reaches init is booted once more, then reported with that reason', async () => {
    const said: string[] = [];
    const watched = new RuntimeClass({ home, say: (m) => said.push(m) });
    const box = await watched.create({ rootfs, name: 'stall', memoryMib: 256 });
    process.env.BOXLITE_INIT_STALL_MS = '1'; // every boot looks stalled before init has had time to print
    try {
      const err = await box.start().catch((e) => e);
      expect(err).toBeInstanceOf(BootError);
      expect(err.message).toContain('box stall failed to boot: the guest kernel did not reach init after 0.001s of CPU time');
      expect(said.filter((m) => m.includes('booting it again'))).toHaveLength(1);
      expect(rt.engine.status(path.join(home, 'boxes', box.id)).kind).not.toBe('running');
    } finally {
      delete process.env.BOXLITE_INIT_STALL_MS;
    }
    await box.start(); // and with the normal bound it boots
    expect((await box.exec(['echo', 'up'])).stdout).toBe('up\n');
    await box.remove({ force: true });
    watched.close();
  });

  it('a guest that stops making progress while it boots is failed, saying so; a slow one is not', async () => {
    const box = await rt.create({ rootfs, name: 'frozen', memoryMib: 192 });
    const dir = path.join(home, 'boxes', box.id);
    process.env.BOXLITE_STALL_MS = '3000';
    try {
      const starting = box.start().catch((e) => e);
      // Its CPUs stopped as soon as QEMU runs: no console output, no CPU used from then on.
      await waitUntil(() => { try { rt.engine.peerPid(dir); return true; } catch { return false; } }, 'the VM process');
      await rt.engine.pause(dir);
      const err = await starting;
      expect(err).toBeInstanceOf(BootError);
      expect(err.message).toContain('box frozen failed to boot: the guest made no progress for 3s (no console output, no CPU used)');
    } finally {
      delete process.env.BOXLITE_STALL_MS;
    }
    await box.remove({ force: true });
  });
});

describe('bad input', () => {
  it('unknown box names and ids', async () => {
    expect(() => rt.get('ghost')).toThrow(BoxNotFoundError);
    expect(() => rt.get('ghost')).toThrow(`no box named or with id "ghost": see 'boxlite ps -a'`);
    for (const cmd of [['start', 'ghost'], ['stop', 'ghost'], ['exec', 'ghost', '--', 'true'], ['rm', 'ghost'], ['inspect', 'ghost'], ['logs', 'ghost']]) {
      const r = await cli(home, cmd);
      expect(r.code, cmd.join(' ')).not.toBe(0);
      expect(r.stderr, cmd.join(' ')).toContain('no box named or with id "ghost"');
    }
  });

  it('missing, non-directory or unreadable root filesystems', async () => {
    await expect(rt.create({ rootfs: '/no/such/rootfs' })).rejects.toThrow(RootfsError);
    await expect(rt.create({ rootfs: '/no/such/rootfs' })).rejects.toThrow('root filesystem /no/such/rootfs does not exist');
    await expect(rt.create({ rootfs: '/etc/hostname' })).rejects.toThrow('is not a directory');
    const r = await cli(home, ['run', '--rm', '/no/such/rootfs', '--', 'true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain('root filesystem /no/such/rootfs does not exist');
    // Unreadable: checked as an unprivileged user (root reads everything).
    const locked = fs.mkdtempSync(path.join(home, 'locked-'));
    fs.chmodSync(locked, 0o700);
    fs.chmodSync(home, 0o755);
    const probe = `import(${JSON.stringify(path.resolve('dist/src/runtime/rootfs.js'))}).then((m) => { try { m.resolveDir(${JSON.stringify(locked)}) } catch (e) { console.log(e.message) } })`;
    const msg = execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', probe], { encoding: 'utf8' });
    expect(msg).toContain(`root filesystem ${locked} is not readable by this user`);
  });

  it('invalid options and duplicate names', async () => {
    await expect(rt.create({ rootfs, memoryMib: 64 })).rejects.toThrow(InvalidOptionError);
    await expect(rt.create({ rootfs, memoryMib: 64 })).rejects.toThrow('memory must be at least 128 MiB');
    await expect(rt.create({ rootfs, cpus: 0 })).rejects.toThrow('cpus must be a whole number');
    await expect(rt.create({ rootfs, name: 'bad name!' })).rejects.toThrow('box name "bad name!" is invalid');
    await rt.create({ rootfs, name: 'twin' });
    await expect(rt.create({ rootfs, name: 'twin' })).rejects.toThrow(BoxExistsError);
    await expect(rt.create({ rootfs, name: 'twin' })).rejects.toThrow(/a box named "twin" already exists/);
    const r = await cli(home, ['run', '--memory', 'lots', rootfs, '--', 'true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain('--memory must be a whole number');
    const neg = await cli(home, ['stop', '-t', '-5', 'twin']);
    expect(neg.code).toBe(1);
    expect(neg.stderr).toContain('--time must be 0 or more seconds (got -5)');
    await rt.get('twin').remove();
  });

  it('QEMU missing names the package; assets missing says to run setup', async () => {
    const noQemu = new RuntimeClass({ home, say: () => {} });
    const box = await noQemu.create({ rootfs, name: 'noqemu' });
    process.env.BOXLITE_QEMU = '/nonexistent/qemu-system-x86_64';
    try {
      await expect(box.start()).rejects.toThrow(QemuMissingError);
      await expect(box.start()).rejects.toThrow(/QEMU is not installed .*install the Debian package qemu-system-x86/);
    } finally {
      delete process.env.BOXLITE_QEMU;
    }
    const r = await cli(home, ['start', 'noqemu'], { env: { BOXLITE_QEMU: '/nonexistent/qemu' } });
    expect(r.stderr).toContain('qemu-system-x86');
    await box.remove();
    noQemu.close();

    const bare = fs.mkdtempSync(path.join(home, 'bare-'));
    const r2 = await cli(bare, ['run', '--rm', rootfs, '--', 'true']);
    expect(r2.code).toBe(125);
    expect(r2.stderr).toMatch(/guest assets are missing under .*: run 'boxlite setup'/);
  });
});
