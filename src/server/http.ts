// The HTTP plumbing of the server: bounded bodies, strict JSON, BoxLite's responses, and a small router. Every
// limit here is a bound on what one unauthenticated or authenticated client can make the server hold.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, badRequest } from './errors.js';

export interface Request {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  path: string;
  query: URLSearchParams;
  params: Record<string, string>;
}

export type Handler = (r: Request) => Promise<void> | void;

/** Reads the whole body, refusing one over limit bytes (413) before reading it when its length says so. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) throw tooLarge(limit);
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(limit);
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

export const tooLarge = (limit: number) => new ApiError(413, 'ResourceExhaustedError', `the request body is larger than this server takes (${limit} bytes)`);

/** A JSON object body; an empty body is {} when optional. Malformed JSON and non-objects are 400s. */
export async function readJson(req: IncomingMessage, limit: number, optional = false): Promise<Record<string, unknown>> {
  const body = await readBody(req, limit);
  if (body.length === 0) {
    if (optional) return {};
    throw badRequest('the request needs a JSON body');
  }
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw badRequest(`malformed JSON in the request body: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badRequest('the request body must be a JSON object');
  return v as Record<string, unknown>;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendEmpty(res: ServerResponse, status = 204): void {
  res.writeHead(status);
  res.end();
}

export function sendError(res: ServerResponse, e: ApiError): void {
  if (res.headersSent) {
    res.destroy(); // mid-stream: the only honest signal left is a broken transfer
    return;
  }
  sendJson(res, e.status, e.body(), e.status === 401 ? { 'www-authenticate': 'Bearer realm="boxlite"' } : {});
}

interface Route {
  method: string;
  parts: string[];
  handler: Handler;
}

/** Routes by method and path pattern ("/v1/boxes/:box_id/start"); an unknown path is 404, a known one with another
 *  method 405. Path parameters are percent-decoded. */
export class Router {
  private routes: Route[] = [];

  add(method: string, pattern: string, handler: Handler): this {
    this.routes.push({ method, parts: pattern.split('/').filter(Boolean), handler });
    return this;
  }

  match(method: string, path: string): { handler: Handler; params: Record<string, string> } | 'no-method' | null {
    const segs = path.split('/').filter(Boolean);
    let known = false;
    for (const r of this.routes) {
      const params = matchParts(r.parts, segs);
      if (!params) continue;
      known = true;
      if (r.method === method || (method === 'HEAD' && r.method === 'GET' && !this.routes.some((x) => x.method === 'HEAD' && matchParts(x.parts, segs)))) return { handler: r.handler, params };
    }
    return known ? 'no-method' : null;
  }
}

function matchParts(parts: string[], segs: string[]): Record<string, string> | null {
  if (parts.length !== segs.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    if (parts[i].startsWith(':')) {
      let v: string;
      try {
        v = decodeURIComponent(segs[i]);
      } catch {
        return null;
      }
      if (!v || v.length > 128) return null;
      params[parts[i].slice(1)] = v;
    } else if (parts[i] !== segs[i]) return null;
  }
  return params;
}

/** A query flag: absent is the default, "true"/"1" true, "false"/"0" false, anything else a 400. */
export function queryFlag(q: URLSearchParams, name: string, dflt: boolean): boolean {
  const v = q.get(name);
  if (v === null || v === '') return dflt;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw badRequest(`query parameter ${name} must be true or false (got "${v}")`);
}
