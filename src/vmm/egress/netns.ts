// The gateway's thread inside the box's network namespace (a worker thread: a namespace is a property of a thread,
// and the gateway's main thread must stay outside to make the connections the policy allows). It makes the
// namespace, whose only way out is back to the gateway, starts the box's passt inside it, and makes the sockets
// the gateway uses there: the listener every TCP connection is redirected to, a packet socket that sees every other
// datagram, a raw socket to put replies back, and the DNS socket.
import { execFileSync, spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { helperEnv } from '../helper-env.js';
import { AF_INET, AF_PACKET, CLONE_NEWNET, ETH_P_IP, IPPROTO_RAW, libc, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_RAW, SOCK_STREAM, sockaddrIn } from './libc.js';

export interface NetnsInput {
  passt: { command: string; args: string[]; log: string; socket: string };
}

/** Messages from the worker. */
export type FromNetns =
  | { kind: 'ready'; tcpFd: number; packetFd: number; rawFd: number; passtPid: number }
  | { kind: 'failed'; message: string }
  | { kind: 'dns'; address: string; port: number; message: Uint8Array }
  | { kind: 'connected'; id: number; fd: number };

/** Messages to the worker. */
export type ToNetns = { kind: 'dns-reply'; address: string; port: number; message: Uint8Array } | { kind: 'connect'; id: number; port: number };

/** The namespace's own address (passt's connections leave from it) and the ports the redirects lead to. */
export const NETNS = { address: '10.77.0.1', tcpPort: 15001, dnsPort: 15053, out: 'eg0', tap: 'eg1' };
export const IP = '/usr/sbin/ip';
export const NFT = '/usr/sbin/nft';

// All traffic leaves through a veth pair whose far end only the gateway reads: DNS goes to the gateway's resolver,
// TCP to its listener (which asks the kernel where each connection was going), every other datagram to its packet
// socket. Traffic inside the namespace (port forwards reaching passt) stays put.
const RULES = `
table ip boxlite {
  chain out {
    type nat hook output priority -100; policy accept;
    udp dport 53 redirect to :${NETNS.dnsPort}
    oif "lo" return
    meta l4proto tcp redirect to :${NETNS.tcpPort}
  }
}
`;

function setUp(): Omit<Extract<FromNetns, { kind: 'ready' }>, 'kind' | 'passtPid'> {
  if (libc.unshare(CLONE_NEWNET) !== 0) throw new Error('cannot make a network namespace (unshare failed)');
  const links = [
    'link set lo up',
    `link add ${NETNS.out} type veth peer name ${NETNS.tap}`,
    `link set ${NETNS.tap} up`,
    // No ARP: every address is "on link", and the frames only need to reach the gateway's packet socket.
    `link set ${NETNS.out} arp off up`,
    `addr add ${NETNS.address}/30 dev ${NETNS.out}`,
    `route add default dev ${NETNS.out}`,
  ];
  execFileSync(IP, ['-batch', '-'], { input: links.join('\n') + '\n', stdio: ['pipe', 'ignore', 'pipe'] });
  execFileSync(NFT, ['-f', '-'], { input: RULES, stdio: ['pipe', 'ignore', 'pipe'] });
  const tcpFd = libc.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (tcpFd < 0 || libc.bind(tcpFd, sockaddrIn('127.0.0.1', NETNS.tcpPort), 16) !== 0 || libc.listen(tcpFd, 512) !== 0) throw new Error('cannot make the TCP listener');
  const packetFd = libc.socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_IP));
  const ll = Buffer.alloc(20);
  ll.writeUInt16LE(AF_PACKET, 0);
  ll.writeUInt16BE(ETH_P_IP, 2);
  ll.writeInt32LE(libc.ifNameToIndex(NETNS.tap), 4);
  if (packetFd < 0 || libc.bind(packetFd, ll, 20) !== 0) throw new Error('cannot make the packet socket');
  const rawFd = libc.socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (rawFd < 0) throw new Error('cannot make the raw socket');
  return { tcpFd, packetFd, rawFd };
}

const htons = (n: number) => ((n & 0xff) << 8) | (n >> 8);

async function startPasst(p: NetnsInput['passt']): Promise<number> {
  fs.rmSync(p.socket, { force: true });
  const log = fs.openSync(p.log, 'a');
  const child = spawn(p.command, p.args, { env: helperEnv(), stdio: ['ignore', log, log] });
  fs.closeSync(log);
  let exited = false;
  child.on('exit', () => (exited = true));
  for (let i = 0; i < 1000 && !exited && !fs.existsSync(p.socket); i++) await new Promise((r) => setTimeout(r, 10));
  if (!fs.existsSync(p.socket)) throw new Error(`passt ${exited ? 'exited' : 'did not make its socket'}: see ${p.log}`);
  child.unref();
  return child.pid!;
}

/** A connection to a port inside the namespace (passt's side of a port forward), made here and used outside. */
function connectInside(port: number): number {
  const fd = libc.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (libc.connect(fd, sockaddrIn('127.0.0.1', port), 16) !== 0) {
    libc.close(fd);
    return -1;
  }
  return fd;
}

async function main(input: NetnsInput): Promise<void> {
  const post = (m: FromNetns) => parentPort!.postMessage(m);
  try {
    const fds = setUp();
    const dns = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      dns.once('error', reject);
      dns.bind(NETNS.dnsPort, '127.0.0.1', resolve);
    });
    // The asker is passt, at the namespace's own address: the redirect changed where the query went, not whence.
    dns.on('message', (message, from) => post({ kind: 'dns', address: from.address, port: from.port, message }));
    parentPort!.on('message', (m: ToNetns) => {
      if (m.kind === 'dns-reply') dns.send(m.message, m.port, m.address);
      else post({ kind: 'connected', id: m.id, fd: connectInside(m.port) });
    });
    post({ kind: 'ready', ...fds, passtPid: await startPasst(input.passt) });
  } catch (e) {
    const err = e as Error & { stderr?: Buffer };
    post({ kind: 'failed', message: `${err.message}${err.stderr?.length ? `: ${err.stderr.toString().trim()}` : ''}` });
  }
}

if (parentPort && workerData?.passt) void main(workerData as NetnsInput);
