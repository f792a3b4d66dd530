// The project LAN's pure parts: one segment per home and project, and the hosts lines every box gets.
import { describe, expect, it } from 'vitest';
import { allocateLan, lanHosts, lanSettled } from '../../src/reconciler/lan.js';
import type { Runtime } from '../../src/runtime/runtime.js';
import { lanSegment } from '../../src/core/network.js';
import type { BoxRecord } from '../../src/runtime/types.js';

describe('project LAN', () => {
  it('gives each home and project a segment of its own, the same every time', () => {
    const g = lanSegment('/root/.boxlite\0demo');
    expect(g).toBe(lanSegment('/root/.boxlite\0demo'));
    expect(g).toMatch(/^[0-9a-f]{16}$/);
    expect(lanSegment('/root/.boxlite\0other')).not.toBe(g);
    expect(lanSegment('/home/ann/.boxlite\0demo')).not.toBe(g);
  });

  it('lists every box of the project with an address, in address order, leaving out boxes kept aside', () => {
    const rec = (box: string, address: string | null, retired = false) =>
      ({
        name: `demo.${box}${retired ? '.pre-1' : ''}`,
        options: address ? { lan: { segment: '0123456789abcdef', address, mac: '52:54:01:00:00:01' } } : {},
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
