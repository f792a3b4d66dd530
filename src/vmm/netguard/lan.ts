// A project's LAN, carried between the network guards of its boxes: each guard listens on a Unix socket named by
// its box in the LAN's folder under the home (which only the home's user may enter), and a guard that starts
// connects to every guard already there, so the boxes form a mesh of direct links. A link opens with one line
// naming the box and its MAC; then each side sends length-prefixed frames. A frame from the box's own VM goes on
// only if it carries the box's own MAC and address (frames.ts); group frames go to every peer, others to the one
// whose MAC they name. A peer that cannot keep up loses frames (a switch's full queue), never the guard's memory.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { FrameReader, isGroupFrame, lanVerdict, macBytes, ipNumber, record, type LanIdentity } from './frames.js';

/** A link's queue beyond which frames for it are dropped. */
const QUEUE_CAP = 4 << 20;
const HELLO_MAX = 512;

export interface LanSpec {
  /** The box's id: its socket's name in the folder. */
  box: string;
  mac: string;
  address: string;
  /** The LAN's folder under the home. */
  folder: string;
}

interface Peer {
  box: string;
  mac: Buffer;
  sock: net.Socket;
}

export class LanLinks {
  private readonly own: LanIdentity;
  private readonly peers = new Map<string, Peer[]>(); // by MAC (hex), every open link to that box
  private vm: net.Socket | null = null;
  private server: net.Server | null = null;

  constructor(
    private readonly spec: LanSpec,
    private readonly note: (why: string) => void,
  ) {
    this.own = { mac: macBytes(spec.mac), address: ipNumber(spec.address) };
  }

  get socketPath(): string {
    return path.join(this.spec.folder, `${this.spec.box}.sock`);
  }

  /** Listens for later boxes and links to every box already on the LAN. */
  async join(): Promise<void> {
    fs.rmSync(this.socketPath, { force: true }); // this box's own, from a guard that was killed
    this.server = net.createServer((s) => this.link(s));
    await new Promise<void>((resolve, reject) => this.server!.once('error', reject).listen(this.socketPath, resolve));
    fs.chmodSync(this.socketPath, 0o600);
    const others = fs.readdirSync(this.spec.folder).filter((n) => n.endsWith('.sock') && n !== `${this.spec.box}.sock`);
    await Promise.all(
      others.map(
        (n) =>
          new Promise<void>((resolve) => {
            const s = net.connect(path.join(this.spec.folder, n));
            // A socket left by a guard that is gone: nobody answers, and there is nobody to link to.
            s.once('error', () => resolve());
            s.once('connect', () => (this.link(s), resolve()));
          }),
      ),
    );
  }

  /** The VM's LAN NIC (QEMU's stream netdev). */
  attachVm(vm: net.Socket, onGone: () => void): void {
    this.vm = vm;
    const reader = new FrameReader((f) => this.fromVm(f));
    vm.on('data', (c: Buffer) => {
      try {
        reader.push(c);
      } catch (e) {
        this.note(`the VM's LAN stream is broken (${(e as Error).message}): closed`);
        vm.destroy();
      }
    });
    vm.on('close', onGone);
    vm.on('error', () => {});
  }

  close(): void {
    this.server?.close();
    for (const list of this.peers.values()) for (const p of list) p.sock.destroy();
  }

  private fromVm(frame: Buffer): void {
    const why = lanVerdict(frame, this.own);
    if (why) return this.note(`LAN: dropped ${why}`);
    const rec = record(frame);
    if (isGroupFrame(frame)) {
      for (const list of this.peers.values()) if (list[0]) this.send(list[0].sock, rec);
      return;
    }
    const to = this.peers.get(frame.subarray(0, 6).toString('hex'))?.[0];
    if (to) this.send(to.sock, rec);
  }

  private send(sock: net.Socket, rec: Buffer): void {
    if (sock.writableLength < QUEUE_CAP) sock.write(rec);
  }

  /** A link to another box's guard, either way round: its hello, then its frames. */
  private link(sock: net.Socket): void {
    sock.write(JSON.stringify({ box: this.spec.box, mac: this.spec.mac }) + '\n');
    sock.on('error', () => {});
    let hello = Buffer.alloc(0);
    let peer: Peer | null = null;
    let reader: FrameReader | null = null;
    sock.on('data', (c: Buffer) => {
      try {
        if (reader) return reader.push(c);
        hello = Buffer.concat([hello, c]);
        const nl = hello.indexOf(10);
        if (nl < 0) {
          if (hello.length > HELLO_MAX) throw new Error('no hello');
          return;
        }
        const h = JSON.parse(hello.subarray(0, nl).toString()) as { box?: unknown; mac?: unknown };
        if (typeof h.box !== 'string' || typeof h.mac !== 'string' || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(h.mac)) throw new Error('a malformed hello');
        peer = { box: h.box, mac: macBytes(h.mac), sock };
        const key = peer.mac.toString('hex');
        this.peers.set(key, [...(this.peers.get(key) ?? []), peer]);
        reader = new FrameReader((f) => this.fromPeer(peer!, f));
        reader.push(hello.subarray(nl + 1));
      } catch (e) {
        this.note(`LAN: a link closed: ${(e as Error).message}`);
        sock.destroy();
      }
    });
    sock.on('close', () => {
      if (!peer) return;
      const key = peer.mac.toString('hex');
      const left = (this.peers.get(key) ?? []).filter((p) => p !== peer);
      if (left.length) this.peers.set(key, left);
      else this.peers.delete(key);
    });
  }

  private fromPeer(peer: Peer, frame: Buffer): void {
    // The peer's guard checked the frame against its own box; a frame that claims another box is not passed in.
    if (frame.length < 14 || !frame.subarray(6, 12).equals(peer.mac)) return;
    if (!isGroupFrame(frame) && !frame.subarray(0, 6).equals(this.own.mac)) return;
    if (this.vm && this.vm.writableLength < QUEUE_CAP) this.vm.write(record(frame));
  }
}
