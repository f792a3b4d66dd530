// Port specs as docker writes them, forwards checked among themselves, and the network helper's command line.
import { describe, expect, it } from 'vitest';
import { checkPorts, formatPort, parsePort } from '../../src/core/network.js';
import { passtArgs } from '../../src/vmm/passt.js';

describe('port specs', () => {
  const cases: [string, string][] = [
    ['8080:80', '127.0.0.1:8080->80/tcp'],
    ['80', '127.0.0.1:?->80/tcp'],
    ['127.0.0.1:5353:53/udp', '127.0.0.1:5353->53/udp'],
    ['0.0.0.0:8443:443/tcp', '0.0.0.0:8443->443/tcp'],
    ['53/udp', '127.0.0.1:?->53/udp'],
  ];
  it.each(cases)('%s', (spec, want) => expect(formatPort(parsePort(spec))).toBe(want));

  const bad: [string, RegExp][] = [
    ['', /is empty; accepted forms/],
    ['abc', /box port "abc" is not a number; accepted forms: "8080:80", "127.0.0.1:8080:80", "80"/],
    ['70000:80', /host port 70000 is out of range \(1–65535\)/],
    ['8080:0', /box port 0 is out of range/],
    ['1:2:3:4', /is malformed; accepted forms/],
    ['localhost:80:80', /"localhost" is not an IPv4 address/],
    ['80/icmp', /protocol "icmp" is not tcp or udp/],
    ['[::1]:8080:80', /IPv6 host addresses are not supported/],
  ];
  it.each(bad)('rejects %j', (spec, msg) => expect(() => parsePort(spec)).toThrow(msg));

  it('refuses one host port forwarded twice, per protocol and address', () => {
    expect(() => checkPorts(['8080:80', '8080:81'].map(parsePort), 'web')).toThrow('box web: host port 8080/tcp is forwarded twice (127.0.0.1:8080->80/tcp and 127.0.0.1:8080->81/tcp)');
    expect(() => checkPorts(['0.0.0.0:8080:80', '127.0.0.1:8080:81'].map(parsePort), 'web')).toThrow(/forwarded twice/);
    expect(() => checkPorts(['8080:80', '8080:80/udp', '127.0.0.2:8080:81', '80', '80'].map(parsePort), 'web')).not.toThrow();
  });
});

describe('passt command line', () => {
  it('isolates the host loopback, forwards TCP ports only, and forwards DNS when no server is given', () => {
    const a = passtArgs({ dir: '/b', ports: ['127.0.0.1:8080:80', '0.0.0.0:9000:90', '5353:53/udp'].map(parsePort).map((p) => ({ ...p, hostPort: p.hostPort || 1 })), dns: [] });
    expect(a).toContain('--no-map-gw');
    expect(a.join(' ')).toContain('--tcp-ports 127.0.0.1/8080:80 --tcp-ports 0.0.0.0/9000:90');
    expect(a).not.toContain('--udp-ports');
    expect(a.join(' ')).toContain('--dns-forward 10.0.2.2');
    const b = passtArgs({ dir: '/b', ports: [], dns: ['10.1.1.1'] });
    expect(b.join(' ')).toContain('--dns 10.1.1.1');
    expect(b).not.toContain('--dns-forward');
  });
});

describe("a helper's failure", () => {
  it('names the fix when the cause is one the user can mend', async () => {
    const { helperFix } = await import('../../src/vmm/helpers.js');
    expect(helperFix('bwrap: No permissions to create new namespace, likely because the kernel does not allow non-privileged user namespaces')).toMatch(/sysctl kernel\.unprivileged_userns_clone=1/);
    expect(helperFix('accept: Too many open files')).toMatch(/ulimit -n/);
    expect(helperFix('passt: something odd')).toBeNull();
  });
});
