// A box's network as users declare it: `network: default | none`, port forwards written the way docker writes
// them, and DNS servers. Pure: parsing and checks only (the helper process lives in src/vmm/passt.ts).
import { createHash } from 'node:crypto';
import { InvalidOptionError } from './errors.js';

export type NetworkMode = 'default' | 'none';

export interface PortMapping {
  /** Host address the port listens on; 127.0.0.1 unless written. */
  hostIp: string;
  /** 0 until the box starts: then a free port is chosen and recorded. */
  hostPort: number;
  guestPort: number;
  protocol: 'tcp' | 'udp';
}

/** What passt gives every box: a private address, a gateway that does not lead to the host, and a DNS address
 *  passt answers by forwarding to the host's resolver. */
export const GUEST_NET = { address: '10.0.2.15', prefix: 24, gateway: '10.0.2.2', dns: '10.0.2.2' };

export const PORT_FORMS = '"8080:80", "127.0.0.1:8080:80", "80" (host port chosen), each optionally with /tcp or /udp';

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function port(s: string, what: string, spec: string, allowZero = false): number {
  if (!/^\d+$/.test(s)) throw new InvalidOptionError(`port spec "${spec}": ${what} "${s}" is not a number; accepted forms: ${PORT_FORMS}`);
  const n = Number(s);
  if (n > 65535 || (n < 1 && !allowZero)) throw new InvalidOptionError(`port spec "${spec}": ${what} ${n} is out of range (1–65535)`);
  return n;
}

/** Parses "8080:80", "127.0.0.1:5353:53/udp", "80" (host port chosen at start). */
export function parsePort(spec: string): PortMapping {
  const m = /^(.*?)(?:\/(tcp|udp|[^/]*))?$/.exec(spec.trim())!;
  const body = m[1];
  const proto = m[2];
  if (proto !== undefined && proto !== 'tcp' && proto !== 'udp') throw new InvalidOptionError(`port spec "${spec}": protocol "${proto}" is not tcp or udp`);
  let hostIp = '127.0.0.1';
  const rest = body;
  if (/^\[[0-9a-fA-F:]*\]:/.test(body)) {
    throw new InvalidOptionError(`port spec "${spec}": IPv6 host addresses are not supported (boxes are IPv4-only for now); use 127.0.0.1 or 0.0.0.0`);
  }
  const parts = rest.split(':');
  const last = parts.at(-1)!;
  if (proto === undefined && parts.length > 1 && /^(tcp|udp)$/i.test(last)) {
    // docker's form puts the protocol after a slash; a colon is an easy slip
    throw new InvalidOptionError(`port spec "${spec}": the protocol goes after a slash: did you mean "${parts.slice(0, -1).join(':')}/${last.toLowerCase()}"?`);
  }
  let hostPort: number;
  let guestPort: number;
  if (!body) throw new InvalidOptionError(`port spec "${spec}" is empty; accepted forms: ${PORT_FORMS}`);
  if (parts.length === 1) {
    guestPort = port(parts[0], 'box port', spec);
    hostPort = 0;
  } else if (parts.length === 2) {
    hostPort = port(parts[0], 'host port', spec, true);
    guestPort = port(parts[1], 'box port', spec);
  } else if (parts.length === 3) {
    hostIp = parts[0];
    if (!IPV4.test(hostIp)) throw new InvalidOptionError(`port spec "${spec}": "${hostIp}" is not an IPv4 address`);
    hostPort = port(parts[1], 'host port', spec, true);
    guestPort = port(parts[2], 'box port', spec);
  } else {
    throw new InvalidOptionError(`port spec "${spec}" is malformed; accepted forms: ${PORT_FORMS}`);
  }
  return { hostIp, hostPort, guestPort, protocol: (proto as 'tcp' | 'udp' | undefined) ?? 'tcp' };
}

export function formatPort(p: PortMapping): string {
  const host = p.hostIp.includes(':') ? `[${p.hostIp}]` : p.hostIp;
  return `${host}:${p.hostPort || '?'}->${p.guestPort}/${p.protocol}`;
}

/** Checks a box's forwards among themselves: one host port (per address and protocol) forwards to one place. */
export function checkPorts(ports: PortMapping[], box: string): void {
  const seen = new Map<string, PortMapping>();
  for (const p of ports) {
    if (p.hostPort === 0) continue;
    const key = `${p.protocol}/${p.hostPort}`;
    const prev = seen.get(key);
    if (prev && (prev.hostIp === p.hostIp || prev.hostIp === '0.0.0.0' || p.hostIp === '0.0.0.0')) {
      throw new InvalidOptionError(`box ${box}: host port ${p.hostPort}/${p.protocol} is forwarded twice (${formatPort(prev)} and ${formatPort(p)}): give each forward its own host port`);
    }
    seen.set(key, p);
  }
}

export function parseDns(list: string[]): string[] {
  for (const d of list) if (!IPV4.test(d)) throw new InvalidOptionError(`DNS server "${d}" is not an IPv4 address`);
  return list;
}

/** A LAN's segment name (its folder under the home), from a key naming the LAN (a project of a home; a fork). */
export function lanSegment(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}
