// The client side of BoxLite's REST API: one base URL and credential, JSON calls whose errors become boxlite's
// typed errors (a 404 is a BoxNotFoundError, a 409 a BoxStateError …, the message the server's), and the attach
// WebSocket. Used by JsBoxlite.rest(), SimpleBox on a remote runtime and the CLI's --host.
import type WebSocket from 'ws';
import { createRequire } from 'node:module';
import {
  BoxExistsError, BoxNotFoundError, BoxStateError, BoxliteError, ExecError, ImageError, InvalidOptionError, TimeoutError,
} from '../core/errors.js';

/** The key was missing or wrong (401). */
export class AuthError extends BoxliteError {}
/** The server could not be reached, or answered something that is not BoxLite's API. */
export class ServerUnreachableError extends BoxliteError {}

/** Anything that yields a bearer token (BoxLite's Credential). */
export interface Credential {
  getToken(): { token: string; expiresAt?: number | null };
}

/** A long-lived API key (BoxLite's ApiKeyCredential). */
export class ApiKeyCredential implements Credential {
  readonly #key: string;
  constructor(key: string) {
    if (typeof key !== 'string' || !key) throw new InvalidOptionError('ApiKeyCredential: the key must be a non-empty string');
    this.#key = key;
  }
  /** From BOXLITE_API_KEY; null when it is unset or empty. */
  static fromEnv(): ApiKeyCredential | null {
    const k = process.env.BOXLITE_API_KEY;
    return k ? new ApiKeyCredential(k) : null;
  }
  getToken(): { token: string; expiresAt: null } {
    return { token: this.#key, expiresAt: null };
  }
  toJSON(): string {
    return 'ApiKeyCredential(…)'; // never the key
  }
}

/** BoxLite's options bag for JsBoxlite.rest(). */
export class BoxliteRestOptions {
  readonly url: string;
  readonly credential?: Credential;
  readonly prefix?: string;
  readonly pathPrefix?: string;
  constructor(o: { url: string; credential?: Credential; prefix?: string; pathPrefix?: string }) {
    this.url = o.url;
    this.credential = o.credential;
    this.prefix = o.prefix;
    this.pathPrefix = o.pathPrefix;
  }
}

function typedError(status: number, body: { error?: { message?: string; code?: string } } | undefined, what: string): BoxliteError {
  const m = body?.error?.message ?? `${what}: the server answered ${status}`;
  switch (body?.error?.code) {
    case 'not_found': return new BoxNotFoundError(m);
    case 'already_exists': return new BoxExistsError(m);
    case 'invalid_state': return new BoxStateError(m);
    case 'invalid_argument': case 'unsupported': return new InvalidOptionError(m);
    case 'unauthenticated': return new AuthError(`${m} (the server at this URL wants another key: give it with BOXLITE_API_KEY)`);
    case 'image_pull_failed': return new ImageError(m);
    case 'execution_failed': return new ExecError(m);
    case 'timeout': return new TimeoutError(m);
  }
  return new BoxliteError(`${what}: ${m}`);
}

export class RestClient {
  readonly base: string;
  readonly boxes: string;
  constructor(
    url: string,
    private readonly credential?: Credential,
    pathPrefix?: string | null,
  ) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new InvalidOptionError(`the server URL "${url}" is not a URL: give http(s)://HOST:PORT`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new InvalidOptionError(`the server URL "${url}" must be http:// or https://`);
    this.base = u.toString().replace(/\/+$/, '');
    this.boxes = `/v1${pathPrefix ? `/${pathPrefix}` : ''}/boxes`;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    const t = this.credential?.getToken().token;
    return { ...(t ? { authorization: `Bearer ${t}` } : {}), ...extra };
  }

  /** A raw request; errors in BoxLite's shape become typed errors. */
  async request(method: string, path: string, opts: { json?: unknown; body?: any; headers?: Record<string, string>; ok?: number[] } = {}): Promise<Response> {
    const headers = this.headers(opts.headers);
    let body = opts.body;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers['content-type'] = 'application/json';
    }
    let r: Response;
    try {
      r = await fetch(this.base + path, { method, headers, body, ...(body && typeof body !== 'string' && !Buffer.isBuffer(body) ? { duplex: 'half' } : {}) } as RequestInit);
    } catch (e) {
      throw new ServerUnreachableError(`the boxlite server at ${this.base} cannot be reached: ${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}`);
    }
    if (r.status >= 400 && !opts.ok?.includes(r.status)) {
      const text = await r.text();
      let parsed: { error?: { message?: string; code?: string } } | undefined;
      try {
        parsed = JSON.parse(text);
      } catch {}
      throw typedError(r.status, parsed, `${method} ${path}`);
    }
    return r;
  }

  async json<T = any>(method: string, path: string, json?: unknown): Promise<T> {
    const r = await this.request(method, path, { json });
    const text = await r.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  box(id: string): string {
    return `${this.boxes}/${encodeURIComponent(id)}`;
  }

  attach(boxId: string, execId: string): WebSocket {
    const url = `${this.base.replace(/^http/, 'ws')}${this.box(boxId)}/executions/${encodeURIComponent(execId)}/attach`;
    // Loaded at the first attach: a CLI that never attaches (ps, rm) does not load the WebSocket library.
    const Ws = createRequire(import.meta.url)('ws') as typeof WebSocket;
    return new Ws(url, { headers: this.headers(), maxPayload: 8 << 20 });
  }
}
