// The routes of BoxLite's REST API over one Runtime: discovery, boxes, their lifecycle, executions, files and
// metrics. Each handler checks what it was sent (request.ts), does one runtime call and answers in BoxLite's shapes.
import * as fs from 'node:fs';
import { BoxNotFoundError } from '../core/errors.js';
import { DEFAULTS, MAX_CPUS } from '../core/defaults.js';
import type { Runtime, Box } from '../runtime/runtime.js';
import type { BoxMetrics } from '../runtime/metrics.js';
import { notFound, badRequest } from './errors.js';
import { readJson, sendEmpty, sendJson, queryFlag, type Router, type Request } from './http.js';
import { createRequest, execRequest, fields, type HostFolders } from './request.js';
import { apiStatus, boxJson, metricsJson } from './shapes.js';
import { getFiles, putFiles } from './files.js';
import type { Executions } from './executions.js';

export interface ServerLimits {
  jsonBytes: number;
  uploadBytes: number;
  execTimeoutMaxSeconds: number;
}

export const DEFAULT_LIMITS: ServerLimits = { jsonBytes: 1 << 20, uploadBytes: 1 << 30, execTimeoutMaxSeconds: 24 * 3600 };

export interface ApiContext {
  rt: Runtime;
  execs: Executions;
  folders: HostFolders;
  limits: ServerLimits;
  version: string;
  /** Counters since the server started (BoxLite's runtime metrics are monotonic). */
  counters: { boxesCreated: number; boxesFailed: number; boxesStopped: number };
  lastMetrics: Map<string, BoxMetrics>;
  /** Client connections open now (each one an fd of the server's): what fd counts are read beside. */
  openConnections?: () => number;
}

/** A box by id or name; a missing one is BoxLite's 404, without the server's home in the message. */
export function boxOf(c: ApiContext, ref: string): Box {
  try {
    return c.rt.get(ref);
  } catch (e) {
    if (e instanceof BoxNotFoundError) throw notFound(`box not found: ${ref}`);
    throw e;
  }
}

const info = (b: Box) => boxJson(b.info());

export function addBoxRoutes(router: Router, c: ApiContext): void {
  router.add('GET', '/v1/config', ({ res }) =>
    sendJson(res, 200, {
      defaults: { cpus: DEFAULTS.cpus, memory_mib: DEFAULTS.memoryMib, disk_size_gb: Math.ceil(DEFAULTS.diskSizeMib / 1024), auto_delete: 0 },
      overrides: {},
      capabilities: {
        linux_capabilities_enabled: false,
        max_cpus: MAX_CPUS,
        file_transfer_max_bytes: c.limits.uploadBytes,
        exec_timeout_max_seconds: c.limits.execTimeoutMaxSeconds,
        max_concurrent_executions: c.execs.limits.maxSessions,
        tty_enabled: true,
        streaming_enabled: true,
        snapshots_enabled: true,
        clone_enabled: true,
        export_enabled: true,
      },
      boxlite: { version: c.version, host_folders: c.folders.root !== null, pause_enabled: true, fork_enabled: true, events_enabled: true, projects_enabled: true },
    }),
  );

  router.add('GET', '/v1/me', ({ res }) =>
    sendJson(res, 200, {
      sub: 'boxlite-serve-key',
      principal_type: 'service_account',
      display_name: 'holder of an API key of this boxlite server',
      path_prefix: null,
      scopes: ['box:read', 'box:write', 'box:exec', 'box:delete', 'me:read'],
      expires_at: null,
    }),
  );

  router.add('POST', '/v1/boxes', async ({ req, res }) => {
    const opts = createRequest(await readJson(req, c.limits.jsonBytes), c.folders);
    const box = await c.rt.create(opts).catch((e) => {
      c.counters.boxesFailed++;
      throw e;
    });
    c.counters.boxesCreated++;
    sendJson(res, 201, info(box), { location: `/v1/boxes/${encodeURIComponent(box.id)}` });
  });

  router.add('GET', '/v1/boxes', ({ res, query }) => {
    const status = query.get('status');
    const size = Number(query.get('pageSize') ?? 100);
    if (!Number.isInteger(size) || size < 1 || size > 1000) throw badRequest('pageSize must be a whole number from 1 to 1000');
    const from = query.get('pageToken') ? Number(Buffer.from(query.get('pageToken')!, 'base64url').toString()) : 0;
    if (!Number.isInteger(from) || from < 0) throw badRequest('pageToken is not one this server gave');
    const all = c.rt.list().sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id)).filter((r) => !status || apiStatus(r.state) === status);
    const page = all.slice(from, from + size);
    sendJson(res, 200, { boxes: page.map(boxJson), next_page_token: from + size < all.length ? Buffer.from(String(from + size)).toString('base64url') : null });
  });

  router.add('GET', '/v1/boxes/:box_id', ({ res, params }) => sendJson(res, 200, info(boxOf(c, params.box_id))));
  router.add('HEAD', '/v1/boxes/:box_id', ({ res, params }) => {
    boxOf(c, params.box_id);
    sendEmpty(res, 204);
  });

  router.add('DELETE', '/v1/boxes/:box_id', async ({ res, params, query }) => {
    const box = boxOf(c, params.box_id);
    await box.remove({ force: queryFlag(query, 'force', false) });
    c.execs.forgetBox(box.id);
    c.lastMetrics.delete(box.id);
    sendEmpty(res, 204);
  });

  router.add('POST', '/v1/boxes/:box_id/start', async ({ res, params }) => {
    const box = boxOf(c, params.box_id);
    if (box.info().state !== 'running') await box.start();
    sendJson(res, 200, info(box));
  });

  router.add('POST', '/v1/boxes/:box_id/stop', async ({ req, res, params }) => {
    const box = boxOf(c, params.box_id);
    const b = fields<{ timeout_seconds?: number }>(await readJson(req, c.limits.jsonBytes, true), { timeout_seconds: 'number' }, 'StopBoxRequest');
    if (b.timeout_seconds !== undefined && !(b.timeout_seconds >= 0 && b.timeout_seconds <= 3600)) throw badRequest('StopBoxRequest: timeout_seconds must be from 0 to 3600');
    const st = box.info().state;
    if (st === 'running' || st === 'paused') {
      await box.stop(b.timeout_seconds !== undefined ? { timeoutMs: Math.round(b.timeout_seconds * 1000) } : {});
      c.counters.boxesStopped++;
    }
    sendJson(res, 200, info(box));
  });

  router.add('GET', '/v1/boxes/:box_id/metrics', async ({ res, params }) => {
    const box = boxOf(c, params.box_id);
    const m = await box.metrics();
    const before = c.lastMetrics.get(box.id);
    c.lastMetrics.set(box.id, m);
    sendJson(res, 200, metricsJson(m, before, box.info().startedAt));
  });

  router.add('GET', '/v1/metrics', ({ res }) => {
    const boxes = c.rt.list();
    let total = 0;
    let errors = 0;
    for (const b of boxes) {
      const m = c.rt.execCounts(b.id);
      total += m.total;
      errors += m.errors;
    }
    sendJson(res, 200, {
      boxes_created_total: c.counters.boxesCreated,
      boxes_failed_total: c.counters.boxesFailed,
      boxes_stopped_total: c.counters.boxesStopped,
      num_running_boxes: boxes.filter((b) => b.state === 'running').length,
      total_commands_executed: total,
      total_exec_errors: errors,
      boxlite: { boxes: boxes.length, executions_tracked: c.execs.size, executions_running: c.execs.running(), server: { ...serverFigures(), open_connections: c.openConnections?.() ?? -1 } },
    });
  });
}

/** The server process's own figures. A process started with node --expose-gc (a test of leaks) collects first, so
 *  heap_used_bytes is what is really held; others never pay for a collection here. */
function serverFigures(): Record<string, number> {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  let fds = -1;
  try {
    fds = fs.readdirSync('/proc/self/fd').length;
  } catch {}
  return { rss_bytes: m.rss, heap_used_bytes: m.heapUsed, open_fds: fds, uptime_s: Math.round(process.uptime()) };
}

export function addExecRoutes(router: Router, c: ApiContext): void {
  router.add('POST', '/v1/boxes/:box_id/exec', async ({ req, res, params }) => {
    const box = boxOf(c, params.box_id);
    const r = execRequest(await readJson(req, c.limits.jsonBytes), c.limits.execTimeoutMaxSeconds);
    const s = await c.execs.start(box.id, r);
    sendJson(res, 201, { execution_id: s.id }, { location: `/v1/boxes/${encodeURIComponent(box.id)}/executions/${s.id}` });
  });

  const session = ({ params }: Request) => c.execs.get(boxOf(c, params.box_id).id, params.exec_id);

  router.add('GET', '/v1/boxes/:box_id/executions/:exec_id', (r) => sendJson(r.res, 200, session(r).info()));

  router.add('DELETE', '/v1/boxes/:box_id/executions/:exec_id', async (r) => {
    const s = session(r);
    await s.kill();
    await s.ended();
    c.execs.forget(s.id); // an attached client still gets the exit, then the close
    sendEmpty(r.res, 204);
  });

  router.add('POST', '/v1/boxes/:box_id/executions/:exec_id/signal', async (r) => {
    const s = session(r);
    const b = fields<{ signal: number }>(await readJson(r.req, c.limits.jsonBytes), { signal: 'integer' }, 'SignalRequest', ['signal']);
    await s.signal(b.signal);
    sendEmpty(r.res, 204);
  });

  router.add('POST', '/v1/boxes/:box_id/executions/:exec_id/resize', async (r) => {
    const s = session(r);
    const b = fields<{ cols: number; rows: number }>(await readJson(r.req, c.limits.jsonBytes), { cols: 'integer', rows: 'integer' }, 'ResizeRequest', ['cols', 'rows']);
    if (!(b.cols >= 1 && b.cols <= 1000 && b.rows >= 1 && b.rows <= 1000)) throw badRequest('ResizeRequest: cols and rows must be from 1 to 1000');
    await s.resize(b.rows, b.cols);
    sendEmpty(r.res, 204);
  });

  router.add('PUT', '/v1/boxes/:box_id/files', async (r) => {
    const box = boxOf(c, r.params.box_id);
    await putFiles(c.rt, box.id, r, c.limits.uploadBytes);
    sendEmpty(r.res, 204);
  });

  router.add('GET', '/v1/boxes/:box_id/files', async (r) => {
    const box = boxOf(c, r.params.box_id);
    await getFiles(c.rt, box.id, r, c.limits.uploadBytes);
  });
}
