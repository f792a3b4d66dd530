import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { moduleLoadOrder } from '../../src/runtime/assets.js';
import { cpioNewc, S_IFCHR, S_IFDIR, S_IFREG } from '../../src/runtime/cpio.js';
import { qemuArgs } from '../../src/vmm/qemu.js';

describe('module load order', () => {
  const dep = [
    'kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/virtio/virtio_ring.ko:',
  ].join('\n');

  it('puts dependencies first, each module once', () => {
    expect(moduleLoadOrder(dep, ['virtio_mmio', 'virtio_blk', 'virtio_console']).map((m) => m.split('/').pop())).toEqual([
      'virtio_ring.ko',
      'virtio.ko',
      'virtio_mmio.ko',
      'virtio_blk.ko',
      'virtio_console.ko',
    ]);
  });
  it('says when a module is not there', () => {
    expect(() => moduleLoadOrder(dep, ['9pnet_virtio'])).toThrow('kernel module 9pnet_virtio is not in modules.dep');
  });
});

describe('cpio newc writer', () => {
  it('writes an archive that cpio lists back, device node included', () => {
    const archive = cpioNewc([
      { name: 'dev', mode: S_IFDIR | 0o755 },
      { name: 'dev/console', mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 },
      { name: 'init', mode: S_IFREG | 0o755, data: Buffer.from('#!/bin/sh\n') },
    ]);
    expect(archive.length % 4).toBe(0);
    const listing = execFileSync('/bin/busybox', ['cpio', '-tv'], { input: archive }).toString();
    expect(listing).toMatch(/^drwxr-xr-x .* dev$/m);
    expect(listing).toMatch(/^crw------- .* dev\/console$/m);
    expect(listing).toMatch(/^-rwxr-xr-x .* 10 .* init$/m);
  });

  it("records a device node's major and minor in the header", () => {
    const h = cpioNewc([{ name: 'dev/console', mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 }]).subarray(0, 110).toString('ascii');
    const field = (i: number) => parseInt(h.slice(6 + 8 * i, 14 + 8 * i), 16);
    expect(h.slice(0, 6)).toBe('070701');
    expect(field(1)).toBe(S_IFCHR | 0o600);
    expect([field(9), field(10)]).toEqual([5, 1]);
    expect(field(11)).toBe('dev/console'.length + 1);
  });
});

describe('QEMU command line', () => {
  const spec = {
    dir: '/h/boxes/abc', cpus: 2, memoryMib: 256, kernel: '/k', initrd: '/i', cmdline: 'console=ttyS0',
    disks: [{ path: '/init.img', format: 'raw' as const, readonly: true }, { path: '/h/boxes/abc/disk.img', format: 'raw' as const, readonly: false }],
    agentPorts: 4,
  };
  it('uses TCG with multi-threading where KVM cannot run', () => {
    const a = qemuArgs({ ...spec, accel: 'tcg' }).join(' ');
    expect(a).toContain('-M microvm,acpi=on,pcie=off,rtc=on');
    expect(a).toContain('-accel tcg,thread=multi,tb-size=64 -cpu max');
    expect(a).toContain('-smp 2');
    expect(a).toContain('virtio-serial-device,max_ports=6');
    expect(a).toContain('socket,id=agent3,path=/h/boxes/abc/vm/agent-3.sock,server=on,wait=off');
    expect(a).toContain('file=/init.img,format=raw,readonly=on');
    expect(a).toContain('-qmp unix:/h/boxes/abc/vm/qmp.sock,server=on,wait=off');
    // Freed guest memory goes back to the host.
    expect(a).toContain('-device virtio-balloon-device,free-page-reporting=on');
  });
  it('uses the host CPU under KVM', () => {
    expect(qemuArgs({ ...spec, accel: 'kvm' }).join(' ')).toContain('-accel kvm -cpu host');
  });
  it('boots the kernel, or continues a saved state from fd 5 without loading the kernel files', () => {
    const boot = qemuArgs({ ...spec, accel: 'tcg' });
    expect(boot).toContain('-kernel');
    expect(boot).not.toContain('-incoming');
    const restore = qemuArgs({ ...spec, accel: 'tcg', incoming: '/h/states/s.state' });
    expect(restore.join(' ')).toContain('-S -incoming fd:5');
    for (const flag of ['-kernel', '-initrd', '-append']) expect(restore).not.toContain(flag);
    // The state's path is the supervisor's to open, never QEMU's.
    expect(restore.join(' ')).not.toContain('/h/states/s.state');
  });
});
