// A client for the OCI distribution API (Docker Hub, GHCR, ECR, a private registry): manifests and blobs, with
// the bearer-token flow a registry asks for in WWW-Authenticate and basic credentials where it wants those.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Dispatcher } from 'undici';

// undici is loaded on the first request: most commands never talk to a registry.
type Request = typeof import('undici')['request'];
let undiciRequest: Request | null = null;
async function request(...args: Parameters<Request>): Promise<Dispatcher.ResponseData> {
  undiciRequest ??= (await import('undici')).request;
  return undiciRequest(...args);
}
import { ImageNotFoundError, ImageError, RegistryAuthError, RegistryUnreachableError } from '../../core/errors.js';
import { formatReference, isLoopbackRegistry, type ImageRef } from './reference.js';

export interface Credentials {
  username: string;
  password: string;
}

export interface RegistryOptions {
  /** Credentials per registry host (as written in references: docker.io, ghcr.io, 127.0.0.1:5000). */
  credentials?: Record<string, Credentials>;
  /** Registry hosts reached over plain HTTP. Loopback registries always are, as with docker. */
  insecure?: string[];
  /** A docker config.json to read credentials from; default $DOCKER_CONFIG/config.json or ~/.docker/config.json. */
  dockerConfig?: string;
}

export const MANIFEST_TYPES = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
};
const ACCEPT = Object.values(MANIFEST_TYPES).join(', ');

/** Docker Hub answers the API at another host than the one users write. */
const apiHost = (registry: string) => (registry === 'docker.io' ? 'registry-1.docker.io' : registry);

/** Credentials from docker's config.json (the "auths" section; credential helpers are not run). */
export function dockerConfigCredentials(registry: string, file?: string): Credentials | undefined {
  const p = file ?? path.join(process.env.DOCKER_CONFIG ?? path.join(os.homedir(), '.docker'), 'config.json');
  let cfg: any;
  try {
    cfg = JSON.parse(fs.readFileSync(p, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ImageError(`cannot read docker credentials from ${p}: ${(e as Error).message}`);
  }
  const keys = registry === 'docker.io' ? ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'] : [registry, `https://${registry}`, `http://${registry}`];
  for (const k of keys) {
    const a = cfg?.auths?.[k] ?? cfg?.auths?.[`${k}/`];
    if (!a) continue;
    if (a.username && a.password) return { username: a.username, password: a.password };
    if (a.auth) {
      const s = Buffer.from(a.auth, 'base64').toString('utf8');
      const i = s.indexOf(':');
      if (i > 0) return { username: s.slice(0, i), password: s.slice(i + 1) };
    }
  }
  return undefined;
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

export function parseChallenge(header: string): Challenge | null {
  const m = /^\s*(\w+)\s*(.*)$/.exec(header);
  if (!m) return null;
  const params: Record<string, string> = {};
  for (const p of m[2].matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) params[p[1].toLowerCase()] = p[2] ?? p[3];
  return { scheme: m[1].toLowerCase(), params };
}

export interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'EPROTO']);

export function isNetworkError(e: unknown): boolean {
  const err = e as { code?: string; cause?: { code?: string } };
  return UNREACHABLE.has(err?.code ?? '') || UNREACHABLE.has(err?.cause?.code ?? '');
}

export class RegistryClient {
  readonly base: string;
  private authHeader: string | undefined;
  private readonly creds: Credentials | undefined;

  constructor(readonly ref: ImageRef, opts: RegistryOptions = {}) {
    const insecure = isLoopbackRegistry(ref.registry) || (opts.insecure ?? []).includes(ref.registry);
    this.base = `${insecure ? 'http' : 'https'}://${apiHost(ref.registry)}`;
    this.creds = opts.credentials?.[ref.registry] ?? dockerConfigCredentials(ref.registry, opts.dockerConfig);
  }

  private get name(): string {
    return formatReference(this.ref);
  }

  private unreachable(e: unknown): ImageError {
    const err = e as { code?: string; cause?: { code?: string; message?: string }; message?: string };
    const code = err.cause?.code ?? err.code ?? err.cause?.message ?? err.message;
    const hint = this.base.startsWith('https:') && /EPROTO|wrong version|ECONNRESET/i.test(String(code) + String(err.cause?.message))
      ? `; if it speaks plain HTTP, mark it insecure (BOXLITE_INSECURE_REGISTRIES=${this.ref.registry})`
      : '';
    return new RegistryUnreachableError(`cannot reach registry ${this.ref.registry} (${this.base}) for ${this.name}: ${code}${hint}`);
  }

  /** One request with the registry's authentication flow: on 401, fetch a token (or use basic) and retry once. */
  get(pathname: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET'): Promise<Response> {
    return this.send(`${this.base}/v2/${pathname}`, { method, headers });
  }

  /** Any request to the registry (a URL it gave, such as an upload's Location, or a path under /v2/), with the
   *  same authentication flow. A body is a Buffer, so it can be sent again after a 401. */
  async send(url: string, o: { method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'; headers?: Record<string, string>; body?: Buffer }): Promise<Response> {
    const target = /^https?:/.test(url) ? url : url.startsWith('/') ? `${this.base}${url}` : `${this.base}/v2/${url}`;
    const send = async () => {
      try {
        return await request(target, {
          method: o.method,
          headers: { ...(o.headers ?? {}), ...(this.authHeader ? { authorization: this.authHeader } : {}) },
          body: o.body,
          maxRedirections: o.method === 'GET' || o.method === 'HEAD' ? 5 : 0,
          headersTimeout: 60_000,
          bodyTimeout: 60_000,
        });
      } catch (e) {
        throw this.unreachable(e);
      }
    };
    let res = await send();
    if (res.statusCode === 401) {
      const challenge = parseChallenge(String(res.headers['www-authenticate'] ?? ''));
      await res.body.dump();
      const hadAuth = this.authHeader;
      await this.authenticate(challenge);
      if (this.authHeader && this.authHeader !== hadAuth) res = await send();
      if (res.statusCode === 401) {
        await res.body.dump();
        throw new RegistryAuthError(
          `registry ${this.ref.registry} refused ${this.creds ? `the credentials of user "${this.creds.username}"` : 'anonymous access'} to ${this.ref.repository}: ` +
            (this.creds ? 'check the user name and password' : 'log in (credentials in ~/.docker/config.json) or pass credentials'),
        );
      }
    }
    return { status: res.statusCode, headers: res.headers, body: res.body };
  }

  private async authenticate(ch: Challenge | null): Promise<void> {
    if (ch?.scheme === 'basic') {
      if (!this.creds) {
        throw new RegistryAuthError(`registry ${this.ref.registry} needs credentials for ${this.ref.repository}: add them to ~/.docker/config.json or pass credentials`);
      }
      this.authHeader = `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password}`).toString('base64')}`;
      return;
    }
    if (ch?.scheme !== 'bearer' || !ch.params.realm) {
      throw new RegistryAuthError(`registry ${this.ref.registry} asked for authentication it did not describe (WWW-Authenticate: ${ch ? ch.scheme : 'missing'})`);
    }
    const u = new URL(ch.params.realm);
    if (ch.params.service) u.searchParams.set('service', ch.params.service);
    // A push that mounts a blob asks for two scopes at once, space-separated: each is its own parameter.
    for (const sc of (ch.params.scope ?? `repository:${this.ref.repository}:pull`).split(' ').filter(Boolean)) u.searchParams.append('scope', sc);
    let res: Dispatcher.ResponseData;
    try {
      res = await request(u, {
        headers: this.creds ? { authorization: `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password}`).toString('base64')}` } : {},
        maxRedirections: 3,
        headersTimeout: 30_000,
      });
    } catch (e) {
      throw new RegistryUnreachableError(`cannot reach the token service ${u.origin} of registry ${this.ref.registry}: ${(e as { code?: string }).code ?? (e as Error).message}`);
    }
    if (res.statusCode === 401 || res.statusCode === 403) {
      await res.body.dump();
      throw new RegistryAuthError(
        `registry ${this.ref.registry} refused ${this.creds ? `the credentials of user "${this.creds.username}"` : 'anonymous access'} to ${this.ref.repository} ` +
          `(token service answered ${res.statusCode}): ${this.creds ? 'check the user name and password' : 'log in (credentials in ~/.docker/config.json) or pass credentials'}`,
      );
    }
    if (res.statusCode !== 200) {
      const text = (await res.body.text()).slice(0, 200);
      throw new RegistryAuthError(`the token service of registry ${this.ref.registry} answered ${res.statusCode}: ${text}`);
    }
    const body = (await res.body.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryAuthError(`the token service of registry ${this.ref.registry} returned no token`);
    this.authHeader = `Bearer ${token}`;
  }

  /** Reads a registry error body ({errors:[{code,message}]}) for messages. */
  async errorCode(res: Response): Promise<string> {
    try {
      const b = (await res.body.json()) as { errors?: { code?: string; message?: string }[] };
      return b.errors?.map((e) => e.code ?? e.message).join(', ') ?? '';
    } catch {
      return '';
    }
  }

  async manifest(reference: string): Promise<{ body: Buffer; mediaType: string; digest?: string }> {
    const res = await this.get(`${this.ref.repository}/manifests/${reference}`, { accept: ACCEPT });
    if (res.status === 404) {
      const code = await this.errorCode(res);
      // Registries differ in whether a missing repository is NAME_UNKNOWN; its tag list tells for sure.
      const tags = /NAME_UNKNOWN/.test(code) ? null : await this.tags();
      const what = tags === null
        ? `the registry ${this.ref.registry} has no repository ${this.ref.repository}`
        : `the registry ${this.ref.registry} has no ${reference.startsWith('sha256:') ? 'manifest' : 'tag'} "${reference}" in ${this.ref.repository}` +
          (tags.length ? ` (tags: ${tags.slice(0, 10).join(', ')}${tags.length > 10 ? ', …' : ''})` : '');
      throw new ImageNotFoundError(`image ${this.name} not found: ${what}`);
    }
    if (res.status !== 200) {
      const code = await this.errorCode(res);
      throw new ImageError(`registry ${this.ref.registry} answered ${res.status} for the manifest of ${this.name}${code ? ` (${code})` : ''}`);
    }
    const body = Buffer.from(await res.body.arrayBuffer());
    const ct = String(res.headers['content-type'] ?? '').split(';')[0].trim();
    const digest = res.headers['docker-content-digest'];
    return { body, mediaType: ct, digest: typeof digest === 'string' ? digest : undefined };
  }

  /** The repository's tags, or null when the registry says it has no such repository. */
  private async tags(): Promise<string[] | null> {
    try {
      const res = await this.get(`${this.ref.repository}/tags/list?n=100`);
      if (res.status === 404) {
        await res.body.dump();
        return null;
      }
      const body = res.status === 200 ? ((await res.body.json()) as { tags?: string[] | null }) : (await res.body.dump(), {});
      return body.tags ?? [];
    } catch {
      return [];
    }
  }

  /** A blob's bytes from offset on. Status 206 means the range was honoured; 200 means from the start. */
  async blob(digest: string, offset = 0): Promise<Response> {
    const res = await this.get(`${this.ref.repository}/blobs/${digest}`, offset > 0 ? { range: `bytes=${offset}-` } : {});
    if (res.status === 404) {
      await res.body.dump();
      throw new ImageNotFoundError(`image ${this.name}: the registry ${this.ref.registry} has no blob ${digest} in ${this.ref.repository}`);
    }
    if (res.status !== 200 && res.status !== 206) {
      const code = await this.errorCode(res);
      throw new ImageError(`registry ${this.ref.registry} answered ${res.status} for blob ${digest} of ${this.name}${code ? ` (${code})` : ''}`);
    }
    return res;
  }
}
