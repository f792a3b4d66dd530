// The network guard's process (see guard.ts). It stands between a box's VM and everything its NICs lead to:
// the uplink's frames go to the box's passt only when they are not addressed to the host itself (passt would
// otherwise connect to the host's loopback for a guest that writes such frames by hand), and the LAN's frames go
// only to the other boxes of the project, only in the box's own name.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import koffi from 'koffi';
import { RecordSplitter, arpAnnouncement, ipNumber, record, uplinkVerdict } from './frames.js';
import { LanLinks } from './lan.js';
import { GUARD_MARK, LAN_FD, UPLINK_FD, type GuardConfig } from './guard.js';
import { EventWriter, denialReporter, eventsFile } from '../egress/events.js';

const log = (s: string) => process.stderr.write(`${new Date().toISOString()} ${s}\n`);

/** The host's IPv4 addresses, read again every second: an address the host gains (DHCP, a VPN) is closed to the
 *  box within that second. */
class HostAddresses {
  current = new Set<number>();
  constructor() {
    this.read();
    setInterval(() => this.read(), 1000).unref();
  }
  private read(): void {
    const now = new Set<number>();
    for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4') now.add(ipNumber(a.address));
    this.current = now;
  }
}

/** What was dropped, in the guard's log: each reason at most once a minute, with how often it happened. */
function notes(): (why: string) => void {
  const seen = new Map<string, { at: number; count: number }>();
  return (why) => {
    const s = seen.get(why);
    const now = Date.now();
    if (s && now - s.at < 60_000) return void s.count++;
    if (seen.size > 1000) seen.clear();
    log(`dropped: ${why}${s?.count ? ` (and ${s.count} more like it in the last minute)` : ''}`);
    seen.set(why, { at: now, count: 0 });
  };
}

/** What one side may have queued before the other is paused. A socket's own mark (16 KiB) would pause the VM's
 *  stream at almost every chunk, and QEMU then holds the guest's frames back. */
const QUEUED = 1 << 20;
/** How much of the VM's stream one read takes: frames are up to 64 KiB, and passt does best with many whole ones
 *  at once (measured: 56 MiB/s out of a box with Node's 64 KiB reads, 92 with these). */
const READ_BYTES = 1 << 20;

let moved = 0;

function relay(to: net.Socket, chunk: Buffer, from: net.Socket): void {
  moved += chunk.length;
  to.write(chunk);
  if (to.writableLength > QUEUED) from.pause();
}

/** Each read is a buffer of its own, dead once written: after a transfer, V8 frees them only when its heap needs
 *  room, and glibc keeps what was freed in its heap, so a guard held ~30 MiB for nothing (measured). Once traffic
 *  has paused, they are collected and the heap handed back. */
function collectWhenQuiet(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return;
  let trim: (() => number) | null = null;
  let last = 0;
  setInterval(() => {
    if (moved === 0 || moved !== last) return void (last = moved);
    gc();
    trim ??= koffi.load('libc.so.6').func('int malloc_trim(size_t)').bind(null, 0) as () => number;
    trim();
    moved = last = 0;
  }, 2000).unref();
}

/** Accepted connections whose descriptor another Socket now reads and writes: kept, never used again, so that
 *  nothing closes the descriptor under it (the process ends with the VM). */
const handedOver = new Set<net.Socket>();

/** Accepts the VM's one connection on the listening socket boxlite made for it (handed over as an fd, so that
 *  QEMU could connect while the guard was still starting), read READ_BYTES at a time. */
async function listenForVm(fd: number, onVm: (s: net.Socket) => void): Promise<net.Server> {
  let taken = false;
  // Paused: the accepted socket never reads, so the descriptor can be read by a Socket with a buffer of its own
  // (net.Server takes no read buffer; a connecting socket's onread is the way Node offers).
  const server = net.createServer({ pauseOnConnect: true }, (s) => {
    if (taken) return s.destroy(); // one VM, one connection
    taken = true;
    const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (fd === undefined || fd < 0) return onVm(s.resume());
    handedOver.add(s);
    const buffer = Buffer.allocUnsafe(READ_BYTES);
    let vm: net.Socket | null = null;
    vm = new net.Socket({
      fd,
      readable: true,
      writable: true,
      onread: { buffer, callback: (n: number) => void vm!.emit('data', Buffer.from(buffer.subarray(0, n))) },
    } as net.SocketConstructorOpts);
    onVm(vm);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen({ fd }, resolve));
  return server;
}

type Report = ReturnType<typeof denialReporter>;

function uplink(cfg: NonNullable<GuardConfig['uplink']>, hosts: HostAddresses, note: (why: string) => void, report: Report, quit: (why: string) => void) {
  return (vm: net.Socket) => {
    // passt takes one connection, and is ready by the time QEMU runs: it is reached now, for this VM.
    const helper = net.connect(cfg.helper);
    helper.once('error', (e) => quit(`the network helper's socket ${cfg.helper}: ${e.message}`));
    vm.on('error', () => {});
    vm.pause();
    helper.once('connect', () => {
      const split = new RecordSplitter((frame) => {
        const denied = uplinkVerdict(frame, hosts.current, cfg.policed);
        if (denied) note(denied.why);
        if (denied?.event) report(denied.event);
        return !denied;
      });
      helper.on('drain', () => vm.resume());
      vm.on('drain', () => helper.resume());
      vm.on('data', (c: Buffer) => {
        try {
          const out = split.push(c);
          if (out.length) relay(helper, out.length === 1 ? out[0] : Buffer.concat(out), vm);
        } catch (e) {
          quit(`the VM's stream is broken: ${(e as Error).message}`);
        }
      });
      // passt learns the guest's MAC from its first frame, and a booting guest's first frames are IPv6, which are
      // dropped: without this, passt could not deliver a port forward's first connection to a quiet guest.
      helper.write(record(arpAnnouncement(cfg.mac, cfg.address)));
      helper.on('data', (c: Buffer) => relay(vm, c, helper)); // the helper's frames to the guest: nothing to judge
      vm.resume();
    });
    vm.on('close', () => quit('the VM closed its NIC'));
    helper.on('close', () => quit('the network helper closed its socket'));
  };
}

async function guardMain(dir: string, cfg: GuardConfig): Promise<void> {
  const note = notes();
  const quit = (why: string) => {
    log(`ends: ${why}`);
    process.exit(0);
  };
  const hosts = new HostAddresses();
  // Opened before the guard gives up root: the box's folder is the home's.
  const report = denialReporter(new EventWriter(fs.openSync(eventsFile(dir), 'a+', 0o600)), cfg.name);
  if (cfg.uplink) await listenForVm(UPLINK_FD, uplink(cfg.uplink, hosts, note, report, quit));
  if (cfg.lan) {
    const lan = new LanLinks(cfg.lan, note);
    // Made while the guard may still enter the home: the LAN's folder is closed to the box's uid.
    await lan.join();
    await listenForVm(cfg.uplink ? LAN_FD : UPLINK_FD, (vm) => lan.attachVm(vm, () => quit('the VM closed its LAN NIC')));
  }
  process.on('SIGTERM', () => quit('told to'));
  collectWhenQuiet();
  if (cfg.as && process.getuid?.() === 0) {
    // Everything it needs is open or reachable as the box's uid: from here on it holds no privilege.
    process.setgroups!([]);
    process.setgid!(cfg.as.gid);
    process.setuid!(cfg.as.uid);
  }
  process.stdout.write('ready\n');
}

if (process.argv[2] === GUARD_MARK) {
  guardMain(process.argv[3], JSON.parse(process.argv[4]) as GuardConfig).catch((e) => {
    log(`network guard: ${(e as Error).message}`);
    process.exit(1);
  });
}
