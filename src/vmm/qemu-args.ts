// QEMU's command line for a box (pure, for tests and for `inspect`): a microvm machine with direct kernel boot and
// virtio-mmio devices.
import * as path from 'node:path';
import { NET_MAC, runDir, type VmSpec } from './engine.js';
import { QEMU_SANDBOX } from './jail.js';
import { tcgCacheMib, tcgKernelArgs } from './accel.js';
import { LOG_PORT_NAME } from '../core/protocol.js';

/** QEMU's id of the spec's disk i; QMP operations name disks by it. */
export const driveId = (i: number) => `disk${i}`;

/** The fd a restoring QEMU reads its saved state from (3 and 4 are the jail's status and the console). */
export const INCOMING_FD = 5;
/** The fd of the box's log file (command.log), opened for appending by the supervisor. */
export const LOG_FD = 6;

export function qemuArgs(spec: VmSpec): string[] {
  const f = (name: string) => path.join(runDir(spec.dir), name);
  const args = [
    '-name', `boxlite,debug-threads=on`,
    // vhost-user devices (virtiofs) need the guest's memory in a shared mapping their helper can map too.
    '-M', `microvm,acpi=on,pcie=off,rtc=on${spec.shares?.length ? ',memory-backend=mem' : ''}`,
    // … and virtio 1.0 on the mmio transport: virtiofsd's libvhost-user refuses legacy devices.
    ...(spec.shares?.length ? ['-object', `memory-backend-memfd,id=mem,size=${spec.memoryMib}M,share=on`, '-global', 'virtio-mmio.force-legacy=false'] : []),
    // Under TCG, without ERMS/FSRM: with them the guest's kernel and libc copy memory with `rep movsb`, which TCG
    // runs a byte at a time; without, they copy 8 or 32 bytes a step (measured: a pipe 3.8x, the agent's port 2.4x,
    // TCP out of the box 2x faster).
    ...(spec.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', `tcg,thread=multi,tb-size=${tcgCacheMib()}`, '-cpu', 'max,erms=off,fsrm=off']),
    '-m', String(spec.memoryMib),
    '-smp', String(spec.cpus),
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    // A restore continues a kernel already in the guest's memory: QEMU would hold the kernel and initrd for the
    // firmware to load (measured: 29 MiB resident for the whole life of the VM) for nothing.
    ...(spec.incoming ? [] : ['-kernel', spec.kernel, '-initrd', spec.initrd, '-append', [spec.cmdline, ...(spec.accel === 'tcg' ? tcgKernelArgs() : [])].join(' ')]),
    // The console is a file of boxlite's that the supervisor opens and hands over as fd 4: the VMM only writes
    // through it, and never names a path boxlite later reads or rotates.
    '-add-fd', 'fd=4,set=1',
    '-chardev', 'file,id=con,path=/dev/fdset/1,append=on',
    '-serial', 'chardev:con',
    '-qmp', `unix:${f('qmp.sock')},server=on,wait=off`,
    '-pidfile', f('qemu.pid'),
    ...(spec.jail ? ['-sandbox', QEMU_SANDBOX] : []),
    // A saved state is read from fd 5, which the supervisor opened; the CPUs wait for boxlite's 'cont' (-S).
    ...(spec.incoming ? ['-S', '-incoming', `fd:${INCOMING_FD}`] : []),
    '-device', // Port 0 of a virtio-serial bus is reserved for a console, so agent ports are 1..N, the log N+1.
    'virtio-serial-device,max_ports=' + (spec.agentPorts + 2),
  ];
  for (let i = 0; i < spec.agentPorts; i++) {
    args.push('-chardev', `socket,id=agent${i},path=${f(`agent-${i}.sock`)},server=on,wait=off`);
    args.push('-device', `virtserialport,chardev=agent${i},name=boxlite.agent.${i}`);
  }
  // The box's log (what a project box's command prints), like the console a file the supervisor hands over (fd 6).
  args.push('-add-fd', `fd=${LOG_FD},set=2`, '-chardev', 'file,id=log,path=/dev/fdset/2,append=on', '-device', `virtserialport,chardev=log,name=${LOG_PORT_NAME}`);
  if (spec.netSocket) {
    args.push('-netdev', `stream,id=net0,server=off,addr.type=unix,addr.path=${spec.netSocket}`);
    args.push('-device', `virtio-net-device,netdev=net0,mac=${NET_MAC}`);
  }
  (spec.shares ?? []).forEach((sh, i) => {
    args.push('-chardev', `socket,id=fs${i},path=${sh.socket}`);
    args.push('-device', `vhost-user-fs-device,chardev=fs${i},tag=${sh.tag}`);
  });
  if (spec.lan) {
    args.push('-netdev', `stream,id=lan0,server=off,addr.type=unix,addr.path=${spec.lan.socket}`);
    args.push('-device', `virtio-net-device,netdev=lan0,mac=${spec.lan.mac}`);
  }
  spec.disks.forEach((d, i) => {
    args.push('-drive', `if=none,id=${driveId(i)},file=${d.path},format=${d.format}${d.readonly ? ',readonly=on' : ''},cache=writeback,discard=unmap`);
    args.push('-device', `virtio-blk-device,drive=${driveId(i)}${d.serial ? `,serial=${d.serial}` : ''}`);
  });
  // The guest may report memory it freed, for QEMU to give back to the host (measured: an idle guest's RAM still
  // stays resident under TCG; see the README's Measured).
  args.push('-device', 'virtio-balloon-device,free-page-reporting=on');
  return args;
}
