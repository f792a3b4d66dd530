// Secrets the guest never holds: its environment has a placeholder, and the gateway puts the real value into HTTP
// requests — the request line (the URL's query) and the headers — that go to a host the secret names. HTTPS to
// such a host is terminated with a certificate of the box's own CA and made again to the real host (its
// certificate checked as any client would). A request that carries a placeholder anywhere else is refused.
import * as net from 'node:net';
import * as tls from 'node:tls';
import { Transform, type TransformCallback } from 'node:stream';
import { ruleCoversName, parseRule } from '../../core/egress.js';
import type { LeafIssuer } from './certs.js';

export interface LiveSecret {
  name: string;
  placeholder: string;
  /** Domains, or *.domains. */
  hosts: string[];
  value: string;
}

const MAX_HEAD = 64 * 1024;

export const secretCovers = (s: LiveSecret, host: string) => s.hosts.some((h) => ruleCoversName(parseRule(h), host));

/** The server name of a TLS ClientHello, if the bytes start with one (and hold it whole). */
export function clientHelloName(b: Buffer): string | null | undefined {
  // undefined: not TLS at all; null: TLS without a name (or not all of it yet).
  if (b.length < 5 || b[0] !== 0x16 || b[1] !== 0x03) return undefined;
  const end = Math.min(b.length, 5 + b.readUInt16BE(3));
  let at = 5;
  if (at + 4 > end || b[at] !== 0x01) return null;
  at += 4 + 2 + 32; // handshake header, version, random
  if (at + 1 > end) return null;
  at += 1 + b[at]; // session id
  if (at + 2 > end) return null;
  at += 2 + b.readUInt16BE(at); // cipher suites
  if (at + 1 > end) return null;
  at += 1 + b[at]; // compression methods
  if (at + 2 > end) return null;
  const extEnd = Math.min(end, at + 2 + b.readUInt16BE(at));
  at += 2;
  while (at + 4 <= extEnd) {
    const type = b.readUInt16BE(at);
    const len = b.readUInt16BE(at + 2);
    at += 4;
    if (type === 0 && at + 5 <= extEnd && b[at + 2] === 0) {
      const n = b.readUInt16BE(at + 3);
      if (at + 5 + n > extEnd) return null;
      const host = b.subarray(at + 5, at + 5 + n).toString('latin1').toLowerCase();
      return /^[a-z0-9.-]+$/.test(host) ? host : null;
    }
    at += len;
  }
  return null;
}

export const looksLikeHttp = (b: Buffer) => /^[A-Z]{3,10} [^ ]+ HTTP\/1\.[01]\r?\n/.test(b.subarray(0, 2048).toString('latin1')) || /^[A-Z]{3,10} [^\r\n ]*$/.test(b.subarray(0, 2048).toString('latin1'));

export type Misuse = { secret: string; host: string };

/**
 * The box's side of one HTTP/1.x connection, request by request: each head has the placeholders of the secrets
 * that cover `host` replaced by their values; a placeholder of any other secret makes `onMisuse` fire and the
 * stream fail. Bodies pass as they are (framed by Content-Length or chunked encoding); after an upgrade or
 * CONNECT, everything passes.
 */
export class RequestRewriter extends Transform {
  private buf: Buffer = Buffer.alloc(0);
  private mode: 'head' | 'body' | 'chunks' | 'raw' = 'head';
  private left = 0;
  private chunkState: 'size' | 'data' | 'crlf' | 'trailers' = 'size';

  constructor(
    private readonly host: string,
    private readonly secrets: LiveSecret[],
    private readonly onMisuse: (m: Misuse) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    try {
      this.drain();
      done();
    } catch (e) {
      done(e as Error);
    }
  }

  private drain(): void {
    while (this.buf.length) {
      if (this.mode === 'raw') return this.emit1(this.buf.length);
      if (this.mode === 'body') {
        const n = Math.min(this.left, this.buf.length);
        this.emit1(n);
        this.left -= n;
        if (this.left === 0) this.mode = 'head';
        continue;
      }
      if (this.mode === 'chunks') {
        if (!this.chunked()) return;
        continue;
      }
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (this.buf.length > MAX_HEAD) throw new Error('request head too long');
        return;
      }
      const raw = this.buf.subarray(0, end + 4).toString('latin1');
      const lines = strictHead(raw);
      const head = this.rewrite(raw, lines);
      this.buf = this.buf.subarray(end + 4);
      this.push(Buffer.from(head, 'latin1'));
      const all = (n: string) => lines.slice(1).filter((l) => l.slice(0, l.indexOf(':')).toLowerCase() === n).map((l) => l.slice(l.indexOf(':') + 1).trim().toLowerCase());
      const te = all('transfer-encoding');
      const cl = all('content-length');
      // What the server frames differently from us could carry a replaced head into a body, or the reverse.
      if (te.length > 1 || cl.length > 1 || (te.length && cl.length)) throw new Error('ambiguous request framing');
      if (/^CONNECT /.test(lines[0]) || all('upgrade').length) this.mode = 'raw';
      else if (te.length) {
        if (te[0] !== 'chunked') throw new Error('unsupported transfer-encoding');
        (this.mode = 'chunks'), (this.chunkState = 'size');
      } else if (cl.length) {
        if (!/^\d{1,15}$/.test(cl[0])) throw new Error('bad content-length');
        const len = Number(cl[0]);
        if (len > 0) (this.mode = 'body'), (this.left = len);
      }
    }
  }

  /** One step of chunked framing; false when more bytes are needed. */
  private chunked(): boolean {
    if (this.chunkState === 'data') {
      const n = Math.min(this.left, this.buf.length);
      this.emit1(n);
      this.left -= n;
      if (this.left === 0) this.chunkState = 'crlf';
      return true;
    }
    const eol = this.buf.indexOf('\r\n');
    if (eol < 0) {
      if (this.buf.length > MAX_HEAD) throw new Error('chunk line too long');
      return false;
    }
    const line = this.buf.subarray(0, eol).toString('latin1');
    this.emit1(eol + 2);
    if (this.chunkState === 'crlf') this.chunkState = 'size';
    else if (this.chunkState === 'size') {
      if (!/^[0-9a-fA-F]{1,12}(;[^\r\n]*)?$/.test(line)) throw new Error('bad chunk size');
      const size = parseInt(line, 16);
      if (size === 0) this.chunkState = 'trailers';
      else (this.chunkState = 'data'), (this.left = size);
    } else if (line === '') this.mode = 'head'; // the empty line after the trailers ends the body
    return true;
  }

  private emit1(n: number): void {
    this.push(this.buf.subarray(0, n));
    this.buf = this.buf.subarray(n);
  }

  private rewrite(head: string, lines: string[]): string {
    const [method, target] = lines[0].split(' ');
    if (method === 'TRACE') throw new Error('TRACE is refused: it would echo the request');
    for (const s of this.secrets) {
      if (!head.includes(s.placeholder)) continue;
      // The request must be for the host the connection goes to: one Host header naming it, and a target in
      // origin form or naming it too (a CDN routes by Host, not by address).
      const hosts = lines.slice(1).filter((l) => /^host:/i.test(l)).map((l) => l.slice(5).trim().toLowerCase().replace(/:\d+$/, ''));
      const authority = /^https?:\/\/([^/?#]+)/i.exec(target ?? '')?.[1]?.toLowerCase().replace(/:\d+$/, '');
      const forHost = hosts.length === 1 && hosts[0] === this.host && (target?.startsWith('/') || authority === this.host);
      if (!secretCovers(s, this.host) || !forHost) {
        // The Host header and the target are the guest's words: what is not a host name's character is shown as '?'.
        const named = (forHost ? this.host : (hosts[0] ?? authority ?? this.host)).replace(/[^a-z0-9.:[\]-]/g, '?').slice(0, 255);
        this.onMisuse({ secret: s.name, host: named });
        throw new Error(`secret ${s.name} is not for ${named}`);
      }
    }
    const carried = this.secrets.filter((s) => head.includes(s.placeholder));
    return carried.length ? replaceWhereAllowed(lines, carried) : head;
  }
}

/** The head with each placeholder replaced by its value in the request target's query and in header values only:
 *  a path, a fragment or a header's name that carries one is refused (a path is what servers log, publish and
 *  echo — a repository or a page named by the value would show it to the world). */
function replaceWhereAllowed(lines: string[], secrets: LiveSecret[]): string {
  const swap = (text: string) => secrets.reduce((t, s) => t.split(s.placeholder).join(s.value), text);
  const carries = (text: string) => secrets.find((s) => text.includes(s.placeholder));
  const [method, target, version] = lines[0].split(' ');
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q);
  const inPath = carries(path) ?? (query.includes('#') ? carries(query.slice(query.indexOf('#'))) : undefined);
  if (inPath) throw new Error(`secret ${inPath.name}: its placeholder is in the request's path, where it is never replaced: send it in a header or the query`);
  const out = [`${method} ${path}${swap(query)} ${version}`];
  for (const l of lines.slice(1)) {
    const colon = l.indexOf(':');
    const named = carries(l.slice(0, colon));
    if (named) throw new Error(`secret ${named.name}: its placeholder is in a header's name, where it is never replaced`);
    out.push(l.slice(0, colon + 1) + swap(l.slice(colon + 1)));
  }
  return out.join('\r\n') + '\r\n\r\n';
}

/** The lines of a request head, refused unless plainly framed: CRLF only, no folded lines, a token then a colon. */
function strictHead(head: string): string[] {
  if (/[^\r]\n|\r(?!\n)|\0/.test(head)) throw new Error('bare CR or LF in the request head');
  const lines = head.slice(0, -4).split('\r\n');
  if (!/^[A-Z]{3,10} \S+ HTTP\/1\.[01]$/.test(lines[0])) throw new Error('malformed request line');
  for (const l of lines.slice(1)) if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+:/.test(l)) throw new Error('malformed header line');
  return lines;
}

/** The box's side of the responses: a secret's value that a server echoes (a redirect, an error) is masked, at
 *  the same length so the framing holds. Compressed bodies are not looked into. */
export class ResponseMask extends Transform {
  private carry: Buffer = Buffer.alloc(0);
  private readonly values: Buffer[];
  private readonly keep: number;
  constructor(secrets: LiveSecret[]) {
    super();
    this.values = secrets.map((s) => Buffer.from(s.value, 'latin1'));
    this.keep = Math.max(0, ...this.values.map((v) => v.length - 1));
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, done: TransformCallback): void {
    const b = Buffer.concat([this.carry, chunk]);
    for (const v of this.values) for (let i = b.indexOf(v); i >= 0; i = b.indexOf(v, i + v.length)) b.fill(0x2a, i, i + v.length);
    const cut = Math.max(0, b.length - this.keep);
    this.carry = Buffer.from(b.subarray(cut));
    done(null, b.subarray(0, cut));
  }
  override _flush(done: TransformCallback): void {
    done(null, this.carry);
  }
}

/** Whether any placeholder shows in these bytes (for traffic the gateway does not rewrite). */
export const carriesPlaceholder = (b: Buffer, secrets: LiveSecret[]) => secrets.find((s) => b.includes(s.placeholder));

/** Ends the box's connection with a plain 403 saying why (it never reaches the outside). */
export function refuse(inner: net.Socket | tls.TLSSocket, why: string): void {
  const body = `boxlite: ${why}\n`;
  inner.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
}

export interface Interception {
  issuer: LeafIssuer;
  secrets: LiveSecret[];
  onMisuse: (m: Misuse) => void;
}

/**
 * Carries one connection whose first bytes are in `first`: HTTPS to a host a secret covers is terminated and made
 * again; plain HTTP is rewritten; anything else passes. `names` are the names the destination was resolved from.
 */
export function intercept(inner: net.Socket, first: Buffer, dst: { ip: string; port: number }, names: string[], x: Interception, done: () => void): void {
  const covered = (host: string) => names.includes(host) && x.secrets.some((s) => secretCovers(s, host));
  const sni = clientHelloName(first);
  inner.unshift(first);
  if (typeof sni === 'string' && covered(sni)) {
    // The name must be one the box resolved to this address: a ClientHello naming an API host sent to an address
    // of the guest's choosing gets no secret.
    const box = new tls.TLSSocket(inner, { isServer: true, ALPNProtocols: ['http/1.1'], secureContext: tls.createSecureContext({ key: x.issuer.keyPem, cert: x.issuer.certFor(sni) }) });
    const out = tls.connect({ host: dst.ip, port: dst.port, servername: sni, ALPNProtocols: ['http/1.1'], rejectUnauthorized: true });
    return join(box, out, new RequestRewriter(sni, x.secrets, x.onMisuse), done, new ResponseMask(x.secrets));
  }
  const out = net.connect({ host: dst.ip, port: dst.port });
  // Plain HTTP gets a value only on port 80: anywhere else a placeholder is refused like any other misuse.
  if (sni === undefined && dst.port === 80 && looksLikeHttp(first)) {
    const host = names.find((n) => covered(n)) ?? names[0] ?? dst.ip;
    return join(inner, out, new RequestRewriter(host, x.secrets, x.onMisuse), done, new ResponseMask(x.secrets));
  }
  // Neither HTTP nor HTTPS to a secret's host: passed on, but a placeholder in it is still refused.
  const watch = new Transform({
    transform(chunk: Buffer, _e, cb) {
      const s = carriesPlaceholder(chunk, x.secrets);
      if (s) {
        x.onMisuse({ secret: s.name, host: names[0] ?? dst.ip });
        return cb(new Error('placeholder'));
      }
      cb(null, chunk);
    },
  });
  join(inner, out, watch, done);
}

function join(box: net.Socket, out: net.Socket, rewrite: Transform, done: () => void, back?: Transform): void {
  let finished = false;
  const fail = () => {
    if (finished) return;
    finished = true;
    box.destroy();
    out.destroy();
    done();
  };
  rewrite.on('error', () => (box.writable ? refuse(box, 'this request was refused by the box\'s network policy (see boxlite events)') : box.destroy(), out.destroy(), finished || ((finished = true), done())));
  box.on('error', fail);
  out.on('error', fail);
  out.on('close', () => (finished || ((finished = true), done())));
  box.on('close', () => out.destroy());
  box.pipe(rewrite).pipe(out);
  (back ? out.pipe(back) : out).pipe(box);
  back?.on('error', fail);
  box.resume();
}
