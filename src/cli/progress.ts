// Pull progress: one line per layer with bytes, rate and a bar, redrawn in place on a terminal; on anything else,
// one line per layer when it finishes (logs stay readable).
import type { LayerProgress } from '../runtime/images/index.js';

const mib = (n: number) => (n / (1 << 20)).toFixed(1);

interface Row {
  p: LayerProgress;
  started?: number;
  startBytes: number;
  printed: boolean;
}

export class LayerBars {
  private rows = new Map<string, Row>();
  private drawn = 0;
  private last = 0;
  private readonly tty: boolean;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {
    this.tty = !!out.isTTY;
  }

  update = (p: LayerProgress): void => {
    const row = this.rows.get(p.digest) ?? { p, startBytes: p.done, printed: false };
    if (p.phase === 'downloading' && row.started === undefined) {
      row.started = Date.now();
      row.startBytes = p.done;
    }
    row.p = p;
    this.rows.set(p.digest, row);
    if (this.tty) {
      if (Date.now() - this.last > 100 || p.phase === 'done' || p.phase === 'exists') this.draw();
    } else if ((p.phase === 'done' || p.phase === 'exists') && !row.printed) {
      row.printed = true;
      this.out.write(this.line(row) + '\n');
    }
  };

  private line(r: Row): string {
    const { p } = r;
    const id = p.digest.slice(7, 19);
    if (p.phase === 'exists') return `${id}  already stored  ${mib(p.size)} MiB`;
    if (p.phase === 'waiting') return `${id}  waiting`;
    const secs = r.started ? (Date.now() - r.started) / 1000 : 0;
    const rate = secs > 0 ? (p.done - r.startBytes) / secs : 0;
    const frac = p.size > 0 ? Math.min(1, p.done / p.size) : 0;
    const width = 20;
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
    const word = p.phase === 'done' ? 'done       ' : 'downloading';
    return `${id}  ${word}  [${bar}]  ${mib(p.done)}/${mib(p.size)} MiB  ${mib(rate)} MiB/s`;
  }

  private draw(): void {
    this.last = Date.now();
    let s = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    for (const r of this.rows.values()) s += `\x1b[2K${this.line(r)}\n`;
    this.drawn = this.rows.size;
    this.out.write(s);
  }

  finish(): void {
    if (this.tty && this.rows.size) this.draw();
  }
}
