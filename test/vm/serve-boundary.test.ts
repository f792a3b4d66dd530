// No box can reach the server: a `boxlite serve` listening on every address ([::], both IPv4 and IPv6, with a key)
// is tried from inside a box by every address the host has — its loopback, 0.0.0.0, the box's gateway, each host
// IPv4 and global IPv6 address (the test hosts' links among them) — over TCP, while the same box reaches an outside test host (so
// its network works). The server must see no connection but the test's own, and each attempt must be a denial
// the box's events record.
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, quietRuntime, testHome } from '../helpers.js';
import { debianLayout } from '../registry.js';
import { RAW_FRAMES_PY } from '../raw-frames.js';
import { startEgressHosts, type EgressHosts } from '../egress-host.js';
import { GUEST_NET } from '../../src/core/network.js';
import { readEvents } from '../../src/vmm/egress/events.js';
import { BoxliteServer } from '../../src/server/server.js';
import { ApiClient } from '../boxlite-api.js';
import type { Box, Runtime } from '../../src/runtime/runtime.js';

const KEY = 'boundary-key-0123456789abcdef';
let home: string;
let rt: Runtime;
let eh: EgressHosts;
let server: BoxliteServer;
let box: Box;

const hostAddresses = (family: 'IPv4' | 'IPv6') =>
  Object.values(os.networkInterfaces())
    .flat()
    // Link-local IPv6 needs a scope only the host's own links have: a box has no route to name one.
    .filter((a) => a && a.family === family && !a.internal && !a.address.startsWith('fe80:'))
    .map((a) => a!.address);

beforeAll(async () => {
  eh = await startEgressHosts();
  home = testHome();
  rt = quietRuntime(home);
  server = await BoxliteServer.start({ runtime: rt, listen: '[::]:0', apiKeys: [KEY] });
  box = await rt.create({ image: debianLayout(), memoryMib: 384, dns: [eh.dns] });
  await box.start();
});

afterAll(async () => {
  await server?.close();
  rt?.close();
  if (home) await cleanupHome(home);
  eh?.stop();
});

describe('a box and the server', () => {
  it('cannot reach the server by any address the host has, through its kernel or with frames of its own; the same box reaches the outside', async () => {
    const port = server.port;
    const hostAddrs = [...new Set([eh.hostIp, ...hostAddresses('IPv4')])];
    expect(hostAddrs.length).toBeGreaterThan(0);
    const kernelTargets = [...hostAddrs, ...hostAddresses('IPv6'), GUEST_NET.gateway];
    const before = server.connections.total;
    // Through the guest's kernel (a program's ordinary connect): the outside answers, the host's addresses and the
    // gateway do not. Each attempt in parallel; its own timeout ends the ones whose SYN was dropped.
    const script = [
      `python3 -c 'import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=20).read()' http://${eh.ips[0]}:${eh.httpPort}/ 2>/dev/null && echo "outside reached" || echo "outside NOT reached"`,
      ...kernelTargets.map((a) => `(python3 -c 'import socket,sys; s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5); s.sendall(b"GET /v1/config HTTP/1.0\\r\\n\\r\\n"); print("REACHED", sys.argv[1], s.recv(100))' ${a} ${port} 2>/dev/null || echo "blocked ${a}") &`),
      'wait',
    ].join('\n');
    const r = await box.exec(['sh', '-c', script]);
    expect(r.stdout.trim().split('\n').sort()).toEqual(['outside reached', ...kernelTargets.map((a) => `blocked ${a}`)].sort());
    // With frames the box's root writes itself (no routing by its kernel): the host's loopback and 0.0.0.0 too.
    const raw = ['127.0.0.1', '127.1.2.3', '0.0.0.0', ...hostAddrs];
    const targets = raw.map((d) => `tcp:${d}:${port}`);
    const out = await box.exec(['python3', '-c', RAW_FRAMES_PY, 'eth0', GUEST_NET.address, GUEST_NET.gateway, `dns:${eh.dns}`, ...targets]);
    expect(out.stderr).toBe('');
    expect(out.stdout).toBe(`sent ${targets.length}\ncontrol answered\n`);
    // Nothing arrived at the server: a request of the test's own is the only connection since.
    const api = new ApiClient(`http://127.0.0.1:${port}`, KEY);
    await api.expect(200, 'GET', '/v1/me');
    expect(server.connections.total - before).toBe(1);
    // Each attempt was dropped by the box's network guard, and says so.
    const events = readEvents(path.join(home, 'boxes', box.id));
    for (const a of raw) expect(events).toContainEqual(expect.objectContaining({ kind: 'connection', destination: `${a}:${port}`, protocol: 'tcp' }));
  });
});
