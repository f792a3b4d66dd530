// The connection that woke a paused box, carried to the box's forward. The box's network helper accepts a
// connection as soon as it holds the port again, and may close it when the guest's service has not yet taken one
// after the resume; so until the box has answered a byte, a refused or closed upstream is tried again, replaying
// what the client sent. Bounded every way: the bytes kept for a replay, the tries, their time, and the data in
// flight (the client is paused while the upstream is full or between tries).
import * as net from 'node:net';

/** How long, and how often, a woken box's forward is tried before the client is cut. */
const RETRY_FOR_MS = 10_000;
const MAX_TRIES = 15;
/** What the client sent before the box first answered, kept to replay; past it the connection is committed to the
 *  current try (no replay is possible). */
const REPLAY_LIMIT = 64 * 1024;

export function carry(conn: net.Socket, host: string, port: number, retry = { forMs: RETRY_FOR_MS, tries: MAX_TRIES }): void {
  const deadline = Date.now() + retry.forMs;
  let kept: Buffer[] | null = []; // null: past the limit, or answered
  let keptBytes = 0;
  let clientEnded = false;
  let answered = false;
  let tries = 0;
  let up: net.Socket | null = null;
  conn.pause();
  conn.once('end', () => {
    clientEnded = true;
    if (!answered && up?.readyState === 'open') up.end();
  });
  conn.on('close', () => up?.destroy());

  const attempt = () => {
    if (conn.destroyed) return;
    tries++;
    const u = net.connect(port, host);
    up = u;
    u.on('error', () => {});
    // Before the first answer: what the client sends goes to this try, and is kept for the next.
    const early = (b: Buffer) => {
      if (kept) {
        keptBytes += b.length;
        if (keptBytes <= REPLAY_LIMIT) kept.push(b);
        else kept = null; // too much to replay: this try is the last
      }
      if (!u.write(b)) {
        conn.pause();
        u.once('drain', () => conn.resume());
      }
    };
    u.once('connect', () => {
      for (const b of kept ?? []) u.write(b);
      if (clientEnded) u.end();
      conn.on('data', early);
      conn.resume();
    });
    u.once('data', (first) => {
      answered = true;
      kept = null;
      conn.off('data', early);
      conn.write(first);
      u.pipe(conn);
      conn.pipe(u);
    });
    u.once('close', () => {
      conn.off('data', early);
      if (answered) return void (conn.writableEnded || conn.destroy()); // ended by the pipe, or cut
      if (conn.destroyed || !kept || tries >= retry.tries || Date.now() >= deadline) return void conn.destroy();
      conn.pause();
      setTimeout(attempt, Math.min(1000, 100 * 2 ** (tries - 1))); // 100 ms, 200 ms, … 1 s
    });
  };
  attempt();
}
