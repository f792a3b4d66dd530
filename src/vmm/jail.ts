// The jailer: what stands between a box's VMM and the host, on by default. A guest that breaks out of its VM lands
// in a QEMU process that
//   - runs as a uid of its own box (when boxlite runs as root; setpriv drops every capability and group),
//   - has no_new_privs and QEMU's own seccomp filter (-sandbox: no obsolete calls, no privilege changes, no
//     process spawning, no resource control),
//   - sees a file system of its own (bubblewrap): /usr read-only, a minimal /dev, and at their own paths only the
//     files its box needs — the guest assets and the disk chain below its disk read-only, its disk, its volumes and
//     its run folder read-write; in new pid, ipc, uts, cgroup and network namespaces (its NICs are Unix sockets
//     to the box's network guard),
//   - has rlimits: open files, processes (per box uid), file size sized to the box's disks, no core dumps.
// BOXLITE_JAIL=off (or the runtime's jail: false) turns it off for hosts that cannot run it.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const BWRAP = '/usr/bin/bwrap';
export const SETPRIV = '/usr/bin/setpriv';
export const PRLIMIT = '/usr/bin/prlimit';

/** QEMU's own seccomp sandbox (QEMU 7.2). spawn=deny also forbids exec: migrations (saveState) use a socket. */
export const QEMU_SANDBOX = 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny';

/** The uids boxes get when boxlite runs as root: far above login users and the usual subuid ranges. */
export const JAIL_UID_BASE = 1_900_000_000;
export const JAIL_UIDS = 65_536;

export interface JailIdentity {
  uid: number;
  gid: number;
}

export interface JailSpec {
  /** Drop to this uid/gid (root callers); absent: stay the caller's uid. */
  as?: JailIdentity;
  /** Files or folders bound at their own path, read-only and read-write. */
  ro: string[];
  rw: string[];
  /** Device nodes bound in (/dev/kvm). */
  devices: string[];
  /** Resource limits. nproc counts every process of the uid: set only for a uid of the box's own. */
  limits: { nofile: number; fsizeBytes: number; nproc?: number };
  /** The folder QEMU starts in (its run folder). */
  cwd: string;
}

export interface JailProbe {
  /** Why the jail cannot run here; null when it can. */
  problem: string | null;
  root: boolean;
}

export function probeJail(): JailProbe {
  const root = process.getuid?.() === 0;
  const missing = [BWRAP, SETPRIV, PRLIMIT].filter((f) => !fs.existsSync(f));
  if (missing.length) {
    return { root, problem: `${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} missing: run 'boxlite setup' (Debian packages bubblewrap, util-linux)` };
  }
  return { root, problem: null };
}

/** Whether the jail is asked for: BOXLITE_JAIL=off opts out. */
export function jailWanted(env = process.env.BOXLITE_JAIL): boolean {
  const v = (env ?? 'on').toLowerCase();
  if (!['on', 'off', '1', '0', 'true', 'false'].includes(v)) throw new Error(`BOXLITE_JAIL must be on or off (got "${env}")`);
  return v === 'on' || v === '1' || v === 'true';
}

/** Every folder above p, outermost first (bwrap makes them in the jail's own root). */
function ancestors(p: string): string[] {
  const out: string[] = [];
  for (let d = path.dirname(p); d !== '/'; d = path.dirname(d)) out.unshift(d);
  return out;
}

/** The command line that runs cmd inside the jail (pure: for tests and for `inspect`). */
export function jailArgv(spec: JailSpec, cmd: string[], opts: { vmm?: boolean } = { vmm: true }): string[] {
  const limits = [`--nofile=${spec.limits.nofile}:${spec.limits.nofile}`, `--fsize=${spec.limits.fsizeBytes}:${spec.limits.fsizeBytes}`, '--core=0:0'];
  if (spec.limits.nproc) limits.push(`--nproc=${spec.limits.nproc}:${spec.limits.nproc}`);
  const b: string[] = [
    // QEMU is pid 1 of its own pid namespace; bwrap reports its pid as the host sees it on fd 3 (the supervisor
    // sends that to vm/jail.json), since the pidfile QEMU writes holds its pid in the namespace.
    '--unshare-pid', ...(opts.vmm ? ['--as-pid-1', '--json-status-fd', '3'] : []), '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try', '--unshare-net',
    '--die-with-parent', '--new-session',
    '--ro-bind', '/usr', '/usr',
  ];
  // Debian's merged /usr: /lib, /bin … are symlinks into it; elsewhere they are folders of their own.
  for (const top of ['/lib', '/lib64', '/bin', '/sbin']) {
    const st = fs.lstatSync(top, { throwIfNoEntry: false });
    if (st?.isSymbolicLink()) b.push('--symlink', fs.readlinkSync(top), top);
    else if (st?.isDirectory()) b.push('--ro-bind', top, top);
  }
  b.push('--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp');
  for (const d of spec.devices) b.push('--dev-bind', d, d);
  // Parents are made traversable (bwrap would make them 0700, closed to the box's uid); the binds come after.
  const made = new Set<string>(['/usr', '/dev', '/proc', '/tmp']);
  for (const p of [...spec.ro, ...spec.rw, spec.cwd]) {
    for (const a of ancestors(p)) {
      if (made.has(a)) continue;
      made.add(a);
      b.push('--perms', '0755', '--dir', a);
    }
  }
  for (const p of spec.ro) b.push('--ro-bind', p, p);
  for (const p of spec.rw) b.push('--bind', p, p);
  b.push('--chdir', spec.cwd);
  const drop = spec.as
    ? [SETPRIV, `--reuid=${spec.as.uid}`, `--regid=${spec.as.gid}`, '--clear-groups', '--no-new-privs', '--inh-caps=-all', '--bounding-set=-all', '--']
    : [SETPRIV, '--no-new-privs', '--']; // bwrap run by a user already has no capabilities to give
  return [PRLIMIT, ...limits, '--', BWRAP, ...b, '--', ...drop, ...cmd];
}

/** What `doctor` and `inspect` say about the jail. */
export function describeJail(wanted: boolean, probe: JailProbe): { on: boolean; detail: string } {
  if (!wanted) return { on: false, detail: "off (BOXLITE_JAIL=off): QEMU runs as you, sees every file you can, and has no seccomp filter or rlimits" };
  if (probe.problem) return { on: false, detail: `off: ${probe.problem}` };
  return {
    on: true,
    detail: `on: ${probe.root ? 'a uid of its own per box, ' : 'your uid, '}no capabilities, no_new_privs, QEMU seccomp sandbox, a private file system view (bubblewrap), own pid/ipc/uts namespaces, rlimits`,
  };
}
