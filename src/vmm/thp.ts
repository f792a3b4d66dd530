// Transparent huge pages for a VM under TCG. QEMU asks for them (MADV_HUGEPAGE) on the guest's RAM, so the host
// commits and zeroes 2 MiB for the first byte written in each 2 MiB region. Under KVM that shortens the guest's
// page walks; under TCG it only costs: a restore of a 192 MiB box cleared all 192 MiB to write its 112 MiB of
// state (0.4 s of a 0.5 s load), and a warm-started box held 158 MiB of its RAM resident rather than 115.
// Measured with and without, same run: warm start → first exec 1.5 s vs 1.05 s; 10 forks 11.8 s vs 10 s.
// The flag is set on the spawning process for the moment of the spawn: a child inherits it and keeps it across
// exec.
import { koffiLib } from '../util/koffi-lib.js';

const PR_SET_THP_DISABLE = 41;
const PR_GET_THP_DISABLE = 42;
type Prctl = (option: number, a: number, b: number, c: number, d: number) => number;
let prctl: Prctl | null | undefined;

function load(): Prctl | null {
  if (prctl === undefined) {
    try {
      prctl = koffiLib().load('libc.so.6').func('int prctl(int, unsigned long, unsigned long, unsigned long, unsigned long)') as Prctl;
    } catch {
      prctl = null; // huge pages cost time, not correctness: spawn as is
    }
  }
  return prctl;
}

/** Runs spawn (synchronous) so that the process it starts, and that process's children, get no huge pages. */
export function withoutHugePages<T>(spawn: () => T): T {
  const call = load();
  const before = call ? call(PR_GET_THP_DISABLE, 0, 0, 0, 0) : -1;
  const set = before === 0 && call!(PR_SET_THP_DISABLE, 1, 0, 0, 0) === 0;
  try {
    return spawn();
  } finally {
    if (set) call!(PR_SET_THP_DISABLE, 0, 0, 0, 0); // back to what this process had
  }
}
