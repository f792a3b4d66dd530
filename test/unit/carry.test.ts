// The connection that wakes a paused box, carried to its forward (src/runtime/carry.ts), against real sockets on
// loopback standing in for the box's network helper: an upstream that closes before answering is tried again with
// what the client sent replayed; a client that leaves between tries leaves no upstream connection behind; a client
// that sends to an upstream that does not read is held back rather than buffered without bound.
import * as net from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { carry } from '../../src/runtime/carry.js';

const servers: net.Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

async function listen(onConn: (c: net.Socket, n: number) => void): Promise<{ port: number; open: () => number; seen: () => number }> {
  let n = 0;
  const live = new Set<net.Socket>();
  const s = net.createServer((c) => {
    live.add(c);
    c.on('close', () => live.delete(c));
    c.on('error', () => {});
    onConn(c, ++n);
  });
  servers.push(s);
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return { port: (s.address() as net.AddressInfo).port, open: () => live.size, seen: () => n };
}

/** A front listener whose every connection is carried to port, as the idle pauser does. */
async function front(port: number, retry = { forMs: 5000, tries: 15 }): Promise<number> {
  const s = net.createServer((c) => {
    c.on('error', () => {});
    carry(c, '127.0.0.1', port, retry);
  });
  servers.push(s);
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return (s.address() as net.AddressInfo).port;
}

const until = async (cond: () => boolean, what: string) => {
  const end = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('carrying a waking connection', () => {
  it('tries again when the upstream closes before answering, replaying what the client sent', async () => {
    const got: string[] = [];
    const up = await listen((c, n) => {
      c.once('data', (d) => {
        got.push(`${n}:${d}`);
        if (n < 3) c.destroy(); // the service is not there yet
        else c.end(`answer to ${d}`);
      });
    });
    const client = net.connect(await front(up.port), '127.0.0.1');
    client.write('GET /');
    let reply = '';
    client.on('data', (d) => (reply += d));
    await once(client, 'end');
    expect(reply).toBe('answer to GET /');
    expect(got).toEqual(['1:GET /', '2:GET /', '3:GET /']);
  });

  it('gives up after its tries, and a client that leaves between tries leaves no upstream open', async () => {
    const up = await listen((c) => c.destroy());
    const client = net.connect(await front(up.port, { forMs: 5000, tries: 3 }), '127.0.0.1');
    client.write('x');
    await once(client, 'close');
    expect(up.seen()).toBe(3);

    const slow = await listen((c) => setTimeout(() => c.destroy(), 50));
    const leaving = net.connect(await front(slow.port), '127.0.0.1');
    leaving.write('y');
    await until(() => slow.seen() >= 1, 'the first try');
    leaving.destroy();
    await new Promise((r) => setTimeout(r, 1500)); // past every backoff a retry would take
    expect(slow.open()).toBe(0);
    expect(slow.seen()).toBeLessThanOrEqual(2);
  });

  it('holds the client back while an upstream that has not answered does not read', async () => {
    let upstream: net.Socket | undefined;
    const up = await listen((c) => {
      upstream = c;
      c.pause(); // reads nothing
    });
    const client = net.connect(await front(up.port), '127.0.0.1');
    await once(client, 'connect');
    const chunk = Buffer.alloc(1 << 20);
    let written = 0;
    // Write as fast as the connection drains, until it stops draining for half a second (or 512 MiB went).
    for (;;) {
      written += chunk.length;
      if (written >= 512 << 20 || client.write(chunk)) continue;
      const drained = await Promise.race([once(client, 'drain').then(() => true), new Promise((r) => setTimeout(() => r(false), 500))]);
      if (!drained) break;
    }
    // Held back within a few MiB (socket buffers on each side): the carrier stopped reading the client.
    expect(written).toBeLessThan(64 << 20);
    await until(() => !!upstream, 'the upstream connection');
    client.destroy();
  });
});
