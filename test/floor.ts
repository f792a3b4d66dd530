// The floor of this machine: QEMU with the guest kernel and the boxes' machine type, and an init that powers off
// at once. Tests scale their timeouts by it (a slower machine gets proportionally more time), and the bench
// compares every start figure with it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { cpioNewc, S_IFCHR, S_IFDIR, S_IFREG } from '../src/runtime/cpio.js';
import { qemuBinary } from '../src/vmm/qemu.js';
import { tcgKernelArgs } from '../src/vmm/accel.js';

/** What the floor measured on the machine the timeouts were first set on (2 cores, TCG). */
export const REFERENCE_FLOOR_MS = 2500;

/** Wall times of `runs` boots to an init that powers off at once. */
export async function measureFloor(kernel: string, accel: 'kvm' | 'tcg', runs: number): Promise<number[]> {
  const initrd = path.join(os.tmpdir(), `boxlite-floor-${process.pid}.cpio`);
  fs.writeFileSync(
    initrd,
    cpioNewc([
      { name: 'bin', mode: S_IFDIR | 0o755 },
      { name: 'dev', mode: S_IFDIR | 0o755 },
      { name: 'dev/console', mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 },
      { name: 'bin/busybox', mode: S_IFREG | 0o755, data: fs.readFileSync('/bin/busybox') },
      { name: 'init', mode: S_IFREG | 0o755, data: Buffer.from('#!/bin/busybox sh\n/bin/busybox poweroff -f\n') },
    ]),
  );
  const times: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        const p = spawn(qemuBinary(), [
          '-M', 'microvm,acpi=on,pcie=off,rtc=on',
          ...(accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max']),
          '-m', '512', '-smp', '1', '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
          '-kernel', kernel, '-initrd', initrd, '-serial', 'null',
          '-append', ['console=ttyS0 quiet loglevel=3 panic=-1', ...(accel === 'tcg' ? tcgKernelArgs() : [])].join(' '),
        ], { stdio: 'ignore' });
        p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`floor VM exited ${code}`))));
      });
      times.push(performance.now() - t0);
    }
  } finally {
    fs.rmSync(initrd, { force: true });
  }
  return times;
}
