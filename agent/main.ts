// boxlite guest agent: serves Guest, Execution and Files over the box's virtio-serial ports.
// It runs inside the box's root filesystem (switch_root was done by the initramfs); its own runtime lives under
// /.boxlite on the shared read-only init image.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { PassThrough } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { AGENT_PORT_NAME_PREFIX, CONSOLE_CLEAN_SHUTDOWN, PROTOCOL_VERSION, type RestoredRequest } from '../src/core/protocol.js';
import { armHostSignal, servePort } from './channel.js';
import { ExecError, ProcessTable } from './exec.js';
import { tarFrom, untarInto } from './files.js';
import { encodeOutputChunk } from './wire.js';
import { prepareRestore, restored, thawRootFs } from './restore.js';
import { netInterfaces, usage } from './usage.js';
import { serveLog } from './logport.js';
import { BUSYBOX } from '../src/core/guest.js';

const AGENT_VERSION = '0.1.0';
const codeStart = Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;
const FREEZE_LIMIT_MS = 10_000;
let thawTimer: NodeJS.Timeout | null = null;
function thawRoot(): void {
  if (thawTimer) clearTimeout(thawTimer);
  thawTimer = null;
  thawRootFs();
}

function restoredAndThawed(req: RestoredRequest): void {
  restored(req);
  // A fork's or a template's memory was saved with the file system frozen (the host's sync call froze it).
  if (thawTimer) thawRoot();
}

const log = (m: string) => process.stderr.write(`boxlite-agent: ${m}\n`);
const uptimeMs = () => Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;

type Call<Req> = grpc.ServerUnaryCall<Req, unknown>;
type Cb = grpc.sendUnaryData<unknown>;

function fail(cb: Cb, err: unknown, code = grpc.status.INTERNAL): void {
  const e = err as Error;
  cb({ code: e instanceof ExecError ? grpc.status.FAILED_PRECONDITION : code, details: e.message ?? String(e) });
}

function unary<Req>(fn: (req: Req) => unknown | Promise<unknown>) {
  return (call: Call<Req>, cb: Cb) => {
    Promise.resolve()
      .then(() => fn(call.request))
      .then((r) => cb(null, r ?? {}), (e) => fail(cb, e));
  };
}

function main(): void {
  process.title = 'boxlite-agent'; // findable with pidof/ps inside the box
  // The contract compiled at build time (agent.json beside the bundle): parsing agent.proto was a part of every
  // boot. From the sources (tests of the agent on the host), the .proto.
  const opts = { keepCase: false, longs: Number, enums: Number, defaults: true };
  const compiled = path.join(__dirname, 'agent.json');
  const def = fs.existsSync(compiled) ? protoLoader.fromJSON(JSON.parse(fs.readFileSync(compiled, 'utf8')), opts) : protoLoader.loadSync(path.join(__dirname, 'agent.proto'), opts);
  const pkg = (grpc.loadPackageDefinition(def) as any).boxlite.agent.v1;
  const procs = new ProcessTable();
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 << 20 });
  let shuttingDown = false;

  server.addService(pkg.Guest.service, {
    handshake: unary<{ protocolVersion: number; restored: RestoredRequest | null }>((req) => {
      if (req.restored) restoredAndThawed(req.restored);
      return { protocolVersion: PROTOCOL_VERSION, agentVersion: AGENT_VERSION, kernel: os.release(), bootMs: bootedAt, nodeStartMs: nodeStart, restored: !!req.restored };
    }),
    ping: unary(() => ({})),
    netStats: unary(() => ({ interfaces: netInterfaces() })),
    usage: unary(() => usage()),
    prepare: unary(() => {
      armHostSignal(log);
      prepareRestore();
    }),
    sync: unary<{ freeze: boolean }>((req) => {
      execFileSync(BUSYBOX, ['sync']);
      if (req.freeze) {
        execFileSync(BUSYBOX, ['fsfreeze', '--freeze', '/']);
        // A host that froze the file system and then died (a killed CLI) must not leave it frozen for good.
        if (thawTimer) clearTimeout(thawTimer);
        thawTimer = setTimeout(thawRoot, FREEZE_LIMIT_MS);
      }
    }),
    thaw: unary(() => thawRoot()),
    shutdown: unary(async () => {
      // Processes are ended and data synced before answering, so the answer means "safe to power off".
      // The agent powers off itself rather than exiting: exit would wait for the blocking port reads.
      if (shuttingDown) return;
      shuttingDown = true;
      await procs.terminateAll(2000);
      try {
        execFileSync(BUSYBOX, ['sync']);
      } catch {}
      setTimeout(() => {
        process.stdout.write(`${CONSOLE_CLEAN_SHUTDOWN}\n`);
        try {
          execFileSync(BUSYBOX, ['mount', '-o', 'remount,ro', '/'], { stdio: 'ignore' });
        } catch {}
        execFileSync(BUSYBOX, ['poweroff', '-f']);
      }, 100);
    }),
  });

  // Output's messages are OutputMessages, encoded by hand (agent/wire.ts).
  const execution = { ...pkg.Execution.service, Output: { ...pkg.Execution.service.Output, responseSerialize: encodeOutputChunk } };
  server.addService(execution, {
    exec: unary<any>((req) => {
      const p = procs.start({
        argv: req.argv,
        env: req.env ?? {},
        cwd: req.cwd,
        user: req.user,
        tty: req.tty,
        rows: req.rows,
        cols: req.cols,
        stdin: req.stdin,
        timeoutMs: req.timeoutMs,
        detach: req.detach && !req.tty && !req.stdin,
      });
      return { execId: p.id, pid: p.pid };
    }),
    output: (call: grpc.ServerWritableStream<{ execId: string }, unknown>) => {
      let p;
      try {
        p = procs.get(call.request.execId);
      } catch (e) {
        return call.emit('error', { code: grpc.status.NOT_FOUND, details: (e as Error).message });
      }
      // The next message is taken once this one has been written out (the write's callback), so the process's
      // output waits in its own pipe while the host reads slower than it writes.
      const detach = p.attach((c, done) => {
        if (c === null) call.end();
        else call.write(c, () => done());
      });
      call.on('cancelled', detach);
      call.on('close', detach);
    },
    input: (call: grpc.ServerReadableStream<any, unknown>, cb: Cb) => {
      let target: ReturnType<ProcessTable['get']> | null = null;
      call.on('data', (m: { execId: string; data: Buffer; eof: boolean }) => {
        try {
          target ??= procs.get(m.execId);
          if (m.data?.length) target.write(m.data);
          if (m.eof) target.closeStdin();
        } catch (e) {
          call.destroy(e as Error);
        }
      });
      call.on('end', () => cb(null, {}));
      call.on('error', () => {});
    },
    wait: (call: Call<{ execId: string }>, cb: Cb) => {
      try {
        procs.get(call.request.execId).wait().then((s) => cb(null, s));
      } catch (e) {
        fail(cb, e, grpc.status.NOT_FOUND);
      }
    },
    kill: unary<{ execId: string; signal: string }>((req) => procs.get(req.execId).kill(req.signal || 'SIGKILL')),
    resizeTty: unary<{ execId: string; rows: number; cols: number }>((req) =>
      procs.get(req.execId).resize(req.rows, req.cols),
    ),
    list: unary(() => ({
      processes: procs.all().map((p) => ({ execId: p.id, pid: p.pid, argv: p.opts.argv, running: p.running })),
    })),
  });

  server.addService(pkg.Network.service, {
    udpRelay: (call: grpc.ServerDuplexStream<{ port: number; peer: string; data: Buffer }, unknown>) => {
      // One socket per host peer and box port, so the box's server sees distinct clients and can answer each.
      const socks = new Map<string, { s: dgram.Socket; used: number }>();
      const sweep = setInterval(() => {
        for (const [k, v] of socks) if (Date.now() - v.used > 120_000) (v.s.close(), socks.delete(k));
      }, 30_000);
      call.on('data', (d) => {
        const key = `${d.peer}|${d.port}`;
        let e = socks.get(key);
        if (!e) {
          const s = dgram.createSocket('udp4');
          s.on('message', (m) => call.write({ port: d.port, peer: d.peer, data: m }));
          s.on('error', () => {});
          e = { s, used: Date.now() };
          socks.set(key, e);
        }
        e.used = Date.now();
        e.s.send(d.data, d.port, '127.0.0.1');
      });
      const end = () => {
        clearInterval(sweep);
        for (const v of socks.values()) v.s.close();
        socks.clear();
      };
      call.on('end', () => (end(), call.end()));
      call.on('error', end);
      call.on('cancelled', end);
    },
  });

  server.addService(pkg.Files.service, {
    upload: (call: grpc.ServerReadableStream<{ dest: string; data: Buffer }, unknown>, cb: Cb) => {
      const body = new PassThrough();
      let started: Promise<void> | null = null;
      call.on('data', (m) => {
        started ??= untarInto(m.dest || '/', body);
        if (m.data?.length) body.write(m.data);
      });
      call.on('end', () => {
        body.end();
        (started ?? Promise.resolve()).then(() => cb(null, {}), (e) => fail(cb, e, grpc.status.INVALID_ARGUMENT));
      });
    },
    download: (call: grpc.ServerWritableStream<{ path: string }, unknown>) => {
      let src;
      try {
        src = tarFrom(call.request.path);
      } catch (e) {
        return call.emit('error', { code: grpc.status.NOT_FOUND, details: `${call.request.path}: ${(e as Error).message}` });
      }
      src.on('data', (d: unknown) => {
        if (!call.write({ data: d })) {
          src.pause();
          call.once('drain', () => src.resume());
        }
      });
      src.on('end', () => call.end());
      src.on('error', (e) => call.emit('error', { code: grpc.status.INTERNAL, details: `${call.request.path}: ${(e as Error).message}` }));
    },
  });

  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const ports = findPorts();
  if (ports.length === 0) throw new Error('no boxlite virtio-serial ports found under /sys/class/virtio-ports');
  for (const dev of ports) servePort(dev, (conn) => injector.injectConnection(conn), log);
  serveLog(log); // before the host is told the agent is ready: a command started then finds the log's FIFO
  setTimeout(() => armHostSignal(log), 3000).unref();
  const bootedAt = uptimeMs();
  const nodeStart = bootedAt - process.uptime() * 1000;
  log(`ready after ${bootedAt.toFixed(0)} ms of guest uptime (node started at ${nodeStart.toFixed(0)} ms, agent code at ${codeStart.toFixed(0)} ms) on ${ports.length} ports`);
}

function findPorts(): string[] {
  const dir = '/sys/class/virtio-ports';
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {}
  return names
    .filter((n) => {
      try {
        return fs.readFileSync(path.join(dir, n, 'name'), 'utf8').trim().startsWith(AGENT_PORT_NAME_PREFIX);
      } catch {
        return false;
      }
    })
    .sort()
    .map((n) => `/dev/${n}`);
}

process.on('uncaughtException', (err) => {
  log(`uncaught: ${err.stack ?? err}`);
});
main();
