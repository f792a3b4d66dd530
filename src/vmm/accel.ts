// Picks the accelerator. KVM only when /dev/kvm can run a normal guest kernel: on hosts whose KVM is kvm_pvm
// (pagetable-based nested virtualization) a stock kernel hangs at boot, so those run under TCG.
import * as fs from 'node:fs';

export type AccelRequest = 'auto' | 'kvm' | 'tcg';
export interface AccelChoice { accel: 'kvm' | 'tcg'; reason: string }

export interface HostProbe {
  kvmDevice: 'rw' | 'no-access' | 'missing';
  pvm: boolean;
  cpuVirtFlags: boolean;
}

export function probeHost(): HostProbe {
  let kvmDevice: HostProbe['kvmDevice'] = 'missing';
  if (fs.existsSync('/dev/kvm')) {
    try {
      fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
      kvmDevice = 'rw';
    } catch {
      kvmDevice = 'no-access';
    }
  }
  let cpuinfo = '';
  try {
    cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  } catch {}
  return {
    kvmDevice,
    pvm: fs.existsSync('/sys/module/kvm_pvm'),
    cpuVirtFlags: /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo),
  };
}

/** Pure decision, so it can be tested for hosts we do not have. */
export function chooseAccel(req: AccelRequest, probe: HostProbe): AccelChoice {
  let kvmProblem: string | null = null;
  if (probe.kvmDevice === 'missing') kvmProblem = '/dev/kvm does not exist';
  else if (probe.kvmDevice === 'no-access') kvmProblem = 'no read/write access to /dev/kvm (add yourself to the kvm group)';
  else if (probe.pvm) kvmProblem = 'kvm_pvm detected: this /dev/kvm cannot run a normal guest kernel';
  else if (!probe.cpuVirtFlags) kvmProblem = 'the CPU shows no vmx/svm flag';
  if (req === 'tcg') return { accel: 'tcg', reason: 'software emulation requested' };
  if (!kvmProblem) return { accel: 'kvm', reason: '/dev/kvm is usable' };
  if (req === 'kvm') throw new Error(`accelerator kvm requested but ${kvmProblem}; use --accel auto or tcg`);
  return { accel: 'tcg', reason: kvmProblem };
}

export function parseAccel(v: string | undefined): AccelRequest {
  const a = (v ?? 'auto').toLowerCase();
  if (a !== 'auto' && a !== 'kvm' && a !== 'tcg') throw new Error(`accelerator "${v}" is not one of auto, kvm, tcg (BOXLITE_ACCEL or --accel)`);
  return a;
}

let said = false;
/** Says once per process that boxes run under software emulation, and why. */
export function noteAccel(choice: AccelChoice, say: (m: string) => void): void {
  if (choice.accel === 'tcg' && !said) {
    said = true;
    say(`boxlite: boxes run under software emulation (TCG): ${choice.reason}`);
  }
}

/**
 * Kernel arguments a TCG guest needs. Under TCG the guest's TSC ticks at the host's TSC rate; when the host is
 * busy the guest's own calibration against the PIT can fail, after which the kernel spins forever in timer
 * calibration before init. Giving it the frequency skips the measurement.
 */
export function tcgKernelArgs(cpuinfo = readCpuinfo()): string[] {
  if (!/\bconstant_tsc\b/.test(cpuinfo)) return [];
  const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo);
  if (!m) return [];
  return [`tsc_early_khz=${Math.round(Number(m[1]) * 1000)}`];
}

function readCpuinfo(): string {
  try {
    return fs.readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}

/** The size of TCG's translation cache (MiB). QEMU's own default (1 GiB) lets an idle box keep ~150 MiB of
 *  translated code resident; BOXLITE_TCG_CACHE_MIB overrides the default chosen by measurement (see README). */
export function tcgCacheMib(): number {
  const v = Number(process.env.BOXLITE_TCG_CACHE_MIB);
  return Number.isInteger(v) && v >= 8 ? v : DEFAULT_TCG_CACHE_MIB;
}
const DEFAULT_TCG_CACHE_MIB = 64; // measured: as fast as 1 GiB to boot and exec; 32 MiB thrashes (cold start 1.2×, a warm first exec 1.7× slower)
