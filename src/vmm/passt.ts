// The network helper of a box: one passt process per box (Debian's passt, a user-mode TCP/IP stack), which QEMU
// reaches through a Unix socket (`-netdev stream`). It gives the guest outbound NAT and DNS, listens on the host
// ports a box publishes, and — with --no-map-gw — does not lead the guest to the host's own loopback services.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GUEST_NET, type PortMapping } from '../core/network.js';
import { helperPid, startHelper, stopHelper } from './helpers.js';
import { runDir } from './engine.js';
import type { JailIdentity } from './jail.js';

export const PASST = '/usr/bin/passt';
const NAME = 'passt';

export interface PasstSpec {
  dir: string;
  /** With host ports already chosen. */
  ports: PortMapping[];
  /** DNS servers the guest uses; empty: passt forwards to the host's resolver. */
  dns: string[];
  /** Started by root: run as the box's own uid (the socket is then theirs, as QEMU's must be); else as root. */
  runAs?: JailIdentity;
  /** Where to make the socket QEMU connects to; default the box's run folder. */
  socket?: string;
}

export const passtSocket = (dir: string) => path.join(runDir(dir), 'net.sock');
export const passtLog = (dir: string) => path.join(dir, 'passt.log');

const socketOf = (spec: PasstSpec) => spec.socket ?? passtSocket(spec.dir);

export function passtArgs(spec: PasstSpec): string[] {
  const args = [
    // Not --one-off: this passt quits at once with it when its stdin is not a terminal. The VM's supervisor
    // ends it instead when QEMU exits (see qemu.ts).
    '--foreground', '--ipv4-only',
    // Started as root, passt drops to the box's uid (the jailed QEMU's) before it makes its socket; without a
    // jail it keeps root, since as nobody it could not reach a home under /root. Either way it then lives in
    // namespaces of its own with no capabilities.
    ...(process.getuid?.() === 0 ? ['--runas', spec.runAs ? `${spec.runAs.uid}:${spec.runAs.gid}` : '0:0'] : []),
    '--socket', socketOf(spec),
    '--log-file', passtLog(spec.dir),
    '--no-map-gw',
    '--address', GUEST_NET.address, '--netmask', String(GUEST_NET.prefix), '--gateway', GUEST_NET.gateway,
  ];
  if (spec.dns.length) for (const d of spec.dns) args.push('--dns', d);
  // passt sends queries to the forward address on to the host's first resolver (from its /etc/resolv.conf),
  // which may well be on the host's loopback: the one host service a box does reach.
  else args.push('--dns-forward', GUEST_NET.dns);
  // One option per forward: passt takes a bind address for a whole spec, not per item of a list. TCP only: UDP
  // forwards go through the agent (see udp-relay.ts).
  for (const p of spec.ports) if (p.protocol === 'tcp') args.push('--tcp-ports', `${p.hostIp}/${p.hostPort}:${p.guestPort}`);
  return args;
}

export function passtPid(dir: string): number | null {
  return helperPid(dir, NAME);
}

/** Starts passt for a box and waits until its socket is there for QEMU. */
export async function startPasst(spec: PasstSpec): Promise<number> {
  if (!fs.existsSync(PASST)) throw new Error(`passt is not installed (${PASST}): run 'boxlite setup' (Debian package passt)`);
  // passt opens its log before it drops to the box's uid, and root without capabilities can only open its own file.
  fs.writeFileSync(passtLog(spec.dir), '', { mode: 0o600 });
  return startHelper({
    dir: spec.dir,
    name: NAME,
    what: 'the network helper (passt)',
    command: PASST,
    args: passtArgs(spec),
    mark: socketOf(spec),
    log: passtLog(spec.dir),
    ready: { file: socketOf(spec) },
  });
}

export function stopPasst(dir: string): void {
  stopHelper(dir, NAME);
}
