// What the runtime needs from a VM engine. One engine today (QEMU); the interface keeps the runtime free of argv
// and of QMP: every operation on a running VM goes through here.
import * as path from 'node:path';
import type { JailSpec } from './jail.js';

/** The folder inside a box's folder where the VM process writes (its sockets, pid, console): the only part of the
 *  box's folder a jailed VMM may write, so it can never touch the box's record or locks. */
export const runDir = (boxDir: string) => path.join(boxDir, 'vm');
/** What boxlite makes for a running VM to open (a new top to move onto, the socket a state is saved through): a
 *  folder only boxlite writes, visible to the VMM, so that the VMM cannot plant what boxlite later trusts. */
export const ctlDir = (boxDir: string) => path.join(boxDir, 'ctl');

export interface DiskSpec {
  /** Shown to the guest in /sys/block/vdX/serial, so it can find a disk whatever order they probe in. */
  serial?: string;
  path: string;
  format: 'raw' | 'qcow2';
  readonly: boolean;
}

export interface VmSpec {
  /** The box's folder: the engine keeps its sockets, pid, exit and log files here. */
  dir: string;
  cpus: number;
  memoryMib: number;
  kernel: string;
  initrd: string;
  cmdline: string;
  /** In guest order: the first is /dev/vda. Operations name a disk by its index here. */
  disks: DiskSpec[];
  /** Number of virtio-serial ports for agent connections, named boxlite.agent.N, sockets vm/agent-N.sock. */
  agentPorts: number;
  accel: 'kvm' | 'tcg';
  /** The Unix socket of the box's network guard, in front of its network helper; none: only loopback. */
  netSocket?: string;
  /** A second NIC on a project's private LAN: the guard's socket that carries it, and the NIC's MAC. */
  lan?: { socket: string; mac: string };
  /** virtiofs shares: the vhost-user socket of each one's virtiofsd, and the tag the guest mounts it by. */
  shares?: { socket: string; tag: string }[];
  /** Run the VMM in this jail (see jail.ts); absent: as the caller, unconfined. */
  jail?: JailSpec;
  /** Continue from this saved state (saveState) instead of booting; the devices must be those it was saved with. */
  incoming?: string;
  /** cgroup.procs files the VMM is started in (its limits: cgroup.ts), before it allocates anything. */
  cgroupProcs?: string[];
}

/** What to do while the VM's CPUs are stopped for a save, so the disk and the memory are of one instant. */
export interface SaveOptions {
  /** Take an internal snapshot of this disk. */
  snapshotDisk?: { disk: number; name: string };
  /** Continue the VM afterwards (a memory snapshot, a fork); otherwise it stays stopped (a pause). */
  resume?: boolean;
}

/** The MAC of the NIC to the network helper, so the guest can tell it from the LAN NIC. */
export const NET_MAC = '52:54:00:12:34:56';

export type VmExit =
  | { kind: 'running'; pid: number }
  /** code: the VM process's exit status; signal when it was killed by one. */
  | { kind: 'ended'; code: number | null; signal: string | null }
  /** No process and no exit record: it ended without its supervisor noting it (e.g. the host rebooted). */
  | { kind: 'gone' };

export interface VmEngine {
  readonly name: string;
  /** Describes the engine's problems on this host, or null when it can run. */
  check(): string | null;
  /** Starts the VM detached from this process; resolves once the process exists. */
  start(spec: VmSpec): Promise<number>;
  /** Never blocks: a VM whose exit is being recorded still counts as running. */
  status(dir: string): VmExit;
  /** Ends the VM at once (quit, then SIGKILL if it does not go); returns once its exit is recorded. */
  kill(dir: string, timeoutMs?: number): Promise<void>;
  /** Waits until nothing of the VM writes into dir any more (its supervisor has recorded the exit). */
  settle(dir: string): Promise<void>;
  /** Waits until the VM has ended, up to timeoutMs; true if it did. */
  waitGone(dir: string, timeoutMs: number): Promise<boolean>;
  consolePath(dir: string): string;
  /** What the guest wrote to the box's log port (stamped lines, capped as the console is; the older half in .1). */
  logPath(dir: string): string;
  /** The running VM process as the host sees it: the peer every socket of its run folder must have. Throws when
   *  the VM is not (yet) running. */
  peerPid(dir: string): number;
  /** CPU seconds the VM process has used so far (null when it is not running): how a slow boot is told from a
   *  stalled one. */
  cpuSeconds(dir: string): number | null;
  /** Host memory the VM process holds now (resident bytes; null when it is not running). */
  rssBytes(dir: string): number | null;

  // ---- operations on a running VM ----
  /** A snapshot inside the disk's own file (qcow2), taken between guest requests. */
  snapshotDisk(dir: string, disk: number, name: string): Promise<void>;
  deleteDiskSnapshot(dir: string, disk: number, name: string): Promise<void>;
  /** Moves the disk onto `file`, an existing qcow2 whose backing file is the disk's current file. */
  switchDiskTop(dir: string, disk: number, file: string): Promise<void>;
  /** Stops or continues the guest's CPUs. */
  pause(dir: string): Promise<void>;
  resume(dir: string): Promise<void>;
  /** 'running', 'paused', 'postmigrate', … as the engine says it. */
  runState(dir: string): Promise<string>;
  /** Writes the VM's memory and device state into `file` (see SaveOptions). */
  saveState(dir: string, file: string, opts?: SaveOptions): Promise<{ bytes: number }>;
}
