// Who holds a host port: the kernel's socket tables (/proc/net) give the socket's inode, and a process's open
// files (/proc/PID/fd) name the process holding it. Other users' processes cannot be looked into: then only
// "another process" is known.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as dgram from 'node:dgram';

/** Whether a port can be taken on this address now (it is let go again at once). */
export function portFree(host: string, port: number, protocol: 'tcp' | 'udp'): Promise<boolean> {
  return new Promise((resolve) => {
    if (protocol === 'udp') {
      const s = dgram.createSocket('udp4');
      s.once('error', (e: NodeJS.ErrnoException) => (s.close(), resolve(e.code !== 'EADDRINUSE')));
      s.bind({ address: host, port, exclusive: true }, () => s.close(() => resolve(true)));
      return;
    }
    const s = net.createServer();
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code !== 'EADDRINUSE'));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** The process holding a port, as "pid 1234 (python3)", when it can be told. */
export function portHolder(port: number, protocol: 'tcp' | 'udp'): string | undefined {
  const inodes = new Set<string>();
  for (const table of protocol === 'tcp' ? ['tcp', 'tcp6'] : ['udp', 'udp6']) {
    let text = '';
    try {
      text = fs.readFileSync(`/proc/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const local = parseInt(f[1].split(':')[1], 16);
      // tcp: only a listening socket (state 0A) holds a port for listening; udp: any bound one
      if (local === port && (protocol === 'udp' || f[3] === '0A')) inodes.add(f[9]);
    }
  }
  if (!inodes.size) return undefined;
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target = '';
      try {
        target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m && inodes.has(m[1])) {
        let comm = '';
        try {
          comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
        } catch {}
        return `pid ${pid}${comm ? ` (${comm})` : ''}`;
      }
    }
  }
  return undefined;
}
