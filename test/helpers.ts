// Test fixtures: homes, busybox root filesystems, OCI layouts, and a CLI runner.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Runtime } from '../src/runtime/runtime.js';
import { CLI, TEST_ASSETS_HOME } from './paths.js';
import { scaled } from './scale.js';

export { scaled } from './scale.js';

/** A fresh BOXLITE_HOME whose assets are the shared ones built by global-setup. */
export function testHome(): string {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-test-'));
  fs.symlinkSync(path.join(TEST_ASSETS_HOME, 'assets'), path.join(home, 'assets'));
  return home;
}

/** Stops every box of a home (by its records) and deletes the home. */
export async function cleanupHome(home: string): Promise<void> {
  const rt = new Runtime({ home, say: () => {} });
  for (const b of rt.list()) {
    try {
      await rt.remove(b.id, { force: true });
    } catch {}
  }
  rt.close();
  fs.rmSync(home, { recursive: true, force: true });
}

/** A minimal root filesystem: static busybox with every applet, users root and app (1000). */
export function makeRootfs(dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-rootfs-'))): string {
  for (const d of ['bin', 'etc', 'root', 'home/app', 'tmp', 'usr/bin', 'var']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(dir, 'bin/busybox'));
  fs.chmodSync(path.join(dir, 'bin/busybox'), 0o755);
  const applets = execFileSync('/bin/busybox', ['--list']).toString().split('\n').filter((a) => a && a !== 'busybox');
  for (const a of applets) fs.symlinkSync('busybox', path.join(dir, 'bin', a));
  fs.writeFileSync(path.join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n');
  fs.writeFileSync(path.join(dir, 'etc/group'), 'root:x:0:\ntty:x:5:\napp:x:1000:\n');
  fs.chownSync(path.join(dir, 'home/app'), 1000, 1000);
  fs.chmodSync(path.join(dir, 'tmp'), 0o1777);
  fs.chmodSync(dir, 0o755); // the root of an image, as tar records it
  return dir;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** An OCI image layout with one gzip layer holding rootfs, and the given image config. */
export function makeOciLayout(rootfs: string, config: Record<string, unknown>, dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-oci-'))): string {
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const put = (b: Buffer) => {
    const d = sha(b);
    fs.writeFileSync(path.join(blobs, d), b);
    return { digest: `sha256:${d}`, size: b.length };
  };
  const layer = execFileSync('tar', ['-C', rootfs, '--numeric-owner', '-czf', '-', '.'], { maxBuffer: 1 << 30 });
  const diffId = sha(execFileSync('gzip', ['-dc'], { input: layer, maxBuffer: 1 << 30 }));
  const cfg = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config, rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] } })));
  const l = put(layer);
  const manifest = put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...l }],
      }),
    ),
  );
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, platform: { os: 'linux', architecture: 'amd64' } }] }),
  );
  return dir;
}

export interface CliResult { code: number | null; stdout: string; stderr: string }

/** Runs the boxlite CLI as a separate process with the given home. */
export function cli(home: string, args: string[], opts: { input?: string; env?: Record<string, string>; timeoutMs?: number; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, BOXLITE_HOME: home, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`boxlite ${args.join(' ')} did not finish in time; stderr: ${stderr}`));
    }, opts.timeoutMs ?? scaled(150_000));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

export function quietRuntime(home: string): Runtime {
  return new Runtime({ home, say: () => {} });
}

/** A CLI process left running (boxlite up --watch): its output so far, and a wait for a line. */
export class CliProcess {
  readonly child: ChildProcess;
  output = '';
  constructor(home: string, args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}) {
    this.child = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd, env: { ...process.env, BOXLITE_HOME: home, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d) => (this.output += d));
    this.child.stderr!.on('data', (d) => (this.output += d));
  }
  /** Resolves when the output (after `from` characters) matches re. */
  async waitFor(re: RegExp, timeoutMs = 120_000, from = 0): Promise<string> {
    const deadline = Date.now() + scaled(timeoutMs);
    for (;;) {
      const m = re.exec(this.output.slice(from));
      if (m) return m[0];
      if (this.child.exitCode !== null) throw new Error(`the CLI exited (${this.child.exitCode}) before printing ${re}; it printed:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`the CLI did not print ${re} in ${scaled(timeoutMs) / 1000}s; it printed:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  exited(): Promise<number | null> {
    return this.child.exitCode !== null ? Promise.resolve(this.child.exitCode) : new Promise((r) => this.child.once('exit', (c) => r(c)));
  }
}

/** Pids of the QEMU processes running boxes of a home. */
export function qemuPids(home: string): number[] {
  try {
    // Anchored: the VM's supervisor shell names qemu-system in its command line too.
    return execFileSync('pgrep', ['-f', `^\\S*qemu-system\\S* .*${home}/boxes/`]).toString().trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Resolves once cond() holds (a state file, a record, the process table), checked every 50 ms; throws, naming what
 *  was awaited, after timeoutMs (scaled to this machine). */
export async function waitUntil(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + scaled(timeoutMs);
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${scaled(timeoutMs) / 1000}s waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs the CLI with a failpoint (src/util/failpoint.ts): it kills itself with SIGKILL at that named moment. Checks
 *  that it did die there, and returns what it printed. */
export async function cliKilledAt(home: string, args: string[], point: string, opts: { cwd?: string } = {}): Promise<string> {
  const p = new CliProcess(home, args, { cwd: opts.cwd, env: { BOXLITE_FAILPOINT: point } });
  // 'close': the process has ended and its output is all read.
  const signal = await new Promise<NodeJS.Signals | null>((r) => p.child.once('close', (_c, s) => r(s)));
  if (signal !== 'SIGKILL' || !p.output.includes(`boxlite: failpoint ${point}\n`)) {
    throw new Error(`boxlite ${args.join(' ')} was to die at failpoint ${point}, but it ended with ${signal ?? `exit ${p.child.exitCode}`}; it printed:\n${p.output}`);
  }
  return p.output;
}

/** Makes a box (and the snapshots it records) look ms older, as if that time had passed: for policies that act
 *  on age, without waiting. */
export function ageBox(home: string, name: string, ms: number): void {
  const rt = quietRuntime(home);
  try {
    const id = rt.get(name).id;
    const file = path.join(home, 'boxes', id, 'box.json');
    const rec = JSON.parse(fs.readFileSync(file, 'utf8'));
    const back = (t: string) => new Date(Date.parse(t) - ms).toISOString();
    rec.createdAt = back(rec.createdAt);
    for (const s of rec.snapshots ?? []) s.createdAt = back(s.createdAt);
    fs.writeFileSync(file, JSON.stringify(rec, null, 2));
  } finally {
    rt.close();
  }
}
