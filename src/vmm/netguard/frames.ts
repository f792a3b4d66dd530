// What the network guard decides about each Ethernet frame a guest sends, and the stream framing QEMU's
// `-netdev stream` uses (a 4-byte big-endian length before each frame). Pure: no sockets here. A frame is judged
// by its Ethernet, ARP, IPv4 and TCP or UDP headers.
//
// A guest's root can write any frame to its NIC, so nothing about a frame is taken on trust: a frame is judged by
// its own headers, and one too short to judge is dropped.
export const ETH_ARP = 0x0806;
export const ETH_IPV4 = 0x0800;
/** QEMU's and passt's largest frame (65520 MTU plus the Ethernet header, rounded up). */
export const MAX_FRAME = 65_552;

export const ipNumber = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0) >>> 0;
export const ipText = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
export const macBytes = (mac: string) => Buffer.from(mac.split(':').map((x) => parseInt(x, 16)));

const inNet = (ip: number, net: string, bits: number) => ((ip ^ ipNumber(net)) & (bits ? (0xffffffff << (32 - bits)) >>> 0 : 0)) === 0;

/** Cloud metadata services, which hand out the host's credentials to whoever asks from it. */
const METADATA: [string, number][] = [
  ['169.254.0.0', 16], // link-local: AWS, GCP, Azure, OpenStack … at 169.254.169.254
  ['168.63.129.16', 32], // Azure's wire server
  ['192.0.0.0', 24], // IETF protocol assignments (Oracle's and others' metadata among them)
];

/** Destinations a box does not reach through its network helper. The host itself (its loopback and "this
 *  network") never; without an outbound policy also every address the host has, multicast and broadcast (the
 *  host's own sockets take those too) and cloud metadata. A box with a policy has its egress gateway decide
 *  those (closed unless a rule names the address), so `policed` leaves them to it. */
export function closedDestination(ip: number, hostAddresses: ReadonlySet<number>, policed = false): string | null {
  if (inNet(ip, '127.0.0.0', 8)) return "the host's loopback";
  if (inNet(ip, '0.0.0.0', 8)) return '"this network" (0.0.0.0/8), which is the host itself';
  if (policed) return null;
  if (inNet(ip, '224.0.0.0', 4)) return 'a multicast group (the host takes part in them)';
  if (inNet(ip, '240.0.0.0', 4)) return 'a reserved or broadcast address';
  if (hostAddresses.has(ip)) return "one of the host's own addresses";
  if (METADATA.some(([net, bits]) => inNet(ip, net, bits))) return 'cloud metadata (open it with an allow rule naming the address)';
  return null;
}

export interface Denial {
  why: string;
  /** A new TCP connection or a UDP datagram to a closed address: worth a denial event (events.jsonl). */
  event?: { kind: 'connection' | 'datagram'; protocol: 'tcp' | 'udp'; destination: string; rule: string };
}

/** Why a frame from the guest must not reach its network helper (passt), or null to pass it on. */
export function uplinkVerdict(frame: Buffer, hostAddresses: ReadonlySet<number>, policed = false): Denial | null {
  if (frame.length < 14) return { why: 'a runt frame' };
  const type = frame.readUInt16BE(12);
  if (type === ETH_ARP) return frame.length >= 42 ? null : { why: 'a truncated ARP frame' };
  // The helper is IPv4-only (--ipv4-only); anything else is of no use to it.
  if (type !== ETH_IPV4) return { why: `ethertype 0x${type.toString(16).padStart(4, '0')} (only IPv4 and ARP are carried)` };
  if (frame.length < 34 || frame[14] >> 4 !== 4 || (frame[14] & 15) < 5) return { why: 'a malformed IPv4 header' };
  const dst = frame.readUInt32BE(30);
  const closed = closedDestination(dst, hostAddresses, policed);
  if (!closed) return null;
  const denial: Denial = { why: `IPv4 to ${ipText(dst)}: ${closed}` };
  const l4 = 14 + (frame[14] & 15) * 4;
  const proto = frame[23];
  const first = (frame.readUInt16BE(20) & 0x1fff) === 0; // the first fragment holds the ports
  if (first && proto === 17 && frame.length >= l4 + 4) {
    denial.event = { kind: 'datagram', protocol: 'udp', destination: `${ipText(dst)}:${frame.readUInt16BE(l4 + 2)}`, rule: closed };
  } else if (first && proto === 6 && frame.length >= l4 + 14 && (frame[l4 + 13] & 0x12) === 0x02) {
    denial.event = { kind: 'connection', protocol: 'tcp', destination: `${ipText(dst)}:${frame.readUInt16BE(l4 + 2)}`, rule: closed };
  }
  return denial;
}

export interface LanIdentity {
  mac: Buffer;
  address: number;
}

/** Why a frame from the guest must not go onto its project's LAN: only ARP and IPv4 with the box's own MAC and
 *  address are carried (a box cannot speak for another), or null to pass it on. */
export function lanVerdict(frame: Buffer, own: LanIdentity): string | null {
  if (frame.length < 14) return 'a runt frame';
  if (!frame.subarray(6, 12).equals(own.mac)) return 'a source MAC that is not the box';
  const type = frame.readUInt16BE(12);
  if (type === ETH_ARP) {
    if (frame.length < 42) return 'a truncated ARP frame';
    if (!frame.subarray(22, 28).equals(own.mac)) return "an ARP sender MAC that is not the box's";
    const sender = frame.readUInt32BE(28);
    return sender === own.address || sender === 0 ? null : `an ARP sender address ${ipText(sender)} that is not the box's`;
  }
  if (type !== ETH_IPV4) return `ethertype 0x${type.toString(16).padStart(4, '0')} (the LAN carries IPv4 and ARP)`;
  if (frame.length < 34 || frame[14] >> 4 !== 4 || (frame[14] & 15) < 5) return 'a malformed IPv4 header';
  const src = frame.readUInt32BE(26);
  return src === own.address ? null : `an IPv4 source ${ipText(src)} that is not the box's`;
}

/** A gratuitous ARP request: who has `address`, told by the station that has it. */
export function arpAnnouncement(mac: string, address: string): Buffer {
  const f = Buffer.alloc(42);
  f.fill(0xff, 0, 6);
  macBytes(mac).copy(f, 6);
  f.writeUInt16BE(ETH_ARP, 12);
  f.writeUInt16BE(1, 14); // Ethernet
  f.writeUInt16BE(ETH_IPV4, 16);
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(1, 20); // request
  macBytes(mac).copy(f, 22);
  f.writeUInt32BE(ipNumber(address), 28);
  f.writeUInt32BE(ipNumber(address), 38);
  return f;
}

/** Whether a frame is for every station (broadcast or multicast: the group bit of its destination MAC). */
export const isGroupFrame = (frame: Buffer) => (frame[0] & 1) === 1;

/** Splits one direction of a QEMU stream netdev into its length-prefixed records as the chunks arrive, and says
 *  which bytes to pass on: only whole records that `keep` accepts, in order, as slices of what arrived (a record
 *  split across chunks is carried over, copied once). Whole records matter: Debian 12's passt copes with a record
 *  cut across two writes, but slowly (measured: a box's uploads fell from 100 to 21 MiB/s). */
export class RecordSplitter {
  private carry: Buffer = Buffer.alloc(0);

  constructor(private readonly keep: (frame: Buffer) => boolean) {}

  /** Throws on a record no stream netdev would send (longer than MAX_FRAME): the stream is then not QEMU's. */
  push(chunk: Buffer): Buffer[] {
    const buf = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    const out: Buffer[] = [];
    let run = 0; // start of the kept records not yet handed out
    let i = 0;
    while (buf.length - i >= 4) {
      const len = buf.readUInt32BE(i);
      if (len > MAX_FRAME) throw new Error(`a frame of ${len} bytes (at most ${MAX_FRAME})`);
      if (buf.length - i - 4 < len) break;
      if (len === 0 || !this.keep(buf.subarray(i + 4, i + 4 + len))) {
        if (i > run) out.push(buf.subarray(run, i));
        run = i + 4 + len;
      }
      i += 4 + len;
    }
    if (i > run) out.push(buf.subarray(run, i));
    this.carry = i === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(i));
    return out;
  }
}

/** One frame as a stream record. */
export function record(frame: Buffer): Buffer {
  const b = Buffer.allocUnsafe(4 + frame.length);
  b.writeUInt32BE(frame.length, 0);
  frame.copy(b, 4);
  return b;
}

/** Splits a stream of records into whole frames (for the LAN, where each frame is routed on its own). */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly onFrame: (frame: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let i = 0;
    while (this.buf.length - i >= 4) {
      const len = this.buf.readUInt32BE(i);
      if (len > MAX_FRAME) throw new Error(`a frame of ${len} bytes (at most ${MAX_FRAME})`);
      if (this.buf.length - i - 4 < len) break;
      if (len) this.onFrame(this.buf.subarray(i + 4, i + 4 + len));
      i += 4 + len;
    }
    this.buf = i === this.buf.length ? Buffer.alloc(0) : Buffer.from(this.buf.subarray(i));
  }
}
