// Outbound policy without VMs: rule parsing, the decision for a destination, and the wire formats the gateway
// reads from a guest (IPv4/UDP, DNS) fed malformed and hostile input; the capped events file.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePolicy, parseRule, PolicyMatcher, type Destination } from '../../src/core/egress.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { buildDnsQuery, buildUdp4, dnsRefusal, parseDnsAnswers, parseDnsQuery, parseUdp4 } from '../../src/vmm/egress/wire.js';
import { EventWriter, readEvents, type EgressEvent } from '../../src/vmm/egress/events.js';
import { clientHelloName, RequestRewriter, ResponseMask } from '../../src/vmm/egress/inject.js';
import { checkManifest } from '../../src/runtime/foreign.js';

describe('rules', () => {
  it.each([
    ['api.example.com', { kind: 'domain', host: 'api.example.com' }],
    ['API.Example.com:443', { kind: 'domain', host: 'api.example.com', port: 443 }],
    ['*.github.com', { kind: 'wildcard', host: 'github.com' }],
    ['*.example.co.uk', { kind: 'wildcard', host: 'example.co.uk' }],
    ['co.uk', { kind: 'domain', host: 'co.uk' }], // one name, not everyone's
    ['203.0.113.7', { kind: 'cidr', host: '203.0.113.7', mask: 0xffffffff }],
    ['203.0.113.9/24:53/udp', { kind: 'cidr', host: '203.0.113.9/24', port: 53, protocol: 'udp', net: ((203 << 24) | (113 << 8)) >>> 0, mask: 0xffffff00 }],
    ['0.0.0.0/0:443/tcp', { kind: 'cidr', mask: 0, net: 0, port: 443, protocol: 'tcp' }],
  ])('%s', (text, want) => expect(parseRule(text)).toMatchObject(want));

  it.each([
    ['', 'it is empty'],
    ['api..example.com', 'is not a domain name'],
    ['api.*.com', 'a wildcard is allowed only as the first label'],
    ['10.0.0.0/33', 'prefix /33 is longer than 32'],
    ['999.1.1.1', 'is not a valid IPv4 address'],
    ['example.com:0', 'port 0 is out of range'],
    ['example.com:80/icmp', 'it is malformed'],
    ['api.example.com/24', 'is not an IPv4 address, so it takes no prefix'],
    ['-bad.example.com', 'is not a domain name'],
    ['*.co.uk', '"co.uk" is a public suffix, so "*.co.uk" would name every domain registered under it: name the domain itself (*.example.co.uk)'],
    ['*.github.io', '"github.io" is a public suffix'],
    ['*.com:443', '"com" is a public suffix'],
  ])('refuses %j: %s', (text, why) => {
    expect(() => parseRule(text)).toThrow(InvalidOptionError);
    expect(() => parseRule(text)).toThrow(why);
  });

  it('refuses a policy whose rules are not a list', () => {
    expect(() => parsePolicy({ allow: 'x.com' as never })).toThrow('network allow must be a list of rules');
  });
});

describe('decisions', () => {
  const host = new Set(['192.0.2.2']);
  const m = new PolicyMatcher({ allow: ['api.example.com:443', '*.cdn.example.com', '203.0.113.0/24:80', '10.1.2.3', '9.9.9.9:53/udp'], deny: ['203.0.113.66', 'bad.cdn.example.com'] }, host);
  const d = (ip: string, port: number, names: string[] = [], protocol: 'tcp' | 'udp' = 'tcp'): Destination => ({ ip, port, protocol, names });
  it.each([
    ['a CIDR rule, on its port', d('203.0.113.5', 80), true, 'allow 203.0.113.0/24:80'],
    ['a CIDR rule, on another port', d('203.0.113.5', 81), false, 'no allow rule matches'],
    ['a deny rule inside an allowed CIDR', d('203.0.113.66', 80), false, 'deny 203.0.113.66'],
    ['a domain rule, at an address its answer gave', d('198.51.100.1', 443, ['api.example.com']), true, 'allow api.example.com:443'],
    ['a domain rule, at an address no answer gave', d('198.51.100.1', 443), false, 'no allow rule matches'],
    ['a domain rule, on another port', d('198.51.100.1', 80, ['api.example.com']), false, 'no allow rule matches'],
    ['a wildcard, below its domain', d('198.51.100.2', 8443, ['img.cdn.example.com']), true, 'allow *.cdn.example.com'],
    ['a wildcard, its domain itself', d('198.51.100.2', 8443, ['cdn.example.com']), false, 'no allow rule matches'],
    ['a denied name beside an allowed wildcard', d('198.51.100.2', 8443, ['bad.cdn.example.com']), false, 'deny bad.cdn.example.com'],
    ['a private address an allowed name resolved to', d('10.0.0.5', 443, ['api.example.com']), false, 'a private range (closed unless an allow rule names the address)'],
    ['a private address an address rule names', d('10.1.2.3', 5432), true, 'allow 10.1.2.3'],
    ['cloud metadata', d('169.254.169.254', 80, ['api.example.com']), false, 'link-local and cloud metadata (closed unless an allow rule names the address)'],
    ["Azure's wire server", d('168.63.129.16', 80, ['api.example.com']), false, "cloud metadata (Azure's wire server) (closed unless an allow rule names the address)"],
    ['IETF protocol assignments', d('192.0.0.192', 80, ['api.example.com']), false, 'IETF protocol assignments and cloud metadata (closed unless an allow rule names the address)'],
    ["the host's own address", d('192.0.2.2', 443, ['api.example.com']), false, "the host's own address (closed unless an allow rule names the address)"],
    ['UDP where the rule says UDP', d('9.9.9.9', 53, [], 'udp'), true, 'allow 9.9.9.9:53/udp'],
    ['TCP where the rule says UDP', d('9.9.9.9', 53, [], 'tcp'), false, 'no allow rule matches'],
  ])('%s', (_what, dest, allowed, rule) => expect(m.decide(dest)).toEqual({ allowed, rule }));

  it('a broad address rule opens no special range: only a rule as narrow as the range; loopback never', () => {
    const wide = new PolicyMatcher({ allow: ['0.0.0.0/0:443', '10.0.0.0/8', '192.0.2.2/32', '127.0.0.1'], deny: [] }, host);
    expect(wide.decide(d('198.51.100.1', 443)).allowed).toBe(true);
    expect(wide.decide(d('169.254.169.254', 443))).toEqual({ allowed: false, rule: 'link-local and cloud metadata (closed unless an allow rule names the address)' });
    expect(wide.decide(d('172.16.0.1', 443)).allowed).toBe(false);
    expect(wide.decide(d('10.9.9.9', 22))).toEqual({ allowed: true, rule: 'allow 10.0.0.0/8' });
    expect(wide.decide(d('192.0.2.2', 22))).toEqual({ allowed: true, rule: 'allow 192.0.2.2/32' });
    expect(wide.decide(d('127.0.0.1', 443))).toEqual({ allowed: false, rule: "the host's loopback (never opened)" });
    expect(new PolicyMatcher({ allow: ['192.0.2.0/24'], deny: [] }, host).decide(d('192.0.2.2', 22)).allowed).toBe(false);
  });

  it('a deny-only policy allows the rest of the outside, but not private ranges', () => {
    const deny = new PolicyMatcher({ allow: [], deny: ['*.ads.example'] });
    expect(deny.decide(d('198.51.100.9', 443)).allowed).toBe(true);
    expect(deny.decide(d('198.51.100.9', 443, ['x.ads.example'])).allowed).toBe(false);
    expect(deny.decide(d('172.20.0.1', 443)).allowed).toBe(false);
    expect(deny.decideName('x.ads.example')).toEqual({ allowed: false, rule: 'deny *.ads.example' });
    expect(deny.decideName('example.org').allowed).toBe(true);
  });

  it('names: only those a rule covers are resolved when there are allow rules', () => {
    expect(m.decideName('API.example.com.')).toEqual({ allowed: true, rule: 'allow api.example.com:443' });
    expect(m.decideName('x.cdn.example.com').allowed).toBe(true);
    expect(m.decideName('bad.cdn.example.com')).toEqual({ allowed: false, rule: 'deny bad.cdn.example.com' });
    expect(m.decideName('example.com')).toEqual({ allowed: false, rule: 'no allow rule names it' });
  });
});

/** A DNS query for name (type A). */
function query(name: string, id = 0x1234): Buffer {
  const labels = name.split('.').flatMap((l) => [Buffer.from([l.length]), Buffer.from(l)]);
  return Buffer.concat([Buffer.from([id >> 8, id & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

describe('wire', () => {
  it('round-trips a UDP datagram, and refuses truncated, fragmented or lying ones', () => {
    const p = buildUdp4({ src: '198.51.100.1', dst: '10.77.0.1', srcPort: 53, dstPort: 40000, payload: Buffer.from('hello') });
    expect(parseUdp4(p)).toMatchObject({ src: '198.51.100.1', dst: '10.77.0.1', srcPort: 53, dstPort: 40000, payload: Buffer.from('hello') });
    expect(parseUdp4(p.subarray(0, 24))).toBeNull(); // shorter than its total length says
    const lying = Buffer.from(p);
    lying.writeUInt16BE(200, 24); // a UDP length past the packet
    expect(parseUdp4(lying)).toBeNull();
    const frag = Buffer.from(p);
    frag.writeUInt16BE(0x2000, 6); // more fragments
    expect(parseUdp4(frag)).toBeNull();
    const ihl = Buffer.from(p);
    ihl[0] = 0x4f; // a header longer than the packet
    expect(parseUdp4(ihl)).toBeNull();
    expect(parseUdp4(Buffer.alloc(3))).toBeNull();
  });

  it('reads a query, answers no-such-name for it, and refuses garbage', () => {
    const q = query('Api.Example.com');
    expect(parseDnsQuery(q)).toMatchObject({ id: 0x1234, name: 'api.example.com', type: 1 });
    const r = dnsRefusal(q, parseDnsQuery(q)!);
    expect(r.readUInt16BE(0)).toBe(0x1234);
    expect(r.readUInt16BE(2) & 0x800f).toBe(0x8003); // a response, NXDOMAIN
    expect(r.readUInt16BE(6)).toBe(0);
    expect(parseDnsQuery(Buffer.alloc(5))).toBeNull();
    expect(parseDnsQuery(q.subarray(0, q.length - 3))).toBeNull();
    const two = Buffer.from(q);
    two.writeUInt16BE(2, 4);
    expect(parseDnsQuery(two)).toBeNull();
  });

  it('refuses what is not a plain query of a host name: updates, answers in a query, dots or control bytes in a label', () => {
    const update = query('api.example.com');
    update[2] = 0x28; // opcode 5, UPDATE
    expect(parseDnsQuery(update)).toBeNull();
    const answered = query('api.example.com');
    answered.writeUInt16BE(1, 6);
    expect(parseDnsQuery(answered)).toBeNull();
    const dotted = Buffer.concat([Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10]), Buffer.from('api.openai'), Buffer.from([3]), Buffer.from('com'), Buffer.from([0, 0, 1, 0, 1])]);
    expect(parseDnsQuery(dotted)).toBeNull();
    expect(parseDnsQuery(query('a\x1b]0;x\x07.example.com'))).toBeNull();
    const edns = Buffer.from(query('api.example.com'));
    edns.writeUInt16BE(1, 10); // one additional (EDNS) record is fine
    expect(parseDnsQuery(edns)?.name).toBe('api.example.com');
  });

  it('rebuilds a query from the judged question alone', () => {
    const q = parseDnsQuery(query('api.example.com', 7))!;
    const rebuilt = buildDnsQuery(0xbeef, q);
    expect(parseDnsQuery(rebuilt)).toMatchObject({ id: 0xbeef, name: 'api.example.com', type: 1, cls: 1 });
    expect(rebuilt.length).toBe(query('api.example.com').length);
  });

  it('survives compression loops and pointers past the end', () => {
    const loop = Buffer.concat([Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
    expect(parseDnsQuery(loop)).toBeNull();
    const far = Buffer.concat([Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), Buffer.from([0xc0, 0xff, 0, 1, 0, 1])]);
    expect(parseDnsQuery(far)).toBeNull();
  });

  it('reads the A records of an answer, past a CNAME, with their TTLs', () => {
    const q = query('www.example.com');
    const head = Buffer.from(q);
    head.writeUInt16BE(0x8180, 2);
    head.writeUInt16BE(2, 6);
    const cname = Buffer.from([0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 30, 0, 2, 0xc0, 16]);
    const a = Buffer.from([0xc0, 16, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 198, 51, 100, 7]);
    expect(parseDnsAnswers(Buffer.concat([head, cname, a]))).toEqual({ id: 0x1234, question: 'www.example.com', answers: [{ address: '198.51.100.7', ttl: 300 }] });
    const short = Buffer.concat([head, cname, a.subarray(0, 13)]);
    expect(parseDnsAnswers(short)).toBeNull();
    expect(parseDnsAnswers(q)).toBeNull(); // a query is no answer
  });
});

describe('events file', () => {
  it('drops the older half past its cap, keeping whole lines', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-events-'));
    const fd = fs.openSync(path.join(dir, 'events.jsonl'), 'a+');
    const w = new EventWriter(fd, 4096);
    const e = (i: number): EgressEvent => ({ time: new Date(i).toISOString(), box: 'b', kind: 'connection', action: 'deny', rule: 'no allow rule matches', destination: `198.51.100.1:${i}`, protocol: 'tcp' });
    for (let i = 1; i <= 200; i++) w.write(e(i));
    fs.closeSync(fd);
    expect(fs.statSync(path.join(dir, 'events.jsonl')).size).toBeLessThanOrEqual(4096);
    const kept = readEvents(dir);
    expect(kept.length).toBeGreaterThan(10);
    expect(kept.at(-1)).toEqual(e(200));
    const ports = kept.map((k) => Number(k.destination.split(':')[1]));
    expect(ports).toEqual(ports.map((_, i) => ports[0] + i)); // contiguous, newest last
    fs.rmSync(dir, { recursive: true });
  });
});

describe('secret injection (the request rewriter)', () => {
  const secret = { name: 'KEY', placeholder: 'boxlite-secret-KEY-0123456789abcdef', hosts: ['api.example.com', '*.svc.example'], value: 'sk-real' };
  async function run(host: string, chunks: string[]): Promise<{ out: string; misuse: unknown[]; error?: string }> {
    const misuse: unknown[] = [];
    const rw = new RequestRewriter(host, [secret], (m) => misuse.push(m));
    let out = '';
    rw.on('data', (d: Buffer) => (out += d.toString('latin1')));
    const done = new Promise<string | undefined>((resolve) => (rw.on('end', () => resolve(undefined)), rw.on('error', (e) => resolve(e.message))));
    for (const c of chunks) rw.write(Buffer.from(c, 'latin1'));
    rw.end();
    return { out, misuse, error: await done };
  }
  const P = secret.placeholder;

  it('replaces the placeholder in the request line and headers, for its hosts, across chunk boundaries', async () => {
    const req = `GET /v1?key=${P} HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer ${P}\r\n\r\n`;
    const r = await run('api.example.com', [req.slice(0, 20), req.slice(20, 47), req.slice(47)]);
    expect(r.out).toBe(req.split(P).join('sk-real'));
    expect((await run('x.svc.example', [req.replace('Host: api.example.com', 'Host: x.svc.example')])).out).toContain('Bearer sk-real');
  });

  it("never puts the value in a request's path (servers log and publish paths), nor in a header's name", async () => {
    const H = 'Host: api.example.com\r\n';
    for (const req of [`PUT /repos/me/${P} HTTP/1.1\r\n${H}\r\n`, `GET /a/${P}?q=1 HTTP/1.1\r\n${H}\r\n`, `GET http://api.example.com/${P} HTTP/1.1\r\n${H}\r\n`, `GET /a?q=1#${P} HTTP/1.1\r\n${H}\r\n`]) {
      const r = await run('api.example.com', [req]);
      expect(r.error).toBe("secret KEY: its placeholder is in the request's path, where it is never replaced: send it in a header or the query");
      expect(r.out).not.toContain('sk-real');
    }
    const named = await run('api.example.com', [`GET / HTTP/1.1\r\n${H}X-${P}: 1\r\n\r\n`]);
    expect(named.error).toMatch(/in a header's name/);
    expect(named.out).not.toContain('sk-real');
  });

  it('leaves bodies alone, framed by Content-Length or chunks, and rewrites the next request on the connection', async () => {
    const body = `{"k":"${P}"}`;
    const H = 'Host: api.example.com\r\n';
    const one = `POST /a HTTP/1.1\r\n${H}Content-Length: ${body.length}\r\nX: ${P}\r\n\r\n${body}`;
    const two = `POST /b HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /c?k=${P} HTTP/1.1\r\n${H}\r\n`;
    const r = await run('api.example.com', [one, two]);
    expect(r.out).toBe(`POST /a HTTP/1.1\r\n${H}Content-Length: ${body.length}\r\nX: sk-real\r\n\r\n${body}POST /b HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /c?k=sk-real HTTP/1.1\r\n${H}\r\n`);
  });

  it('refuses the placeholder to any other host, and reports it', async () => {
    const r = await run('evil.example.org', [`GET /?k=${P} HTTP/1.1\r\n\r\n`]);
    expect(r.error).toBe('secret KEY is not for evil.example.org');
    expect(r.misuse).toEqual([{ secret: 'KEY', host: 'evil.example.org' }]);
    expect(r.out).not.toContain('sk-real');
    expect((await run('svc.example', [`GET /?k=${P} HTTP/1.1\r\n\r\n`])).error).toBeDefined(); // the wildcard's apex is not covered
    // The Host header is the guest's: reported as a host name's characters only (no escape reaches a terminal).
    const esc = await run('evil.example.org', [`GET /?k=${P} HTTP/1.1\r\nHost: x\x1b]0;pwned\x07.org\r\n\r\n`]);
    expect(esc.misuse).toEqual([{ secret: 'KEY', host: 'x?]0?pwned?.org' }]);
  });

  it('refuses a request for another host than the connection, and framing a server could read otherwise', async () => {
    const refused = async (req: string) => (await run('api.example.com', [req])).error;
    expect(await refused(`GET / HTTP/1.1\r\nHost: evil.example\r\nAuthorization: ${P}\r\n\r\n`)).toBe('secret KEY is not for evil.example');
    expect(await refused(`GET http://evil.example/?k=${P} HTTP/1.1\r\nHost: api.example.com\r\n\r\n`)).toBe('secret KEY is not for api.example.com');
    expect(await refused(`GET / HTTP/1.1\r\nHost: api.example.com\r\nHost: api.example.com\r\nX: ${P}\r\n\r\n`)).toBeDefined();
    expect(await refused(`GET / HTTP/1.1\r\nX: ${P}\r\n\r\n`)).toBeDefined(); // no Host at all
    expect(await refused(`POST / HTTP/1.1\r\nHost: api.example.com\r\nX: a\nContent-Length: 5\r\n\r\n`)).toBe('bare CR or LF in the request head');
    expect(await refused(`POST / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n`)).toBe('ambiguous request framing');
    expect(await refused(`POST / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 0x10\r\n\r\n`)).toBe('bad content-length');
    expect(await refused(`POST / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length : 5\r\n\r\n`)).toBe('malformed header line');
    expect(await refused(`POST / HTTP/1.1\r\nHost: api.example.com\r\nX: a\r\n b\r\n\r\n`)).toBe('malformed header line');
    expect(await refused(`POST / HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n0g10\r\n`)).toBe('bad chunk size');
    expect(await refused(`TRACE / HTTP/1.1\r\nHost: api.example.com\r\n\r\n`)).toBe('TRACE is refused: it would echo the request');
  });

  it('masks a value a server echoes back, at its length, across chunks', async () => {
    const mask = new ResponseMask([secret]);
    let out = '';
    mask.on('data', (d: Buffer) => (out += d));
    const done = new Promise((r) => mask.on('end', r));
    mask.write('HTTP/1.1 301 Moved\r\nLocation: https://api.example.com/?k=sk-r');
    mask.end('eal\r\n\r\n');
    await done;
    expect(out).toBe('HTTP/1.1 301 Moved\r\nLocation: https://api.example.com/?k=*******\r\n\r\n');
  });

  it('refuses an endless head or a malformed length', async () => {
    expect((await run('api.example.com', ['GET / HTTP/1.1\r\n' + 'X: y\r\n'.repeat(20000)])).error).toBe('request head too long');
    expect((await run('api.example.com', ['POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n'])).error).toBe('bad content-length');
  });

  it('reads the server name of a real TLS ClientHello, and says when bytes are not TLS', async () => {
    // What node's own client sends, caught by a plain TCP server.
    const first = await new Promise<Buffer>((resolve) => {
      const srv = net.createServer((c) => c.once('data', (d: Buffer) => (resolve(d), c.destroy(), srv.close()))).listen(0, '127.0.0.1', () => {
        tls.connect({ port: (srv.address() as net.AddressInfo).port, host: '127.0.0.1', servername: 'api.example.com' }).on('error', () => {});
      });
    });
    expect(clientHelloName(first)).toBe('api.example.com');
    expect(clientHelloName(first.subarray(0, 30))).toBeNull();
    expect(clientHelloName(Buffer.from('GET / HTTP/1.1\r\n'))).toBeUndefined();
  });
});

describe('an imported box', () => {
  it('keeps its outbound rules, but not its secrets: an archive does not choose what host values go where', () => {
    const manifest = {
      name: 'imported',
      config: { env: [], entrypoint: [], cmd: [], workingDir: '', user: '' },
      options: {
        cpus: 1, memoryMib: 256, diskSizeMib: 256, env: {}, workingDir: '', user: '', network: 'default', ports: [], dns: [],
        egress: { allow: ['api.example.com:443'], deny: [] },
        secrets: [{ name: 'SHADOW', hosts: ['evil.example'], placeholder: 'boxlite-secret-SHADOW-0123456789abcdef', source: { file: '/etc/shadow' } }],
      },
    };
    const { manifest: m, notes } = checkManifest(manifest, 'box.tar', {});
    expect(m.options.egress).toEqual({ allow: ['api.example.com:443'], deny: [] });
    expect(m.options.secrets).toBeUndefined();
    expect(notes).toContain('its secrets were dropped (SHADOW): give them again with --secret if you trust where they go');
    expect(() => checkManifest({ ...manifest, options: { ...manifest.options, egress: { allow: ['bad..rule'], deny: [] } } }, 'box.tar', {})).toThrow('has options create would refuse: network rule "bad..rule"');
  });
});
