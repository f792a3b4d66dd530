// Column-aligned tables for ps, images ls and volume ls.
export function printTable(head: string[], rows: string[][], out: (line: string) => void = (l) => process.stdout.write(l + '\n')): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  for (const r of [head, ...rows]) out(r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd());
}
