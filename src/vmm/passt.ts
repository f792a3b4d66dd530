// The network helper of a box: one passt process per box (Debian's passt, a user-mode TCP/IP stack), which QEMU
// reaches through a Unix socket (`-netdev stream`). It gives the guest outbound NAT and DNS, listens on the host
// ports a box publishes, and — with --no-map-gw — does not lead the guest to the host's own loopback services.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GUEST_NET, type PortMapping } from '../core/network.js';
import { helperPid, startHelper, stopHelper } from './helpers.js';

export const PASST = '/usr/bin/passt';
const NAME = 'passt';

export interface PasstSpec {
  dir: string;
  /** With host ports already chosen. */
  ports: PortMapping[];
  /** DNS servers the guest uses; empty: passt forwards to the host's resolver. */
  dns: string[];
}

export const passtSocket = (dir: string) => path.join(dir, 'net', 'net.sock');
export const passtLog = (dir: string) => path.join(dir, 'passt.log');

export function passtArgs(spec: PasstSpec): string[] {
  const args = [
    // Not --one-off: this passt quits at once with it when its stdin is not a terminal. The VM's supervisor
    // ends it instead when QEMU exits (see qemu.ts).
    '--foreground', '--ipv4-only',
    // Started as root, passt would switch to nobody before binding its socket, which then cannot reach a home
    // under /root; it keeps the user that runs boxlite (and QEMU) instead, still inside its own namespaces.
    ...(process.getuid?.() === 0 ? ['--runas', '0:0'] : []),
    '--socket', passtSocket(spec.dir),
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
  fs.mkdirSync(path.dirname(passtSocket(spec.dir)), { recursive: true, mode: 0o700 });
  return startHelper({
    dir: spec.dir,
    name: NAME,
    what: 'the network helper (passt)',
    command: PASST,
    args: passtArgs(spec),
    mark: passtSocket(spec.dir),
    log: passtLog(spec.dir),
    ready: { file: passtSocket(spec.dir) },
  });
}

export function stopPasst(dir: string): void {
  stopHelper(dir, NAME);
}
