// The tar parser every extraction uses (tar-stream), with one fix: tar-stream decodes PAX values as UTF-8, which
// mangles binary xattrs (security.capability). xattr values are kept as latin1 so every byte survives;
// Buffer.from(v, 'latin1') gets them back.
import * as path from 'node:path';
import { createRequire } from 'node:module';
import type * as tarStream from 'tar-stream';

/** tar-stream, loaded (and patched) at the first extraction or pack: a CLI that moves no tar never loads it. */
let lib: typeof tarStream | null = null;
function tarLib(): typeof tarStream {
  if (lib) return lib;
  const require = createRequire(import.meta.url);
  lib = require('tar-stream') as typeof tarStream;
  const headers = require(path.join(path.dirname(require.resolve('tar-stream')), 'headers.js'));
  if (!headers.__boxlitePatched) {
    headers.decodePax = (buf: Buffer) => {
      const result: Record<string, string> = {};
      while (buf.length) {
        let i = 0;
        while (i < buf.length && buf[i] !== 32) i++;
        const len = parseInt(buf.subarray(0, i).toString(), 10);
        if (!len) return result;
        const rec = buf.subarray(i + 1, len - 1);
        const eq = rec.indexOf(61);
        if (eq === -1) return result;
        const key = rec.subarray(0, eq).toString('utf8');
        result[key] = rec.subarray(eq + 1).toString(key.startsWith('SCHILY.xattr.') ? 'latin1' : 'utf8');
        buf = buf.subarray(len);
      }
      return result;
    };
    headers.__boxlitePatched = true;
  }
  return lib;
}

export const extract: typeof tarStream.extract = (opts) => tarLib().extract(opts);
export const pack: typeof tarStream.pack = (opts) => tarLib().pack(opts);
export type Header = tarStream.Header;

/** What an xattr name may be: a known namespace and a plain name. Anything else (spaces, quotes, newlines) is
 *  refused: names end up in commands other tools parse. */
const XATTR_NAME = /^(user|trusted|security|system)\.[A-Za-z0-9._@+-]{1,200}$/;

export class BadXattrError extends Error {}

/** The xattrs of an entry, from its PAX header, with their bytes intact; a malformed name is refused. */
export function xattrsOf(h: tarStream.Header): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries((h.pax ?? {}) as Record<string, string>)) {
    if (!k.startsWith('SCHILY.xattr.')) continue;
    const name = k.slice(13);
    if (!XATTR_NAME.test(name)) throw new BadXattrError(`entry "${h.name}" has an xattr with a malformed name ${JSON.stringify(name)}`);
    out[name] = Buffer.from(v, 'latin1');
  }
  return out;
}

/** Ends the extraction at an entry with an error. The entry's own stream is destroyed with the extractor and
 *  emits the same error: it is listened to here, so the error is reported once (by the pipeline), never as a
 *  crash of the process. */
export function failEntry(stream: { on(e: 'error', f: () => void): unknown; resume(): unknown }, next: (err?: Error) => void, err: Error): void {
  stream.on('error', () => {});
  stream.resume();
  next(err);
}
