// UDP forwards of a box: a small helper process (started detached, like passt) that listens on the box's host
// UDP ports and carries each datagram to the guest agent over the box's virtio-serial channel, and the replies
// back. It ends when the box's VM ends (the agent stream closes) or when it is told to.
import * as dgram from 'node:dgram';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compiledModule } from '../util/package-root.js';
import type { PortMapping } from '../core/network.js';
import { helperPid, startHelper, stopHelper } from './helpers.js';
import type { JailIdentity } from './jail.js';

const NAME = 'udp-relay';
/** How long a peer that sent to a forward may be answered (as a NAT's UDP mapping lasts), and how many are kept. */
const PEER_TTL_MS = 180_000;
const MAX_PEERS = 4096;
const MARK = '--boxlite-udp-relay';
export const relayLog = (dir: string) => path.join(dir, 'udp-relay.log');

export function relayPid(dir: string): number | null {
  return helperPid(dir, NAME);
}

export function stopRelay(dir: string): void {
  stopHelper(dir, NAME);
}

/** Starts the relay for a booted box's UDP forwards; resolves once it listens on every host port. Started by root,
 *  it becomes the box's uid (as) once its sockets are bound and its agent connection made. */
export async function startRelay(dir: string, name: string, vmPid: number, ports: PortMapping[], as?: JailIdentity): Promise<void> {
  await startHelper({
    dir,
    name: NAME,
    what: 'the UDP forward helper',
    command: process.execPath,
    args: [compiledModule(fileURLToPath(import.meta.url)), MARK, dir, name, String(vmPid), JSON.stringify(ports), JSON.stringify(as ?? null)],
    mark: `${MARK}\0${dir}`,
    log: relayLog(dir),
    ready: { line: 'ready' },
    timeoutMs: 40_000,
  });
}

async function relayMain(dir: string, name: string, vmPid: number, ports: PortMapping[], as: JailIdentity | null): Promise<void> {
  const { AgentClient } = await import('./agent-client.js');
  const client = await AgentClient.connect(dir, name, { timeoutMs: 30_000, peerPid: () => vmPid });
  const stream = client.network.udpRelay();
  const socks = new Map<number, dgram.Socket>();
  const quit = (code: number) => {
    for (const s of socks.values()) s.close();
    client.close();
    process.exit(code);
  };
  // A peer is "forward index|address:port": the reply leaves through the host socket the request came in on. The
  // guest names the peer, so only peers that sent to that forward lately are answered: a guest cannot aim the
  // relay at any other address (the host's loopback services, say).
  const peers = new Map<string, number>();
  stream.on('data', (d: { port: number; peer: string; data: Buffer }) => {
    const seen = peers.get(d.peer);
    if (seen === undefined || Date.now() - seen > PEER_TTL_MS) return;
    const bar = d.peer.indexOf('|');
    const colon = d.peer.lastIndexOf(':');
    socks.get(Number(d.peer.slice(0, bar)))?.send(d.data, Number(d.peer.slice(colon + 1)), d.peer.slice(bar + 1, colon));
  });
  stream.on('error', () => quit(0)); // the VM went away
  stream.on('end', () => quit(0));
  for (const [i, p] of ports.entries()) {
    const s = dgram.createSocket(p.hostIp.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(p.hostPort, p.hostIp, () => resolve());
    });
    s.on('message', (m, r) => {
      const peer = `${i}|${r.address}:${r.port}`;
      peers.delete(peer); // re-inserted last: the map stays in order of last use, oldest first
      peers.set(peer, Date.now());
      if (peers.size > MAX_PEERS) peers.delete(peers.keys().next().value!);
      stream.write({ port: p.guestPort, peer, data: m });
    });
    socks.set(i, s);
  }
  process.on('SIGTERM', () => quit(0));
  if (as && process.getuid?.() === 0) {
    // Everything it needs is open: from here on it holds no privilege (groups first, then gid, then uid).
    process.setgroups!([]);
    process.setgid!(as.gid);
    process.setuid!(as.uid);
  }
  process.stdout.write('ready\n');
}

if (process.argv[2] === MARK) {
  const [, , , dir, name, vmPid, ports, as] = process.argv;
  relayMain(dir, name, Number(vmPid), JSON.parse(ports), JSON.parse(as ?? 'null')).catch((e) => {
    process.stderr.write(`udp relay: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
