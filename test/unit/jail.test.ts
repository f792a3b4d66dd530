// The jail's pure parts (its command line), and the seccomp filter that keeps setuid bits out of host folders,
// loaded by bubblewrap for real.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { BWRAP, jailArgv, jailWanted, QEMU_SANDBOX, type JailSpec } from '../../src/vmm/jail.js';
import { noSetuidFilter } from '../../src/vmm/seccomp.js';
import { qemuArgs } from '../../src/vmm/qemu.js';

const spec: JailSpec = {
  as: { uid: 1900000001, gid: 1900000001 },
  ro: ['/h/assets/vmlinuz', '/h/images/bases/b.ext4'],
  rw: ['/h/boxes/abc/vm', '/h/boxes/abc/disk.qcow2'],
  devices: [],
  limits: { nofile: 1024, fsizeBytes: 1 << 30, nproc: 256 },
  cwd: '/h/boxes/abc/vm',
};

describe('jail', () => {
  it('runs QEMU under rlimits, in bubblewrap, as the box uid with no capabilities and no_new_privs', () => {
    const a = jailArgv(spec, ['qemu-system-x86_64', '-m', '256']);
    const s = a.join(' ');
    expect(a[0]).toBe('/usr/bin/prlimit');
    expect(s).toContain('--nofile=1024:1024 --fsize=1073741824:1073741824 --core=0:0 --nproc=256:256 -- /usr/bin/bwrap');
    expect(s).toContain('--unshare-pid --as-pid-1 --json-status-fd 3 --unshare-ipc --unshare-uts --unshare-cgroup-try --unshare-net --die-with-parent');
    expect(s).toContain('--perms 0755 --dir /h --perms 0755 --dir /h/assets');
    expect(s).toContain('--ro-bind /h/assets/vmlinuz /h/assets/vmlinuz');
    expect(s).toContain('--bind /h/boxes/abc/disk.qcow2 /h/boxes/abc/disk.qcow2');
    expect(s).toContain('--chdir /h/boxes/abc/vm');
    expect(s).toMatch(/ -- \/usr\/bin\/setpriv --reuid=1900000001 --regid=1900000001 --clear-groups --no-new-privs --inh-caps=-all --bounding-set=-all -- qemu-system-x86_64 -m 256$/);
    // Run by a user: no uid to drop to, and no process limit (it would count every process of the user).
    const user = jailArgv({ ...spec, as: undefined, limits: { nofile: 1024, fsizeBytes: 1 << 30 } }, ['q']).join(' ');
    expect(user).not.toContain('--nproc');
    expect(user).toMatch(/-- \/usr\/bin\/setpriv --no-new-privs -- q$/);
  });

  it("gives a jailed QEMU its seccomp sandbox, and BOXLITE_JAIL only 'on' or 'off'", () => {
    const base = { dir: '/h/boxes/abc', cpus: 1, memoryMib: 256, kernel: '/k', initrd: '/i', cmdline: '', disks: [], agentPorts: 1, accel: 'tcg' as const };
    expect(qemuArgs({ ...base, jail: spec }).join(' ')).toContain(`-sandbox ${QEMU_SANDBOX}`);
    expect(qemuArgs(base).join(' ')).not.toContain('-sandbox');
    expect(jailWanted(undefined)).toBe(true);
    expect(jailWanted('off')).toBe(false);
    expect(() => jailWanted('maybe')).toThrow('BOXLITE_JAIL must be on or off (got "maybe")');
  });

  it('the file sharing filter refuses setuid and setgid bits, and nothing else', () => {
    expect(fs.existsSync(BWRAP)).toBe(true);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-seccomp-'));
    const filter = path.join(dir, 'filter.bpf');
    fs.writeFileSync(filter, noSetuidFilter());
    const script = [
      'cd "$1"',
      'touch f && chmod 640 f && echo chmod=ok',
      'chmod 4755 f 2>/dev/null || echo setuid=refused',
      'chmod g+s f 2>/dev/null || echo setgid=refused',
      'mkdir -m 2775 d 2>/dev/null || echo sgid-dir=refused',
      'mkdir e && echo mkdir=ok',
      'cat /etc/hostname >/dev/null && echo open=ok',
    ].join('; ');
    const fd = fs.openSync(filter, 'r');
    try {
      const r = spawnSync(BWRAP, ['--bind', '/', '/', '--dev', '/dev', '--seccomp', '3', 'sh', '-c', script, 'sh', dir], { stdio: ['ignore', 'pipe', 'pipe', fd] });
      expect(r.stdout.toString()).toBe('chmod=ok\nsetuid=refused\nsetgid=refused\nsgid-dir=refused\nmkdir=ok\nopen=ok\n');
    } finally {
      fs.closeSync(fd);
    }
    expect(fs.statSync(path.join(dir, 'f')).mode & 0o7777).toBe(0o640);
    execFileSync('rm', ['-rf', dir]);
  });

  it("the file sharing filter of a user's helper lets setgroups(0) succeed without dropping a group, and nothing more", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-seccomp-'));
    const probe = [
      'import ctypes, os',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'before = sorted(os.getgroups())',
      'r0 = libc.setgroups(0, None)',
      'arr = (ctypes.c_uint * 1)(4242)',
      'r1 = libc.setgroups(1, arr)',
      'print(r0, r1, sorted(os.getgroups()) == before, ctypes.get_errno())',
    ].join('\n');
    for (const [kept, want] of [[true, '0 -1 True 1'], [false, '-1 -1 True 1']] as const) {
      const filter = path.join(dir, `filter-${kept}.bpf`);
      fs.writeFileSync(filter, noSetuidFilter({ groupsKept: kept }));
      const fd = fs.openSync(filter, 'r');
      try {
        // As a user (nobody, with a supplementary group) in a user namespace: setgroups is forbidden there.
        const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--groups=100', '--', BWRAP, '--unshare-user', '--uid', '0', '--gid', '0', '--bind', '/', '/', '--dev', '/dev', '--seccomp', '3', 'python3', '-c', probe], { stdio: ['ignore', 'pipe', 'pipe', fd] });
        expect(r.stdout.toString().trim(), r.stderr.toString()).toBe(want);
      } finally {
        fs.closeSync(fd);
      }
    }
    execFileSync('rm', ['-rf', dir]);
  });
});
