// What the egress gateway and the network guard report: one JSON line per denial (a connection, a datagram, a DNS
// name) in the box's folder. Each holds the file open from before it gives up root, so it never needs to reach the
// home again; the guest decides how often it is denied, so the file is capped: past the cap the older half is
// dropped, and the same denial is written once in 10 s, at most 100 a second.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface EgressEvent {
  time: string;
  box: string;
  /** secret: a request carried a secret's placeholder to a host the secret is not for. */
  kind: 'connection' | 'datagram' | 'dns' | 'secret';
  action: 'deny';
  /** The rule or reason that decided. */
  rule: string;
  /** address:port, or the name asked for. */
  destination: string;
  protocol: 'tcp' | 'udp' | 'dns';
  /** Denials left out just before this one (more than the gateway writes a second). */
  suppressed?: number;
}

export const eventsFile = (dir: string) => path.join(dir, 'events.jsonl');
export const EVENTS_CAP = 1024 * 1024;

/** The same denial is reported once in this long. */
const REPEAT_MS = 10_000;
const MAX_EVENTS_PER_S = 100;
const MAX_KEYS = 1024;

export class EventWriter {
  private size = 0;
  constructor(private fd: number, private cap = EVENTS_CAP) {}

  write(e: EgressEvent): void {
    const line = Buffer.from(JSON.stringify(e) + '\n');
    this.size = fs.fstatSync(this.fd).size; // two processes (gateway and guard) append to it
    if (this.size + line.length > this.cap) this.dropOlderHalf();
    fs.writeSync(this.fd, line);
    this.size += line.length;
  }

  private dropOlderHalf(): void {
    const all = Buffer.alloc(this.size);
    const n = fs.readSync(this.fd, all, 0, this.size, 0);
    let from = all.indexOf(0x0a, Math.floor(n / 2));
    from = from < 0 ? n : from + 1;
    const kept = all.subarray(from, n);
    fs.ftruncateSync(this.fd, 0);
    fs.writeSync(this.fd, kept); // the file is opened for appending: this lands at its start
    this.size = kept.length;
  }
}

/** Writes denials as the guest makes them, within the limits above; the next one written says how many the
 *  per-second limit left out. */
export function denialReporter(writer: EventWriter, box: string): (e: Omit<EgressEvent, 'time' | 'box' | 'action'>) => void {
  const recent = new Map<string, number>();
  let second = 0;
  let inSecond = 0;
  let suppressed = 0;
  return (e) => {
    const now = Date.now();
    const key = `${e.kind}|${e.destination}|${e.rule}`;
    if ((recent.get(key) ?? -Infinity) > now - REPEAT_MS) return;
    if (recent.size >= MAX_KEYS) recent.clear();
    recent.set(key, now);
    if (Math.floor(now / 1000) !== second) (second = Math.floor(now / 1000)), (inSecond = 0);
    if (++inSecond > MAX_EVENTS_PER_S) return void suppressed++;
    writer.write({ time: new Date(now).toISOString(), box, action: 'deny', ...e, ...(suppressed ? { suppressed } : {}) });
    suppressed = 0;
  };
}

export function readEvents(dir: string): EgressEvent[] {
  let text = '';
  try {
    text = fs.readFileSync(eventsFile(dir), 'utf8');
  } catch {
    return [];
  }
  const out: EgressEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as EgressEvent);
    } catch {
      // a line cut by a crash mid-write: skipped
    }
  }
  return out;
}

/** Denials so far, by kind (for inspect). */
export function eventCounts(dir: string): Record<EgressEvent['kind'], number> {
  const counts = { connection: 0, datagram: 0, dns: 0, secret: 0 };
  for (const e of readEvents(dir)) if (e.kind in counts) counts[e.kind]++;
  return counts;
}
