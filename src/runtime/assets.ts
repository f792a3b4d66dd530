// Guest assets and host packages: what `boxlite setup` prepares, and what every box start needs.
//  - kernel: vmlinuz from Debian's linux-image-*-cloud-amd64 .deb (downloaded and unpacked, never installed)
//  - initramfs: busybox + the virtio modules in dependency order + init (src/runtime/guest/init.sh)
//  - init image: read-only ext4 with the host's node and its libraries, tini, busybox and the bundled agent
// Each is stored under a content key, so a change to any input builds a new one beside the old.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpioNewc, S_IFCHR, S_IFDIR, S_IFREG, type CpioEntry } from './cpio.js';
import type { Home } from './home.js';
import { ensureDir, readJson, sha256, sha256File, writeJsonAtomic } from '../util/fs.js';
import { run } from '../util/exec.js';
import { withLock } from '../util/lock.js';
import { PACKAGE_ROOT } from '../util/package-root.js';
import { AssetsMissingError } from '../core/errors.js';
const GUEST_DIR = path.join(PACKAGE_ROOT, 'src/runtime/guest');
const AGENT_BUNDLE_DIR = path.join(PACKAGE_ROOT, 'dist/agent-bundle');
const ASSET_FORMAT = 1; // bump when the layout of an asset changes
const KERNEL_META_PACKAGE = 'linux-image-cloud-amd64';
const MODULES = ['virtio_mmio', 'virtio_blk', 'virtio_console', 'virtio_net', 'virtiofs', 'virtio_balloon'];
/** Must match start.sh: V8 refuses a code cache made under other flags. It makes one for each way the agent runs:
 *  with its JIT, and without (under TCG; see start.sh). */
const GUEST_NODE_FLAGS = ['--max-old-space-size=64'];
const GUEST_NODE_MODES: { flags: string[]; cache: string }[] = [
  { flags: GUEST_NODE_FLAGS, cache: 'agent/agent.cjs.cache' },
  { flags: [...GUEST_NODE_FLAGS, '--jitless'], cache: 'agent/agent.cjs.jitless.cache' },
];

/** Debian packages boxlite uses on the host, each with a file that shows it is installed and why we need it. */
export const HOST_PACKAGES: { pkg: string; file: string; why: string }[] = [
  { pkg: 'qemu-system-x86', file: '/usr/bin/qemu-system-x86_64', why: 'runs each box as a micro-VM' },
  { pkg: 'qemu-utils', file: '/usr/bin/qemu-img', why: 'creates and inspects box disks' },
  { pkg: 'busybox-static', file: '/bin/busybox', why: 'the initramfs and the guest tools (static, so it runs in any box)' },
  { pkg: 'tini', file: '/usr/bin/tini-static', why: 'PID 1 in the box: reaps orphaned processes' },
  { pkg: 'kmod', file: '/usr/sbin/depmod', why: 'resolves guest kernel module dependencies' },
  { pkg: 'e2fsprogs', file: '/usr/sbin/mkfs.ext4', why: 'builds ext4 file systems (init image, image bases, box disks) and fixes owners with debugfs' },
  { pkg: 'passt', file: '/usr/bin/passt', why: "each box's network: outbound NAT and DNS, port forwards, no path to the host's loopback" },
  { pkg: 'zstd', file: '/usr/bin/zstd', why: 'decompresses zstd image layers (Node 20 has no zstd)' },
  { pkg: 'nftables', file: '/usr/sbin/nft', why: "the redirects inside the network namespace of a box with an outbound policy, which send all its traffic to its egress gateway" },
  { pkg: 'iproute2', file: '/usr/sbin/ip', why: "sets up that namespace's links and routes" },
  { pkg: 'bubblewrap', file: '/usr/bin/bwrap', why: "the jail of each box's VMM and file sharing helpers: a file system view of their own, namespaces, seccomp" },
];

export interface Assets {
  key: string;
  kernel: string;
  initrd: string;
  initImage: string;
  kernelVersion: string;
}

export function missingPackages(): typeof HOST_PACKAGES {
  return HOST_PACKAGES.filter((p) => !fs.existsSync(p.file));
}

/** The assets recorded by the last setup; throws with the fix when they are missing. */
export function loadAssets(home: Home): Assets {
  const a = readJson<Assets>(path.join(home.assetsDir, 'current.json'));
  if (!a) throw new AssetsMissingError(`guest assets are missing under ${home.assetsDir}: run 'boxlite setup'`);
  for (const f of [a.kernel, a.initrd, a.initImage]) {
    if (!fs.existsSync(f)) throw new AssetsMissingError(`guest asset ${f} is missing: run 'boxlite setup' to rebuild it`);
  }
  return a;
}

type Say = (msg: string) => void;

export interface SetupOptions {
  ifMissing?: boolean;
  say?: Say;
}

export async function setup(home: Home, opts: SetupOptions = {}): Promise<Assets> {
  const say = opts.say ?? ((m) => process.stderr.write(`setup: ${m}\n`));
  return withLock(home.setupLock, 'boxlite setup', async () => {
    await installPackages(say);
    const inputsKey = await assetInputsKey();
    const current = readJson<Assets & { inputsKey?: string }>(path.join(home.assetsDir, 'current.json'));
    if (opts.ifMissing && current?.inputsKey === inputsKey) {
      try {
        loadAssets(home);
        say('guest assets are up to date');
        return current;
      } catch {}
    }
    ensureDir(home.assetsDir);
    say('[2/4] guest kernel');
    const kernel = await prepareKernel(home, say);
    say('[3/4] initramfs');
    const initrd = buildInitramfs(home, kernel, say);
    say('[4/4] init image (node runtime + agent)');
    const initImage = await buildInitImage(home, say);
    const assets = { key: sha256(kernel.vmlinuz, initrd, initImage), kernel: kernel.vmlinuz, initrd, initImage, kernelVersion: kernel.version };
    writeJsonAtomic(path.join(home.assetsDir, 'current.json'), { ...assets, inputsKey });
    say(`ready: kernel ${kernel.version}, assets in ${home.assetsDir}`);
    return assets;
  });
}

async function installPackages(say: Say): Promise<void> {
  const missing = missingPackages();
  if (missing.length === 0) {
    say('[1/4] Debian packages present: ' + HOST_PACKAGES.map((p) => p.pkg).join(', '));
    return;
  }
  say(`[1/4] installing Debian packages: ${missing.map((p) => p.pkg).join(', ')}`);
  for (const p of missing) say(`      ${p.pkg}: ${p.why}`);
  await installDebianPackages(missing);
}

/** Installs the packages whose marker file is missing, with apt-get (through sudo when not root). */
export async function installDebianPackages(list: { pkg: string; file: string }[]): Promise<void> {
  const missing = list.filter((p) => !fs.existsSync(p.file));
  if (missing.length === 0) return;
  const names = missing.map((p) => p.pkg);
  const asRoot = process.getuid?.() === 0;
  // Only the apt step needs root; a normal user is asked for sudo (non-interactively when there is no terminal).
  const wrap = (args: string[]) => (asRoot ? args : ['sudo', ...(process.stdin.isTTY ? [] : ['-n']), ...args]);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const runApt = async (args: string[]) => {
    const [cmd, ...rest] = wrap(args);
    try {
      await run(cmd, rest, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      throw new Error(`installing ${names.join(', ')} failed: ${(e as Error).message}\nInstall them by hand: sudo apt-get install ${names.join(' ')}`);
    }
  };
  await runApt(['apt-get', 'update', '-q']);
  await runApt(['apt-get', 'install', '-y', '-q', '--no-install-recommends', ...names]);
  const still = missing.filter((p) => !fs.existsSync(p.file));
  if (still.length) throw new Error(`after apt-get install, still missing: ${still.map((p) => p.file).join(', ')}`);
}

/** Cheap fingerprint of everything the assets are built from (file sizes and times, not contents). */
async function assetInputsKey(): Promise<string> {
  const stamp = (f: string) => {
    const st = fs.statSync(f);
    return `${fs.realpathSync(f)}:${st.size}:${st.mtimeMs}`;
  };
  const bundle = path.join(AGENT_BUNDLE_DIR, 'agent.cjs');
  if (!fs.existsSync(bundle)) throw new Error(`the agent bundle ${bundle} is missing: run 'npm run build' first`);
  return sha256(
    String(ASSET_FORMAT),
    fs.readFileSync(fileURLToPath(import.meta.url)), // how assets are built is an input too
    await kernelPackageName(),
    sha256File(bundle),
    fs.readFileSync(path.join(AGENT_BUNDLE_DIR, 'agent.proto')),
    fs.readFileSync(path.join(AGENT_BUNDLE_DIR, 'agent.json')),
    fs.readFileSync(path.join(AGENT_BUNDLE_DIR, 'boot.cjs')),
    fs.readFileSync(path.join(GUEST_DIR, 'init.sh')),
    fs.readFileSync(path.join(GUEST_DIR, 'start.sh')),
    stamp(process.execPath),
    stamp('/bin/busybox'),
    stamp('/usr/bin/tini-static'),
    stamp(RESIZE2FS),
  );
}

let kernelPkgCache: string | null = null;
async function kernelPackageName(): Promise<string> {
  if (kernelPkgCache) return kernelPkgCache;
  const lookup = async () => /Depends:\s+(linux-image-\S+)/.exec(await run('apt-cache', ['depends', KERNEL_META_PACKAGE]).catch(() => ''));
  let m = await lookup();
  if (!m && process.getuid?.() === 0) {
    // A machine whose package lists were never fetched: fetch them (root only; others are told how).
    await run('apt-get', ['update', '-q']).catch(() => '');
    m = await lookup();
  }
  if (!m) {
    throw new Error(`apt does not know ${KERNEL_META_PACKAGE}: run 'sudo apt-get update' so the guest kernel package can be found`);
  }
  return (kernelPkgCache = m[1]);
}

interface Kernel { vmlinuz: string; modulesDir: string; version: string }

async function prepareKernel(home: Home, say: Say): Promise<Kernel> {
  const pkg = await kernelPackageName();
  const debDir = ensureDir(path.join(home.cacheDir, 'debs'));
  let deb = fs.readdirSync(debDir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (!deb) {
    say(`      downloading ${pkg} (unpacked for the guest, not installed on the host)`);
    await run('apt-get', ['download', pkg], { cwd: debDir });
    deb = fs.readdirSync(debDir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download ${pkg} produced no .deb in ${debDir}`);
  }
  const debPath = path.join(debDir, deb);
  const dir = path.join(home.assetsDir, `kernel-${sha256File(debPath).slice(0, 16)}`);
  const done = path.join(dir, 'kernel.json');
  const existing = readJson<Kernel>(done);
  if (existing) {
    say(`      ${deb} already unpacked`);
    return existing;
  }
  say(`      unpacking ${deb}`);
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  ensureDir(tmp);
  await run('dpkg-deb', ['-x', debPath, tmp]);
  const bootFiles = fs.readdirSync(path.join(tmp, 'boot'));
  const vmlinuzName = bootFiles.find((f) => f.startsWith('vmlinuz-'));
  if (!vmlinuzName) throw new Error(`${deb} has no boot/vmlinuz-*`);
  const version = vmlinuzName.slice('vmlinuz-'.length);
  say(`      resolving module dependencies with depmod (${version})`);
  await run('/usr/sbin/depmod', ['-b', tmp, version]);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  const k: Kernel = { vmlinuz: path.join(dir, 'boot', vmlinuzName), modulesDir: path.join(dir, 'lib/modules', version), version };
  writeJsonAtomic(done, k);
  return k;
}

/** Modules to load, dependencies first, from depmod's modules.dep. */
export function moduleLoadOrder(modulesDep: string, wanted: string[]): string[] {
  const deps = new Map<string, string[]>();
  const byName = new Map<string, string>();
  for (const line of modulesDep.split('\n')) {
    const [mod, rest] = line.split(':');
    if (!mod || rest === undefined) continue;
    deps.set(mod, rest.trim() ? rest.trim().split(/\s+/) : []);
    byName.set(path.basename(mod).replace(/\.ko(\..*)?$/, '').replace(/-/g, '_'), mod);
  }
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (mod: string) => {
    if (seen.has(mod)) return;
    seen.add(mod);
    for (const d of deps.get(mod) ?? []) visit(d);
    order.push(mod);
  };
  for (const w of wanted) {
    const mod = byName.get(w);
    if (!mod) throw new Error(`kernel module ${w} is not in modules.dep (built in, or missing from this kernel?)`);
    visit(mod);
  }
  return order;
}

function buildInitramfs(home: Home, kernel: Kernel, say: Say): string {
  const order = moduleLoadOrder(fs.readFileSync(path.join(kernel.modulesDir, 'modules.dep'), 'utf8'), MODULES);
  say(`      modules in load order: ${order.map((m) => path.basename(m, '.ko')).join(' → ')}`);
  const dir = (name: string): CpioEntry => ({ name, mode: S_IFDIR | 0o755 });
  const file = (name: string, data: Buffer, mode = 0o644): CpioEntry => ({ name, mode: S_IFREG | mode, data });
  const entries: CpioEntry[] = [
    dir('bin'), dir('dev'), dir('etc'), dir('lib'), dir('lib/modules'), dir('proc'), dir('sys'), dir('mnt'),
    { name: 'dev/console', mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 },
    file('bin/busybox', fs.readFileSync('/bin/busybox'), 0o755),
    file('init', fs.readFileSync(path.join(GUEST_DIR, 'init.sh')), 0o755),
    file('etc/modules.order', Buffer.from(order.map((m) => path.basename(m)).join('\n') + '\n')),
    ...order.map((m) => file(`lib/modules/${path.basename(m)}`, fs.readFileSync(path.join(kernel.modulesDir, m)))),
  ];
  const data = cpioNewc(entries);
  const out = path.join(home.assetsDir, `initrd-${sha256(data).slice(0, 16)}.cpio`);
  if (!fs.existsSync(out)) {
    fs.writeFileSync(`${out}.tmp`, data);
    fs.renameSync(`${out}.tmp`, out);
  }
  return out;
}

const RESIZE2FS = '/usr/sbin/resize2fs';

/** Shared libraries a binary needs, as reported by ldd (the dynamic loader included). */
async function sharedLibs(binary: string): Promise<string[]> {
  const out = await run('ldd', [binary]);
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s+(\/\S+)\s+\(/.exec(line);
    if (m) libs.push(m[1]);
  }
  return libs;
}

async function buildInitImage(home: Home, say: Say): Promise<string> {
  const stage = path.join(home.assetsDir, `init-stage-${process.pid}`);
  fs.rmSync(stage, { recursive: true, force: true });
  const copy = (src: string, dst: string, mode?: number) => {
    ensureDir(path.dirname(path.join(stage, dst)));
    fs.copyFileSync(fs.realpathSync(src), path.join(stage, dst));
    if (mode !== undefined) fs.chmodSync(path.join(stage, dst), mode);
  };
  try {
    const node = process.execPath;
    say(`      node runtime: ${node} (${process.version})`);
    copy(node, 'bin/node', 0o755);
    copy('/bin/busybox', 'bin/busybox', 0o755);
    copy('/usr/bin/tini-static', 'bin/tini', 0o755);
    // Grows a box's file system to its disk at first boot: image bases are built no larger than their content.
    copy(RESIZE2FS, 'bin/resize2fs', 0o755);
    copy(path.join(GUEST_DIR, 'start.sh'), 'start.sh', 0o755);
    copy(path.join(AGENT_BUNDLE_DIR, 'agent.cjs'), 'agent/agent.cjs');
    copy(path.join(AGENT_BUNDLE_DIR, 'agent.proto'), 'agent/agent.proto');
    copy(path.join(AGENT_BUNDLE_DIR, 'agent.json'), 'agent/agent.json');
    copy(path.join(AGENT_BUNDLE_DIR, 'boot.cjs'), 'agent/boot.cjs');
    // koffi (pty calls in the guest) loads a native addon by path: copy its package and the linux-x64 addon.
    const koffiDir = path.join(PACKAGE_ROOT, 'node_modules/koffi');
    const nativeDir = path.join(PACKAGE_ROOT, 'node_modules/@koromix/koffi-linux-x64');
    fs.cpSync(koffiDir, path.join(stage, 'agent/node_modules/koffi'), { recursive: true, filter: (s) => !/\/koffi\/(doc|vendor)$/.test(s) });
    const nativeStage = path.join(stage, 'agent/node_modules/@koromix/koffi-linux-x64');
    fs.cpSync(nativeDir, nativeStage, { recursive: true, filter: (s) => !s.includes('musl_') });
    const addon = path.join(nativeDir, 'linux_x64/koffi.node');
    // V8 code caches of the bundle, made by this same node binary with the guest's flags (see agent/boot.cjs).
    for (const mode of GUEST_NODE_MODES) {
      await run(node, [...mode.flags, path.join(stage, 'agent/boot.cjs'), '--make-cache', path.join(stage, mode.cache)], {
        env: { ...process.env, BOXLITE_AGENT_CACHE_RUN: '1' },
      });
    }
    const libs = new Set([...(await sharedLibs(node)), ...(await sharedLibs(addon)), ...(await sharedLibs(RESIZE2FS))]);
    for (const lib of libs) copy(lib, path.join('lib', path.basename(lib)));
    say(`      ${libs.size} shared libraries: ${[...libs].map((l) => path.basename(l)).join(' ')}`);
    const bytes = Number((await run('du', ['-sb', stage])).split(/\s/)[0]);
    const sizeMiB = Math.ceil((bytes * 1.15) / (1 << 20)) + 16;
    const img = path.join(home.assetsDir, `init-tmp-${process.pid}.img`);
    fs.rmSync(img, { force: true });
    await run('/usr/sbin/mkfs.ext4', ['-q', '-F', '-L', 'boxlite-init', '-O', '^has_journal', '-d', stage, img, `${sizeMiB}M`], {
      env: { ...process.env, E2FSPROGS_FAKE_TIME: '1' },
    });
    const out = path.join(home.assetsDir, `init-${sha256File(img).slice(0, 16)}.img`);
    fs.renameSync(img, out);
    fs.chmodSync(out, 0o444);
    say(`      ${path.basename(out)} (${sizeMiB} MiB)`);
    return out;
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}
