// `boxlite cp`: files and folders between the host and a box, as tar streams through the agent's Files service.
// Like docker cp: copying onto an existing folder puts the source inside it, otherwise the copy takes the
// destination's name; modes and symlinks are kept. Files copied out belong to the user who runs boxlite, files
// copied in belong to root in the box. What comes out of a box is the box's to choose, so it is unpacked as
// untrusted (see untar).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { SafeRoot, UnsafeEntryError } from '../util/safe-root.js';
import { extract as tarExtract, failEntry } from '../util/tar.js';
import { ExecError } from '../core/errors.js';
import { BUSYBOX } from '../core/guest.js';
import { downloadTar, execIn, uploadTar } from './exec.js';
import type { RuntimeContext } from './context.js';

/** Where a copy goes or comes from: a box of this runtime, or one a server holds (src/client). */
export interface CopyTarget {
  name: string;
  isDir(p: string): Promise<boolean>;
  upload(destDir: string, tar: NodeJS.ReadableStream): Promise<void>;
  download(p: string): Promise<Readable>;
}

function localTarget(ctx: RuntimeContext, id: string): CopyTarget {
  return {
    name: ctx.records.get(id).name,
    isDir: async (p) => (await execIn(ctx, id, [BUSYBOX, 'test', '-d', p])).exitCode === 0,
    upload: (d, t) => uploadTar(ctx, id, d, t),
    download: async (p) => (await downloadTar(ctx, id, p)) as Readable,
  };
}

/** Copies a host file or folder into the box at boxPath. */
export function copyIn(ctx: RuntimeContext, id: string, hostPath: string, boxPath: string): Promise<void> {
  return copyInto(localTarget(ctx, id), hostPath, boxPath);
}

/** Copies a host file or folder to boxPath of a target: into it when it is a folder there, else as that name. */
export async function copyInto(box: CopyTarget, hostPath: string, boxPath: string): Promise<void> {
  const src = path.resolve(hostPath);
  if (!fs.existsSync(src) && !fs.lstatSync(src, { throwIfNoEntry: false })) throw new ExecError(`cp: ${hostPath} does not exist on the host`);
  const into = await box.isDir(boxPath);
  const destDir = into ? boxPath : path.posix.dirname(boxPath);
  const name = into ? path.basename(src) : path.posix.basename(boxPath);
  if (!into && !(await box.isDir(destDir))) throw new ExecError(`cp: folder ${destDir} does not exist in box ${box.name}`);
  // GNU tar renames the top entry to the destination's name; owners become root, as with docker cp.
  const tarProc = spawn('tar', ['-C', path.dirname(src), '--numeric-owner', '--owner=0', '--group=0', `--transform=s|^${sedPattern(path.basename(src))}|${sedReplacement(name)}|`, '-cf', '-', path.basename(src)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  tarProc.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number>((r) => tarProc.on('close', (c) => r(c ?? 1)));
  await box.upload(destDir, tarProc.stdout);
  if ((await exited) !== 0) throw new ExecError(`cp: reading ${hostPath} failed: ${err.trim()}`);
}

// A name in tar's sed transform: regex characters are escaped in the pattern only (in the replacement a '\.' would
// stay a backslash and a dot: a copy of a.txt into a folder arrived as a\.txt).
const sedPattern = (s: string) => s.replace(/[\\|&]/g, '\\$&').replace(/[.*[\]^$]/g, '\\$&');
const sedReplacement = (s: string) => s.replace(/[\\|&]/g, '\\$&');

/** Copies a file or folder of the box to hostPath. */
export function copyOut(ctx: RuntimeContext, id: string, boxPath: string, hostPath: string): Promise<void> {
  return copyFrom(localTarget(ctx, id), boxPath, hostPath);
}

/** Copies a file or folder of a target to hostPath, unpacked as untrusted (see untar). */
export async function copyFrom(box: CopyTarget, boxPath: string, hostPath: string): Promise<void> {
  const dest = path.resolve(hostPath);
  const st = fs.statSync(dest, { throwIfNoEntry: false });
  const into = !!st?.isDirectory();
  const parent = into ? dest : path.dirname(dest);
  if (!fs.existsSync(parent)) throw new ExecError(`cp: folder ${parent} does not exist on the host`);
  const name = into ? path.posix.basename(boxPath.replace(/\/+$/, '')) : path.basename(dest);
  // Unpacked beside the destination first, then renamed into place: an interrupted copy leaves no half file.
  const stage = fs.mkdtempSync(path.join(parent, '.boxlite-cp-'));
  try {
    let stream: Readable;
    try {
      stream = await box.download(boxPath);
    } catch (e) {
      throw new ExecError(`cp: ${boxPath} in box ${box.name}: ${(e as Error).message}`);
    }
    const top = await untar(stream, stage).catch((e) => {
      throw new ExecError(`cp: ${boxPath} in box ${box.name}: ${(e as Error).message.replace(/^download of [^:]*: /, '')}`);
    });
    if (!top) throw new ExecError(`cp: ${boxPath} in box ${box.name} gave nothing to copy`);
    const target = path.join(parent, name);
    const there = fs.lstatSync(target, { throwIfNoEntry: false });
    const incomingDir = fs.lstatSync(path.join(stage, top)).isDirectory();
    // As docker cp: a folder merges into a folder, a file replaces a file; nothing on the host is ever removed to
    // make room (the box chose what its path is, and a file named like a host folder must not empty it).
    if (there?.isDirectory() && !incomingDir) throw new ExecError(`cp: ${target} is a folder on the host and ${boxPath} in box ${box.name} is not: nothing was copied; choose another destination`);
    if (there && !there.isDirectory() && incomingDir) throw new ExecError(`cp: ${target} is a file on the host and ${boxPath} in box ${box.name} is a folder: nothing was copied; choose another destination`);
    if (there?.isDirectory()) {
      try {
        fs.cpSync(path.join(stage, top), target, { recursive: true, force: true, verbatimSymlinks: true });
      } catch (e) {
        throw new ExecError(`cp: cannot merge ${boxPath} of box ${box.name} into ${target}: ${(e as Error).message}`);
      }
    } else fs.renameSync(path.join(stage, top), target); // over a file or a symlink: replaces that entry alone
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

/** Unpacks what the box sent: files, folders, symlinks and hard links between its own files, each inside root
 *  (a symlink the stream made is never followed, every entry under one top-level name). Modes lose their setuid,
 *  setgid and sticky bits and device nodes and fifos are left out, as docker cp does for a user: the box's files
 *  must not become privileges on the host. Returns the top-level name. */
async function untar(input: Readable, dir: string): Promise<string | null> {
  const root = new SafeRoot(dir, 'refuse');
  const extract = tarExtract();
  let top: string | null = null;
  const dirModes: [string, number][] = [];
  extract.on('entry', (h, stream, next) => {
    const skip = () => {
      stream.on('end', () => next());
      stream.resume();
    };
    try {
      const first = SafeRoot.components(h.name)[0];
      if (first === undefined) return skip(); // the stream's "./": nothing to make
      top ??= first;
      if (first !== top) throw new UnsafeEntryError(`entry "${h.name}" is outside ${top}, the folder being copied`);
      const at = root.place(h.name, { create: true });
      const mode = (h.mode ?? 0o644) & 0o777;
      switch (h.type) {
        case 'directory':
          if (!fs.lstatSync(at.abs, { throwIfNoEntry: false })?.isDirectory()) {
            root.remove(at);
            fs.mkdirSync(at.abs, { mode: 0o700 });
          }
          dirModes.push([h.name, mode]);
          return skip();
        case 'symlink':
          root.remove(at);
          fs.symlinkSync(h.linkname ?? '', at.abs);
          return skip();
        case 'link':
          root.link(at, h.linkname ?? '');
          return skip();
        case 'file':
        case 'contiguous-file':
          root.remove(at);
          pipeline(stream, fs.createWriteStream(at.abs, { flags: 'wx', mode: 0o600 })).then(() => (fs.chmodSync(at.abs, mode), next()), next);
          return;
        default:
          return skip(); // devices, fifos: not made on the host
      }
    } catch (e) {
      failEntry(stream, next, e as Error);
    }
  });
  await pipeline(input, extract);
  // Folders last: a read-only one would refuse its files. Found again through the root (a later entry may have put
  // a symlink where the folder or one of its parents was) and changed through a descriptor that is the folder.
  for (const [name, m] of dirModes.reverse()) {
    let fd: number;
    try {
      fd = fs.openSync(root.place(name, { create: false }).abs, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
    } catch {
      continue; // no longer a folder, or no longer reached without a symlink
    }
    try {
      fs.fchmodSync(fd, m);
    } finally {
      fs.closeSync(fd);
    }
  }
  return top;
}
