// Real registries for tests: Debian's docker-registry on 127.0.0.1 (plain, or with token authentication served by
// a small token service here), images pushed with skopeo, and a proxy in front that can break the transfer.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import * as net from 'node:net';
import { createSign, randomBytes } from 'node:crypto';
import { Layout } from './oci.js';
import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const TEST_PACKAGES = [
  { pkg: 'docker-registry', file: '/usr/bin/docker-registry' },
  { pkg: 'skopeo', file: '/usr/bin/skopeo' },
  { pkg: 'umoci', file: '/usr/bin/umoci' },
  { pkg: 'debootstrap', file: '/usr/sbin/debootstrap' },
  { pkg: 'apache2-utils', file: '/usr/bin/htpasswd' },
  // The Python client's WebSocket library (python/boxlite), as Debian ships it.
  { pkg: 'python3-websockets', file: '/usr/lib/python3/dist-packages/websockets/__init__.py' },
];

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export interface Registry {
  host: string;
  dir: string;
  /** user → password, when the registry wants authentication */
  users?: Record<string, string>;
  stop(): Promise<void>;
}

async function waitUp(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited (${child.exitCode}): ${log()}`);
    try {
      const r = await fetch(url);
      if (r.status === 200 || r.status === 401) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`docker-registry did not come up at ${url}: ${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts docker-registry on a free loopback port. With users, it asks for bearer tokens from a token service
 *  (or, with basic, for basic credentials checked against an htpasswd file). */
export async function startRegistry(opts: { users?: Record<string, string>; basic?: boolean } = {}): Promise<Registry> {
  if (!fs.existsSync('/usr/bin/docker-registry')) throw new Error("docker-registry is not installed: run 'npm test' (its global setup installs it) or apt-get install docker-registry");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-registry-'));
  const port = await freePort();
  let auth = '';
  let tokenServer: http.Server | undefined;
  if (opts.users && opts.basic) {
    const lines = Object.entries(opts.users).map(([u, p]) => execFileSync('htpasswd', ['-Bbn', u, p]).toString().trim());
    fs.writeFileSync(`${dir}/htpasswd`, lines.join('\n') + '\n');
    auth = `auth:\n  htpasswd:\n    realm: boxlite-test\n    path: ${dir}/htpasswd\n`;
  } else if (opts.users) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=boxlite-test-token', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`], { stdio: 'ignore' });
    const key = fs.readFileSync(`${dir}/key.pem`, 'utf8');
    const certDer = Buffer.from(fs.readFileSync(`${dir}/cert.pem`, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const users = opts.users;
    tokenServer = http.createServer((req, res) => {
      const u = new URL(req.url!, 'http://x');
      const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
      const [user, pass] = basic ? Buffer.from(basic[1], 'base64').toString().split(':') : [];
      if (!user || users[user] !== pass) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
        return;
      }
      const scope = u.searchParams.get('scope') ?? '';
      const [, name, actions] = scope.split(':');
      const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const now = Math.floor(Date.now() / 1000);
      const head = b64({ alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')] });
      const body = b64({ iss: 'boxlite-test', sub: user, aud: 'boxlite-registry', exp: now + 600, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access: name ? [{ type: 'repository', name, actions: (actions ?? 'pull').split(',') }] : [] });
      const sig = createSign('RSA-SHA256').update(`${head}.${body}`).sign(key).toString('base64url');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `${head}.${body}.${sig}` }));
    });
    await new Promise<void>((r) => tokenServer!.listen(0, '127.0.0.1', r));
    const tport = (tokenServer.address() as net.AddressInfo).port;
    auth = `auth:\n  token:\n    realm: http://127.0.0.1:${tport}/token\n    service: boxlite-registry\n    issuer: boxlite-test\n    rootcertbundle: ${dir}/cert.pem\n`;
  }
  fs.writeFileSync(
    `${dir}/config.yml`,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n${auth}`,
  );
  let log = '';
  const child = spawn('/usr/bin/docker-registry', ['serve', `${dir}/config.yml`], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  await waitUp(`http://127.0.0.1:${port}/v2/`, child, () => log.slice(-2000));
  return {
    host: `127.0.0.1:${port}`,
    dir,
    users: opts.users,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      tokenServer?.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Pushes an OCI layout (all platforms, digests kept) to registry/repo:tag with skopeo. Asynchronous: the token
 *  service skopeo asks runs in this process. */
export async function push(reg: Registry, layout: string, target: string): Promise<void> {
  const creds = reg.users ? ['--dest-creds', Object.entries(reg.users)[0].join(':')] : [];
  await execFileP('skopeo', ['copy', '-q', '--all', '--preserve-digests', '--dest-tls-verify=false', ...creds, `oci:${layout}`, `docker://${reg.host}/${target}`]);
}

export interface ProxyRequest {
  method: string;
  url: string;
  range?: string;
}

/**
 * An HTTP proxy in front of a registry that can misbehave on blob downloads: corrupt one blob's bytes, or cut a
 * blob after some bytes and then stop answering altogether (a registry that died mid-pull).
 */
export class FaultProxy {
  readonly requests: ProxyRequest[] = [];
  corrupt?: string;
  cut?: { digest: string; after: number };
  private server!: http.Server;
  private sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly upstream: string) {}

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<void> {
    this.server = http.createServer((req, res) => {
      this.requests.push({ method: req.method!, url: req.url!, range: req.headers.range as string | undefined });
      const up = http.request({ host: '127.0.0.1', port: Number(this.upstream.split(':')[1]), method: req.method, path: req.url, headers: { ...req.headers, host: this.upstream } }, (ur) => {
        const isBlob = (d?: string) => !!d && req.url!.endsWith(`/blobs/${d}`);
        const headers = { ...ur.headers };
        res.writeHead(ur.statusCode!, headers);
        let sent = 0;
        ur.on('data', (chunk: Buffer) => {
          if (isBlob(this.corrupt)) {
            chunk = Buffer.from(chunk);
            if (sent === 0) chunk[chunk.length >> 1] ^= 0xff;
          }
          if (this.cut && isBlob(this.cut.digest) && sent + chunk.length > this.cut.after) {
            res.write(chunk.subarray(0, Math.max(0, this.cut.after - sent)));
            this.die();
            return;
          }
          sent += chunk.length;
          res.write(chunk);
        });
        ur.on('end', () => res.end());
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((r) => this.server.listen(port, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  /** Drops every connection and stops listening. */
  die(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }

  async stop(): Promise<void> {
    this.die();
  }
}

/**
 * A Debian bookworm minbase with python3 and its venv module, made by debootstrap from the Debian mirror once and cached as a tarball
 * (in ~/.cache/boxlite-test) so later runs skip it. Needs root, as debootstrap does.
 */
export function debianPythonLayer(): Buffer {
  const cacheDir = path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'boxlite-test');
  const file = path.join(cacheDir, 'debian-bookworm-python3-venv.tar');
  if (!fs.existsSync(file)) {
    if (process.getuid?.() !== 0) throw new Error('building the Debian test image needs root (debootstrap): run the tests as root or provide ' + file);
    fs.mkdirSync(cacheDir, { recursive: true });
    const root = fs.mkdtempSync(path.join(cacheDir, 'debootstrap-'));
    try {
      execFileSync('debootstrap', ['--variant=minbase', '--include=python3,python3-venv', 'bookworm', root, 'http://deb.debian.org/debian'], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 15 * 60_000 });
      // The apt caches are not part of an image.
      execFileSync('sh', ['-c', 'rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*', 'sh', root]);
      // Two test files may build it at once on a fresh machine: each writes its own part, the last rename wins.
      const part = `${file}.part-${process.pid}`;
      execFileSync('tar', ['-C', root, '--numeric-owner', '--xattrs', '-cf', part, '.']);
      fs.renameSync(part, file);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
  return fs.readFileSync(file);
}

/** The Debian image as an OCI layout (one gzip layer), built once and cached beside the tarball. */
export function debianLayout(): string {
  const cacheDir = path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'boxlite-test');
  const dir = path.join(cacheDir, 'debian-bookworm-python3-venv.oci');
  if (fs.existsSync(path.join(dir, 'index.json'))) return dir;
  const layer = debianPythonLayer();
  const tmp = `${dir}.part-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  const l = new Layout(tmp);
  l.finish([l.image({ layers: [layer], config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['bash'] } })]);
  // Another test file may have finished one meanwhile and be reading it: keep that one, never remove it.
  try {
    if (fs.existsSync(path.join(dir, 'index.json'))) throw new Error('made meanwhile');
    fs.rmSync(dir, { recursive: true, force: true }); // a partial one from a killed run
    fs.renameSync(tmp, dir);
  } catch {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}
