// What the egress gateway reads and writes on the wire: IPv4/UDP datagrams (taken from, and put back into, the
// network namespace of a box's network helper) and DNS messages. Every field comes from the guest, so every read
// is bounds-checked: a malformed packet yields null, never an exception or a read past the buffer.

export interface Udp4 {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

const ip = (b: Buffer, at: number) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
const ipBytes = (s: string) => s.split('.').map(Number);

export interface Ip4Header {
  protocol: number;
  src: string;
  dst: string;
  /** Offset of the transport header. */
  body: number;
  length: number;
}

export function parseIp4(p: Buffer): Ip4Header | null {
  if (p.length < 20 || p[0] >> 4 !== 4) return null;
  const ihl = (p[0] & 0x0f) * 4;
  const length = p.readUInt16BE(2);
  if (ihl < 20 || length < ihl || length > p.length) return null;
  return { protocol: p[9], src: ip(p, 12), dst: ip(p, 16), body: ihl, length };
}

export function parseUdp4(p: Buffer): Udp4 | null {
  const h = parseIp4(p);
  if (!h || h.protocol !== 17 || h.length < h.body + 8) return null;
  // A fragment carries no port numbers of its own (only the first one does): not followed.
  if ((p.readUInt16BE(6) & 0x3fff) !== 0) return null;
  const udpLength = p.readUInt16BE(h.body + 4);
  if (udpLength < 8 || h.body + udpLength > h.length) return null;
  return { src: h.src, dst: h.dst, srcPort: p.readUInt16BE(h.body), dstPort: p.readUInt16BE(h.body + 2), payload: p.subarray(h.body + 8, h.body + udpLength) };
}

/** An IPv4/UDP datagram (no UDP checksum, which IPv4 allows) to hand back to the namespace's stack. */
export function buildUdp4(u: Udp4): Buffer {
  const p = Buffer.alloc(28 + u.payload.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[8] = 64;
  p[9] = 17;
  p.set(ipBytes(u.src), 12);
  p.set(ipBytes(u.dst), 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += p.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  p.writeUInt16BE(~sum & 0xffff, 10);
  p.writeUInt16BE(u.srcPort, 20);
  p.writeUInt16BE(u.dstPort, 22);
  p.writeUInt16BE(8 + u.payload.length, 24);
  u.payload.copy(p, 28);
  return p;
}

export interface DnsQuestion {
  id: number;
  name: string;
  type: number;
  cls: number;
  /** Offset just past the question. */
  end: number;
}

/** A name at `at`, following compression pointers (a bounded number of them). */
function readName(m: Buffer, at: number): { name: string; next: number } | null {
  const labels: string[] = [];
  let next = -1;
  for (let jumps = 0; jumps < 16; ) {
    if (at >= m.length) return null;
    const len = m[at];
    if (len === 0) {
      if (next < 0) next = at + 1;
      const name = labels.join('.').toLowerCase();
      return name.length > 253 ? null : { name, next };
    }
    if ((len & 0xc0) === 0xc0) {
      if (at + 1 >= m.length) return null;
      if (next < 0) next = at + 2;
      at = ((len & 0x3f) << 8) | m[at + 1];
      jumps++;
      continue;
    }
    if (len > 63 || at + 1 + len > m.length) return null;
    const label = m.subarray(at + 1, at + 1 + len).toString('latin1');
    // Host name characters only: a dot inside a label would be checked as one name and sent on as another, and
    // control characters would reach the terminal of whoever reads the events.
    if (!/^[A-Za-z0-9_-]+$/.test(label)) return null;
    labels.push(label);
    at += 1 + len;
  }
  return null;
}

/** The one question of a standard query; null for anything else (responses, updates and notifies, records
 *  beyond the question but for one EDNS record, garbage). */
export function parseDnsQuery(m: Buffer): DnsQuestion | null {
  if (m.length < 12 || m[2] & 0xf8 || m.readUInt16BE(4) !== 1 || m.readUInt16BE(6) || m.readUInt16BE(8) || m.readUInt16BE(10) > 1) return null;
  const n = readName(m, 12);
  if (!n || !n.name || n.next + 4 > m.length) return null;
  return { id: m.readUInt16BE(0), name: n.name, type: m.readUInt16BE(n.next), cls: m.readUInt16BE(n.next + 2), end: n.next + 4 };
}

/** A fresh query for a checked question: what goes upstream is exactly what the policy judged. */
export function buildDnsQuery(id: number, q: Pick<DnsQuestion, 'name' | 'type' | 'cls'>): Buffer {
  const labels = q.name.split('.').flatMap((l) => [Buffer.from([l.length]), Buffer.from(l, 'latin1')]);
  const tail = Buffer.alloc(5);
  tail.writeUInt16BE(q.type, 1);
  tail.writeUInt16BE(q.cls, 3);
  return Buffer.concat([Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, tail]);
}

/** "No such name" for a query, as the box's resolver gives for names outside its policy. */
export function dnsRefusal(query: Buffer, q: DnsQuestion): Buffer {
  const r = Buffer.from(query.subarray(0, q.end));
  r.writeUInt16BE(0x8180 | (query.readUInt16BE(2) & 0x0100) | 3, 2); // response, RD copied, RA, NXDOMAIN
  r.writeUInt32BE(0x00010000, 4); // one question, no answers
  r.writeUInt32BE(0, 8); // no authority, no additional records (an EDNS record of the query is not echoed)
  return r;
}

export interface DnsAnswer {
  address: string;
  ttl: number;
}

/** The IPv4 addresses (A records) in a response's answer section, with their TTLs; null if malformed. */
export function parseDnsAnswers(m: Buffer): { id: number; question: string; answers: DnsAnswer[] } | null {
  if (m.length < 12 || !(m[2] & 0x80) || m.readUInt16BE(4) !== 1) return null;
  const q = readName(m, 12);
  if (!q || q.next + 4 > m.length) return null;
  let at = q.next + 4;
  const answers: DnsAnswer[] = [];
  for (let i = m.readUInt16BE(6); i > 0; i--) {
    const n = readName(m, at);
    if (!n || n.next + 10 > m.length) return null;
    const type = m.readUInt16BE(n.next);
    const cls = m.readUInt16BE(n.next + 2);
    const ttl = m.readUInt32BE(n.next + 4);
    const rdlen = m.readUInt16BE(n.next + 8);
    const data = n.next + 10;
    if (data + rdlen > m.length) return null;
    if (type === 1 && cls === 1 && rdlen === 4) answers.push({ address: ip(m, data), ttl });
    at = data + rdlen;
  }
  return { id: m.readUInt16BE(0), question: q.name, answers };
}
