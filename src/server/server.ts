// `boxlite serve`: BoxLite's REST API over this machine's boxes. It is a client of the runtime like the CLI, not
// a daemon that owns boxes: they run on when it stops, and executions in flight are told it went. It listens on
// loopback unless told otherwise, and beyond loopback only with an API key (and says so when without TLS).
import { VERSION } from '../core/version.js';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { InvalidOptionError } from '../core/errors.js';
import type { Runtime } from '../runtime/runtime.js';
import { ApiKeys, isLoopback, localKey, MIN_REMOTE_KEY_LENGTH, parseListen, readKeyFile } from './auth.js';
import { ApiError, notFound, toApiError } from './errors.js';
import { Router, sendError, type Handler } from './http.js';
import { HostFolders } from './request.js';
import { DEFAULT_EXEC_LIMITS, Executions, type ExecLimits } from './executions.js';
import { addBoxRoutes, addExecRoutes, DEFAULT_LIMITS, type ApiContext, type ServerLimits } from './routes.js';
import { addStateRoutes } from './state-routes.js';
import { Attacher } from './attach.js';

export interface ServeOptions {
  runtime: Runtime;
  /** ADDR:PORT (default 127.0.0.1:8100; port 0 picks one). */
  listen?: string;
  /** A file of keys, one a line (mode 0600). */
  apiKeyFile?: string;
  /** Keys given directly (programs, tests). */
  apiKeys?: string[];
  tlsCert?: string;
  tlsKey?: string;
  /** The one folder whose paths (and paths below it) boxes made through the API may mount or boot from. */
  allowHostFolders?: string;
  /** Project files (boxlite.yaml) the projects routes may read: only below this folder. */
  projectsDir?: string;
  limits?: Partial<ServerLimits>;
  execLimits?: Partial<ExecLimits>;
  /** Where the server says what it does (never a key). */
  log?: (line: string) => void;
  version?: string;
}

export class BoxliteServer {
  private constructor(
    private readonly server: http.Server | https.Server,
    private readonly execs: Executions,
    private readonly attacher: Attacher,
    readonly url: string,
    /** Set when the server made its own key (loopback, none given): the file that holds it. */
    readonly keyFile: string | undefined,
    private readonly log: (line: string) => void,
    /** Who connected: a count per peer address (bounded), for the operator and for tests of who can reach it. */
    readonly connections: ConnectionStats,
  ) {}

  static async start(o: ServeOptions): Promise<BoxliteServer> {
    const log = o.log ?? (() => {});
    const { host, port } = parseListen(o.listen ?? '127.0.0.1:8100');
    const loop = isLoopback(host);
    let keys = [...(o.apiKeys ?? []), ...(o.apiKeyFile ? readKeyFile(o.apiKeyFile) : [])];
    let keyFile: string | undefined;
    if (!keys.length) {
      if (!loop) throw new InvalidOptionError(`serve: listening on ${host} (beyond this machine) needs an API key: write one to a file (chmod 600) and give --api-key-file FILE`);
      const k = localKey(o.runtime.home.root);
      keys = [k.key];
      keyFile = k.file;
    }
    if (!loop && keys.some((k) => k.length < MIN_REMOTE_KEY_LENGTH)) throw new InvalidOptionError(`serve: a key for a server beyond loopback must be at least ${MIN_REMOTE_KEY_LENGTH} characters (e.g. openssl rand -hex 32)`);
    if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw new InvalidOptionError('serve: give --tls-cert and --tls-key together');
    const tls = o.tlsCert ? { cert: fs.readFileSync(o.tlsCert), key: fs.readFileSync(o.tlsKey!) } : undefined;
    if (!loop && !tls) log(`boxlite serve: warning: listening on ${host} without TLS: keys and data cross the network in the clear (give --tls-cert and --tls-key)`);

    const c: ApiContext = {
      rt: o.runtime,
      execs: new Executions(o.runtime, { ...DEFAULT_EXEC_LIMITS, ...o.execLimits }),
      folders: new HostFolders(o.allowHostFolders),
      limits: { ...DEFAULT_LIMITS, ...o.limits },
      version: o.version ?? VERSION,
      counters: { boxesCreated: 0, boxesFailed: 0, boxesStopped: 0 },
      lastMetrics: new Map(),
    };
    const apiKeys = new ApiKeys(keys);
    const stats = new ConnectionStats();
    c.openConnections = () => stats.open;
    const router = new Router();
    addBoxRoutes(router, c);
    addExecRoutes(router, c);
    addStateRoutes(router, c, o.projectsDir);
    const attacher = new Attacher(c, apiKeys, log);

    const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
      const t0 = Date.now();
      res.setHeader('x-request-id', `req_${randomBytes(9).toString('base64url')}`);
      let path = '/';
      res.once('finish', () => log(`${req.method} ${path} ${res.statusCode} ${Date.now() - t0}ms`));
      try {
        const url = new URL(req.url ?? '/', 'http://x');
        path = url.pathname;
        if (path !== '/v1/config' && !apiKeys.check(req.headers.authorization)) throw new ApiError(401, 'AuthError', 'invalid or missing API key: send Authorization: Bearer KEY');
        const m = router.match(req.method ?? 'GET', path);
        if (m === null) throw notFound(`no route ${req.method} ${path}`);
        if (m === 'no-method') throw new ApiError(405, 'InvalidArgumentError', `${req.method} is not a method of ${path}`);
        await (m.handler as Handler)({ req, res, method: req.method ?? 'GET', path, query: url.searchParams, params: m.params });
      } catch (e) {
        sendError(res, toApiError(e, log));
        req.resume(); // what the client still sends is read and dropped, so it sees the answer
      }
    };
    const server = tls ? https.createServer(tls, handle) : http.createServer(handle);
    server.requestTimeout = 0; // uploads and boots take long; headers must still come quickly
    server.headersTimeout = 30_000;
    server.maxConnections = 1024;
    server.on('upgrade', (req, socket, head) => attacher.upgrade(req, socket, head));
    server.on('connection', (sock) => {
      stats.note(sock.remoteAddress ?? '?');
      sock.once('close', () => stats.open--);
    });
    server.on('clientError', (_e, socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(e.code === 'EADDRINUSE' ? new InvalidOptionError(`serve: ${host}:${port} is in use: stop what listens there or give --listen ADDR:PORT`) : e),
      );
      server.listen(port, host, () => resolve());
    });
    const a = server.address() as AddressInfo;
    const shown = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return new BoxliteServer(server, c.execs, attacher, `${tls ? 'https' : 'http'}://${shown}:${a.port}`, keyFile, log, stats);
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Stops taking requests, tells attached clients the server is going (their executions run on in the box), lets
   *  requests under way finish for graceMs, then ends what is left. Boxes keep running. */
  async close(graceMs = 5000): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    this.execs.shutdown();
    this.attacher.close();
    this.server.closeIdleConnections();
    const timer = setTimeout(() => this.server.closeAllConnections(), graceMs);
    await closed;
    clearTimeout(timer);
    this.log('boxlite serve: stopped; boxes keep running');
  }
}

export class ConnectionStats {
  readonly byPeer = new Map<string, number>();
  total = 0;
  open = 0;
  note(peer: string): void {
    this.total++;
    this.open++;
    if (this.byPeer.size < 1024 || this.byPeer.has(peer)) this.byPeer.set(peer, (this.byPeer.get(peer) ?? 0) + 1);
  }
}
