// The QEMU engine. The VM runs detached under a tiny /bin/sh supervisor that records QEMU's exit status in the box
// folder and then ends the box's helpers, so any later boxlite process can tell a clean power-off from a crash or
// a kill without a daemon. Every operation on a running VM goes over its QMP socket.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { ctlDir, runDir, type SaveOptions, type VmEngine, type VmExit, type VmSpec } from './engine.js';
import { QmpConnection, qmp } from './qmp.js';
import { checkPeer } from './peer.js';
import { INCOMING_FD, LOG_FD, driveId, qemuArgs } from './qemu-args.js';
import { HELPERS_DIR } from './helpers.js';
import { helperEnv } from './helper-env.js';
import { jailArgv } from './jail.js';
import { withoutHugePages } from './thp.js';
import { cmdlineOf, pidFromFile, signal } from '../util/proc.js';
import { fsyncPath, readSmallRegularFile } from '../util/fs.js';

export { qemuArgs } from './qemu-args.js';

const SIGNALS: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 6: 'SIGABRT', 9: 'SIGKILL', 11: 'SIGSEGV', 15: 'SIGTERM' };
const SUPERVISOR_MARK = 'boxlite-vm';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function qemuBinary(): string {
  return process.env.BOXLITE_QEMU ?? 'qemu-system-x86_64';
}

function which(bin: string): string | null {
  if (bin.includes('/')) return fs.existsSync(bin) ? bin : null;
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = path.join(dir, bin);
    if (fs.existsSync(p)) return p;
  }
  return null;
}

const qmpSocket = (dir: string) => path.join(runDir(dir), 'qmp.sock');
/** Where bwrap reports the jailed QEMU's pid as the host sees it (its pidfile holds the pid in its namespace). */
const jailStatus = (dir: string) => path.join(dir, 'jail.json');
const CONSOLE_CAP = 2 * 1024 * 1024;
const CLOCK_TICKS = 100; // USER_HZ: the unit of /proc/PID/stat's times on every Linux this runs on

function readExit(dir: string): string | null {
  try {
    return fs.readFileSync(path.join(dir, 'vm.exit'), 'utf8').trim();
  } catch {
    return null;
  }
}

function readPid(dir: string): number | null {
  try {
    const status = fs.readFileSync(jailStatus(dir), 'utf8');
    const pid = Number(JSON.parse(status.split('\n')[0])['child-pid']);
    return pid > 0 ? pid : null;
  } catch {}
  // QEMU's own pidfile, in the run folder its (jailed) VMM may write: read only as a small regular file.
  const pid = Number(readSmallRegularFile(path.join(runDir(dir), 'qemu.pid'), 32)?.trim());
  return pid > 0 ? pid : null;
}

/** True when pid is alive and is the QEMU of this box folder (not its supervisor, and not a reused pid). */
function isQemuOf(pid: number, dir: string): boolean {
  const cmd = cmdlineOf(pid);
  return isQemuProcess(pid) && cmd.includes(qmpSocket(dir)) && !cmd.includes(`\0${SUPERVISOR_MARK}\0`);
}

/** Whether the process runs QEMU itself: a jailed VM's pid is known (from bwrap) while it still runs the jail's
 *  own steps (setpriv), whose command lines name the same sockets. */
function isQemuProcess(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('qemu-system');
  } catch {
    return false;
  }
}

/** A VM started by a boxlite that kept its sockets and pidfile in the box's folder itself (before run folders):
 *  still found, so that an upgrade does not lose a running box — it can be stopped and removed. */
function legacyPid(dir: string): number | null {
  return pidFromFile(path.join(dir, 'qemu.pid'), path.join(dir, 'qmp.sock'));
}

/** The supervisor shell of the box's VM, while it lives (it outlives QEMU by the moment it takes to note the exit). */
function supervisorPid(dir: string): number | null {
  return pidFromFile(path.join(dir, 'supervisor.pid'), `\0${SUPERVISOR_MARK}\0`, `${dir}/`);
}

// The supervisor runs QEMU (in its jail) and waits for it, with the console file open as fd 4 and bwrap's status
// going to jail.json (both in the box's folder, which the VMM cannot write); meanwhile a loop of its own keeps the
// console under its cap (a guest must not fill the host's disk: the older half is kept as console.log.1, which appears whole). After
// QEMU, it records the exit status, then ends the box's helpers (those still running as themselves).
// A restore's saved state is opened by the supervisor, read-only, as QEMU's fd 5 (its first argument; "" when
// booting): QEMU reads it itself and opens nothing.
const SUPERVISOR_SCRIPT =
  // First into the box's cgroup (its children, QEMU and the console watcher, inherit it): a box that cannot be
  // limited as planned does not start.
  `for f in $BOXLITE_CGROUP_PROCS; do echo $$ > "$f" || { echo "boxlite: cannot join the box's cgroup ($f)" >&2; echo 97 > vm.exit; exit 97; }; done; ` +
  `( while kill -0 $$ 2>/dev/null && [ ! -e vm.exit ]; do sleep 2; for c in console.log command.log; do [ "$(stat -c %s $c 2>/dev/null || echo 0)" -gt ${CONSOLE_CAP} ] && cp $c $c.1.part && mv -f $c.1.part $c.1 && : > $c; done; done ) & ` +
  `st=\${1:-/dev/null}; shift; "$@" 3>jail.json 4>>console.log ${INCOMING_FD}<"$st" ${LOG_FD}>>command.log; s=$?; echo "$s" > vm.exit.tmp && mv vm.exit.tmp vm.exit; ` +
  `for f in ${HELPERS_DIR}/*.pid; do [ -f "$f" ] || continue; p=$(head -n 1 "$f"); grep -qs "$PWD" /proc/"$p"/cmdline && kill "$p"; done; exit 0`;

export class QemuEngine implements VmEngine {
  readonly name = 'qemu';

  check(): string | null {
    const bin = qemuBinary();
    if (!which(bin)) return `QEMU is not installed (${bin} not found): install the Debian package qemu-system-x86 (boxlite setup does it)`;
    return null;
  }

  consolePath(dir: string): string {
    return path.join(dir, 'console.log');
  }

  logPath(dir: string): string {
    return path.join(dir, 'command.log');
  }

  async start(spec: VmSpec): Promise<number> {
    const problem = this.check();
    if (problem) throw new Error(problem);
    await this.settle(spec.dir); // a previous run's supervisor must not write its exit over this run's
    const run = runDir(spec.dir);
    for (const f of ['vm.exit', 'supervisor.pid', 'jail.json']) fs.rmSync(path.join(spec.dir, f), { force: true });
    for (const f of ['qemu.pid', 'qmp.sock', ...Array.from({ length: spec.agentPorts }, (_, i) => `agent-${i}.sock`)]) fs.rmSync(path.join(run, f), { force: true });
    fs.appendFileSync(this.consolePath(spec.dir), `\n--- boxlite: boot at ${new Date().toISOString()} ---\n`, { mode: 0o600 });
    const log = fs.openSync(path.join(spec.dir, 'qemu.log'), 'w');
    const qemu = [qemuBinary(), ...qemuArgs(spec)];
    const argv = spec.jail ? jailArgv(spec.jail, qemu) : qemu;
    const spawnSupervisor = () =>
      spawn('/bin/sh', ['-c', SUPERVISOR_SCRIPT, SUPERVISOR_MARK, spec.incoming ?? '', ...argv], {
        cwd: spec.dir,
        env: { ...helperEnv(), BOXLITE_CGROUP_PROCS: (spec.cgroupProcs ?? []).join(' ') },
        detached: true, // its own session: survives the CLI, and a Ctrl-C in the terminal does not reach it
        stdio: ['ignore', log, log],
      });
    const child = spec.accel === 'kvm' || process.env.BOXLITE_THP === 'on' ? spawnSupervisor() : withoutHugePages(spawnSupervisor);
    fs.closeSync(log);
    fs.writeFileSync(path.join(spec.dir, 'supervisor.pid'), String(child.pid));
    child.unref();
    // Wait for QEMU's pidfile (written before the guest starts) or for an early exit (bad arguments, missing file).
    const deadline = Date.now() + 10_000;
    for (;;) {
      const pid = readPid(spec.dir);
      if (pid && isQemuOf(pid, spec.dir)) {
        if (spec.incoming) {
          try {
            await this.continueRestored(spec.dir);
          } catch (e) {
            await this.kill(spec.dir); // a VM that never got its memory must not linger, stopped
            throw new Error(`its saved memory could not be restored: ${(e as Error).message}`);
          }
        }
        return pid;
      }
      const st = this.status(spec.dir);
      if (st.kind !== 'running') {
        const why = fs.readFileSync(path.join(spec.dir, 'qemu.log'), 'utf8').trim();
        throw new Error(`QEMU exited at once${st.kind === 'ended' ? ` (status ${st.code ?? st.signal})` : ''}: ${why || 'no message'}`);
      }
      if (Date.now() > deadline) throw new Error('QEMU did not start within 10s (no pidfile)');
      await sleep(10);
    }
  }

  status(dir: string): VmExit {
    const legacy = legacyPid(dir);
    if (legacy) return { kind: 'running', pid: legacy };
    const pid = readPid(dir);
    if (pid && isQemuOf(pid, dir)) return { kind: 'running', pid };
    const raw = readExit(dir);
    if (raw === null) {
      // Starting (no pidfile yet), or QEMU just ended and its supervisor is writing vm.exit: still running.
      const sup = supervisorPid(dir);
      return sup ? { kind: 'running', pid: pid ?? sup } : { kind: 'gone' };
    }
    const s = Number(raw);
    if (s > 128) return { kind: 'ended', code: null, signal: SIGNALS[s - 128] ?? `signal ${s - 128}` };
    return { kind: 'ended', code: s, signal: null };
  }

  /** The supervisor ends the box's helpers after it records QEMU's exit: until it is gone, a new helper of the
   *  same box could be taken for an old one, so nothing new starts before. */
  async settle(dir: string): Promise<void> {
    const deadline = Date.now() + 5000;
    while (supervisorPid(dir) && Date.now() < deadline) await sleep(20);
  }

  async waitGone(dir: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.status(dir).kind === 'running') {
      if (Date.now() > deadline) return false;
      await sleep(25);
    }
    await this.settle(dir);
    return true;
  }

  async kill(dir: string, timeoutMs = 3000): Promise<void> {
    if (this.status(dir).kind !== 'running') return;
    // A VM still starting has no pidfile yet: wait for it, so the QEMU that is about to run is the one ended.
    const startDeadline = Date.now() + 10_000;
    while (readPid(dir) === null && supervisorPid(dir) && readExit(dir) === null && Date.now() < startDeadline) await sleep(10);
    const legacy = legacyPid(dir);
    const pid = legacy ?? readPid(dir);
    if (!pid || !(legacy || isQemuOf(pid, dir))) return this.settle(dir);
    await qmp(legacy ? path.join(dir, 'qmp.sock') : qmpSocket(dir), 'quit', undefined, timeoutMs, pid).catch(() => {});
    const alive = () => (legacy ? cmdlineOf(pid).includes(path.join(dir, 'qmp.sock')) : isQemuOf(pid, dir));
    const deadline = Date.now() + timeoutMs;
    while (alive() && Date.now() < deadline) await sleep(20);
    if (alive()) {
      signal(pid, 'SIGKILL');
      while (alive()) await sleep(20);
    }
    await this.settle(dir);
  }

  // ---- QMP operations --------------------------------------------------------------------------------------------

  /** The running VM's host pid: every QMP and agent connection must be served by it. */
  peerPid(dir: string): number {
    const legacy = legacyPid(dir);
    if (legacy) return legacy;
    const pid = readPid(dir);
    if (!pid || !isQemuOf(pid, dir)) throw new Error('the VM is not running');
    return pid;
  }

  cpuSeconds(dir: string): number | null {
    try {
      const stat = fs.readFileSync(`/proc/${this.peerPid(dir)}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // after "pid (comm) ": field 3 onwards
      return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS; // utime, stime
    } catch {
      return null;
    }
  }

  rssBytes(dir: string): number | null {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${this.peerPid(dir)}/status`, 'utf8'));
      return m ? Number(m[1]) * 1024 : null;
    } catch {
      return null;
    }
  }

  private qmp<T = unknown>(dir: string, command: string, args?: object, timeoutMs?: number): Promise<T> {
    return qmp<T>(qmpSocket(dir), command, args, timeoutMs, this.peerPid(dir));
  }

  async snapshotDisk(dir: string, disk: number, name: string): Promise<void> {
    await this.qmp(dir, 'blockdev-snapshot-internal-sync', { device: driveId(disk), name }, 30_000);
  }

  async deleteDiskSnapshot(dir: string, disk: number, name: string): Promise<void> {
    await this.qmp(dir, 'blockdev-snapshot-delete-internal-sync', { device: driveId(disk), name }, 30_000);
  }

  async switchDiskTop(dir: string, disk: number, file: string): Promise<void> {
    const conn = await QmpConnection.open(qmpSocket(dir), 5000, this.peerPid(dir));
    try {
      await switchTop(conn, disk, file);
    } finally {
      conn.close();
    }
  }

  async pause(dir: string): Promise<void> {
    await this.qmp(dir, 'stop');
  }

  async resume(dir: string): Promise<void> {
    await this.qmp(dir, 'cont');
  }

  async runState(dir: string): Promise<string> {
    return (await this.qmp<{ status: string }>(dir, 'query-status')).status;
  }

  /** Migration into a Unix socket this process serves and copies to the file: QEMU itself opens no file and runs
   *  no command, so this works under a jail that forbids both. */
  async saveState(dir: string, file: string, opts: SaveOptions = {}): Promise<{ bytes: number }> {
    fs.mkdirSync(ctlDir(dir), { recursive: true, mode: 0o711 });
    const sock = path.join(ctlDir(dir), 'migrate.sock');
    fs.rmSync(sock, { force: true });
    const out = fs.createWriteStream(file, { mode: 0o600 });
    const written = new Promise<void>((resolve, reject) => out.on('close', resolve).on('error', reject));
    written.catch(() => {}); // awaited on success; after a failure the file is abandoned, and so is its error
    let bytes = 0;
    const pid = this.peerPid(dir);
    let taken = false;
    const server = net.createServer((c) => {
      // The state is the VM's own and comes from one connection: its QEMU's.
      try {
        if (taken) throw new Error('a second connection');
        checkPeer(c, pid, `the migration socket ${sock}`);
      } catch {
        return c.destroy();
      }
      taken = true;
      c.on('data', (d: Buffer) => (bytes += d.length));
      c.pipe(out);
    });
    await new Promise<void>((resolve, reject) => server.listen(sock, resolve).once('error', reject));
    // A jailed QEMU runs as a uid of its own: it must be able to connect (ctl/ is boxlite's, so the path is too).
    fs.chmodSync(sock, 0o666);
    const conn = await QmpConnection.open(qmpSocket(dir), 5000, pid);
    let stopped = false;
    try {
      await conn.execute('stop');
      stopped = true;
      // One instant for the disk and the memory: what the disk needs happens while the CPUs are stopped.
      if (opts.snapshotDisk) await conn.execute('blockdev-snapshot-internal-sync', { device: driveId(opts.snapshotDisk.disk), name: opts.snapshotDisk.name }, 30_000);
      // The default bandwidth cap (128 MiB/s) would make a save of a large guest needlessly slow.
      await conn.execute('migrate-set-parameters', { 'max-bandwidth': 64 * 1024 ** 3 });
      await conn.execute('migrate', { uri: `unix:${sock}` });
      await migrationDone(conn, 'saving');
      if (opts.resume) await conn.execute('cont');
    } catch (e) {
      out.destroy();
      if (stopped && opts.resume) await conn.execute('cont').catch(() => {});
      throw e;
    } finally {
      conn.close();
      server.close();
      fs.rmSync(sock, { force: true });
    }
    await written;
    fsyncPath(file);
    return { bytes };
  }

  /** Waits for QEMU to load the saved state it was given (-incoming fd:5), then lets its CPUs run. */
  private async continueRestored(dir: string): Promise<void> {
    const conn = await QmpConnection.open(qmpSocket(dir), 10_000, this.peerPid(dir));
    try {
      await migrationDone(conn, 'loading');
      await conn.execute('cont');
    } finally {
      conn.close();
    }
  }
}

async function migrationDone(conn: QmpConnection, what: string): Promise<void> {
  for (;;) {
    const st = await conn.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
    if (st.status === 'completed') return;
    if (st.status === 'failed' || st.status === 'cancelled') throw new Error(`${what} the VM's state failed: ${st['error-desc'] ?? st.status}`);
    await sleep(20);
  }
}

/** Puts the disk onto `file` (a qcow2 over the disk's current file) while the VM runs. The new top is added as a
 *  named node and made the overlay of the current one (blockdev-add + blockdev-snapshot): after the older
 *  blockdev-snapshot-sync, QEMU 7.2 can no longer save the VM's state (bdrv_inactivate_all fails), so a box that
 *  was cloned or forked live could not be paused. */
async function switchTop(conn: QmpConnection, disk: number, file: string): Promise<void> {
  const blocks = await conn.execute<{ device: string; inserted?: { 'node-name': string } }[]>('query-block');
  const top = blocks.find((b) => b.device === driveId(disk))?.inserted?.['node-name'];
  if (!top) throw new Error(`the VM has no disk ${driveId(disk)}`);
  const node = `top-${disk}-${Date.now().toString(36)}`;
  await conn.execute('blockdev-add', { driver: 'qcow2', 'node-name': node, discard: 'unmap', file: { driver: 'file', filename: file, discard: 'unmap' }, backing: null }, 30_000);
  try {
    await conn.execute('blockdev-snapshot', { node: top, overlay: node }, 30_000);
  } catch (e) {
    await conn.execute('blockdev-del', { 'node-name': node }).catch(() => {});
    throw e;
  }
}
