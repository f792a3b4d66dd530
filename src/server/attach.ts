// GET /v1/boxes/{id}/executions/{eid}/attach: the WebSocket of BoxLite's attach protocol. The upgrade is refused
// with a plain HTTP answer in BoxLite's error shape (401 without the key, 404 for an unknown box or execution, 409
// when a client is already attached) before any WebSocket exists. Client binary frames are stdin; text frames are
// {"type":"resize",cols,rows}, {"type":"signal",sig} and {"type":"stdin_eof"}; a bad one gets a {"type":"error"}
// frame and the connection stays. The server pings every 15 s and ends a connection silent for 45 s.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ApiKeys } from './auth.js';
import { ApiError, notFound, toApiError } from './errors.js';
import type { ExecSession } from './executions.js';
import { boxOf, type ApiContext } from './routes.js';

const ATTACH = /^\/v1\/boxes\/([^/]+)\/executions\/([^/]+)\/attach$/;
const PING_MS = 15_000;
const DEAD_MS = 45_000;
/** The largest client frame taken (stdin chunk or control message). */
export const MAX_FRAME = 1 << 20;

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 409: 'Conflict', 500: 'Internal Server Error' };

function refuse(socket: Duplex, e: ApiError): void {
  const body = JSON.stringify(e.body());
  socket.end(
    `HTTP/1.1 ${e.status} ${STATUS_TEXT[e.status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `${e.status === 401 ? 'www-authenticate: Bearer realm="boxlite"\r\n' : ''}connection: close\r\n\r\n${body}`,
  );
}

export class Attacher {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME });
  private readonly timer: NodeJS.Timeout;
  private readonly alive = new Map<WebSocket, number>();

  constructor(
    private readonly c: ApiContext,
    private readonly keys: ApiKeys,
    private readonly log: (line: string) => void,
  ) {
    this.timer = setInterval(() => this.keepalive(), PING_MS);
    this.timer.unref();
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {});
    let session: ExecSession;
    try {
      if (!this.keys.check(req.headers.authorization)) throw new ApiError(401, 'AuthError', 'invalid or missing API key: send Authorization: Bearer KEY');
      const m = ATTACH.exec(new URL(req.url ?? '/', 'http://x').pathname);
      if (!m) throw notFound('no WebSocket here: attach at /v1/boxes/{box_id}/executions/{execution_id}/attach');
      const [boxRef, eid] = [decodeURIComponent(m[1]), decodeURIComponent(m[2])];
      session = this.c.execs.get(boxOf(this.c, boxRef).id, eid);
      if (session.attached) throw new ApiError(409, 'InvalidStateError', `execution ${eid} already has a client attached: one at a time (close the other first)`);
    } catch (e) {
      refuse(socket, toApiError(e, this.log));
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      // A second client could have come in while this one's handshake ran.
      if (session.attached) {
        ws.close(4009, 'another client is attached');
        return;
      }
      this.serve(ws, session);
    });
  }

  private serve(ws: WebSocket, s: ExecSession): void {
    this.alive.set(ws, Date.now());
    ws.on('pong', () => this.alive.set(ws, Date.now()));
    // In order: a resize sent before some input applies before the command reads that input.
    let chain = Promise.resolve();
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.alive.set(ws, Date.now());
      chain = chain.then(() =>
        isBinary
          ? this.stdin(ws, s, data)
          : this.control(ws, s, data.toString('utf8')).catch((e) => ws.send(JSON.stringify({ type: 'error', message: toApiError(e, this.log).message }))),
      );
    });
    ws.on('close', () => {
      this.alive.delete(ws);
      s.detach(ws);
    });
    ws.on('error', () => {});
    s.attach(ws);
  }

  private stdin(ws: WebSocket, s: ExecSession, data: Buffer): Promise<void> | void {
    const w = s.stdin;
    if (!w) {
      ws.send(JSON.stringify({ type: 'error', message: `execution ${s.id} takes no more input (its stdin is closed)` }));
      return;
    }
    // Backpressure: stop reading the socket until the command has taken what it was sent.
    if (!s.write(data)) {
      ws.pause();
      return new Promise<void>((r) =>
        w.once('drain', () => {
          ws.resume();
          r();
        }),
      );
    }
  }

  private async control(ws: WebSocket, s: ExecSession, text: string): Promise<void> {
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(text);
    } catch {
      throw new ApiError(400, 'InvalidArgumentError', 'a text frame must be JSON: {"type":"resize"|"signal"|"stdin_eof", …}');
    }
    switch (m?.type) {
      case 'resize': {
        const { cols, rows } = m as { cols: number; rows: number };
        if (!(Number.isInteger(cols) && Number.isInteger(rows) && cols >= 1 && rows >= 1 && cols <= 1000 && rows <= 1000)) throw new ApiError(400, 'InvalidArgumentError', 'resize needs whole cols and rows from 1 to 1000');
        return s.resize(rows, cols);
      }
      case 'signal': {
        const sig = (m as { sig?: unknown; signal?: unknown }).sig ?? (m as { signal?: unknown }).signal;
        if (!Number.isInteger(sig)) throw new ApiError(400, 'InvalidArgumentError', 'signal needs sig, a signal number');
        return s.signal(sig as number);
      }
      case 'stdin_eof':
        return s.closeStdin();
      default:
        throw new ApiError(400, 'InvalidArgumentError', `unknown control message type ${JSON.stringify(m?.type)}: resize, signal or stdin_eof`);
    }
  }

  private keepalive(): void {
    const now = Date.now();
    for (const [ws, at] of this.alive) {
      if (now - at > DEAD_MS) ws.terminate();
      else ws.ping();
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.wss.close();
  }
}
