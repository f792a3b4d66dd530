// The socket calls Node does not offer, through koffi: a network namespace of the gateway's own, packet and raw
// sockets inside it, and the original destination of a redirected connection.
import koffi from 'koffi';

const lib = koffi.load('libc.so.6');
export const CLONE_NEWNET = 0x40000000;
export const AF_INET = 2;
export const AF_PACKET = 17;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0x80000;
export const IPPROTO_RAW = 255;
export const ETH_P_IP = 0x0800;
const SOL_IP = 0;
const SO_ORIGINAL_DST = 80;

export const libc = {
  unshare: lib.func('int unshare(int)'),
  socket: lib.func('int socket(int, int, int)'),
  bind: lib.func('int bind(int, uint8_t *, uint32_t)'),
  listen: lib.func('int listen(int, int)'),
  connect: lib.func('int connect(int, uint8_t *, uint32_t)'),
  close: lib.func('int close(int)'),
  sendto: lib.func('int sendto(int, uint8_t *, size_t, int, uint8_t *, uint32_t)'),
  getsockopt: lib.func('int getsockopt(int, int, int, _Inout_ uint8_t *, _Inout_ uint8_t *)'),
  ifNameToIndex: lib.func('unsigned int if_nametoindex(const char *)'),
};

export function sockaddrIn(ip: string, port: number): Buffer {
  const sa = Buffer.alloc(16);
  sa.writeUInt16LE(AF_INET, 0);
  sa.writeUInt16BE(port, 2);
  sa.set(ip.split('.').map(Number), 4);
  return sa;
}

/** Where a connection that the namespace's NAT redirected to us was going. */
export function originalDestination(fd: number): { ip: string; port: number } | null {
  const sa = Buffer.alloc(16);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(16);
  if (libc.getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, sa, len) !== 0) return null;
  return { ip: `${sa[4]}.${sa[5]}.${sa[6]}.${sa[7]}`, port: sa.readUInt16BE(2) };
}
