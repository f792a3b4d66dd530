// Host ports for a box's forwards, checked before it boots: a taken port is reported with the box and the port,
// and "80"-style forwards get a free host port chosen here (and recorded, so `boxlite port` can show it).
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import { InvalidOptionError } from '../core/errors.js';
import { formatPort, type PortMapping } from '../core/network.js';

export class PortInUseError extends InvalidOptionError {}

function tryBind(p: PortMapping): Promise<number> {
  return new Promise((resolve, reject) => {
    if (p.protocol === 'udp') {
      const s = dgram.createSocket(p.hostIp.includes(':') ? 'udp6' : 'udp4');
      s.once('error', reject);
      s.bind(p.hostPort, p.hostIp, () => {
        const port = s.address().port;
        s.close(() => resolve(port));
      });
    } else {
      const s = net.createServer();
      s.once('error', reject);
      s.listen({ port: p.hostPort, host: p.hostIp, exclusive: true }, () => {
        const port = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(port));
      });
    }
  });
}

/** With previous (the forwards of the box's last run), a chosen host port is chosen again when it is still free:
 *  a box continued from its memory keeps the ports its clients know. */
export async function reservePorts(ports: PortMapping[], box: string, previous: PortMapping[] = []): Promise<PortMapping[]> {
  const out: PortMapping[] = [];
  for (const p of ports) {
    const before = p.hostPort === 0 ? previous.find((q) => q.guestPort === p.guestPort && q.protocol === p.protocol && q.hostIp === p.hostIp)?.hostPort : undefined;
    if (before) {
      const again = await tryBind({ ...p, hostPort: before }).catch(() => null);
      if (again) {
        out.push({ ...p, hostPort: again });
        continue;
      }
    }
    try {
      out.push({ ...p, hostPort: await tryBind(p) });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE') {
        throw new PortInUseError(`box ${box}: host port ${p.hostPort}/${p.protocol} on ${p.hostIp} is already in use (forward ${formatPort(p)}): choose another host port, or stop what uses it`);
      }
      if (code === 'EADDRNOTAVAIL') throw new InvalidOptionError(`box ${box}: host address ${p.hostIp} of forward ${formatPort(p)} is not an address of this host`);
      if (code === 'EACCES') throw new InvalidOptionError(`box ${box}: host port ${p.hostPort} of forward ${formatPort(p)} needs privileges: use a port above 1023`);
      throw e;
    }
  }
  return out;
}
