import { describe, expect, it } from 'vitest';
import { chooseAccel, parseAccel, tcgKernelArgs, type HostProbe } from '../../src/vmm/accel.js';

const host = (p: Partial<HostProbe>): HostProbe => ({ kvmDevice: 'rw', pvm: false, cpuVirtFlags: true, ...p });

describe('accelerator choice', () => {
  const table: [string, 'auto' | 'kvm' | 'tcg', HostProbe, 'kvm' | 'tcg', RegExp][] = [
    ['real KVM', 'auto', host({}), 'kvm', /usable/],
    ['kvm_pvm loaded (these machines)', 'auto', host({ pvm: true, cpuVirtFlags: false }), 'tcg', /kvm_pvm detected/],
    ['no /dev/kvm', 'auto', host({ kvmDevice: 'missing' }), 'tcg', /does not exist/],
    ['no permission', 'auto', host({ kvmDevice: 'no-access' }), 'tcg', /kvm group/],
    ['no vmx/svm', 'auto', host({ cpuVirtFlags: false }), 'tcg', /vmx\/svm/],
    ['tcg asked for', 'tcg', host({}), 'tcg', /requested/],
    ['kvm asked for and usable', 'kvm', host({}), 'kvm', /usable/],
  ];
  for (const [what, req, probe, accel, reason] of table) {
    it(what, () => {
      const c = chooseAccel(req, probe);
      expect(c.accel).toBe(accel);
      expect(c.reason).toMatch(reason);
    });
  }
  it('refuses kvm when it cannot work, saying why and what to use', () => {
    expect(() => chooseAccel('kvm', host({ pvm: true }))).toThrow('accelerator kvm requested but kvm_pvm detected: this /dev/kvm cannot run a normal guest kernel; use --accel auto or tcg');
  });
  it('parses the setting', () => {
    expect(parseAccel(undefined)).toBe('auto');
    expect(parseAccel('TCG')).toBe('tcg');
    expect(() => parseAccel('hvf')).toThrow('accelerator "hvf" is not one of auto, kvm, tcg');
  });
});

describe('TCG kernel arguments', () => {
  it('tell the guest the TSC frequency when the host TSC is constant, so it never has to calibrate', () => {
    expect(tcgKernelArgs('flags\t\t: fpu tsc constant_tsc nonstop_tsc\ncpu MHz\t\t: 2596.118\n')).toEqual(['tsc_early_khz=2596118']);
  });
  it('leave the kernel to calibrate when the host TSC is not constant or its rate is unknown', () => {
    expect(tcgKernelArgs('flags\t\t: fpu tsc\ncpu MHz\t\t: 2596.118\n')).toEqual([]);
    expect(tcgKernelArgs('flags\t\t: constant_tsc\n')).toEqual([]);
  });
});
