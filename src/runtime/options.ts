// A box's options as callers give them, and the one validation every way of making or changing a box goes
// through: create, reconfigure, and the options an imported archive carries.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULTS, MAX_CPUS, MIN_DISK_MIB, MIN_MEMORY_MIB } from '../core/defaults.js';
import { InvalidOptionError } from '../core/errors.js';
import { checkPorts, formatPort, parseDns, parsePort, type NetworkMode, type PortMapping } from '../core/network.js';
import { hasPolicy, parsePolicy, parseSecrets, type EgressPolicy, type SecretInput } from '../core/egress.js';
import { makePlaceholder } from './secrets.js';
import type { LayerProgress } from './images/index.js';
import type { BindMount, BoxOptions, Label, LanConfig, VolumeMount } from './types.js';

export interface CreateOptions {
  /** An image reference (python:3.12-slim, ghcr.io/org/tool@sha256:…), pulled when it is not stored yet. */
  image?: string;
  /** A root filesystem folder or an OCI image layout folder. */
  rootfs?: string;
  /** When to pull the image: when it is missing from the store (default), always, or never. */
  pull?: 'missing' | 'always' | 'never';
  /** Progress of each layer while an image is pulled. */
  onPullProgress?: (p: LayerProgress) => void;
  /** default: outbound NAT with DNS, published ports; none: loopback only. */
  network?: NetworkMode;
  /** Forwards from the host: "8080:80", "127.0.0.1:5353:53/udp", "80" (host port chosen at start). */
  ports?: (string | PortMapping)[];
  /** DNS servers for the box; default: the host's resolver, through the network helper. */
  dns?: string[];
  /** Outbound policy: rules like "api.example.com", "*.github.com", "203.0.113.0/24:443". Any allow rule makes the
   *  box deny-by-default. Changes on a running box that already has a policy apply at once. */
  egress?: Partial<EgressPolicy>;
  /** Secrets the guest never holds: its env has a placeholder, replaced in HTTP(S) requests to the listed hosts.
   *  [{ name, hosts, value }] (or env / file: read on the host at each start). */
  secrets?: SecretInput[];
  name?: string;
  cpus?: number;
  memoryMib?: number;
  diskSizeMib?: number;
  env?: Record<string, string>;
  workingDir?: string;
  user?: string;
  /** Named volumes to mount ('boxlite volume create', or a project's volumes). */
  volumes?: VolumeMount[];
  /** The guest's host name; default the box's name. */
  hostname?: string;
  /** A NIC on a project's private LAN (null removes it). */
  lan?: LanConfig | null;
  /** Host folders and files to mount: { hostPath, target, readOnly }. */
  binds?: BindMount[];
  /** Kept with the box for its maker (a project's label); the runtime never reads it. */
  label?: Label;
  autoRemove?: boolean;
}

/** What can change on an existing box: boot-time settings only while it is stopped. */
export type Reconfigure = Partial<Pick<CreateOptions, 'cpus' | 'memoryMib' | 'network' | 'ports' | 'dns' | 'egress' | 'secrets' | 'volumes' | 'env' | 'workingDir' | 'user' | 'lan' | 'binds'>>;
/** Read at each exec, so they change on a running box. */
export const LIVE_FIELDS = new Set(['env', 'workingDir', 'user']);
/** Applied to a running box by its egress gateway, when it has one (a box without a policy has none until it restarts). */
export const EGRESS_FIELDS = new Set(['egress', 'secrets']);

const MOUNT_POINT = /^\/[^\s,]*$/;
const HOSTNAME = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

function mountPoint(target: string, what: string): string {
  if (!MOUNT_POINT.test(target) || target === '/' || target.split('/').includes('..')) {
    throw new InvalidOptionError(`${what}: mount point "${target}" must be an absolute path below / without spaces, commas or ".."`);
  }
  return target.replace(/\/+$/, '');
}

/** Whether a box's network goes through an egress gateway: it has rules or secrets. */
export const needsGateway = (o: Pick<BoxOptions, 'egress' | 'secrets'>) => !!o.egress || !!o.secrets?.length;

/** Checks and normalises a box's options; throws an InvalidOptionError naming the option and the fix. */
export function validateOptions(o: CreateOptions): BoxOptions {
  const cpus = o.cpus ?? DEFAULTS.cpus;
  const memoryMib = o.memoryMib ?? DEFAULTS.memoryMib;
  const diskSizeMib = o.diskSizeMib ?? DEFAULTS.diskSizeMib;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > MAX_CPUS) throw new InvalidOptionError(`cpus must be a whole number from 1 to ${MAX_CPUS} (got ${o.cpus})`);
  if (!Number.isInteger(memoryMib) || memoryMib < MIN_MEMORY_MIB) {
    throw new InvalidOptionError(`memory must be at least ${MIN_MEMORY_MIB} MiB (got ${o.memoryMib}): the guest kernel and agent need it`);
  }
  if (!Number.isInteger(diskSizeMib) || diskSizeMib < MIN_DISK_MIB) throw new InvalidOptionError(`disk size must be at least ${MIN_DISK_MIB} MiB (got ${o.diskSizeMib})`);
  if (o.env !== undefined && (typeof o.env !== 'object' || o.env === null || Array.isArray(o.env))) throw new InvalidOptionError('env must be a mapping of NAME to value');
  for (const [k, v] of Object.entries(o.env ?? {})) {
    if (!k || k.includes('=') || k.includes('\0')) throw new InvalidOptionError(`environment variable name "${k}" is invalid: use NAME=value`);
    if (typeof v !== 'string') throw new InvalidOptionError(`environment variable ${k} must be a string (got ${typeof v})`);
  }
  for (const [k, v] of [['workingDir', o.workingDir], ['user', o.user]] as const) {
    if (v !== undefined && typeof v !== 'string') throw new InvalidOptionError(`${k} must be a string`);
  }
  const network = o.network ?? 'default';
  if (network !== 'default' && network !== 'none') throw new InvalidOptionError(`network must be "default" or "none" (got "${o.network}")`);
  const ports = (o.ports ?? []).map((p) => (typeof p === 'string' ? parsePort(p) : parsePort(`${p.hostIp ?? '127.0.0.1'}:${p.hostPort ?? 0}:${p.guestPort}/${p.protocol ?? 'tcp'}`)));
  if (network === 'none' && ports.length) throw new InvalidOptionError(`a box with network "none" cannot publish ports (${ports.map(formatPort).join(', ')})`);
  checkPorts(ports, o.name ?? 'new box');
  const dns = parseDns(o.dns ?? []);
  const egress = parsePolicy(o.egress);
  const secrets = parseSecrets(o.secrets, makePlaceholder);
  if (network === 'none' && secrets.length) throw new InvalidOptionError('a box with network "none" sends no requests, so it takes no secrets: remove them or the network setting');
  if (network === 'none' && hasPolicy(egress)) throw new InvalidOptionError('a box with network "none" reaches nothing, so it takes no allow or deny rules: remove them or the network setting');
  const volumes = (o.volumes ?? []).map((m) => ({ volume: m.volume, target: mountPoint(m.target, `volume ${m.volume}`), readOnly: !!m.readOnly }));
  const binds = (o.binds ?? []).map((b) => {
    if (!path.isAbsolute(b.hostPath)) throw new InvalidOptionError(`host path "${b.hostPath}" must be absolute`);
    if (!fs.existsSync(b.hostPath)) throw new InvalidOptionError(`host path ${b.hostPath} does not exist: create it, or fix the volume`);
    const target = mountPoint(b.target, `host path ${b.hostPath}`);
    if (b.target.endsWith('/') && !fs.statSync(b.hostPath).isDirectory()) {
      throw new InvalidOptionError(`host path ${b.hostPath} is a file, but the mount point ${b.target} names a folder: drop the trailing '/' to mount the file there`);
    }
    return { hostPath: b.hostPath, target, readOnly: !!b.readOnly };
  });
  const targets = [...volumes.map((v) => v.target), ...binds.map((b) => b.target)];
  const dup = targets.find((t, i) => targets.indexOf(t) !== i);
  if (dup) throw new InvalidOptionError(`two volumes are mounted at ${dup}`);
  if (o.lan) checkLan(o.lan);
  if (o.hostname !== undefined && !HOSTNAME.test(o.hostname)) throw new InvalidOptionError(`host name "${o.hostname}" is invalid: use letters, digits and '-'`);
  return {
    cpus, memoryMib, diskSizeMib, env: { ...(o.env ?? {}) }, workingDir: o.workingDir ?? '', user: o.user ?? '', network, ports, dns,
    ...(hasPolicy(egress) ? { egress } : {}),
    ...(secrets.length ? { secrets } : {}),
    ...(volumes.length ? { volumes } : {}),
    ...(o.hostname ? { hostname: o.hostname } : {}),
    ...(o.lan && network !== 'none' ? { lan: { ...o.lan } } : {}),
    ...(binds.length ? { binds } : {}),
  };
}

/** A LAN NIC is given by boxlite itself (a project's up, a fork), never by a user: it is checked all the same, since
 *  its segment names a folder and its address and MAC are what the box's guard lets it send as. */
function checkLan(lan: LanConfig): void {
  const ok = /^[0-9a-f]{16}$/.test(String(lan.segment)) && /^10\.89\.0\.(\d{1,3})$/.test(String(lan.address)) && Number(lan.address.split('.')[3]) < 255 && /^52:54:01(:[0-9a-f]{2}){3}$/.test(String(lan.mac));
  if (!ok) throw new InvalidOptionError(`the project LAN settings ${JSON.stringify(lan)} are invalid: they are made by 'boxlite up'; remove the box and bring its project up again`);
}

/** A box's current options as CreateOptions, so a change can be merged in and validated whole. */
export function asCreateOptions(name: string, o: BoxOptions): CreateOptions {
  return {
    cpus: o.cpus, memoryMib: o.memoryMib, diskSizeMib: o.diskSizeMib, env: o.env, workingDir: o.workingDir, user: o.user,
    network: o.network, ports: o.ports, dns: o.dns, egress: o.egress, secrets: o.secrets?.map((s) => ({ name: s.name, hosts: s.hosts, placeholder: s.placeholder, ...s.source })), volumes: o.volumes, hostname: o.hostname, lan: o.lan, binds: o.binds, name,
  };
}
