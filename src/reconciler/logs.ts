// Reading boxes' logs on the host: what their commands printed, one stamped line each (agent/logport.ts), kept in
// the box's folder whatever the box's state. Several boxes' lines are interleaved by their stamps, as
// `docker compose logs` interleaves its services; following polls the files (the VM's supervisor rotates them).
import * as fs from 'node:fs';
import { LOG_STAMP } from '../core/protocol.js';

export interface LogLine {
  /** The box's name as the reader shows it (a project's box name). */
  box: string;
  /** When the guest's agent read the line (ISO); a line that came unstamped takes its predecessor's time. */
  time: string;
  text: string;
}

export interface LogSource {
  box: string;
  file: string;
}

function parse(box: string, text: string, last = ''): { lines: LogLine[]; last: string } {
  const lines: LogLine[] = [];
  for (const raw of text.split('\n')) {
    if (!raw) continue;
    const m = LOG_STAMP.exec(raw);
    if (m) last = m[1];
    lines.push({ box, time: m ? m[1] : last, text: m ? m[2] : raw });
  }
  return { lines, last };
}

const readOr = (f: string) => {
  try {
    return fs.readFileSync(f, 'utf8');
  } catch {
    return '';
  }
};

/** A box's log as it is now (its rotated older half first); with tail, only the last lines. */
export function readLog(src: LogSource, tail?: number): LogLine[] {
  const { lines } = parse(src.box, readOr(`${src.file}.1`) + readOr(src.file));
  return tail === undefined ? lines : lines.slice(Math.max(0, lines.length - tail));
}

/** Lines of several boxes in the order they were printed (a stable sort: one box's lines keep their order). */
export function interleave(lists: LogLine[][]): LogLine[] {
  return lists
    .flatMap((l, i) => l.map((line, j) => ({ line, i, j })))
    .sort((a, b) => (a.line.time < b.line.time ? -1 : a.line.time > b.line.time ? 1 : a.i - b.i || a.j - b.j))
    .map((x) => x.line);
}

/** Calls onLine with each line appended to the sources from now on, until the signal aborts. */
export async function followLogs(sources: LogSource[], onLine: (l: LogLine) => void, signal: AbortSignal, pollMs = 200): Promise<void> {
  const state = sources.map((s) => ({ s, pos: size(s.file), partial: '', last: '' }));
  const readFrom = (file: string, pos: number, end: number): string => {
    if (end <= pos) return '';
    const fd = fs.openSync(file, 'r');
    try {
      const buf = Buffer.alloc(end - pos);
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      return buf.subarray(0, n).toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  };
  const tick = () => {
    for (const st of state) {
      const now = size(st.s.file);
      let text = '';
      try {
        // Rotated since the last look: the rest of the older half first, then the new file from its start.
        if (now < st.pos) {
          text += readFrom(`${st.s.file}.1`, st.pos, size(`${st.s.file}.1`));
          st.pos = 0;
        }
        text += readFrom(st.s.file, st.pos, now);
      } catch {
        continue; // not there yet (a box that never started)
      }
      st.pos = now;
      if (!text) continue;
      const all = st.partial + text;
      const cut = all.lastIndexOf('\n') + 1;
      st.partial = all.slice(cut);
      const r = parse(st.s.box, all.slice(0, cut), st.last);
      st.last = r.last;
      for (const l of r.lines) onLine(l);
    }
  };
  await new Promise<void>((resolve) => {
    const timer = setInterval(tick, pollMs);
    signal.addEventListener('abort', () => {
      clearInterval(timer);
      tick();
      resolve();
    }, { once: true });
  });
}

function size(f: string): number {
  try {
    return fs.statSync(f).size;
  } catch {
    return 0;
  }
}
