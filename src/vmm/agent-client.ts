// Host side of the host↔guest channel. Each process takes one of the box's virtio-serial ports (a flock marks it
// taken), runs the link handshake on the port's Unix socket, and relays a private Unix socket to it so that a
// plain @grpc/grpc-js client can speak gRPC over the port.
import { VERSION } from '../core/version.js';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { AGENT_PORTS, LINK_HELLO, LINK_READY, PROTOCOL_VERSION, type RestoredRequest } from '../core/protocol.js';
import { PACKAGE_ROOT } from '../util/package-root.js';
import { tryLock, type Lock } from '../util/lock.js';
import { BoxliteError } from '../core/errors.js';

export class AgentGoneError extends BoxliteError {
  readonly code: number;
  constructor(cause: grpc.ServiceError) {
    super(`the box's agent is gone (${cause.details || 'connection dropped'}): the box stopped or crashed while the call ran; 'boxlite ps -a' shows its state and 'boxlite logs --console BOX' why`);
    this.code = cause.code;
  }
}
import { AgentCallError, AgentVersionError, BoxBusyError } from '../core/errors.js';
import { runDir } from './engine.js';
import { checkPeer, WrongPeerError } from './peer.js';

const HELLO_EVERY_MS = 250;
const FLOW_WINDOW = 4 << 20;

let packageCache: any = null;
function agentPackage(): any {
  if (!packageCache) {
    const opts = { keepCase: false, longs: Number, enums: Number, defaults: true };
    // The build's compiled descriptor (scripts/bundle-agent.mjs); from the sources, the .proto itself.
    const compiled = path.join(PACKAGE_ROOT, 'dist/agent-bundle/agent.json');
    const def = fs.existsSync(compiled)
      ? protoLoader.fromJSON(JSON.parse(fs.readFileSync(compiled, 'utf8')), opts)
      : protoLoader.loadSync(path.join(PACKAGE_ROOT, 'proto/agent.proto'), opts);
    packageCache = (grpc.loadPackageDefinition(def) as any).boxlite.agent.v1;
  }
  return packageCache;
}

export const portSocket = (boxDir: string, i: number) => path.join(runDir(boxDir), `agent-${i}.sock`);

export interface ConnectOptions {
  timeoutMs: number;
  /** Called while waiting; returns a reason when waiting is pointless (the VM died, the guest reported an error). */
  check?: () => string | null;
  /** The VM's process: the port socket must be served by it (the run folder belongs to the jailed VMM, which could
   *  leave a symlink to another socket there). Null while it is not known yet. */
  peerPid: () => number | null;
}

/** Connects to the port socket and runs the handshake; resolves with the socket and any bytes after READY. */
async function linkHandshake(sockPath: string, opts: ConnectOptions): Promise<{ sock: net.Socket; rest: Buffer }> {
  const deadline = Date.now() + opts.timeoutMs;
  const nonce = randomBytes(8).toString('hex');
  let stale = 0;
  for (;;) {
    const failure = opts.check?.();
    if (failure) throw new Error(failure);
    if (Date.now() > deadline) throw new Error(`no answer from the guest agent within ${opts.timeoutMs / 1000}s`);
    let sock: net.Socket;
    try {
      const pid = opts.peerPid();
      if (pid === null) throw new Error('no VM process yet');
      sock = await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(sockPath);
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      });
      try {
        checkPeer(sock, pid, `agent socket ${sockPath}`);
      } catch (e) {
        sock.destroy();
        throw e;
      }
    } catch (e) {
      if (e instanceof WrongPeerError) throw e;
      await new Promise((r) => setTimeout(r, 50)); // QEMU has not created the socket yet, or is gone
      continue;
    }
    const result = await new Promise<{ sock: net.Socket; rest: Buffer } | string>((resolve) => {
      let buf = Buffer.alloc(0);
      const want = `${LINK_READY}${nonce}\n`;
      const hello = () => sock.write(`${LINK_HELLO}${nonce}\n`);
      const timer = setInterval(() => {
        const failure = opts.check?.();
        if (failure) return finish(failure);
        if (Date.now() > deadline) return finish(`no answer from the guest agent within ${opts.timeoutMs / 1000}s`);
        hello();
      }, HELLO_EVERY_MS);
      const onData = (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        const at = buf.indexOf(want);
        if (at >= 0) finish({ sock, rest: buf.subarray(at + want.length) });
        // Frames of a connection the guest still thinks is open (its memory was saved while a host was connected,
        // and restored): leaving makes the guest end that connection; the next one starts clean.
        else if (buf.length >= LINK_READY.length && buf.indexOf(LINK_READY.slice(0, 8)) < 0) finish('stale');
        else if (buf.length > 4096) buf = buf.subarray(buf.length - want.length);
      };
      const onClose = () => finish('closed');
      const finish = (r: { sock: net.Socket; rest: Buffer } | string) => {
        // Hold further bytes (the server's first HTTP/2 frames) until the relay pipes them on.
        sock.pause();
        clearInterval(timer);
        sock.off('data', onData);
        sock.off('close', onClose);
        sock.off('error', onClose);
        resolve(r);
      };
      sock.on('data', onData);
      sock.on('close', onClose);
      sock.on('error', onClose);
      hello();
    });
    if (typeof result !== 'string') return result;
    sock.destroy();
    // Away long enough for the guest to see the host leave (longer each time: a busy guest reads late).
    if (result === 'stale') await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 4 ** stale++)));
    else if (result !== 'closed') throw new Error(result);
  }
}

export interface AgentInfo { protocolVersion: number; agentVersion: string; kernel: string; bootMs: number; nodeStartMs?: number; restored?: boolean }

export class AgentClient {
  readonly guest: any;
  readonly execution: any;
  readonly files: any;
  readonly network: any;
  private closed = false;

  private constructor(
    private readonly relay: net.Server,
    private readonly relayDir: string,
    private readonly portLock: Lock,
    private readonly upstreams: Set<net.Socket>,
    target: string,
  ) {
    const pkg = agentPackage();
    // The flow-control window: how much the agent may send on a stream before the host says it has read it. At
    // HTTP/2's 64 KiB the window update's round trip through a TCG guest capped a stream at ~1.3 MiB/s (measured);
    // the host still holds at most this much (plus grpc-js's few messages) of a stream nobody reads.
    // The agent sends messages of at most 1 MiB (exec output); an agent the guest replaced may send anything, and a
    // message is held whole before it is read: 8 MiB bounds what one costs the host.
    const opts = { 'grpc.max_receive_message_length': 8 << 20, 'grpc.enable_retries': 0, 'grpc-node.flow_control_window': FLOW_WINDOW };
    const creds = grpc.credentials.createInsecure();
    this.guest = new pkg.Guest(target, creds, opts);
    // All three share one channel (grpc-js pools by target and options), hence one port connection.
    this.execution = new pkg.Execution(target, creds, opts);
    this.files = new pkg.Files(target, creds, opts);
    this.network = new pkg.Network(target, creds, opts);
  }

  /** Takes a free port of the box, waits for the agent and checks its protocol version. */
  static async connect(boxDir: string, boxName: string, opts: ConnectOptions & { restored?: () => RestoredRequest }): Promise<AgentClient> {
    const deadline = Date.now() + opts.timeoutMs;
    let lock: Lock | null = null;
    let port = -1;
    while (!lock) {
      for (let i = 0; i < AGENT_PORTS && !lock; i++) {
        lock = tryLock(path.join(boxDir, `agent-${i}.lock`));
        port = i;
      }
      if (lock) break;
      if (Date.now() > deadline) {
        throw new BoxBusyError(`box ${boxName}: all ${AGENT_PORTS} agent connections are in use by other boxlite processes; end one of them and retry`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const sockPath = portSocket(boxDir, port);
    let first: { sock: net.Socket; rest: Buffer } | null;
    try {
      first = await linkHandshake(sockPath, opts);
    } catch (e) {
      lock.release();
      throw e;
    }
    const upstreams = new Set<net.Socket>();
    const relayDir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-'));
    const relayPath = path.join(relayDir, 'agent.sock');
    const relay = net.createServer((local) => {
      // The first gRPC connection uses the handshake done above; a reconnect does a fresh one.
      const up = first ? Promise.resolve(first) : linkHandshake(sockPath, { timeoutMs: 10_000, check: opts.check, peerPid: opts.peerPid });
      first = null;
      up.then(
        ({ sock, rest }) => {
          upstreams.add(sock);
          sock.on('close', () => upstreams.delete(sock));
          if (rest.length) local.write(rest);
          local.pipe(sock);
          sock.pipe(local);
          const end = () => {
            local.destroy();
            sock.destroy();
          };
          local.on('close', end).on('error', end);
          sock.on('close', end).on('error', end);
        },
        () => local.destroy(),
      );
    });
    await new Promise<void>((resolve, reject) => relay.listen(relayPath, resolve).once('error', reject));
    const client = new AgentClient(relay, relayDir, lock, upstreams, `unix://${relayPath}`);
    let info: AgentInfo;
    try {
      // Generous: READY came from the agent, but a guest on a loaded host may take a while to answer.
      // A restore's request is made now: the clock it carries must be the host's at this instant.
      info = await client.call<AgentInfo>('guest', 'handshake', { protocolVersion: PROTOCOL_VERSION, hostVersion: VERSION, restored: opts.restored?.() }, 60_000);
    } catch (e) {
      client.close();
      throw e;
    }
    if (info.protocolVersion !== PROTOCOL_VERSION) {
      client.close();
      throw new AgentVersionError(
        // The version string is the guest's: only printable characters of it reach a terminal.
        `box ${boxName} runs guest agent ${String(info.agentVersion).replace(/[^\x20-\x7e]/g, '?').slice(0, 40)} speaking protocol ${Number(info.protocolVersion)}, but this boxlite speaks protocol ${PROTOCOL_VERSION}: ` +
          `run 'boxlite setup' and restart the box (boxlite restart ${boxName})`,
      );
    }
    if (opts.restored && !info.restored) {
      client.close();
      throw new AgentVersionError(`box ${boxName}: its guest agent did not apply the restore of its memory (its clock, entropy and name would be another box's): run 'boxlite setup'`);
    }
    client.info = info;
    return client;
  }

  info: AgentInfo = { protocolVersion: 0, agentVersion: '', kernel: '', bootMs: 0 };

  /** A unary call as a promise, with a deadline; a connection that dropped (the VM stopped or crashed under the
   *  call) is a BoxliteError saying so, keeping the gRPC code for callers that test it. */
  call<T>(service: 'guest' | 'execution' | 'files', method: string, req: unknown, timeoutMs = 30_000): Promise<T> {
    return new Promise((resolve, reject) => {
      (this as any)[service][method](req, { deadline: timeoutMs > 0 ? Date.now() + timeoutMs : Infinity }, (err: grpc.ServiceError | null, res: T) =>
        err ? reject(callError(err, timeoutMs)) : resolve(res),
      );
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of [this.guest, this.execution, this.files, this.network]) c.close();
    for (const s of this.upstreams) s.destroy();
    this.relay.close();
    fs.rmSync(this.relayDir, { recursive: true, force: true });
    this.portLock.release();
  }
}

/** A failed call as boxlite says it: the agent gone, no answer in time (gRPC's text for that names host sockets),
 *  or the agent's own words; a call this process cancelled stays gRPC's. */
function callError(err: grpc.ServiceError, timeoutMs: number): Error {
  if (err.code === grpc.status.UNAVAILABLE) return new AgentGoneError(err);
  if (err.code === grpc.status.DEADLINE_EXCEEDED) return new AgentCallError(err.code, `no answer within ${timeoutMs / 1000}s`);
  if (err.code === grpc.status.CANCELLED) return err;
  return new AgentCallError(err.code, err.details || err.message);
}
