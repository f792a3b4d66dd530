// A box's secrets at start: their values read from where the record says (the starting process's environment, a
// file, or the SDK program that gave them), the box's own CA, and the settings its egress gateway is given. No
// value is written anywhere: not the record, not the home, not a log.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { BoxliteError } from '../core/errors.js';
import { BUSYBOX } from '../core/guest.js';
import type { SecretInput, SecretRef } from '../core/egress.js';
import { CA_NAME, makeBoxCa, type BoxCa } from '../vmm/egress/certs.js';
import type { GatewaySettings } from '../vmm/egress/gateway.js';
import type { LiveSecret } from '../vmm/egress/inject.js';
import type { BoxRecord } from './types.js';

export class SecretMissingError extends BoxliteError {}

/** Values the SDK gave, per box id: held by this process only. */
const given = new Map<string, Map<string, string>>();

export const makePlaceholder = (name: string) => `boxlite-secret-${name}-${randomBytes(12).toString('hex')}`;

/** Keeps the values an SDK caller gave with create or reconfigure (in memory). */
export function rememberValues(id: string, inputs: SecretInput[] | undefined): void {
  for (const s of inputs ?? []) if (s.value !== undefined) given.set(id, new Map(given.get(id)).set(s.name, s.value));
}

export function secretValues(rec: BoxRecord): LiveSecret[] {
  return (rec.options.secrets ?? []).map((s) => ({ name: s.name, placeholder: s.placeholder, hosts: s.hosts, value: valueOf(rec, s) }));
}

function valueOf(rec: BoxRecord, s: SecretRef): string {
  if (!('env' in s.source) && !('file' in s.source)) {
    const v = given.get(rec.id)?.get(s.name);
    if (!v) throw new SecretMissingError(`box ${rec.name}: secret ${s.name} was given by the program that made the box, not to this process: start it from a program that gives it (secrets: [{ name, value, hosts }]), or give it from an environment variable or a file`);
    return v;
  }
  const r = sourceValue(s.name, s.source);
  if ('problem' in r) throw new SecretMissingError(`box ${rec.name}: ${r.problem}`);
  return r.value;
}

/** Why a secret from the host's environment or a file cannot be read now, if it cannot: what `plan` checks before
 *  any box is made, so that `up` does not fail after booting. */
export function checkSecretSource(name: string, source: { env: string } | { file: string }): string | undefined {
  const r = sourceValue(name, source);
  return 'problem' in r ? r.problem : undefined;
}

function sourceValue(name: string, src: { env: string } | { file: string }): { value: string } | { problem: string } {
  let v: string;
  if ('env' in src) {
    v = process.env[src.env] ?? '';
    if (!v) return { problem: `secret ${name} comes from the environment variable ${src.env}, which is not set here: set it in the environment of this command and run it again` };
  } else {
    try {
      v = readSecretFile(src.file, (why) => new SecretMissingError(`secret ${name} comes from the file ${src.file}, which ${why}: fix the file and run this again`));
    } catch (e) {
      return { problem: (e as Error).message };
    }
  }
  // It goes into header lines: a line break in it would write headers of its own.
  if (/[\0\r\n]/.test(v)) return { problem: `secret ${name} holds a line break or NUL byte, which cannot go into a request header: remove it` };
  return { value: v };
}

const SECRET_FILE_MAX = 64 * 1024;

/** A secret's file: a regular file (a FIFO or a device would hold the start for ever, or read without end),
 *  opened without waiting, of at most 64 KiB; its last newline is not part of the value. */
function readSecretFile(file: string, bad: (why: string) => Error): string {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    throw bad(`cannot be opened (${(e as NodeJS.ErrnoException).code})`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw bad(`is not a regular file (${st.isFIFO() ? 'a FIFO' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : st.isDirectory() ? 'a folder' : 'a special file'})`);
    if (st.size > SECRET_FILE_MAX) throw bad(`is larger than a secret can be (${st.size} bytes, at most ${SECRET_FILE_MAX})`);
    const buf = Buffer.alloc(st.size);
    const v = buf.subarray(0, fs.readSync(fd, buf, 0, st.size, 0)).toString('utf8').replace(/\r?\n$/, '');
    if (!v) throw bad('is empty');
    return v;
  } finally {
    fs.closeSync(fd);
  }
}

/** The box's CA (made with the box, or at its first start with secrets): key on the host only, 0600 in its folder. */
export function boxCa(dir: string, id: string): BoxCa & { name: string } {
  const key = path.join(dir, 'ca.key');
  const cert = path.join(dir, 'ca.crt');
  const name = `${CA_NAME} (${id})`;
  if (!fs.existsSync(key) || !fs.existsSync(cert)) {
    const ca = makeBoxCa(id);
    fs.writeFileSync(key, ca.keyPem, { mode: 0o600 });
    fs.writeFileSync(cert, ca.certPem, { mode: 0o644 });
  }
  return { keyPem: fs.readFileSync(key, 'utf8'), certPem: fs.readFileSync(cert, 'utf8'), name };
}

export function gatewaySettings(dir: string, rec: BoxRecord): GatewaySettings {
  const policy = rec.options.egress ?? { allow: [], deny: [] };
  if (!rec.options.secrets?.length) return { policy };
  return { policy, secrets: secretValues(rec), ca: boxCa(dir, rec.id) };
}

/** Where the guest finds the box's CA: alone (for node) and after the image's own roots (for OpenSSL, Python). */
export const GUEST_CA = '/etc/boxlite/ca.crt';
export const GUEST_BUNDLE = '/etc/boxlite/ca-bundle.crt';

/** What a command in a box with secrets has in its environment: placeholders, and where the CA is. */
export function secretEnv(rec: BoxRecord): Record<string, string> {
  if (!rec.options.secrets?.length) return {};
  const env: Record<string, string> = { NODE_EXTRA_CA_CERTS: GUEST_CA, SSL_CERT_FILE: GUEST_BUNDLE, REQUESTS_CA_BUNDLE: GUEST_BUNDLE, CURL_CA_BUNDLE: GUEST_BUNDLE };
  for (const s of rec.options.secrets) env[s.name] = s.placeholder;
  return env;
}

/** Run in the guest as root after each start, with the CA's certificate on stdin. */
export const INSTALL_CA = [
  BUSYBOX, 'sh', '-c',
  `B=${BUSYBOX}; $B mkdir -p /etc/boxlite && $B cat > ${GUEST_CA} && ` +
    `for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do [ -f "$f" ] && { $B cat "$f"; break; }; done > ${GUEST_BUNDLE}; ` +
    `$B cat ${GUEST_CA} >> ${GUEST_BUNDLE}`,
];
