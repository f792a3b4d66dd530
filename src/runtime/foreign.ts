// What comes into the home from an archive someone else may have written (boxlite import): its manifest and its
// disk are checked as if an attacker had made them. The options go through create's own validation; what would
// reach beyond the box (host folders, named volumes, the project LAN, fixed host ports) is dropped unless the user
// gives it again; the disk must be a plain qcow2 of the kind export writes: no backing file (it would read a host
// file), no external data file, no encryption, no feature export never writes.
import { runTool } from '../vmm/tool-jail.js';
import { ArchiveError, InvalidOptionError } from '../core/errors.js';
import { checkName } from '../core/names.js';
import { validateOptions, type CreateOptions } from './options.js';
import type { BoxOptions, ImageConfig } from './types.js';

export interface ForeignManifest {
  name: string;
  options: BoxOptions;
  config: ImageConfig;
  origin: string;
  fsSizeMib?: number;
}

/** What the user gives again on the command line, in place of what an archive may not bring by itself. */
export type ImportOverrides = Pick<CreateOptions, 'ports' | 'volumes' | 'binds' | 'dns'>;

const isLoopback = (ip: unknown) => ip === undefined || (typeof ip === 'string' && /^127\./.test(ip)); // unset: loopback, as -p
const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

/** The manifest's box, validated as create validates; notes say what was dropped. */
export function checkManifest(raw: unknown, what: string, given: ImportOverrides): { manifest: ForeignManifest; notes: string[] } {
  const m = raw as Record<string, any>;
  const bad = (why: string) => new ArchiveError(`${what}: its manifest ${why}; nothing was imported`);
  if (!m || typeof m !== 'object') throw bad('is not an object');
  if (typeof m.name !== 'string') throw bad('has no box name');
  try {
    checkName('box', m.name);
  } catch (e) {
    throw bad(`names the box invalidly (${(e as Error).message})`);
  }
  const c = m.config as Record<string, unknown> | undefined;
  if (!c || !isStringList(c.env) || !isStringList(c.entrypoint) || !isStringList(c.cmd) || typeof c.workingDir !== 'string' || typeof c.user !== 'string') {
    throw bad('has a malformed image config (env, entrypoint, cmd, workingDir, user)');
  }
  if (m.fsSizeMib !== undefined && !(Number.isInteger(m.fsSizeMib) && m.fsSizeMib > 0)) throw bad('has a malformed file system size');
  const o = (m.options ?? {}) as Partial<BoxOptions>;
  if (typeof o !== 'object') throw bad('has no options');
  const list = (v: unknown, field: string): any[] => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((x) => !x || typeof x !== 'object')) throw bad(`has a malformed ${field} list`);
    return v;
  };
  const ports = list(o.ports, 'ports');
  const binds = list(o.binds, 'binds');
  const volumes = list(o.volumes, 'volumes');
  const notes: string[] = [];
  if (binds.length && !given.binds) notes.push(`host folders it mounted were dropped (${binds.map((b) => `${b.hostPath}:${b.target}`).join(', ')}): give them again with -v if you trust them`);
  if (volumes.length && !given.volumes) notes.push(`named volumes it mounted were dropped (${volumes.map((v) => v.volume).join(', ')}): give them again with -v`);
  if (o.lan) notes.push('its project LAN address was dropped: a box of a project is made by boxlite up');
  // Its DNS servers decide where every name the box looks up points, a secret's host among them: the archive's
  // choice of resolver is not taken.
  if (Array.isArray(o.dns) && o.dns.length) notes.push(`its DNS servers were dropped (${o.dns.map(String).join(', ')}): it uses this host's resolver; give them again with 'boxlite import --dns' if you trust them`);
  // Where a secret's value is read on this host, and where it may go, is the user's choice: an archive naming
  // a host file and its own host would have that file sent there.
  const secrets = list(o.secrets, 'secrets');
  if (secrets.length) notes.push(`its secrets were dropped (${secrets.map((s) => String(s.name)).join(', ')}): give them again with --secret if you trust where they go`);
  if (!given.ports) {
    if (ports.some((p) => p.hostPort)) notes.push('its fixed host ports were dropped (host ports are chosen at start): give them again with -p');
    // Who may reach the box is the user's choice, not the archive's: its forwards listen on loopback only.
    if (ports.some((p) => !isLoopback(p.hostIp))) notes.push('its ports published beyond this host now listen on 127.0.0.1 only: give them again with -p to publish them wider');
  }
  let options: BoxOptions;
  try {
    options = validateOptions({
      cpus: o.cpus,
      memoryMib: o.memoryMib,
      diskSizeMib: o.diskSizeMib,
      env: o.env,
      workingDir: o.workingDir,
      user: o.user,
      network: o.network,
      dns: given.dns,
      // Its outbound rules are kept: they only ever narrow what the box reaches.
      egress: o.egress,
      hostname: o.hostname,
      name: m.name,
      ports: given.ports ?? ports.map((p) => ({ ...p, hostIp: isLoopback(p.hostIp) ? (p.hostIp ?? '127.0.0.1') : '127.0.0.1', hostPort: 0 })),
      volumes: given.volumes,
      binds: given.binds,
    });
  } catch (e) {
    if (e instanceof InvalidOptionError) throw bad(`has options create would refuse: ${e.message}`);
    throw e;
  }
  const origin = typeof m.origin === 'string' ? m.origin.slice(0, 500).replace(/[^\x20-\x7e]/g, '?') : 'unknown';
  return { manifest: { name: m.name, options, config: { env: c.env as string[], entrypoint: c.entrypoint as string[], cmd: c.cmd as string[], workingDir: c.workingDir as string, user: c.user as string }, origin, fsSizeMib: m.fsSizeMib }, notes };
}

/** Refuses a disk file unless it is a standalone qcow2 of the kind `qemu-img convert -O qcow2` writes, no larger
 *  than the box's disk. */
export async function checkForeignDisk(file: string, what: string, diskSizeMib: number): Promise<void> {
  const refuse = (why: string) => new ArchiveError(`${what}: its disk ${why}; nothing was imported`);
  let info: Record<string, any>;
  try {
    info = JSON.parse(await runTool('qemu-img', ['info', '--output=json', '-f', 'qcow2', file], { rw: [file] })); // parsed jailed: the archive's author wrote it
  } catch (e) {
    throw refuse(`is not a readable qcow2 image (${(e as Error).message.split('\n')[0]})`);
  }
  if (info.format !== 'qcow2') throw refuse(`is ${info.format}, not qcow2`);
  if (info['backing-filename'] || info['full-backing-filename']) throw refuse(`has a backing file (${info['backing-filename'] ?? info['full-backing-filename']}), which would be read from the host`);
  const data = info['format-specific']?.data ?? {};
  if (data['data-file']) throw refuse(`keeps its data in an external file (${data['data-file']}), which would be read from the host`);
  if (info.encrypted || data.encrypt) throw refuse('is encrypted');
  if (data.corrupt) throw refuse('is marked corrupt');
  if (data.compat !== '1.1') throw refuse(`has qcow2 compat level ${data.compat} (export writes 1.1)`);
  if (data['extended-l2'] || data['lazy-refcounts'] || (data.bitmaps?.length ?? 0) > 0) throw refuse('uses qcow2 features export never writes (extended L2, lazy refcounts or bitmaps)');
  if (data['compression-type'] && data['compression-type'] !== 'zlib') throw refuse(`uses ${data['compression-type']} compression (export writes zlib)`);
  if ((info.snapshots?.length ?? 0) > 0) throw refuse('carries snapshots (export writes none)');
  if (typeof info['virtual-size'] !== 'number' || info['virtual-size'] > diskSizeMib * 1024 * 1024) {
    throw refuse(`is ${Math.ceil((info['virtual-size'] ?? 0) / (1 << 20))} MiB, larger than the box's disk (${diskSizeMib} MiB)`);
  }
}
