// Files as tar: PUT unpacks an archive into a folder of the box, GET sends a file or folder of the box as one.
// An upload is read entry by entry before the box gets it: names that are absolute or climb with "..", and hard
// links that do, are refused (400) rather than left to the box to resolve, and the upload is bounded in size. A
// download is bounded too; its client unpacks it with the same safe extractor as `boxlite cp` (src/runtime/copy.ts).
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Runtime } from '../runtime/runtime.js';
import { extract as tarExtract, failEntry, pack as tarPack } from '../util/tar.js';
import { ApiError, badRequest } from './errors.js';
import { tooLarge, type Request } from './http.js';

/** A path in the box as a query gives it: absolute, no ".." component, no NUL. */
export function boxPath(q: URLSearchParams): string {
  const p = q.get('path');
  if (!p) throw badRequest('the query needs path=/a/path/in/the/box');
  if (!p.startsWith('/') || p.includes('\0') || p.length > 4096) throw badRequest(`path "${p}" must be an absolute path in the box`);
  if (p.split('/').includes('..')) throw badRequest(`path "${p}" may not hold ".." components: give the folder itself`);
  return p;
}

/** Whether a tar entry name stays below the folder it is unpacked in. */
export function entryNameOk(name: string): boolean {
  if (!name || name.startsWith('/') || name.includes('\0')) return false;
  return !name.split('/').includes('..');
}

class BadEntry extends Error {}

export async function putFiles(rt: Runtime, id: string, r: Request, limit: number): Promise<void> {
  const dest = boxPath(r.query);
  const declared = Number(r.req.headers['content-length'] ?? NaN);
  if (declared > limit) throw tooLarge(limit);
  const ct = String(r.req.headers['content-type'] ?? 'application/x-tar');
  if (!/^application\/(x-tar|octet-stream)\b/.test(ct)) throw badRequest(`the upload must be a tar archive (content-type application/x-tar), not ${ct}`);
  const ex = tarExtract();
  const out = tarPack();
  let size = 0;
  let entries = 0;
  r.req.on('data', (d: Buffer) => {
    size += d.length;
    if (size > limit) r.req.destroy(tooLarge(limit));
  });
  ex.on('entry', (h, stream, next) => {
    const name = h.name.replace(/^(\.\/)+/, '');
    if (name === '' || name === '.') {
      stream.resume();
      return next();
    }
    if (!entryNameOk(name)) return failEntry(stream, next, new BadEntry(`the archive's entry "${h.name}" leaves the destination folder (absolute, or "..")`));
    if (h.type === 'link' && !entryNameOk((h.linkname ?? '').replace(/^(\.\/)+/, ''))) return failEntry(stream, next, new BadEntry(`the archive's hard link "${h.name}" points outside the destination folder (${h.linkname})`));
    entries++;
    const w = out.entry({ ...h, name }, (err) => next(err ?? undefined));
    stream.pipe(w);
  });
  ex.on('finish', () => out.finalize());
  const upload = rt.uploadTar(id, dest, out as unknown as NodeJS.ReadableStream);
  try {
    await pipeline(r.req, ex);
  } catch (e) {
    // The box's side of the upload is cancelled (what came before the refused entry is already there).
    out.destroy(e as Error);
    await upload.catch(() => {});
    if (e instanceof BadEntry) throw badRequest(e.message);
    if (e instanceof ApiError) throw e;
    throw badRequest(`the upload is not a readable tar archive: ${(e as Error).message}`);
  }
  await upload;
  if (!entries) throw badRequest('the archive holds no files');
}

export async function getFiles(rt: Runtime, id: string, r: Request, limit: number): Promise<void> {
  const src = boxPath(r.query);
  const stream = (await rt.downloadTar(id, src)) as Readable;
  // The first bytes (or the error) decide the status: a missing path is a 404, not a broken 200.
  const first = await new Promise<Buffer | null>((resolve, reject) => {
    const onErr = (e: Error) => reject(e);
    stream.once('error', onErr);
    stream.once('readable', () => {
      stream.off('error', onErr);
      resolve(stream.read() as Buffer | null);
    });
  }).catch((e: Error) => {
    const m = e.message.replace(/^download of [^:]*: /, '');
    throw /no such file|ENOENT|not found/i.test(m) ? new ApiError(404, 'NotFoundError', `${src} does not exist in box ${id}`) : badRequest(`${src}: ${m}`);
  });
  r.res.writeHead(200, { 'content-type': 'application/x-tar' });
  let size = 0;
  const send = (d: Buffer) => {
    size += d.length;
    if (size > limit) {
      stream.destroy();
      r.res.destroy(); // a broken transfer: the client's tar reader sees it end short
      return true;
    }
    return r.res.write(d);
  };
  if (first && !send(first)) await new Promise((res) => r.res.once('drain', res));
  for await (const d of stream as AsyncIterable<Buffer>) if (!send(d)) await new Promise((res) => r.res.once('drain', res));
  r.res.end();
}
