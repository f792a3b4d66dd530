// A box's outbound denials as callers read them: what is in its events file, and what its gateway adds while one
// follows (the SDK's event stream, `boxlite events -f`, and `up --watch`).
import * as fs from 'node:fs';
import { eventsFile, type EgressEvent } from '../vmm/egress/events.js';

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
  let cursor = opts.sinceNow ? size() : 0;
  for (;;) {
    const next = eventsSince(dir, cursor);
    const seen = size();
    cursor = next.cursor;
    yield* next.events;
    if (!opts.follow || opts.signal?.aborted) return;
    await new Promise<void>((resolve) => {
      const done = () => (fs.unwatchFile(file, done), opts.signal?.removeEventListener('abort', done), resolve());
      fs.watchFile(file, { interval: 100 }, done);
      opts.signal?.addEventListener('abort', done);
      if (size() !== seen) done(); // written while we were yielding
    });
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
