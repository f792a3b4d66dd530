// The project LAN's pure parts: one multicast group per home and project, and the hosts lines every box gets.
import { describe, expect, it } from 'vitest';
import { allocateLan, lanHosts, lanSettled } from '../../src/reconciler/lan.js';
import type { Runtime } from '../../src/runtime/runtime.js';
import { lanGroup } from '../../src/core/network.js';
import type { BoxRecord } from '../../src/runtime/types.js';

describe('project LAN', () => {
  it('gives each home and project its own administratively scoped group, the same every time', () => {
    const g = lanGroup('/root/.boxlite\0demo');
    expect(g).toBe(lanGroup('/root/.boxlite\0demo'));
    expect(g).toMatch(/^239\.\d{1,3}\.\d{1,3}\.\d{1,3}:\d+$/);
    const [addr, port] = g.split(':');
    expect(addr.split('.').map(Number).every((n) => n >= 0 && n <= 255)).toBe(true);
    expect(Number(port)).toBeGreaterThanOrEqual(20000);
    expect(Number(port)).toBeLessThan(60000);
    expect(lanGroup('/root/.boxlite\0other')).not.toBe(g);
    expect(lanGroup('/home/ann/.boxlite\0demo')).not.toBe(g);
  });

  it('lists every box of the project with an address, in address order, leaving out boxes kept aside', () => {
    const rec = (box: string, address: string | null, retired = false) =>
      ({
        name: `demo.${box}${retired ? '.pre-1' : ''}`,
        options: address ? { lan: { mcast: '239.1.2.3:20000', address, mac: '52:54:01:00:00:01' } } : {},
        label: { project: 'demo', box, ...(retired ? { retiredAt: '2026-11-23T00:00:00Z' } : {}) },
      }) as unknown as BoxRecord;
    expect(lanHosts([rec('web', '10.89.0.10'), rec('db', '10.89.0.2'), rec('old', '10.89.0.3', true), rec('tool', null)])).toEqual([
      '10.89.0.2 db demo.db',
      '10.89.0.10 web demo.web',
    ]);
  });

  it('gives boxes created at the same time addresses of their own, before either has a record', () => {
    const records: BoxRecord[] = [];
    const rt = { home: { root: '/h' }, records: { list: () => records } } as unknown as Runtime;
    const a = allocateLan(rt, 'demo', 'app');
    const b = allocateLan(rt, 'demo', 'peer');
    expect([a.address, b.address]).toEqual(['10.89.0.2', '10.89.0.3']);
    lanSettled(rt, 'demo', a);
    lanSettled(rt, 'demo', b); // their creates failed: both free again
    expect(allocateLan(rt, 'demo', 'again').address).toBe('10.89.0.2');
  });
});
