// What clients send, checked field by field before anything is done with it: unknown fields are refused by name
// (a misspelt option must not be silently dropped), each field's type is checked, and what names a path on the
// server (a rootfs, an OCI layout, a host folder) is refused unless the server was started with
// --allow-host-folders DIR and the path, resolved, is below DIR. The result goes through create's own validation.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CreateOptions } from '../runtime/options.js';
import type { BindMount, VolumeMount } from '../runtime/types.js';
import { badRequest, unsupported } from './errors.js';

type Kind = 'string' | 'integer' | 'number' | 'boolean' | 'object' | 'array' | 'strings' | 'map';
type Body = Record<string, unknown>;

function kindOf(v: unknown, k: Kind): boolean {
  switch (k) {
    case 'string': return typeof v === 'string';
    case 'integer': return Number.isSafeInteger(v);
    case 'number': return typeof v === 'number' && Number.isFinite(v);
    case 'boolean': return typeof v === 'boolean';
    case 'object': return typeof v === 'object' && v !== null && !Array.isArray(v);
    case 'array': return Array.isArray(v);
    case 'strings': return Array.isArray(v) && v.every((x) => typeof x === 'string');
    case 'map': return kindOf(v, 'object') && Object.values(v as Body).every((x) => typeof x === 'string');
  }
}

const KIND_TEXT: Record<Kind, string> = { string: 'a string', integer: 'a whole number', number: 'a number', boolean: 'true or false', object: 'an object', array: 'a list', strings: 'a list of strings', map: 'an object of strings' };

/** Checks an object's fields against their kinds: unknown fields and wrong types are 400s naming the field. */
export function fields<T extends Body>(o: unknown, spec: Record<string, Kind>, where: string, required: string[] = []): T {
  if (!kindOf(o, 'object')) throw badRequest(`${where} must be a JSON object`);
  const body = o as Body;
  for (const [k, v] of Object.entries(body)) {
    if (!Object.hasOwn(spec, k)) throw badRequest(`${where}: unknown field "${k}" (known: ${Object.keys(spec).join(', ')})`);
    if (v !== null && !kindOf(v, spec[k])) throw badRequest(`${where}: field "${k}" must be ${KIND_TEXT[spec[k]]}`);
  }
  for (const k of required) if (body[k] === undefined || body[k] === null) throw badRequest(`${where}: field "${k}" is required`);
  return body as T;
}

/** Paths on the server a client may name: none, or those below one folder. */
export class HostFolders {
  readonly root: string | null;
  constructor(dir?: string) {
    if (!dir) {
      this.root = null;
      return;
    }
    try {
      this.root = fs.realpathSync(dir);
    } catch {
      throw badRequest(`--allow-host-folders ${dir} does not exist`);
    }
    if (!fs.statSync(this.root).isDirectory()) throw badRequest(`--allow-host-folders ${dir} is not a folder`);
  }

  /** The path resolved (symlinks followed), if it is the allowed folder or below it. */
  check(p: string, what: string): string {
    if (!this.root) throw badRequest(`${what}: this server shares no host folders with boxes (its operator can allow a folder with 'boxlite serve --allow-host-folders DIR')`);
    if (!path.isAbsolute(p) || p.includes('\0')) throw badRequest(`${what}: "${p}" must be an absolute path below ${this.root}`);
    let real: string;
    try {
      real = fs.realpathSync(p);
    } catch {
      throw badRequest(`${what}: ${p} does not exist on the server`);
    }
    if (real !== this.root && !real.startsWith(this.root === '/' ? '/' : this.root + '/')) throw badRequest(`${what}: ${p} is not below ${this.root}, the one folder this server shares`);
    return real;
  }
}

// A path rather than an image reference (create treats these as a folder or an OCI layout on the server).
const looksLikePath = (s: string) => /^(\/|\.\.?(\/|$)|~)/.test(s);

const CREATE: Record<string, Kind> = {
  name: 'string', image: 'string', rootfs_path: 'string', cpus: 'integer', memory_mib: 'integer', disk_size_gb: 'integer', disk_size_mib: 'integer',
  working_dir: 'string', env: 'map', entrypoint: 'strings', cmd: 'strings', user: 'string', volumes: 'array', network: 'object',
  secrets: 'array', detach: 'boolean', tty: 'boolean', auto_stop: 'integer', auto_delete: 'integer', auto_resume: 'boolean', advanced: 'object',
  auto_remove: 'boolean', dns: 'strings',
};

/** POST /v1/boxes → create's options. */
export function createRequest(body: Body, folders: HostFolders): CreateOptions {
  const b = fields<Body>(body, CREATE, 'CreateBoxRequest');
  for (const k of ['entrypoint', 'cmd'] as const) {
    if ((b[k] as string[] | undefined)?.length) throw unsupported(`CreateBoxRequest: ${k} is not supported: a box has no main process here; run it with POST /exec`);
  }
  if (b.advanced !== undefined && b.advanced !== null) {
    const a = fields<Body>(b.advanced, { capabilities: 'object' }, 'CreateBoxRequest.advanced');
    if (a.capabilities) {
      const c = fields<Body>(a.capabilities, { add: 'strings', drop: 'strings' }, 'CreateBoxRequest.advanced.capabilities');
      if ((c.add as string[] | undefined)?.length || (c.drop as string[] | undefined)?.length) throw unsupported('CreateBoxRequest: capabilities are not set per box on this server');
    }
  }
  if (b.tty) throw unsupported('CreateBoxRequest: tty is a property of an execution here (ExecRequest.tty): a box has no main command');
  if (b.auto_stop || b.auto_delete) throw unsupported('CreateBoxRequest: auto_stop and auto_delete are not done by this server: leave them out or 0');
  if (b.image !== undefined && b.rootfs_path !== undefined) throw badRequest('CreateBoxRequest: give image or rootfs_path, not both');
  if (b.disk_size_gb !== undefined && b.disk_size_mib !== undefined) throw badRequest('CreateBoxRequest: give disk_size_gb or disk_size_mib, not both');
  let source: Pick<CreateOptions, 'image' | 'rootfs'>;
  if (typeof b.rootfs_path === 'string') source = { rootfs: folders.check(b.rootfs_path, 'rootfs_path') };
  else {
    const image = (b.image as string | undefined) ?? 'alpine:latest';
    source = looksLikePath(image) ? { image: folders.check(image, 'image (a path on the server)') } : { image };
  }
  const { volumes, binds } = volumeSpecs(b.volumes as unknown[] | undefined, folders);
  const net = networkSpec(b.network as Body | undefined);
  const secrets = ((b.secrets as unknown[] | undefined) ?? []).map((s, i) => {
    // Only a value: a secret read from the server's environment or files (boxlite's env/file) is not for clients.
    const x = fields<{ name: string; value: string; hosts?: string[]; placeholder?: string }>(s, { name: 'string', value: 'string', hosts: 'strings', placeholder: 'string' }, `CreateBoxRequest.secrets[${i}]`, ['name', 'value']);
    return { name: x.name, value: x.value, hosts: x.hosts ?? [], ...(x.placeholder ? { placeholder: x.placeholder } : {}) };
  });
  return {
    ...source,
    name: b.name as string | undefined,
    cpus: b.cpus as number | undefined,
    memoryMib: b.memory_mib as number | undefined,
    diskSizeMib: b.disk_size_gb !== undefined && b.disk_size_gb !== null ? (b.disk_size_gb as number) * 1024 : (b.disk_size_mib as number | undefined),
    workingDir: b.working_dir as string | undefined,
    env: b.env as Record<string, string> | undefined,
    user: b.user as string | undefined,
    dns: b.dns as string[] | undefined,
    ...(volumes.length ? { volumes } : {}),
    ...(binds.length ? { binds } : {}),
    ...net,
    ...(secrets.length ? { secrets } : {}),
    ...(b.auto_remove ? { autoRemove: true } : {}),
  };
}

/** BoxLite's managed volumes are boxlite's named volumes; host_path (boxlite's own) is a host folder, confined. */
function volumeSpecs(list: unknown[] | undefined, folders: HostFolders): { volumes: VolumeMount[]; binds: BindMount[] } {
  const volumes: VolumeMount[] = [];
  const binds: BindMount[] = [];
  for (const [i, v] of (list ?? []).entries()) {
    const s = fields<{ managed_volume?: string; host_path?: string; guest_path: string; read_only?: boolean }>(v, { managed_volume: 'string', host_path: 'string', guest_path: 'string', read_only: 'boolean' }, `CreateBoxRequest.volumes[${i}]`, ['guest_path']);
    if ((s.managed_volume === undefined) === (s.host_path === undefined)) throw badRequest(`CreateBoxRequest.volumes[${i}]: give managed_volume (a named volume) or host_path, one of them`);
    if (s.managed_volume !== undefined) volumes.push({ volume: s.managed_volume, target: s.guest_path, readOnly: !!s.read_only });
    else binds.push({ hostPath: folders.check(s.host_path!, `CreateBoxRequest.volumes[${i}].host_path`), target: s.guest_path, readOnly: !!s.read_only });
  }
  return { volumes, binds };
}

/** BoxLite's NetworkSpec: nested outbound/inbound, or the older flat mode/allow_net (not both). */
function networkSpec(n: Body | undefined | null): Pick<CreateOptions, 'network' | 'egress'> {
  if (!n) return {};
  const s = fields<Body>(n, { outbound: 'object', inbound: 'object', mode: 'string', allow_net: 'strings' }, 'CreateBoxRequest.network');
  const flat = s.mode !== undefined || s.allow_net !== undefined;
  if (flat && (s.outbound !== undefined || s.inbound !== undefined)) throw badRequest('CreateBoxRequest.network: give outbound/inbound or the older mode/allow_net, not both');
  if (s.inbound) {
    const inb = fields<Body>(s.inbound, { mode: 'string', allow_net: 'strings' }, 'CreateBoxRequest.network.inbound', ['mode']);
    if ((inb.allow_net as string[] | undefined)?.length) throw unsupported('CreateBoxRequest.network.inbound.allow_net is not supported: leave it out');
  }
  const out = flat ? s : s.outbound ? fields<Body>(s.outbound, { mode: 'string', allow_net: 'strings' }, 'CreateBoxRequest.network.outbound', ['mode']) : {};
  const mode = (out.mode as string | undefined) ?? 'enabled';
  if (mode !== 'enabled' && mode !== 'disabled') throw badRequest(`CreateBoxRequest.network: mode must be "enabled" or "disabled" (got "${mode}")`);
  const allow = (out.allow_net as string[] | undefined) ?? [];
  if (mode === 'disabled' && allow.length) throw badRequest('CreateBoxRequest.network: allow_net needs mode "enabled"');
  return { network: mode === 'enabled' ? 'default' : 'none', ...(allow.length ? { egress: { allow, deny: [] } } : {}) };
}

export interface ExecRequest {
  command: string;
  args?: string[];
  env?: Record<string, string>;
  timeout_seconds?: number;
  working_dir?: string;
  tty?: boolean;
  user?: string;
  /** Text written to the command's stdin, which is then closed; without it stdin stays open for the attach. */
  stdin?: string;
  rows?: number;
  cols?: number;
}

export function execRequest(body: Body, maxTimeoutSeconds: number): ExecRequest {
  const e = fields<ExecRequest & Body>(body, { command: 'string', args: 'strings', env: 'map', timeout_seconds: 'number', working_dir: 'string', tty: 'boolean', user: 'string', stdin: 'string', rows: 'integer', cols: 'integer' }, 'ExecRequest', ['command']);
  if (!e.command) throw badRequest('ExecRequest: command must not be empty');
  if (e.timeout_seconds !== undefined && e.timeout_seconds !== null && !(e.timeout_seconds >= 0.1 && e.timeout_seconds <= maxTimeoutSeconds)) {
    throw badRequest(`ExecRequest: timeout_seconds must be from 0.1 to ${maxTimeoutSeconds} (got ${e.timeout_seconds})`);
  }
  for (const k of ['rows', 'cols'] as const) if (e[k] !== undefined && !(e[k]! >= 1 && e[k]! <= 1000)) throw badRequest(`ExecRequest: ${k} must be from 1 to 1000`);
  for (const [k, v] of Object.entries(e.env ?? {})) if (!k || k.includes('=') || k.includes('\0') || v.includes('\0')) throw badRequest(`ExecRequest: environment variable "${k}" is invalid`);
  if ([e.command, ...(e.args ?? [])].some((a) => a.includes('\0'))) throw badRequest('ExecRequest: command and args may not hold NUL bytes');
  return e;
}
