// A client of BoxLite's REST API written from BoxLite's OpenAPI description (openapi/box.openapi.yaml of
// boxlite-ai/boxlite), not from this server's code: its routes, its JSON shapes (as JSON Schemas written here from
// that description's facts and checked with ajv) and its attach WebSocket protocol.
import { Ajv } from 'ajv';
import WebSocket from 'ws';

const str = { type: 'string' };
const int = { type: 'integer' };
const nint = { type: ['integer', 'null'] };
const boxStatus = { enum: ['configured', 'running', 'stopping', 'stopped', 'paused', 'failed', 'unknown'] };
const errorTypes = ['InvalidArgumentError', 'UnsupportedError', 'AuthError', 'NotFoundError', 'SessionReapedError', 'AlreadyExistsError', 'InvalidStateError', 'StoppedError', 'ImageError', 'ExecutionError', 'ResourceExhaustedError', 'NetworkError', 'UpstreamUnavailableError', 'EngineError', 'StorageError', 'DatabaseError', 'MetadataError', 'ConfigError', 'InternalError', 'TimeoutError'];
const errorCodes = ['invalid_argument', 'unsupported', 'unauthenticated', 'permission_denied', 'not_found', 'session_reaped', 'already_exists', 'invalid_state', 'stopped', 'image_pull_failed', 'execution_failed', 'resource_exhausted', 'network_unavailable', 'upstream_unavailable', 'engine_unavailable', 'storage_error', 'database_error', 'metadata_error', 'config_error', 'internal', 'timeout'];
const box = {
  type: 'object',
  required: ['box_id', 'status', 'created_at', 'updated_at', 'image', 'cpus', 'memory_mib'],
  properties: {
    box_id: { type: 'string', minLength: 1, maxLength: 128 }, name: { type: ['string', 'null'] }, status: boxStatus,
    created_at: { type: 'string', format: 'date-time' }, updated_at: { type: 'string', format: 'date-time' }, pid: nint, image: str,
    cpus: { type: 'integer', minimum: 1 }, memory_mib: { type: 'integer', minimum: 128 }, labels: { type: 'object', additionalProperties: str },
    auto_stop: { type: 'integer', minimum: 0 }, auto_delete: { type: 'integer', minimum: 0 }, auto_resume: { type: 'boolean' },
  },
};
const snapshot = {
  type: 'object', required: ['id', 'box_id', 'name', 'created_at', 'guest_disk_bytes', 'container_disk_bytes', 'size_bytes'],
  properties: { id: str, box_id: str, name: str, created_at: int, guest_disk_bytes: int, container_disk_bytes: int, size_bytes: int },
};
const nullableInts = (names: string[]) => Object.fromEntries(names.map((n) => [n, nint]));

export const SCHEMAS = {
  ErrorResponse: {
    type: 'object', required: ['error'],
    properties: { error: { type: 'object', required: ['message', 'type', 'code'], properties: { message: str, type: { enum: errorTypes }, code: { enum: errorCodes }, request_id: str } } },
  },
  ServerConfig: {
    type: 'object',
    properties: {
      defaults: { type: 'object', properties: { cpus: int, memory_mib: int, disk_size_gb: int, auto_delete: int } },
      overrides: { type: 'object', additionalProperties: str },
      capabilities: {
        type: 'object',
        properties: {
          linux_capabilities_enabled: { type: 'boolean' }, max_cpus: int, max_memory_mib: int, max_disk_size_gb: int, max_boxes_per_path_prefix: int, max_concurrent_executions: int,
          file_transfer_max_bytes: int, exec_timeout_max_seconds: { type: 'number' }, tty_enabled: { type: 'boolean' }, streaming_enabled: { type: 'boolean' },
          snapshots_enabled: { type: 'boolean' }, clone_enabled: { type: 'boolean' }, export_enabled: { type: 'boolean' }, idempotency_key_lifetime: str,
        },
      },
    },
  },
  Principal: {
    type: 'object', required: ['sub', 'principal_type', 'scopes'],
    properties: { sub: str, principal_type: { enum: ['user', 'service_account'] }, email: str, display_name: str, path_prefix: { type: ['string', 'null'] }, scopes: { type: 'array', items: str }, expires_at: { type: ['string', 'null'] } },
  },
  Box: box,
  ListBoxesResponse: { type: 'object', required: ['boxes'], properties: { boxes: { type: 'array', items: box }, next_page_token: { type: ['string', 'null'] } } },
  ExecResponse: { type: 'object', required: ['execution_id'], properties: { execution_id: str } },
  ExecutionInfo: {
    type: 'object', required: ['execution_id', 'status'],
    properties: { execution_id: str, status: { enum: ['running', 'completed', 'killed', 'timed_out'] }, exit_code: nint, started_at: { type: 'string', format: 'date-time' }, duration_ms: nint, error_message: { type: ['string', 'null'] } },
  },
  RuntimeMetrics: { type: 'object', properties: Object.fromEntries(['boxes_created_total', 'boxes_failed_total', 'boxes_stopped_total', 'num_running_boxes', 'total_commands_executed', 'total_exec_errors'].map((n) => [n, int])) },
  BoxMetrics: {
    type: 'object',
    properties: {
      commands_executed_total: int, exec_errors_total: int, bytes_sent_total: int, bytes_received_total: int, cpu_percent: { type: ['number', 'null'] }, memory_bytes: nint,
      ...nullableInts(['network_bytes_sent', 'network_bytes_received', 'network_tcp_connections', 'network_tcp_errors']),
      boot_timing: { type: 'object', properties: nullableInts(['total_create_ms', 'guest_boot_ms', 'filesystem_setup_ms', 'image_prepare_ms', 'guest_rootfs_ms', 'box_config_ms', 'box_spawn_ms', 'container_init_ms']) },
    },
  },
  Snapshot: snapshot,
  ListSnapshotsResponse: { type: 'object', required: ['snapshots'], properties: { snapshots: { type: 'array', items: snapshot } } },
} as const;

const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });
const validators = Object.fromEntries(Object.entries(SCHEMAS).map(([k, s]) => [k, ajv.compile(s)]));

/** Throws, naming what differs, unless v is of BoxLite's schema name. */
export function conforms(name: keyof typeof SCHEMAS, v: unknown): void {
  const ok = validators[name](v);
  if (!ok) throw new Error(`not a BoxLite ${name}: ${ajv.errorsText(validators[name].errors)}\n${JSON.stringify(v).slice(0, 2000)}`);
}

export interface Reply {
  status: number;
  headers: Headers;
  json: any;
  body: Buffer;
}

export class ApiClient {
  constructor(
    readonly base: string,
    readonly key: string | null,
  ) {}

  async call(method: string, path: string, body?: unknown, opts: { headers?: Record<string, string>; raw?: Buffer | Uint8Array; key?: string | null } = {}): Promise<Reply> {
    const key = opts.key === undefined ? this.key : opts.key;
    const headers: Record<string, string> = { ...(key !== null ? { authorization: `Bearer ${key}` } : {}), ...opts.headers };
    let payload: any;
    if (opts.raw) payload = opts.raw;
    else if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body);
      headers['content-type'] ??= 'application/json';
    }
    const r = await fetch(this.base + path, { method, headers, body: payload });
    const buf = Buffer.from(await r.arrayBuffer());
    let json: unknown;
    if ((r.headers.get('content-type') ?? '').includes('json') && buf.length) json = JSON.parse(buf.toString());
    return { status: r.status, headers: r.headers, json, body: buf };
  }

  /** Calls, checks the status, and (when named) the response's schema. */
  async expect(status: number, method: string, path: string, body?: unknown, schema?: keyof typeof SCHEMAS): Promise<any> {
    const r = await this.call(method, path, body);
    if (r.status !== status) throw new Error(`${method} ${path}: expected ${status}, got ${r.status}: ${r.body.toString().slice(0, 500)}`);
    if (status >= 400) conforms('ErrorResponse', r.json);
    if (schema) conforms(schema, r.json);
    return r.json;
  }

  attachUrl(boxId: string, execId: string): string {
    return `${this.base.replace(/^http/, 'ws')}/v1/boxes/${encodeURIComponent(boxId)}/executions/${encodeURIComponent(execId)}/attach`;
  }

  attach(boxId: string, execId: string, key: string | null = this.key): Attached {
    return new Attached(new WebSocket(this.attachUrl(boxId, execId), { headers: key !== null ? { authorization: `Bearer ${key}` } : {} }));
  }
}

/** One attach session as BoxLite frames it: binary [channel][bytes] (1 stdout, 2 stderr), text JSON control. */
export class Attached {
  readonly stdout: Buffer[] = [];
  readonly stderr: Buffer[] = [];
  readonly control: any[] = [];
  /** Output in arrival order, channel by channel. */
  readonly frames: { channel: number; data: Buffer }[] = [];
  readonly opened: Promise<void>;
  /** The close code and reason, or the HTTP status of a refused upgrade. */
  readonly closed: Promise<{ code: number; reason: string; status?: number; body?: string }>;
  private waiters: (() => void)[] = [];

  constructor(readonly ws: WebSocket) {
    this.opened = new Promise((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d));
        res.on('end', () => resolve({ code: -1, reason: '', status: res.statusCode, body }));
      });
      ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    ws.on('error', () => {});
    ws.on('message', (data: Buffer, binary: boolean) => {
      if (binary) {
        const f = { channel: data[0], data: data.subarray(1) };
        this.frames.push(f);
        (f.channel === 1 ? this.stdout : this.stderr).push(f.data);
      } else this.control.push(JSON.parse(data.toString()));
      for (const w of this.waiters.splice(0)) w();
    });
  }

  out(): string {
    return Buffer.concat(this.stdout).toString();
  }
  err(): string {
    return Buffer.concat(this.stderr).toString();
  }

  /** Resolves once cond holds on what arrived (or throws if the socket closes first). */
  async until(cond: () => boolean, what: string): Promise<void> {
    let done = false;
    this.closed.then(() => {
      done = true;
      for (const w of this.waiters.splice(0)) w();
    });
    while (!cond()) {
      if (done) throw new Error(`the attach closed before ${what}; got stdout ${JSON.stringify(this.out().slice(-300))}, control ${JSON.stringify(this.control)}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  exit(): Promise<number> {
    return this.closed.then(() => {
      const e = this.control.find((c) => c.type === 'exit');
      if (!e) throw new Error(`no exit frame; control frames: ${JSON.stringify(this.control)}`);
      return e.exit_code;
    });
  }

  send(data: string | Buffer, binary = true): void {
    this.ws.send(typeof data === 'string' && !binary ? data : Buffer.from(data), { binary });
  }
  sendControl(m: object): void {
    this.ws.send(JSON.stringify(m));
  }
}
