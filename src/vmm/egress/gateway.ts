// The egress gateway of a box with an outbound policy: a helper process (detached, like passt) that runs the box's
// passt inside a network namespace whose only way out is the gateway itself, and lets through what the policy
// allows — TCP connections and UDP datagrams it makes again from the host, DNS names it resolves and pins to the
// addresses their answers gave. Everything it denies becomes an event (events.ts). A new policy comes over its
// control socket (in the box's folder, which the VMM never sees), so a change applies to a running box;
// connections it no longer allows are cut.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compiledModule } from '../../util/package-root.js';
import type { EgressPolicy } from '../../core/egress.js';
import type { PortMapping } from '../../core/network.js';
import { helperPid, startHelper, stopHelper } from '../helpers.js';
import type { JailIdentity } from '../jail.js';
import { PASST, passtArgs, passtLog, type PasstSpec } from '../passt.js';
import { checkPeer } from '../peer.js';
import type { BoxCa } from './certs.js';
import type { LiveSecret } from './inject.js';

const NAME = 'egress';
export const GATEWAY_MARK = '--boxlite-egress';
export const egressLog = (dir: string) => path.join(dir, 'egress.log');
/** Where the gateway takes a new policy: made before it gives up root, in the box's folder (not in its VMM's view). */
export const controlSocket = (dir: string) => path.join(dir, 'egress.sock');

export interface GatewayConfig {
  box: string;
  policy: EgressPolicy;
  /** DNS servers the gateway asks; empty: the host's (from /etc/resolv.conf). */
  upstream: string[];
  /** TCP forwards: the gateway listens on the host port and reaches passt's listener inside the namespace. */
  forwards: PortMapping[];
  passt: { command: string; args: string[]; log: string; socket: string };
  as: JailIdentity | null;
}

/** What a running gateway is told over its control socket: the policy, and the secrets with their values and the
 *  box's CA (never on its command line, never in a file it can reach after it gives up root). */
export interface GatewaySettings {
  policy: EgressPolicy;
  secrets?: LiveSecret[];
  ca?: BoxCa & { name: string };
}

export interface EgressSpec {
  dir: string;
  box: string;
  policy: EgressPolicy;
  passt: PasstSpec;
}

export function egressPid(dir: string): number | null {
  return helperPid(dir, NAME);
}

export function stopEgress(dir: string): void {
  stopHelper(dir, NAME);
}

/** Starts the gateway (and, inside its namespace, the box's passt); resolves once both are ready. */
export async function startEgress(s: EgressSpec): Promise<number> {
  if (!fs.existsSync(PASST)) throw new Error(`passt is not installed (${PASST}): run 'boxlite setup' (Debian package passt)`);
  const root = process.getuid?.() === 0;
  const tcp = s.passt.ports.filter((p) => p.protocol === 'tcp');
  // Inside the namespace passt listens on its loopback, at the host port's number; the gateway carries each
  // connection from the host port there.
  const inner = passtArgs({ ...s.passt, ports: tcp.map((p) => ({ ...p, hostIp: '127.0.0.1' })) });
  // Not root: the gateway runs as root of a user namespace of its own, where passt must be told to stay that uid.
  const args = root ? inner : ['--runas', '0:0', ...inner];
  fs.writeFileSync(passtLog(s.dir), '', { mode: 0o600 });
  const config: GatewayConfig = {
    box: s.box,
    policy: s.policy,
    upstream: s.passt.dns,
    forwards: tcp,
    passt: { command: PASST, args, log: passtLog(s.dir), socket: s.passt.socket ?? path.join(s.dir, 'net.sock') },
    as: s.passt.runAs ?? null,
  };
  const main = [process.execPath, compiledModule(fileURLToPath(import.meta.url)).replace(/gateway\.js$/, 'gateway-main.js'), GATEWAY_MARK, s.dir, JSON.stringify(config)];
  return startHelper({
    dir: s.dir,
    name: NAME,
    what: 'the egress gateway',
    // A user namespace gives an unprivileged caller the right to make the network namespace and its rules.
    command: root ? main[0] : 'unshare',
    args: root ? main.slice(1) : ['--user', '--map-root-user', '--', ...main],
    mark: `${GATEWAY_MARK}\0${s.dir}`,
    log: egressLog(s.dir),
    ready: { line: 'ready' },
    timeoutMs: 30_000,
  });
}

/** New settings for a running gateway, applied before this resolves; false when no gateway runs. */
export async function configureEgress(dir: string, settings: GatewaySettings): Promise<boolean> {
  const pid = egressPid(dir);
  if (!pid) return false;
  const sock = net.connect(controlSocket(dir));
  try {
    const reply = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer in 10 s')), 10_000);
      let buf = '';
      sock.once('connect', () => {
        try {
          checkPeer(sock, pid, 'the egress gateway');
        } catch (e) {
          return reject(e);
        }
        sock.write(JSON.stringify(settings) + '\n');
      });
      sock.on('data', (d) => {
        buf += d;
        if (buf.includes('\n')) (clearTimeout(timer), resolve(buf.slice(0, buf.indexOf('\n'))));
      });
      sock.once('error', (e) => (clearTimeout(timer), reject(e)));
      sock.once('close', () => (clearTimeout(timer), reject(new Error('it closed the connection'))));
    });
    const r = JSON.parse(reply) as { ok?: boolean; error?: string };
    if (!r.ok) throw new Error(r.error ?? 'it refused the policy');
    return true;
  } catch (e) {
    throw new Error(`the egress gateway (pid ${pid}) did not apply the new policy: ${(e as Error).message}; see ${egressLog(dir)}`);
  } finally {
    sock.destroy();
  }
}
