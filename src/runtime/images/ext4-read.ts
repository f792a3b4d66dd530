// Reading an ext4 file system image without mounting it (no root needed): its tree, inodes, file contents and
// xattrs, through debugfs in batches (one process per batch of commands, which it echoes before each output).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../../util/exec.js';
import { ImageError } from '../../core/errors.js';

const DEBUGFS = '/usr/sbin/debugfs';

export interface TreeEntry {
  ino: number;
  /** st_mode: type bits and permissions. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
}

export interface InodeInfo {
  ctime: string;
  mtime: number;
  xattrs: string[];
  major?: number;
  minor?: number;
  /** A symlink's target when the inode holds it (a fast link). */
  fastLink?: string;
}

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

/** debugfs names a path in quotes; a name with a quote or newline cannot be named to it and is refused. */
function spec(p: string): string {
  if (/["\n\\]/.test(p)) throw new ImageError(`cannot read "${p}" from the box's disk: its name holds a quote, backslash or newline`);
  return `"${p}"`;
}

/** Runs commands in one debugfs and returns each command's output, in order. */
async function batch(image: string, commands: string[], scratch: string): Promise<string[]> {
  if (!commands.length) return [];
  const script = path.join(scratch, `debugfs-${process.pid}-${Math.random().toString(36).slice(2)}.cmds`);
  fs.writeFileSync(script, commands.join('\n') + '\n');
  try {
    const out = await run('sh', ['-c', `${DEBUGFS} -f "$1" "$2" 2>&1`, 'sh', script, image]);
    const parts = out.split(/^debugfs: /m).slice(1);
    if (parts.length !== commands.length) throw new ImageError(`debugfs answered ${parts.length} of ${commands.length} commands on ${image}: ${out.slice(0, 300)}`);
    return parts.map((p) => p.slice(p.indexOf('\n') + 1));
  } finally {
    fs.rmSync(script, { force: true });
  }
}

/** Every entry of the file system by path ("etc/passwd"; the root is ""), lost+found left out. */
export async function readTree(image: string, scratch: string): Promise<Map<string, TreeEntry>> {
  const tree = new Map<string, TreeEntry>();
  let dirs = [''];
  while (dirs.length) {
    const outs = await batch(image, dirs.map((d) => `ls -p ${spec(`/${d}`)}`), scratch);
    const next: string[] = [];
    outs.forEach((out, i) => {
      for (const line of out.split('\n')) {
        // /inode/mode/uid/gid/name/size/ — a name cannot hold '/'.
        const m = /^\/(\d+)\/([0-7]+)\/(\d+)\/(\d+)\/(.*)\/(\d*)\/$/.exec(line);
        if (!m || m[5] === '.' || m[5] === '..') continue;
        const rel = dirs[i] ? `${dirs[i]}/${m[5]}` : m[5];
        if (rel === 'lost+found') continue;
        const e = { ino: Number(m[1]), mode: parseInt(m[2], 8), uid: Number(m[3]), gid: Number(m[4]), size: Number(m[6] || 0) };
        tree.set(rel, e);
        if ((e.mode & S_IFMT) === S_IFDIR) next.push(rel);
      }
    });
    dirs = next;
  }
  return tree;
}

function parseStat(out: string): InodeInfo {
  const ctime = /^\s*ctime: (0x[0-9a-f]+:[0-9a-f]+)/m.exec(out)?.[1] ?? '';
  const mtime = parseInt(/^\s*mtime: 0x([0-9a-f]+)/m.exec(out)?.[1] ?? '0', 16);
  const xattrs: string[] = [];
  const ea = /^Extended attributes:\n((?: {2}.*\n?)*)/m.exec(out);
  if (ea) for (const l of ea[1].split('\n')) {
    const n = /^ {2}(\S+) \(\d+\)/.exec(l);
    if (n) xattrs.push(n[1]);
  }
  const dev = /^Device major\/minor number: ([0-9a-f]+):([0-9a-f]+)/m.exec(out);
  const link = /^Fast link dest: "(.*)"$/m.exec(out);
  return { ctime, mtime, xattrs, ...(dev ? { major: parseInt(dev[1], 10), minor: parseInt(dev[2], 10) } : {}), ...(link ? { fastLink: link[1] } : {}) };
}

/** The inode details of each inode number. */
export async function statInodes(image: string, inos: number[], scratch: string): Promise<Map<number, InodeInfo>> {
  const uniq = [...new Set(inos)];
  const out = new Map<number, InodeInfo>();
  for (let i = 0; i < uniq.length; i += 4000) {
    const part = uniq.slice(i, i + 4000);
    (await batch(image, part.map((n) => `stat <${n}>`), scratch)).forEach((o, j) => out.set(part[j], parseStat(o)));
  }
  return out;
}

/** Copies inodes' contents into files (dest[i] for inos[i]). */
export async function dumpInodes(image: string, items: { ino: number; dest: string }[], scratch: string): Promise<void> {
  for (let i = 0; i < items.length; i += 2000) {
    const part = items.slice(i, i + 2000);
    const outs = await batch(image, part.map((x) => `dump <${x.ino}> ${spec(x.dest)}`), scratch);
    const bad = outs.find((o) => o.trim());
    if (bad) throw new ImageError(`cannot read a file from the box's disk: ${bad.trim()}`);
  }
}

/** An inode's xattr values, byte for byte. */
export async function readXattrs(image: string, ino: number, names: string[], scratch: string): Promise<Record<string, Buffer>> {
  const files = names.map((_, i) => path.join(scratch, `xattr-${ino}-${i}`));
  try {
    await batch(image, names.map((n, i) => `ea_get -f ${spec(files[i])} <${ino}> ${n}`), scratch);
    return Object.fromEntries(names.map((n, i) => [n, fs.readFileSync(files[i])]));
  } finally {
    for (const f of files) fs.rmSync(f, { force: true });
  }
}
