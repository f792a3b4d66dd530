// Timeouts scaled from this machine's floor (measured by global-setup): a machine whose VMs boot slower gets
// proportionally more time, never less than the figures written in the tests.
import { inject, vi } from 'vitest';
import { REFERENCE_FLOOR_MS } from './floor.js';

export const SLOWNESS = Math.max(1, (inject('floorMs') ?? REFERENCE_FLOOR_MS) / REFERENCE_FLOOR_MS);

/** A timeout written for the reference machine, for this one. */
export const scaled = (ms: number) => Math.round(ms * SLOWNESS);

vi.setConfig({ testTimeout: scaled(180_000), hookTimeout: scaled(300_000) });
