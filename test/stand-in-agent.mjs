// A hostile guest agent for the host-boundary tests: it sits on a box's channel (the agent-N.sock sockets a
// box's QEMU would serve, in the box's folder) and answers as a compromised guest would. It passes for the box's
// VM process (its name is QEMU's, its command line names the box's qmp.sock and it writes qemu.pid), so the runtime talks to it as to
// any running box.
//   node stand-in-agent.mjs BOXDIR SCRIPT.json BOXDIR/vm/qmp.sock  — SCRIPT: { download?: TARFILE, udp?: [{ port, peer, data }] }
// Prints "ready" once it listens.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const [dir, scriptFile] = process.argv.slice(2);
const script = JSON.parse(fs.readFileSync(scriptFile, 'utf8'));
const version = Number(/PROTOCOL_VERSION = (\d+)/.exec(fs.readFileSync(path.join(here, '..', 'src/core/protocol.ts'), 'utf8'))[1]);
const def = protoLoader.loadSync(path.join(here, '..', 'proto/agent.proto'), { keepCase: false, longs: Number, enums: Number, defaults: true });
const pkg = grpc.loadPackageDefinition(def).boxlite.agent.v1;

const server = new grpc.Server();
const unary = (f) => (call, cb) => cb(null, f(call.request) ?? {});
server.addService(pkg.Guest.service, {
  handshake: unary(() => ({ protocolVersion: version, agentVersion: 'stand-in', kernel: 'none', bootMs: 0 })),
  ping: unary(() => ({})),
  sync: unary(() => ({})),
  thaw: unary(() => ({})),
  shutdown: unary(() => setTimeout(() => process.exit(0), 50)),
  netStats: unary(() => ({ interfaces: [] })),
});
server.addService(pkg.Files.service, {
  upload: (call, cb) => call.on('data', () => {}).on('end', () => cb(null, {})),
  download: (call) => {
    const data = fs.readFileSync(script.download);
    for (let i = 0; i < data.length; i += 16384) call.write({ data: data.subarray(i, i + 16384) });
    call.end();
  },
});
server.addService(pkg.Network.service, {
  // Whatever the host sends, answer with the datagrams the script names, to the peers the script names.
  udpRelay: (call) => {
    call.on('data', (d) => {
      for (const u of script.udp ?? []) call.write({ port: u.port, peer: u.peer === 'SENDER' ? d.peer : u.peer, data: Buffer.from(u.data) });
    });
    call.on('end', () => call.end());
  },
});
const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());

// The link handshake of src/core/protocol.ts: HELLO <nonce> in, READY <nonce> out, then HTTP/2.
function serve(sock) {
  let buf = Buffer.alloc(0);
  const onData = (d) => {
    buf = Buffer.concat([buf, d]);
    const text = buf.toString('latin1');
    const m = /BOXLITE-HELLO (\S+)\n/.exec(text);
    if (!m) return;
    sock.off('data', onData);
    sock.pause();
    sock.write(`BOXLITE-READY ${m[1]}\n`);
    let rest = buf.subarray(m.index + m[0].length);
    while (rest.toString('latin1').startsWith('BOXLITE-HELLO ')) rest = rest.subarray(rest.indexOf(10) + 1);
    if (rest.length) sock.unshift(rest);
    injector.injectConnection(sock);
    sock.resume();
  };
  sock.on('data', onData);
  sock.on('error', () => {});
}

const run = path.join(dir, 'vm');
fs.mkdirSync(run, { recursive: true });
for (let i = 0; i < 4; i++) {
  const p = path.join(run, `agent-${i}.sock`);
  fs.rmSync(p, { force: true });
  net.createServer(serve).listen(p);
}
fs.writeFileSync(path.join(run, 'qemu.pid'), String(process.pid));
fs.writeFileSync('/proc/self/comm', 'qemu-system-x86'); // the name the runtime looks for in a VM's process
process.stdout.write('ready\n');
