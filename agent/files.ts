// Files service: tar streams in and out of the box, keeping modes, owners and symlinks.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';

/** Unpacks a tar stream under dest. Entry names may not leave dest. */
export async function untarInto(dest: string, input: Readable): Promise<void> {
  fs.mkdirSync(dest, { recursive: true });
  const root = path.resolve(dest);
  const extract = tar.extract();
  const dirModes: [string, number][] = [];
  extract.on('entry', (h, stream, next) => {
    const target = path.resolve(root, h.name);
    if (target !== root && !target.startsWith(root === '/' ? '/' : root + '/')) {
      stream.resume();
      return next(new Error(`tar entry ${h.name} points outside ${dest}`));
    }
    const finish = (err?: unknown) => {
      if (err) return next(err as Error);
      try {
        if (h.type !== 'symlink') {
          if (h.uid !== undefined && h.gid !== undefined) fs.chownSync(target, h.uid, h.gid);
        } else if (h.uid !== undefined && h.gid !== undefined) fs.lchownSync(target, h.uid, h.gid);
        if (h.type === 'file' && h.mode !== undefined) fs.chmodSync(target, h.mode & 0o7777);
      } catch {}
      next();
    };
    try {
      fs.mkdirSync(path.dirname(target), { recursive: true });
      switch (h.type) {
        case 'directory':
          fs.mkdirSync(target, { recursive: true });
          if (h.mode !== undefined) dirModes.push([target, h.mode & 0o7777]);
          stream.resume();
          return finish();
        case 'symlink':
          fs.rmSync(target, { force: true });
          fs.symlinkSync(h.linkname!, target);
          stream.resume();
          return finish();
        case 'link': {
          const src = path.resolve(root, h.linkname!);
          fs.rmSync(target, { force: true });
          fs.linkSync(src, target);
          stream.resume();
          return finish();
        }
        case 'file':
        case 'contiguous-file': {
          fs.rmSync(target, { force: true, recursive: false });
          const out = fs.createWriteStream(target, { mode: (h.mode ?? 0o644) & 0o7777 });
          pipeline(stream, out).then(() => finish(), finish);
          return;
        }
        default:
          stream.resume();
          return next();
      }
    } catch (e) {
      stream.resume();
      next(e as Error);
    }
  });
  await pipeline(input, extract);
  for (const [d, m] of dirModes.reverse()) fs.chmodSync(d, m);
}

/** A tar stream of src (a file or a directory tree); names are relative to src's parent. */
export function tarFrom(src: string): tar.Pack {
  const pack = tar.pack();
  const base = path.dirname(path.resolve(src));
  const walk = async (p: string) => {
    const st = fs.lstatSync(p);
    const name = path.relative(base, p) || path.basename(p);
    const common = { name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
    if (st.isDirectory()) {
      pack.entry({ ...common, type: 'directory' });
      for (const child of fs.readdirSync(p).sort()) await walk(path.join(p, child));
    } else if (st.isSymbolicLink()) {
      pack.entry({ ...common, type: 'symlink', linkname: fs.readlinkSync(p) });
    } else if (st.isFile()) {
      const entry = pack.entry({ ...common, type: 'file', size: st.size });
      await pipeline(fs.createReadStream(p), entry);
    }
  };
  fs.lstatSync(src); // fail early, with ENOENT, for a missing path
  walk(path.resolve(src)).then(() => pack.finalize(), (err) => pack.destroy(err));
  return pack;
}
