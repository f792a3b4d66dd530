// A tar writer for image layers: ustar headers with PAX records for long names, large ids and xattrs. Written
// here rather than with tar-stream's packer because that one encodes PAX values as UTF-8 text, which would
// change binary xattr values (security.capability) — the reader side (util/tar.ts) keeps them as bytes.
import * as fs from 'node:fs';
import type { Writable } from 'node:stream';
import { once } from 'node:events';

export interface TarEntry {
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'link' | 'char' | 'block' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size?: number;
  linkname?: string;
  major?: number;
  minor?: number;
  xattrs?: Record<string, Buffer>;
  /** A file's content, read from this path. */
  source?: string;
}

const TYPEFLAG = { file: '0', link: '1', symlink: '2', char: '3', block: '4', directory: '5', fifo: '6' } as const;

function octal(buf: Buffer, off: number, len: number, n: number): void {
  buf.write(n.toString(8).padStart(len - 1, '0') + '\0', off, len, 'ascii');
}

function paxRecord(key: string, value: Buffer): Buffer {
  // "LEN key=value\n", where LEN counts itself.
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function header(name: string, e: Pick<TarEntry, 'mode' | 'uid' | 'gid' | 'mtime' | 'linkname' | 'major' | 'minor'>, flag: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name.slice(0, 100), 0, 100, 'utf8');
  octal(h, 100, 8, e.mode & 0o7777);
  octal(h, 108, 8, Math.min(e.uid, 0o7777777));
  octal(h, 116, 8, Math.min(e.gid, 0o7777777));
  octal(h, 124, 12, size);
  octal(h, 136, 12, Math.max(0, Math.floor(e.mtime)));
  h.write('        ', 148, 8, 'ascii');
  h.write(flag, 156, 1, 'ascii');
  if (e.linkname) h.write(e.linkname.slice(0, 100), 157, 100, 'utf8');
  h.write('ustar\u000000', 257, 8, 'binary');
  octal(h, 329, 8, e.major ?? 0);
  octal(h, 337, 8, e.minor ?? 0);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return h;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

async function write(out: Writable, b: Buffer): Promise<void> {
  if (!out.write(b)) await once(out, 'drain');
}

export async function writeEntry(out: Writable, e: TarEntry): Promise<void> {
  const name = e.type === 'directory' && !e.name.endsWith('/') ? `${e.name}/` : e.name;
  const size = e.type === 'file' ? (e.size ?? 0) : 0;
  const records: Buffer[] = [];
  if (Buffer.byteLength(name) > 100) records.push(paxRecord('path', Buffer.from(name)));
  if (e.linkname && Buffer.byteLength(e.linkname) > 100) records.push(paxRecord('linkpath', Buffer.from(e.linkname)));
  if (e.uid > 0o7777777) records.push(paxRecord('uid', Buffer.from(String(e.uid))));
  if (e.gid > 0o7777777) records.push(paxRecord('gid', Buffer.from(String(e.gid))));
  for (const [k, v] of Object.entries(e.xattrs ?? {})) records.push(paxRecord(`SCHILY.xattr.${k}`, v));
  if (records.length) {
    const body = Buffer.concat(records);
    await write(out, header('PaxHeader', { mode: 0o644, uid: 0, gid: 0, mtime: e.mtime }, 'x', body.length));
    await write(out, Buffer.concat([body, pad(body.length)]));
  }
  await write(out, header(name, e, TYPEFLAG[e.type], size));
  if (e.type !== 'file') return;
  let n = 0;
  if (e.source) {
    for await (const chunk of fs.createReadStream(e.source)) {
      n += (chunk as Buffer).length;
      await write(out, chunk as Buffer);
    }
  }
  if (n !== size) throw new Error(`${e.name} changed size while it was written into the layer (${size} → ${n} bytes)`);
  await write(out, pad(size));
}

export async function finish(out: Writable): Promise<void> {
  await write(out, Buffer.alloc(1024));
}
