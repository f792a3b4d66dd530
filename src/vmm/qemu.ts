// QEMU engine: a microvm machine with direct kernel boot and virtio-mmio devices.
// The VM runs detached under a tiny /bin/sh supervisor that records QEMU's exit status in the box folder, so
// any later boxlite process can tell a clean power-off from a crash or a kill without a daemon.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NET_MAC, type VmEngine, type VmExit, type VmSpec } from './engine.js';
import { qmp } from './qmp.js';
import { tcgKernelArgs } from './accel.js';

const SIGNALS: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 6: 'SIGABRT', 9: 'SIGKILL', 11: 'SIGSEGV', 15: 'SIGTERM' };

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

/** QEMU's command line for a spec (pure, for tests and for `inspect`). */
export function qemuArgs(spec: VmSpec): string[] {
  const f = (name: string) => path.join(spec.dir, name);
  const args = [
    '-name', `boxlite,debug-threads=on`,
    // vhost-user devices (virtiofs) need the guest's memory in a shared mapping their helper can map too.
    '-M', `microvm,acpi=on,pcie=off,rtc=on${spec.shares?.length ? ',memory-backend=mem' : ''}`,
    // … and virtio 1.0 on the mmio transport: virtiofsd's libvhost-user refuses legacy devices.
    ...(spec.shares?.length ? ['-object', `memory-backend-memfd,id=mem,size=${spec.memoryMib}M,share=on`, '-global', 'virtio-mmio.force-legacy=false'] : []),
    ...(spec.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max']),
    '-m', String(spec.memoryMib),
    '-smp', String(spec.cpus),
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    '-kernel', spec.kernel,
    '-initrd', spec.initrd,
    '-append', [spec.cmdline, ...(spec.accel === 'tcg' ? tcgKernelArgs() : [])].join(' '),
    '-chardev', `file,id=con,path=${f('console.log')},append=on`,
    '-serial', 'chardev:con',
    '-qmp', `unix:${f('qmp.sock')},server=on,wait=off`,
    '-pidfile', f('qemu.pid'),
    '-device', // Port 0 of a virtio-serial bus is reserved for a console, so agent ports are 1..N.
    'virtio-serial-device,max_ports=' + (spec.agentPorts + 1),
  ];
  for (let i = 0; i < spec.agentPorts; i++) {
    args.push('-chardev', `socket,id=agent${i},path=${f(`agent-${i}.sock`)},server=on,wait=off`);
    args.push('-device', `virtserialport,chardev=agent${i},name=boxlite.agent.${i}`);
  }
  if (spec.netSocket) {
    args.push('-netdev', `stream,id=net0,server=off,addr.type=unix,addr.path=${spec.netSocket}`);
    args.push('-device', `virtio-net-device,netdev=net0,mac=${NET_MAC}`);
  }
  (spec.shares ?? []).forEach((sh, i) => {
    args.push('-chardev', `socket,id=fs${i},path=${sh.socket}`);
    args.push('-device', `vhost-user-fs-device,chardev=fs${i},tag=${sh.tag}`);
  });
  if (spec.lan) {
    args.push('-netdev', `socket,id=lan0,mcast=${spec.lan.mcast},localaddr=127.0.0.1`);
    args.push('-device', `virtio-net-device,netdev=lan0,mac=${spec.lan.mac}`);
  }
  spec.disks.forEach((d, i) => {
    args.push('-drive', `if=none,id=disk${i},file=${d.path},format=${d.format}${d.readonly ? ',readonly=on' : ''},cache=writeback,discard=unmap`);
    args.push('-device', `virtio-blk-device,drive=disk${i}${d.serial ? `,serial=${d.serial}` : ''}`);
  });
  return args;
}

function readExit(dir: string): string | null {
  try {
    return fs.readFileSync(path.join(dir, 'vm.exit'), 'utf8').trim();
  } catch {
    return null;
  }
}

function readPid(dir: string): number | null {
  try {
    const pid = Number(fs.readFileSync(path.join(dir, 'qemu.pid'), 'utf8').trim());
    return pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** True when pid is alive and is the QEMU of this box folder (guards against pid reuse). */
function isOurs(pid: number, dir: string): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(path.join(dir, 'qmp.sock'));
  } catch {
    return false;
  }
}

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

  async start(spec: VmSpec): Promise<number> {
    const problem = this.check();
    if (problem) throw new Error(problem);
    await this.settle(spec.dir); // a previous run's supervisor must not write its exit over this run's
    for (const f of ['qemu.pid', 'vm.exit', 'qmp.sock', ...Array.from({ length: spec.agentPorts }, (_, i) => `agent-${i}.sock`)]) {
      fs.rmSync(path.join(spec.dir, f), { force: true });
    }
    fs.appendFileSync(this.consolePath(spec.dir), `\n--- boxlite: boot at ${new Date().toISOString()} ---\n`);
    const log = fs.openSync(path.join(spec.dir, 'qemu.log'), 'w');
    // After QEMU, the supervisor also ends the box's network helpers (those it has, if still those processes).
    const script =
      '"$@"; s=$?; echo "$s" > vm.exit.tmp && mv vm.exit.tmp vm.exit; ' +
      'p=$(cat passt.pid 2>/dev/null) && grep -qs "$PWD/net/net.sock" /proc/"$p"/cmdline && kill "$p"; ' +
      'r=$(cat udp-relay.pid 2>/dev/null) && grep -qs boxlite-udp-relay /proc/"$r"/cmdline && kill "$r"; exit 0';
    const child = spawn('/bin/sh', ['-c', script, 'boxlite-vm', qemuBinary(), ...qemuArgs(spec)], {
      cwd: spec.dir,
      detached: true, // its own session: survives the CLI, and a Ctrl-C in the terminal does not reach it
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    child.unref();
    // Wait for QEMU's pidfile (written before the guest starts) or for an early exit (bad arguments, missing file).
    const deadline = Date.now() + 10_000;
    for (;;) {
      const pid = readPid(spec.dir);
      if (pid && isOurs(pid, spec.dir)) return pid;
      const st = this.status(spec.dir);
      if (st.kind === 'ended') {
        const why = fs.readFileSync(path.join(spec.dir, 'qemu.log'), 'utf8').trim();
        throw new Error(`QEMU exited at once (status ${st.code}): ${why || 'no message'}`);
      }
      if (Date.now() > deadline) throw new Error('QEMU did not start within 10s (no pidfile)');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  status(dir: string): VmExit {
    const pid = readPid(dir);
    if (pid && isOurs(pid, dir)) return { kind: 'running', pid };
    let raw = readExit(dir);
    if (raw === null && pid) {
      // QEMU just ended and its supervisor is writing vm.exit: give it a moment before calling the VM gone.
      for (let i = 0; i < 40 && raw === null; i++) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 25);
        raw = readExit(dir);
      }
    }
    if (raw === null) return { kind: 'gone' };
    const s = Number(raw);
    if (s > 128) return { kind: 'ended', code: null, signal: SIGNALS[s - 128] ?? `signal ${s - 128}` };
    return { kind: 'ended', code: s, signal: null };
  }

  async settle(dir: string): Promise<void> {
    if (!fs.existsSync(path.join(dir, 'qemu.pid')) && !fs.existsSync(path.join(dir, 'qemu.log'))) return; // never started
    const deadline = Date.now() + 3000;
    while (readExit(dir) === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  async kill(dir: string, timeoutMs = 3000): Promise<void> {
    const st = this.status(dir);
    if (st.kind !== 'running') return;
    try {
      await qmp(path.join(dir, 'qmp.sock'), 'quit', undefined, timeoutMs);
    } catch {}
    const deadline = Date.now() + timeoutMs;
    while (isOurs(st.pid, dir) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (isOurs(st.pid, dir)) {
      try {
        process.kill(st.pid, 'SIGKILL');
      } catch {}
      while (isOurs(st.pid, dir)) await new Promise((r) => setTimeout(r, 20));
    }
    await this.settle(dir);
  }
}

/** Waits until the VM process of dir is gone, up to timeoutMs; true if it went. */
export async function waitGone(engine: VmEngine, dir: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (engine.status(dir).kind === 'running') {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  await engine.settle(dir);
  return true;
}
