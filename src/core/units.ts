// Human units in project files: sizes (512MiB, 2GiB, 10G) and durations (500ms, 30s, 1h30m).

const SIZE_RE = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B?|[kmgt]i?b|B|b)?\s*$/;
const MIB = 1024 * 1024;
const UNIT_BYTES: Record<string, number> = { b: 1, k: 1024, m: MIB, g: 1024 * MIB, t: 1024 * 1024 * MIB };

/** A size in whole MiB. A bare number is MiB; K/M/G/T are taken as binary units whether or not an 'i' is written,
 *  as docker and compose do. Throws on a size that is not a whole number of MiB. */
export function parseSizeMib(v: number | string): number {
  if (typeof v === 'number') return v;
  const m = SIZE_RE.exec(v);
  if (!m) throw new Error(`expected a size such as 512MiB, 2GiB or 10G, got "${v}"`);
  const n = Number(m[1]);
  if (!m[2]) return checkWhole(n, v);
  const bytes = n * UNIT_BYTES[m[2][0].toLowerCase()];
  return checkWhole(bytes / MIB, v);
}

function checkWhole(mib: number, v: number | string): number {
  if (!Number.isInteger(mib)) throw new Error(`size "${v}" is not a whole number of MiB`);
  return mib;
}

const DURATION_PART = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g;
const DURATION_RE = /^\s*([0-9]+(\.[0-9]+)?(ms|s|m|h))+\s*$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A duration in milliseconds; a bare number is seconds. */
export function parseDurationMs(v: number | string): number {
  if (typeof v === 'number') return Math.round(v * 1000);
  if (!DURATION_RE.test(v)) throw new Error(`expected a duration such as 500ms, 10s, 5m or 1h30m, got "${v}"`);
  let ms = 0;
  for (const m of v.matchAll(DURATION_PART)) ms += Number(m[1]) * UNIT_MS[m[2]];
  return Math.round(ms);
}

export function formatMib(mib: number): string {
  return mib % 1024 === 0 ? `${mib / 1024}GiB` : `${mib}MiB`;
}

export function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0 && ms) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
