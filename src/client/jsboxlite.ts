// BoxLite's runtime-level API (its Node SDK's JsBoxlite), over this machine's runtime or a boxlite server, so that
// the same program runs local or remote by changing one line:
//   const rt = JsBoxlite.withDefaultConfig();                                            // this machine
//   const rt = JsBoxlite.rest(new BoxliteRestOptions({ url, credential: ApiKeyCredential.fromEnv() }));  // a server
//   const box = await rt.create({ image: 'alpine:latest' }, 'name'); await box.start();
//   const ex = await box.exec('ls', ['/']); const out = await ex.stdout(); … await ex.wait();
import { InvalidOptionError } from '../core/errors.js';
import { Runtime } from '../runtime/runtime.js';
import { createOptions, type SimpleBoxOptions } from '../runtime/simple-box.js';
import type { CreateOptions } from '../runtime/options.js';
import type { BoxMetrics } from '../runtime/metrics.js';
import { projectHooks } from '../reconciler/hooks.js';
import { RestClient, BoxliteRestOptions, type Credential } from './rest.js';
import { RemoteBoxes } from './remote.js';
import { RemoteSimpleBox } from './remote-simple.js';
import type { SimpleDelegate } from '../runtime/simple-box.js';
import { JsBox, LocalJsBox, RemoteJsBox, type JsBoxInfo, statusOf } from './jsbox.js';

/** BoxLite's JsBoxOptions: env is a list of { key, value }. */
export interface JsBoxOptions extends Omit<SimpleBoxOptions, 'env' | 'runtime' | 'name' | 'reuseExisting' | 'keep'> {
  env?: { key: string; value: string }[] | Record<string, string>;
  healthCheck?: unknown;
}

const JS_ONLY = new Set(['healthCheck']);

/** JsBoxOptions as create's options (through SimpleBox's checks: unknown options refused by name). */
export function jsCreateOptions(o: JsBoxOptions, name?: string | null): CreateOptions {
  if (typeof o !== 'object' || o === null) throw new InvalidOptionError('create: the options must be an object ({ image: "alpine:latest" })');
  for (const k of Object.keys(o)) if (JS_ONLY.has(k) && (o as Record<string, unknown>)[k] !== undefined) throw new InvalidOptionError(`JsBoxOptions.${k} is not supported here: boxlite's health checks are a project's (boxlite.yaml healthcheck)`);
  const { env, healthCheck: _h, detach: _d, ...rest } = o;
  let envMap: Record<string, string> | undefined;
  if (Array.isArray(env)) {
    envMap = {};
    for (const e of env) {
      if (typeof e?.key !== 'string' || typeof e?.value !== 'string') throw new InvalidOptionError('JsBoxOptions.env must be a list of { key, value } strings');
      envMap[e.key] = e.value;
    }
  } else envMap = env;
  const { autoRemove, ...create } = rest as SimpleBoxOptions;
  return { ...createOptions({ ...create, env: envMap, ...(name ? { name } : {}) }), ...(autoRemove ? { autoRemove: true } : {}) };
}

export interface JsRuntimeMetrics {
  boxesCreatedTotal: number;
  boxesFailedTotal: number;
  numRunningBoxes: number;
  totalCommandsExecuted: number;
  totalExecErrors: number;
}

interface Backend {
  create(o: CreateOptions): Promise<JsBox>;
  get(ref: string): Promise<JsBox | null>;
  listInfo(): Promise<JsBoxInfo[]>;
  remove(ref: string, force: boolean): Promise<void>;
  metrics(): Promise<JsRuntimeMetrics>;
  close(): void;
  /** This machine's runtime, for SimpleBox; null for a server. */
  readonly local: Runtime | null;
  readonly remote: RemoteBoxes | null;
}

class LocalBackend implements Backend {
  readonly remote = null;
  private created = 0;
  private failed = 0;
  constructor(readonly local: Runtime) {}
  async create(o: CreateOptions): Promise<JsBox> {
    try {
      const b = await this.local.create(o);
      this.created++;
      return new LocalJsBox(b);
    } catch (e) {
      this.failed++;
      throw e;
    }
  }
  async get(ref: string): Promise<JsBox | null> {
    const r = this.local.list().find((x) => x.name === ref || x.id === ref);
    return r ? new LocalJsBox(this.local.get(r.id)) : null;
  }
  async listInfo(): Promise<JsBoxInfo[]> {
    return this.local.list().map((r) => new LocalJsBox(this.local.get(r.id)).info());
  }
  async remove(ref: string, force: boolean): Promise<void> {
    await this.local.get(ref).remove({ force });
  }
  async metrics(): Promise<JsRuntimeMetrics> {
    const all = this.local.list();
    const counts = all.map((r) => this.local.execCounts(r.id));
    return {
      boxesCreatedTotal: this.created,
      boxesFailedTotal: this.failed,
      numRunningBoxes: all.filter((r) => r.state === 'running').length,
      totalCommandsExecuted: counts.reduce((a, c) => a + c.total, 0),
      totalExecErrors: counts.reduce((a, c) => a + c.errors, 0),
    };
  }
  close(): void {
    this.local.close();
  }
}

class RemoteBackend implements Backend {
  readonly local = null;
  constructor(readonly remote: RemoteBoxes) {}
  async create(o: CreateOptions): Promise<JsBox> {
    return new RemoteJsBox(this.remote, await this.remote.create(o));
  }
  async get(ref: string): Promise<JsBox | null> {
    const j = await this.remote.find(ref);
    return j ? new RemoteJsBox(this.remote, j) : null;
  }
  async listInfo(): Promise<JsBoxInfo[]> {
    return (await this.remote.list()).map((j) => new RemoteJsBox(this.remote, j).info());
  }
  remove(ref: string, force: boolean): Promise<void> {
    return this.remote.remove(ref, force);
  }
  async metrics(): Promise<JsRuntimeMetrics> {
    const m = await this.remote.client.json('GET', '/v1/metrics');
    return { boxesCreatedTotal: m.boxes_created_total ?? 0, boxesFailedTotal: m.boxes_failed_total ?? 0, numRunningBoxes: m.num_running_boxes ?? 0, totalCommandsExecuted: m.total_commands_executed ?? 0, totalExecErrors: m.total_exec_errors ?? 0 };
  }
  close(): void {}
}

export class JsBoxlite {
  private readonly backend: Backend;

  /** A runtime over this machine's boxes (options.homeDir: a home other than $BOXLITE_HOME). */
  constructor(options: { homeDir?: string } | Backend = {}) {
    this.backend = 'create' in options ? options : new LocalBackend(new Runtime({ hooks: projectHooks(), ...(options.homeDir ? { home: options.homeDir } : {}) }));
  }

  static withDefaultConfig(): JsBoxlite {
    return new JsBoxlite({});
  }

  /** A runtime over a boxlite server (or any server of BoxLite's REST API): rest(new BoxliteRestOptions({ url,
   *  credential })) or rest(url, credential). */
  static rest(opts: BoxliteRestOptions | { url: string; credential?: Credential; pathPrefix?: string } | string, credential?: Credential | null, prefix?: string | null): JsBoxlite {
    const o = typeof opts === 'string' ? { url: opts, credential: credential ?? undefined, pathPrefix: prefix ?? undefined } : opts;
    if (!o || typeof o.url !== 'string') throw new InvalidOptionError('JsBoxlite.rest: give new BoxliteRestOptions({ url, credential }) or (url, credential)');
    return new JsBoxlite(new RemoteBackend(new RemoteBoxes(new RestClient(o.url, o.credential, o.pathPrefix))));
  }

  /** This machine's runtime behind a local JsBoxlite (null for a server): what SimpleBox uses. */
  get localRuntime(): Runtime | null {
    return this.backend.local;
  }
  get remoteBoxes(): RemoteBoxes | null {
    return this.backend.remote;
  }

  /** What SimpleBox({ runtime: this }) does on a server. */
  simpleDelegate(create: CreateOptions, o: { autoRemove: boolean; reuseExisting: boolean }): SimpleDelegate {
    if (!this.backend.remote) throw new InvalidOptionError('a local JsBoxlite gives SimpleBox its runtime');
    return new RemoteSimpleBox(this.backend.remote, create, o);
  }

  async create(options: JsBoxOptions, name?: string | null): Promise<JsBox> {
    return this.backend.create(jsCreateOptions(options, name));
  }

  /** The box of that name if there is one, else a new one: { created, box }. */
  async getOrCreate(options: JsBoxOptions, name?: string | null): Promise<{ created: boolean; box: JsBox }> {
    if (name) {
      const box = await this.backend.get(name);
      if (box) return { created: false, box };
    }
    return { created: true, box: await this.create(options, name) };
  }

  get(idOrName: string): Promise<JsBox | null> {
    return this.backend.get(idOrName);
  }

  async getInfo(idOrName: string): Promise<JsBoxInfo | null> {
    return (await this.backend.get(idOrName))?.info() ?? null;
  }

  listInfo(): Promise<JsBoxInfo[]> {
    return this.backend.listInfo();
  }

  remove(idOrName: string, force?: boolean | null): Promise<void> {
    return this.backend.remove(idOrName, !!force);
  }

  metrics(): Promise<JsRuntimeMetrics> {
    return this.backend.metrics();
  }

  /** Closes this process's connections; boxes keep running. */
  close(): void {
    this.backend.close();
  }

  async shutdown(): Promise<void> {
    this.close();
  }
}

export { statusOf };
export type { BoxMetrics };
