// Who is at the other end of a Unix socket (SO_PEERCRED). The sockets a VM's QEMU serves (QMP, the agent ports)
// live in its run folder, which a jailed VMM owns: it could put a symlink there and have a
// boxlite process, root perhaps, talk to another socket of the host. So before a word is sent, the peer must be the
// box's own QEMU process. Node has no getsockopt; koffi calls libc.
import type * as net from 'node:net';
import { koffiLib } from '../util/koffi-lib.js';

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

let getsockopt: ((fd: number, level: number, name: number, val: Buffer, len: Buffer) => number) | null = null;

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

export function peerCred(sock: net.Socket): PeerCred {
  getsockopt ??= koffiLib().load('libc.so.6').func('int getsockopt(int, int, int, _Inout_ uint8_t *, _Inout_ uint8_t *)');
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (fd === undefined || fd < 0) throw new Error('the socket has no descriptor');
  const val = Buffer.alloc(12);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(12);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, val, len) !== 0) throw new Error('getsockopt(SO_PEERCRED) failed');
  return { pid: val.readInt32LE(0), uid: val.readUInt32LE(4), gid: val.readUInt32LE(8) };
}

export class WrongPeerError extends Error {}

/** Throws unless the socket's peer is the process pid (the box's QEMU). */
export function checkPeer(sock: net.Socket, pid: number, what: string): void {
  const p = peerCred(sock);
  if (p.pid !== pid) throw new WrongPeerError(`${what}: the socket is served by process ${p.pid}, not by the box's VM (${pid}); something replaced it`);
}
