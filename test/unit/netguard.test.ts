// The network guard's judgement of guest frames, and its reading of QEMU's length-prefixed stream in chunks of
// any size: what it passes on must be exactly the accepted records, byte for byte.
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { FrameReader, RecordSplitter, ipNumber, lanVerdict, macBytes, record, uplinkVerdict } from '../../src/vmm/netguard/frames.js';

const MAC = '52:54:01:aa:bb:02';
const GW = 'ff:ff:ff:ff:ff:ff';

function ipv4(src: string, dst: string, opts: { smac?: string; dmac?: string; payload?: number } = {}): Buffer {
  const f = Buffer.alloc(34 + (opts.payload ?? 20));
  macBytes(opts.dmac ?? GW).copy(f, 0);
  macBytes(opts.smac ?? MAC).copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt32BE(ipNumber(src), 26);
  f.writeUInt32BE(ipNumber(dst), 30);
  return f;
}

function arp(senderMac: string, senderIp: string, smac = senderMac): Buffer {
  const f = Buffer.alloc(42);
  macBytes(GW).copy(f, 0);
  macBytes(smac).copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  macBytes(senderMac).copy(f, 22);
  f.writeUInt32BE(ipNumber(senderIp), 28);
  return f;
}

describe('frames toward the network helper', () => {
  const host = new Set([ipNumber('192.168.7.20'), ipNumber('10.214.3.1')]);
  const closed: [string, RegExp][] = [
    ['127.0.0.1', /loopback/],
    ['127.200.1.1', /loopback/],
    ['0.0.0.0', /this network/],
    ['0.1.2.3', /this network/],
    ['192.168.7.20', /host's own addresses/],
    ['10.214.3.1', /host's own addresses/],
    ['239.1.2.3', /multicast/],
    ['224.0.0.251', /multicast/],
    ['255.255.255.255', /broadcast/],
  ];
  it.each(closed)('drops IPv4 to %s', (dst, why) => expect(uplinkVerdict(ipv4('10.0.2.15', dst), host)?.why).toMatch(why));
  it.each(['8.8.8.8', '192.168.7.21', '10.0.2.2', '198.18.0.5'])('passes IPv4 to %s', (dst) => expect(uplinkVerdict(ipv4('10.0.2.15', dst), host)).toBeNull());
  it('passes ARP, drops IPv6, other ethertypes, runts and bad headers', () => {
    expect(uplinkVerdict(arp(MAC, '10.0.2.15'), host)).toBeNull();
    const v6 = ipv4('10.0.2.15', '8.8.8.8');
    v6.writeUInt16BE(0x86dd, 12);
    expect(uplinkVerdict(v6, host)?.why).toMatch(/ethertype 0x86dd/);
    const vlan = ipv4('10.0.2.15', '8.8.8.8');
    vlan.writeUInt16BE(0x8100, 12);
    expect(uplinkVerdict(vlan, host)?.why).toMatch(/ethertype 0x8100/);
    expect(uplinkVerdict(Buffer.alloc(10), host)?.why).toMatch(/runt/);
    expect(uplinkVerdict(ipv4('10.0.2.15', '8.8.8.8').subarray(0, 30), host)?.why).toMatch(/malformed/);
    const v5 = ipv4('10.0.2.15', '8.8.8.8');
    v5[14] = 0x65;
    expect(uplinkVerdict(v5, host)?.why).toMatch(/malformed/);
  });
  it('names the connection or datagram a closed address was sent, for the denial event', () => {
    const syn = ipv4('10.0.2.15', '127.0.0.1', { payload: 20 });
    syn[23] = 6;
    syn.writeUInt16BE(5432, 36);
    syn[47] = 0x02;
    expect(uplinkVerdict(syn, host)?.event).toEqual({ kind: 'connection', protocol: 'tcp', destination: '127.0.0.1:5432', rule: "the host's loopback" });
    syn[47] = 0x12; // a SYN-ACK opens nothing: no event, still dropped
    expect(uplinkVerdict(syn, host)).toEqual({ why: "IPv4 to 127.0.0.1: the host's loopback" });
    const dgram = ipv4('10.0.2.15', '192.168.7.20', { payload: 8 });
    dgram[23] = 17;
    dgram.writeUInt16BE(53, 36);
    expect(uplinkVerdict(dgram, host)?.event).toMatchObject({ kind: 'datagram', destination: '192.168.7.20:53' });
  });
});

describe('frames onto the project LAN', () => {
  const own = { mac: macBytes(MAC), address: ipNumber('10.89.0.2') };
  it("passes the box's own IPv4 and ARP", () => {
    expect(lanVerdict(ipv4('10.89.0.2', '10.89.0.3'), own)).toBeNull();
    expect(lanVerdict(arp(MAC, '10.89.0.2'), own)).toBeNull();
    expect(lanVerdict(arp(MAC, '0.0.0.0'), own)).toBeNull(); // a probe
  });
  it('drops frames that speak for another box', () => {
    expect(lanVerdict(ipv4('10.89.0.2', '10.89.0.3', { smac: '52:54:01:aa:bb:03' }), own)).toMatch(/source MAC/);
    expect(lanVerdict(ipv4('10.89.0.3', '10.89.0.4'), own)).toMatch(/IPv4 source 10.89.0.3/);
    expect(lanVerdict(arp('52:54:01:aa:bb:03', '10.89.0.2', MAC), own)).toMatch(/ARP sender MAC/);
    expect(lanVerdict(arp(MAC, '10.89.0.3'), own)).toMatch(/ARP sender address 10.89.0.3/);
    const v6 = ipv4('10.89.0.2', '10.89.0.3');
    v6.writeUInt16BE(0x86dd, 12);
    expect(lanVerdict(v6, own)).toMatch(/ethertype/);
  });
});

describe('the record stream', () => {
  // Frames of many sizes, some to be dropped (those whose byte 20 is odd). Two corpora: a large one for reads of
  // realistic sizes, and one frame of each size for reads of a few bytes, which would otherwise keep the test
  // worker busy for a minute (long enough for vitest's own messages to time out).
  const sizes = [1, 13, 14, 41, 42, 54, 60, 1514, 9000, 65_535];
  function corpus(count: number) {
    const frames = Array.from({ length: count }, (_, i) => {
      const f = randomBytes(sizes[i % sizes.length]);
      if (f.length > 20) f[20] = i % 3 === 0 ? 1 : 0;
      return f;
    });
    frames.splice(7, 0, Buffer.alloc(0)); // a zero-length record is dropped
    const stream = Buffer.concat(frames.map(record));
    const kept = frames.filter((f) => f.length > 0 && keepIt(f));
    return { frames, stream, expected: Buffer.concat(kept.map(record)) };
  }
  const keepIt = (f: Buffer) => f.length <= 20 || f[20] % 2 === 0;
  const large = corpus(400);
  const small = corpus(2 * sizes.length);
  const { frames, stream } = large;

  /** Feeds a corpus in chunks of the sizes given; checks that only whole records ever come out. */
  function through(c: ReturnType<typeof corpus>, chunk: () => number): Buffer {
    const out: Buffer[] = [];
    const s = new RecordSplitter((f) => {
      expect(c.frames.some((x) => x.equals(f))).toBe(true); // whole frames are judged
      return keepIt(f);
    });
    for (let i = 0; i < c.stream.length; ) {
      const n = chunk();
      for (const piece of s.push(c.stream.subarray(i, i + n))) {
        new FrameReader(() => {}).push(piece); // whole records: parses to the end with nothing left over
        let j = 0;
        while (j < piece.length) j += 4 + piece.readUInt32BE(j);
        expect(j).toBe(piece.length);
        out.push(Buffer.from(piece));
      }
      i += n;
    }
    return Buffer.concat(out);
  }

  it.each([1, 2, 3, 5])('passes exactly the kept records, whole, when read %i bytes at a time', (size) => {
    expect(through(small, () => size).equals(small.expected)).toBe(true);
  });

  it.each([41, 46, 47, 1000, 65_536, large.stream.length])('passes exactly the kept records of a long stream, whole, when read %i bytes at a time', (size) => {
    expect(through(large, () => size).equals(large.expected)).toBe(true);
  });

  it('in chunks of random sizes too', () => {
    for (let round = 0; round < 20; round++) expect(through(large, () => 1 + Math.floor(Math.random() * 3000)).equals(large.expected)).toBe(true);
  });

  it('refuses a record longer than any frame', () => {
    const bad = Buffer.alloc(8);
    bad.writeUInt32BE(1 << 20, 0);
    expect(() => new RecordSplitter(() => true).push(bad)).toThrow(/a frame of 1048576 bytes/);
    expect(() => new FrameReader(() => {}).push(bad)).toThrow(/a frame of 1048576 bytes/);
  });

  it('splits whole frames for the LAN whatever the chunks', () => {
    const got: Buffer[] = [];
    const r = new FrameReader((f) => got.push(Buffer.from(f)));
    for (let i = 0; i < stream.length; i += 777) r.push(stream.subarray(i, i + 777));
    expect(got.length).toBe(frames.filter((f) => f.length).length);
    expect(Buffer.concat(got).equals(Buffer.concat(frames))).toBe(true);
  });
});
