// A seccomp filter (classic BPF, as bubblewrap's --seccomp loads it) that refuses to give a file setuid or setgid
// bits: chmod/fchmod/fchmodat(2) with S_ISUID|S_ISGID in the mode, and creating a file, folder or node with them
// (open/openat/creat with O_CREAT or O_TMPFILE, mkdir, mknod). The file sharing helper runs under it, so a box's
// root cannot plant a setuid binary in a host folder it was given; every other call is allowed (virtiofsd keeps
// its own, stricter filter on top). x86_64 only, as the boxes are; calls through any other ABI are refused.
//
// Run by a user, virtiofsd is root of a user namespace where setgroups(2) is forbidden (an unprivileged process can
// map its gid only so), and it quits when it cannot drop the supplementary groups every login session has. With
// `groupsKept`, setgroups(0, NULL) — "drop them all" — succeeds without doing anything: the helper keeps the
// user's groups, so a box sees a shared folder as the user would, through their groups too.
const AUDIT_ARCH_X86_64 = 0xc000003e;
const SECCOMP_RET_ALLOW = 0x7fff0000;
const SECCOMP_RET_ERRNO = 0x00050000;
const EPERM = 1;
const ENOSYS = 38;
const X32_SYSCALL_BIT = 0x40000000;
const SUID_SGID = 0o6000;
const O_CREAT = 0o100;
const O_TMPFILE = 0o20000000; // without O_DIRECTORY's bit: either one means "creates"

// BPF opcodes (linux/filter.h)
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JSET_K = 0x45;
const JGE_K = 0x35;
const RET_K = 0x06;

interface Rule {
  nr: number;
  /** The argument holding the mode. */
  mode: number;
  /** The argument holding open flags: the mode only matters when they create. */
  flags?: number;
}

/** x86_64 syscall numbers. */
const RULES: Rule[] = [
  { nr: 90, mode: 1 }, // chmod(path, mode)
  { nr: 91, mode: 1 }, // fchmod(fd, mode)
  { nr: 268, mode: 2 }, // fchmodat(dirfd, path, mode, flags)
  { nr: 452, mode: 2 }, // fchmodat2(dirfd, path, mode, flags)
  { nr: 2, flags: 1, mode: 2 }, // open(path, flags, mode)
  { nr: 257, flags: 2, mode: 3 }, // openat(dirfd, path, flags, mode)
  { nr: 85, mode: 1 }, // creat(path, mode)
  { nr: 83, mode: 1 }, // mkdir(path, mode)
  { nr: 258, mode: 2 }, // mkdirat(dirfd, path, mode)
  { nr: 133, mode: 1 }, // mknod(path, mode, dev)
  { nr: 259, mode: 2 }, // mknodat(dirfd, path, mode, dev)
];
const SETGROUPS = 116;

/** openat2 hides its mode in a struct the filter cannot read: refused as unknown, and libc falls back to openat. */
const OPENAT2 = 437;

const NR = 0;
const ARCH = 4;
const arg = (i: number) => 16 + 8 * i; // the low 32 bits of args[i] (little endian): mode and flags fit in them

type Insn = [code: number, jt: number, jf: number, k: number];

export function noSetuidFilter(opts: { groupsKept?: boolean } = {}): Buffer {
  const p: Insn[] = [];
  const allow: Insn = [RET_K, 0, 0, SECCOMP_RET_ALLOW];
  const deny: Insn = [RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM];
  // Another ABI (i386 through int 0x80, x32) numbers its calls differently and would slip past the rules: refused.
  p.push([LD_W_ABS, 0, 0, ARCH], [JEQ_K, 1, 0, AUDIT_ARCH_X86_64], deny, [LD_W_ABS, 0, 0, NR], [JGE_K, 0, 1, X32_SYSCALL_BIT], deny);
  p.push([JEQ_K, 0, 1, OPENAT2], [RET_K, 0, 0, SECCOMP_RET_ERRNO | ENOSYS]);
  // An errno of 0 is a success that never ran; any other setgroups goes on to the kernel (which refuses it).
  if (opts.groupsKept) p.push([JEQ_K, 0, 4, SETGROUPS], [LD_W_ABS, 0, 0, arg(0)], [JEQ_K, 0, 1, 0], [RET_K, 0, 0, SECCOMP_RET_ERRNO | 0], allow);
  for (const r of RULES) {
    // Not this call: on to the next rule. This call: decide here (nr is not needed again).
    const body: Insn[] = [];
    if (r.flags !== undefined) body.push([LD_W_ABS, 0, 0, arg(r.flags)], [JSET_K, 0, 3, O_CREAT | O_TMPFILE]);
    body.push([LD_W_ABS, 0, 0, arg(r.mode)], [JSET_K, 0, 1, SUID_SGID], deny, allow);
    p.push([JEQ_K, 0, body.length, r.nr], ...body);
  }
  p.push(allow);
  const out = Buffer.alloc(p.length * 8);
  p.forEach(([code, jt, jf, k], i) => {
    out.writeUInt16LE(code, i * 8);
    out.writeUInt8(jt, i * 8 + 2);
    out.writeUInt8(jf, i * 8 + 3);
    out.writeUInt32LE(k >>> 0, i * 8 + 4);
  });
  return out;
}
