// Who may talk to the server: the holders of its API keys. Keys are read from a file only the server's user can
// read, compared as SHA-256 digests in constant time (every key is compared, so timing says nothing of which or
// how much matched), and never written anywhere: not to the log, not to an error.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { InvalidOptionError } from '../core/errors.js';

/** Shorter keys are refused for a server that listens beyond loopback (a guessable key is no key there). */
export const MIN_REMOTE_KEY_LENGTH = 16;

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export class ApiKeys {
  private readonly digests: Buffer[];
  constructor(keys: string[]) {
    this.digests = keys.map(digest);
  }
  get count(): number {
    return this.digests.length;
  }
  /** Whether an Authorization header carries one of the keys ("Bearer KEY"). */
  check(header: string | undefined): boolean {
    const m = /^Bearer ([\x21-\x7e]{1,4096})$/.exec(header ?? '');
    const given = digest(m ? m[1] : '');
    let ok = false;
    for (const d of this.digests) ok = timingSafeEqual(d, given) || ok;
    return ok && !!m;
  }
}

/** The keys of a key file: one a line, blank lines and # comments skipped. The file must be the user's alone. */
export function readKeyFile(file: string): string[] {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new InvalidOptionError(`--api-key-file ${file} does not exist: write one key per line into it (chmod 600)`);
  }
  if (st.mode & 0o077) throw new InvalidOptionError(`--api-key-file ${file} can be read by other users (mode ${(st.mode & 0o777).toString(8)}): chmod 600 ${file}`);
  const keys = fs.readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (!keys.length) throw new InvalidOptionError(`--api-key-file ${file} holds no key: write one key per line into it`);
  for (const [i, k] of keys.entries()) {
    if (!/^[\x21-\x7e]+$/.test(k)) throw new InvalidOptionError(`key ${i + 1} of ${file} has spaces or characters beyond printable ASCII: keys are sent in an HTTP header`);
  }
  return keys;
}

/** The key a loopback server uses when given none: made once, kept 0600 in the home (0700), so that the user's own
 *  clients find it and other users of the machine do not. */
export function localKey(home: string): { key: string; file: string } {
  const file = path.join(home, 'serve.key');
  try {
    return { key: fs.readFileSync(file, 'utf8').trim(), file };
  } catch {}
  const key = `blk_local_${randomBytes(24).toString('base64url')}`;
  fs.writeFileSync(file, key + '\n', { mode: 0o600, flag: 'wx' });
  return { key, file };
}

/** Whether a listen host reaches only this machine: 127.0.0.0/8, ::1 or localhost. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) return h === '::1' || /^::ffff:127\./.test(h);
  return false;
}

/** ADDR:PORT, [V6]:PORT, :PORT or PORT, as --listen takes them. */
export function parseListen(s: string): { host: string; port: number } {
  const bad = () => new InvalidOptionError(`--listen "${s}": expected ADDR:PORT (127.0.0.1:8100, [::1]:8100, 0.0.0.0:8100)`);
  let host = '127.0.0.1';
  let port: string;
  if (/^\d+$/.test(s)) port = s;
  else {
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:[\]]*):(\d+)$/.exec(s);
    if (!m) throw bad();
    host = m[1] || host;
    port = m[2];
  }
  const n = Number(port);
  if (!(n >= 0 && n <= 65535)) throw bad();
  if (!net.isIP(host) && host !== 'localhost') throw new InvalidOptionError(`--listen "${s}": the address must be an IP address or localhost`);
  return { host, port: n };
}
