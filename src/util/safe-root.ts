// One way for a tar stream (or any list of names someone else wrote) to put files under a folder on the host:
// every name is resolved inside that root, component by component, without ever following a symlink out of it.
//   contain   a symlink met on the way is followed as if the root were / (what a container runtime does with
//             an image's layers: /lib -> usr/lib works, /x -> /etc lands in the root's own etc)
//   refuse    a symlink met on the way is an error (a copy out of a box, an archive: nothing legitimate needs it)
// The last component of a name is never followed: writing a file where a symlink stands replaces the symlink.
// Names with '..' are refused; a leading '/' is dropped. Nothing else may write under the root meanwhile (it is a
// staging folder of ours), so what is checked stays true until it is used.
import * as fs from 'node:fs';
import * as path from 'node:path';

export class UnsafeEntryError extends Error {}

export type SymlinkPolicy = 'contain' | 'refuse';

const MAX_HOPS = 40; // as the kernel's ELOOP

export interface Resolved {
  /** The canonical name inside the root ('' is the root itself). */
  rel: string;
  /** The host path. */
  abs: string;
}

export class SafeRoot {
  readonly root: string;

  constructor(root: string, readonly symlinks: SymlinkPolicy) {
    this.root = path.resolve(root);
  }

  /** An entry's name as a list of components: './' and a leading '/' dropped, '..' refused. */
  static components(name: string): string[] {
    const parts: string[] = [];
    for (const p of name.split('/')) {
      if (p === '' || p === '.') continue;
      if (p === '..') throw new UnsafeEntryError(`entry "${name}" climbs out of its root with ".."`);
      if (p.includes('\0')) throw new UnsafeEntryError(`entry "${name}" has a NUL byte in its name`);
      parts.push(p);
    }
    return parts;
  }

  private abs(rel: string): string {
    return rel === '' ? this.root : path.join(this.root, rel);
  }

  /** Resolves folder components from the root; a missing one is created when create is set (else: refused). A
   *  file where a folder is needed is replaced when create is set (a later layer's folder over a lower file). */
  private walk(parts: string[], name: string, create: boolean): string {
    let cur: string[] = [];
    let hops = 0;
    const todo = [...parts];
    while (todo.length) {
      const c = todo.shift()!;
      if (c === '' || c === '.') continue;
      if (c === '..') {
        cur.pop(); // a symlink's ".." stops at the root
        continue;
      }
      const next = this.abs([...cur, c].join('/'));
      const st = fs.lstatSync(next, { throwIfNoEntry: false });
      if (st?.isSymbolicLink()) {
        if (this.symlinks === 'refuse') throw new UnsafeEntryError(`entry "${name}" goes through the symlink ${[...cur, c].join('/')}`);
        if (++hops > MAX_HOPS) throw new UnsafeEntryError(`entry "${name}" goes through more than ${MAX_HOPS} symlinks`);
        const target = fs.readlinkSync(next);
        if (target.startsWith('/')) cur = [];
        todo.unshift(...target.split('/'));
        continue;
      }
      if (st && !st.isDirectory()) {
        if (!create) throw new UnsafeEntryError(`entry "${name}" needs ${[...cur, c].join('/')} to be a folder`);
        fs.rmSync(next, { force: true });
      }
      if (!st || !st.isDirectory()) {
        if (!create) throw new UnsafeEntryError(`entry "${name}" is under ${[...cur, c].join('/')}, which does not exist`);
        fs.mkdirSync(next, { mode: 0o755 });
      }
      cur.push(c);
    }
    return cur.join('/');
  }

  /** Where an entry goes: its parent folders resolved (and made, with create) inside the root; its own name not
   *  followed. The root itself for an empty name. */
  place(name: string, opts: { create?: boolean } = {}): Resolved {
    const parts = SafeRoot.components(name);
    if (parts.length === 0) return { rel: '', abs: this.root };
    const dir = this.walk(parts.slice(0, -1), name, !!opts.create);
    const rel = dir ? `${dir}/${parts.at(-1)}` : parts.at(-1)!;
    return { rel, abs: this.abs(rel) };
  }

  /** An existing entry, all of its components resolved inside the root (the last followed too: a hard link's
   *  target, a whiteout's folder). Throws when it does not exist. */
  existing(name: string, opts: { followLast?: boolean } = {}): Resolved {
    const parts = SafeRoot.components(name);
    const rel = opts.followLast ? this.walk(parts, name, false) : this.place(name).rel;
    const abs = this.abs(rel);
    if (!fs.lstatSync(abs, { throwIfNoEntry: false })) throw new UnsafeEntryError(`entry "${name}" names ${rel || '/'}, which does not exist`);
    return { rel, abs };
  }

  /** Removes whatever stands at a resolved place (a folder with all it holds); never follows a symlink. */
  remove(r: Resolved): boolean {
    if (r.rel === '') throw new UnsafeEntryError('the root itself cannot be removed');
    const st = fs.lstatSync(r.abs, { throwIfNoEntry: false });
    if (!st) return false;
    fs.rmSync(r.abs, { recursive: st.isDirectory(), force: true });
    return true;
  }

  /** A hard link at `at` to an existing regular file (or symlink) of the same root. */
  link(at: Resolved, targetName: string): Resolved {
    const target = this.existing(targetName);
    const st = fs.lstatSync(target.abs);
    if (st.isDirectory()) throw new UnsafeEntryError(`hard link ${at.rel} points at the folder ${target.rel}`);
    this.remove(at);
    fs.linkSync(target.abs, at.abs);
    return target;
  }
}
