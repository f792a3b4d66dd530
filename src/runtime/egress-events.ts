// A box's outbound denials as callers read them: what is in its events file, and what its gateway adds while one
// follows (the SDK's event stream, `boxlite events -f`, and `up --watch`).
import * as fs from 'node:fs';
import { eventsFile, readEvents, type EgressEvent } from '../vmm/egress/events.js';

export type { EgressEvent } from '../vmm/egress/events.js';

export interface EventsOptions {
  /** Keep yielding new events until the signal aborts. */
  follow?: boolean;
  /** With follow: only events from now on. */
  sinceNow?: boolean;
  signal?: AbortSignal;
}

export async function* boxEvents(dir: string, opts: EventsOptions = {}): AsyncGenerator<EgressEvent> {
  const file = eventsFile(dir);
  const size = () => (fs.existsSync(file) ? fs.statSync(file).size : 0);
  let pos = 0;
  if (!opts.sinceNow) {
    const text = fs.existsSync(file) ? fs.readFileSync(file) : Buffer.alloc(0);
    pos = text.length;
    yield* readEvents(dir);
  } else pos = size();
  if (!opts.follow) return;
  let partial = '';
  while (!opts.signal?.aborted) {
    await new Promise<void>((resolve) => {
      const done = () => (fs.unwatchFile(file, onChange), opts.signal?.removeEventListener('abort', done), resolve());
      const onChange = () => done();
      fs.watchFile(file, { interval: 100 }, onChange);
      opts.signal?.addEventListener('abort', done);
    });
    const now = size();
    if (now < pos) pos = 0; // the gateway dropped the older half: read what is there from the start
    if (now === pos) continue;
    const buf = Buffer.alloc(now - pos);
    const fd = fs.openSync(file, 'r');
    fs.readSync(fd, buf, 0, buf.length, pos);
    fs.closeSync(fd);
    pos = now;
    const lines = (partial + buf.toString()).split('\n');
    partial = lines.pop()!;
    for (const l of lines) {
      try {
        if (l) yield JSON.parse(l) as EgressEvent;
      } catch {}
    }
  }
}

/** Events appended since a cursor (a byte offset; start with the file's size for "from now on"), and the next
 *  cursor. A cursor past the end (the gateway dropped the older half) starts over from the top. */
export function eventsSince(dir: string, cursor: number): { events: EgressEvent[]; cursor: number } {
  const file = eventsFile(dir);
  let size = 0;
  try {
    size = fs.statSync(file).size;
  } catch {
    return { events: [], cursor: 0 };
  }
  const from = cursor > size ? 0 : cursor;
  if (from === size) return { events: [], cursor: size };
  const buf = Buffer.alloc(size - from);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, buf, 0, buf.length, from);
  } finally {
    fs.closeSync(fd);
  }
  const text = buf.toString();
  const end = text.lastIndexOf('\n') + 1; // a line still being written waits for the next call
  const events: EgressEvent[] = [];
  for (const l of text.slice(0, end).split('\n')) {
    try {
      if (l) events.push(JSON.parse(l) as EgressEvent);
    } catch {}
  }
  return { events, cursor: from + Buffer.byteLength(text.slice(0, end)) };
}
