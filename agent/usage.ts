// What the guest uses, read from /proc and /sys: memory, processes, disk and network counters.
import * as fs from 'node:fs';
import * as os from 'node:os';

const read = (f: string) => fs.readFileSync(f, 'utf8');

/** Byte and packet counters of the guest's network interfaces (loopback left out). */
export function netInterfaces() {
  const addrs = os.networkInterfaces();
  return fs
    .readdirSync('/sys/class/net')
    .filter((n) => n !== 'lo')
    .map((name) => {
      const stat = (k: string) => Number(read(`/sys/class/net/${name}/statistics/${k}`).trim());
      return {
        name,
        address: addrs[name]?.find((a) => a.family === 'IPv4')?.cidr ?? '',
        rxBytes: stat('rx_bytes'),
        txBytes: stat('tx_bytes'),
        rxPackets: stat('rx_packets'),
        txPackets: stat('tx_packets'),
      };
    });
}

export function usage() {
  const mem = new Map(read('/proc/meminfo').split('\n').map((l) => {
    const m = /^(\w+):\s+(\d+)/.exec(l);
    return m ? [m[1], Number(m[2]) * 1024] as const : ['', 0] as const;
  }));
  // /sys/block/vdX/stat: fields 3 and 7 are sectors read and written (512 bytes each, whatever the device's).
  let readBytes = 0;
  let writeBytes = 0;
  for (const dev of fs.readdirSync('/sys/block').filter((d) => d.startsWith('vd'))) {
    const f = read(`/sys/block/${dev}/stat`).trim().split(/\s+/).map(Number);
    readBytes += f[2] * 512;
    writeBytes += f[6] * 512;
  }
  return {
    memTotalBytes: mem.get('MemTotal') ?? 0,
    memAvailableBytes: mem.get('MemAvailable') ?? 0,
    processes: fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n)).length,
    diskReadBytes: readBytes,
    diskWriteBytes: writeBytes,
    interfaces: netInterfaces(),
    uptimeMs: Math.round(Number(read('/proc/uptime').split(' ')[0]) * 1000),
  };
}
