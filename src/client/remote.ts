// Boxes on a server, as boxlite's own options and results: create's options become BoxLite's CreateBoxRequest,
// exec results are collected from the attach stream, copies go through the files API as tar (unpacked on this
// side by the same safe extractor as `boxlite cp`).
import { Readable } from 'node:stream';
import { InvalidOptionError, TimeoutError } from '../core/errors.js';
import type { CreateOptions } from '../runtime/options.js';
import type { ExecResult } from '../runtime/execution.js';
import type { CopyTarget } from '../runtime/copy.js';
import { BUSYBOX } from '../core/guest.js';
import { RemoteJsExecution } from './execution.js';
import type { RestClient } from './rest.js';

export interface RemoteExecOptions {
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  tty?: boolean;
  timeoutMs?: number;
  input?: string | Buffer;
  rows?: number;
  cols?: number;
}

/** boxlite's create options as BoxLite's CreateBoxRequest; what the API has no field for is refused by name. */
export function createRequestOf(o: CreateOptions): Record<string, unknown> {
  if (o.ports?.length) throw new InvalidOptionError('ports cannot be published through a boxlite server (BoxLite\'s API has no host ports): publish them on the server itself');
  if (o.lan || o.label) throw new InvalidOptionError('project LANs and labels are made by the server\'s own projects (POST /v1/projects/up)');
  if (o.egress?.deny?.length) throw new InvalidOptionError('deny rules cannot be given through BoxLite\'s API: give allow rules (allowNet)');
  if (o.hostname) throw new InvalidOptionError('hostname cannot be given through BoxLite\'s API');
  const secrets = (o.secrets ?? []).map((s) => {
    if (typeof (s as { value?: unknown }).value !== 'string') throw new InvalidOptionError(`secret ${s.name}: only a value can be sent to a server (its env and file forms are read where the box runs)`);
    return { name: s.name, value: (s as { value: string }).value, hosts: s.hosts, ...(s.placeholder ? { placeholder: s.placeholder } : {}) };
  });
  const allow = o.egress?.allow ?? [];
  return {
    ...(o.image !== undefined ? { image: o.image } : {}),
    ...(o.rootfs !== undefined ? { rootfs_path: o.rootfs } : {}),
    ...(o.name !== undefined ? { name: o.name } : {}),
    ...(o.cpus !== undefined ? { cpus: o.cpus } : {}),
    ...(o.memoryMib !== undefined ? { memory_mib: o.memoryMib } : {}),
    ...(o.diskSizeMib !== undefined ? { disk_size_mib: o.diskSizeMib } : {}),
    ...(o.env && Object.keys(o.env).length ? { env: o.env } : {}),
    ...(o.workingDir ? { working_dir: o.workingDir } : {}),
    ...(o.user ? { user: o.user } : {}),
    ...(o.dns?.length ? { dns: o.dns } : {}),
    ...(o.network === 'none' ? { network: { outbound: { mode: 'disabled' } } } : allow.length ? { network: { outbound: { mode: 'enabled', allow_net: allow } } } : {}),
    ...(o.volumes?.length || o.binds?.length
      ? { volumes: [...(o.volumes ?? []).map((v) => ({ managed_volume: v.volume, guest_path: v.target, read_only: !!v.readOnly })), ...(o.binds ?? []).map((b) => ({ host_path: b.hostPath, guest_path: b.target, read_only: !!b.readOnly }))] }
      : {}),
    ...(secrets.length ? { secrets } : {}),
    ...(o.autoRemove ? { auto_remove: true } : {}),
  };
}

export function execRequestOf(argv: string[], o: RemoteExecOptions): Record<string, unknown> {
  if (!argv.length) throw new InvalidOptionError('no command given');
  return {
    command: argv[0],
    args: argv.slice(1),
    ...(o.env && Object.keys(o.env).length ? { env: o.env } : {}),
    ...(o.cwd ? { working_dir: o.cwd } : {}),
    ...(o.user ? { user: o.user } : {}),
    ...(o.tty ? { tty: true } : {}),
    ...(o.rows ? { rows: o.rows } : {}),
    ...(o.cols ? { cols: o.cols } : {}),
    ...(o.timeoutMs ? { timeout_seconds: o.timeoutMs / 1000 } : {}),
    ...(o.input !== undefined ? { stdin: o.input.toString() } : {}),
  };
}

export class RemoteBoxes {
  constructor(readonly client: RestClient) {}

  create(o: CreateOptions): Promise<any> {
    return this.client.json('POST', this.client.boxes, createRequestOf(o));
  }
  /** A box by id or name, or null. */
  async find(ref: string): Promise<any | null> {
    const r = await this.client.request('GET', this.client.box(ref), { ok: [404] });
    return r.status === 404 ? null : r.json();
  }
  async list(): Promise<any[]> {
    const out: any[] = [];
    let token: string | null = null;
    do {
      const page: { boxes: any[]; next_page_token?: string | null } = await this.client.json('GET', `${this.client.boxes}${token ? `?pageToken=${encodeURIComponent(token)}` : ''}`);
      out.push(...page.boxes);
      token = page.next_page_token ?? null;
    } while (token);
    return out;
  }
  start(ref: string): Promise<any> {
    return this.client.json('POST', `${this.client.box(ref)}/start`);
  }
  stop(ref: string, timeoutMs?: number): Promise<any> {
    return this.client.json('POST', `${this.client.box(ref)}/stop`, timeoutMs !== undefined ? { timeout_seconds: timeoutMs / 1000 } : {});
  }
  async remove(ref: string, force = false): Promise<void> {
    await this.client.request('DELETE', `${this.client.box(ref)}${force ? '?force=true' : ''}`);
  }
  metrics(ref: string): Promise<any> {
    return this.client.json('GET', `${this.client.box(ref)}/metrics`);
  }

  async spawn(ref: string, argv: string[], o: RemoteExecOptions = {}): Promise<RemoteJsExecution> {
    const { execution_id } = await this.client.json('POST', `${this.client.box(ref)}/exec`, execRequestOf(argv, o));
    return new RemoteJsExecution(this.client, ref, execution_id);
  }

  /** Runs a command to completion; a TimeoutError (with the partial result) on timeout, as the local exec. */
  async exec(ref: string, argv: string[], o: RemoteExecOptions = {}): Promise<ExecResult> {
    const ex = await this.spawn(ref, argv, o);
    const collect = async (r: Promise<{ next(): Promise<string | null> }>) => {
      const s = await r;
      let text = '';
      for (let c = await s.next(); c !== null; c = await s.next()) text += c;
      return text;
    };
    const [stdout, stderr, res] = await Promise.all([collect(ex.stdout()), collect(ex.stderr()), ex.wait()]);
    const id = await ex.id();
    const info = await this.client.json('GET', `${this.client.box(ref)}/executions/${encodeURIComponent(id)}`).catch(() => null);
    const timedOut = info?.status === 'timed_out';
    const result = { exitCode: res.exitCode, signal: null, timedOut, stdout, stderr };
    if (timedOut) throw Object.assign(new TimeoutError(`${argv.join(' ')} was killed after the ${o.timeoutMs} ms timeout`), { result });
    return result;
  }

  /** Where `cp` reads and writes on a server's box. */
  copyTarget(ref: string, name: string): CopyTarget {
    return {
      name,
      isDir: async (p) => (await this.exec(ref, [BUSYBOX, 'test', '-d', p])).exitCode === 0,
      upload: async (dest, tar) => {
        await this.client.request('PUT', `${this.client.box(ref)}/files?path=${encodeURIComponent(dest)}`, { body: Readable.toWeb(tar as Readable), headers: { 'content-type': 'application/x-tar' } });
      },
      download: async (p) => {
        const r = await this.client.request('GET', `${this.client.box(ref)}/files?path=${encodeURIComponent(p)}`);
        return Readable.fromWeb(r.body as never);
      },
    };
  }
}
