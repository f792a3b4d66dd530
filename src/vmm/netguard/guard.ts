// The network guard of a box: a helper process (detached, like passt) that QEMU's NICs connect to instead of the
// helpers behind them. Debian 12's passt carries a frame the guest wrote to 127.0.0.1 or 0.0.0.0 to the host's
// loopback, whatever --no-map-gw says, so every frame is judged before passt sees it; and the project LAN is
// carried by the guards themselves, over sockets only the home's user can reach, in each box's own name.
// Measured cost and the reasons for this design: README, "Network".
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compiledModule } from '../../util/package-root.js';
import { helperPid, startHelper, stopHelper } from '../helpers.js';
import type { JailIdentity } from '../jail.js';
import type { LanSpec } from './lan.js';

const NAME = 'netguard';
export const GUARD_MARK = '--boxlite-netguard';
export const guardLog = (dir: string) => path.join(dir, 'netguard.log');

export interface GuardConfig {
  /** The box's name, for its denial events. */
  name: string;
  /** The NIC to the network helper: the socket QEMU connects to, passt's, and the guest's MAC and address there. */
  uplink?: { listen: string; helper: string; mac: string; address: string };
  /** The NIC on the project LAN: the socket QEMU connects to, and the box's place on the LAN. */
  lan?: LanSpec & { listen: string };
  /** Started by root: the box's uid, which the guard becomes once its sockets exist. */
  as: JailIdentity | null;
}

export function guardPid(dir: string): number | null {
  return helperPid(dir, NAME);
}

export function stopGuard(dir: string): void {
  stopHelper(dir, NAME);
}

/** Starts the guard; resolves once QEMU can connect to its sockets. */
export async function startGuard(dir: string, cfg: GuardConfig): Promise<number> {
  const main = compiledModule(fileURLToPath(import.meta.url)).replace(/guard\.js$/, 'main.js');
  return startHelper({
    dir,
    name: NAME,
    what: 'the network guard',
    command: process.execPath,
    args: ['--expose-gc', main, GUARD_MARK, dir, JSON.stringify(cfg)],
    // The guard allocates a buffer per read of up to 1 MiB and keeps none: allocations that large get pages of
    // their own, given back when freed; glibc would otherwise keep them in its heap (measured: 22 MiB left there
    // after one 128 MiB transfer).
    env: { GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536' },
    mark: `${GUARD_MARK}\0${dir}`,
    log: guardLog(dir),
    ready: { line: 'ready' },
    timeoutMs: 20_000,
  });
}
