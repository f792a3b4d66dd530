// A box's own certificate authority and the leaf certificates its egress gateway shows the box for the hosts its
// secrets go to. Made with Node's crypto (EC P-256 keys, ECDSA-SHA256 signatures) and a minimal DER writer for
// the few X.509 fields needed: the CA's key stays on the host, in the box's folder; the guest gets its certificate.
import { createPrivateKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

const tlv = (tag: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  const n = body.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  if (n > 0xffff) throw new Error('DER value too long');
  return Buffer.concat([Buffer.from([tag]), len, body]);
};
const seq = (...p: Buffer[]) => tlv(0x30, ...p);
const set = (...p: Buffer[]) => tlv(0x31, ...p);
const bool = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0]));
const octets = (b: Buffer) => tlv(0x04, b);
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));
const explicit = (n: number, b: Buffer) => tlv(0xa0 + n, b);

function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out = [40 * arcs[0] + arcs[1]];
  for (const a of arcs.slice(2)) {
    const bytes = [a & 0x7f];
    for (let v = a >>> 7; v > 0; v >>>= 7) bytes.unshift((v & 0x7f) | 0x80);
    out.push(...bytes);
  }
  return tlv(0x06, Buffer.from(out));
}

function positiveInteger(b: Buffer): Buffer {
  const v = Buffer.from(b);
  v[0] &= 0x7f;
  if (v[0] === 0) v[0] = 1;
  return tlv(0x02, v);
}

function utcTime(d: Date): Buffer {
  const p = (n: number) => String(n).padStart(2, '0');
  return tlv(0x17, Buffer.from(`${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`));
}

const name = (cn: string) => seq(set(seq(oid('2.5.4.3'), utf8(cn))));
const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));
const extension = (id: string, critical: boolean, value: Buffer) => seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));

interface CertSpec {
  subject: string;
  issuer: string;
  publicKey: KeyObject;
  signer: KeyObject;
  days: number;
  ca: boolean;
  dnsName?: string;
}

function certificate(c: CertSpec): string {
  const now = Date.now();
  const extensions = c.ca
    ? [extension('2.5.29.19', true, seq(bool(true))), extension('2.5.29.15', true, tlv(0x03, Buffer.from([1, 0x06])))]
    : [
        extension('2.5.29.19', true, seq()),
        extension('2.5.29.15', true, tlv(0x03, Buffer.from([7, 0x80]))),
        extension('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'))),
        extension('2.5.29.17', false, seq(tlv(0x82, Buffer.from(c.dnsName!, 'ascii')))),
      ];
  const tbs = seq(
    explicit(0, tlv(0x02, Buffer.from([2]))),
    positiveInteger(randomBytes(16)),
    ECDSA_SHA256,
    name(c.issuer),
    // A day back: a guest clock that lags (a box resumed from a saved state) still accepts it.
    seq(utcTime(new Date(now - 864e5)), utcTime(new Date(now + c.days * 864e5))),
    name(c.subject),
    c.publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, seq(...extensions)),
  );
  const signature = sign('sha256', tbs, { key: c.signer, dsaEncoding: 'der' });
  const der = seq(tbs, ECDSA_SHA256, tlv(0x03, Buffer.from([0]), signature));
  return `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n?$/, '\n')}-----END CERTIFICATE-----\n`;
}

export const CA_NAME = 'boxlite box CA';

export interface BoxCa {
  keyPem: string;
  certPem: string;
}

/** A new CA for one box (made when it first gets a secret). */
export function makeBoxCa(box: string): BoxCa {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const subject = `${CA_NAME} (${box})`;
  return { keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, certPem: certificate({ subject, issuer: subject, publicKey, signer: privateKey, days: 3650, ca: true }) };
}

/** Leaf certificates for the box's secret hosts, one key for all, made as they are first needed. */
export class LeafIssuer {
  private readonly caKey: KeyObject;
  private readonly leafKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  private readonly made = new Map<string, { cert: string; at: number }>();
  readonly keyPem: string;
  constructor(
    ca: BoxCa,
    private readonly issuer: string,
  ) {
    this.caKey = createPrivateKey(ca.keyPem);
    this.keyPem = this.leafKey.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  }

  /** A certificate valid 30 days, made again after 20 (a gateway may run for months). */
  certFor(host: string): string {
    const had = this.made.get(host);
    if (had && Date.now() - had.at < 20 * 864e5) return had.cert;
    const cert = certificate({ subject: host, issuer: this.issuer, publicKey: this.leafKey.publicKey, signer: this.caKey, days: 30, ca: false, dnsName: host });
    this.made.set(host, { cert, at: Date.now() });
    return cert;
  }
}
