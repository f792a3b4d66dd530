// Routes beyond the box core: snapshots, clone, export and import (BoxLite's), and boxlite's own pause, resume,
// fork, deny events (a stream of JSON lines) and projects (plan / up / down of a boxlite.yaml below the folder the
// server was given with --projects-dir; without it those routes are refused, since a project file names host
// folders and secrets and only the server's operator chooses which files those are).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Project } from '../reconciler/project.js';
import { projectLabel } from '../reconciler/label.js';
import { readLog } from '../reconciler/logs.js';
import { badRequest, notFound } from './errors.js';
import { readJson, queryFlag, sendEmpty, sendJson, tooLarge, type Router } from './http.js';
import { fields } from './request.js';
import { boxJson, snapshotJson } from './shapes.js';
import { boxOf, type ApiContext } from './routes.js';

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,127}$/;
const name = (v: unknown, what: string) => {
  if (typeof v !== 'string' || !NAME.test(v)) throw badRequest(`${what} must be letters, digits, '-' and '_' (at most 128), starting with a letter or digit`);
  return v;
};

export function addStateRoutes(router: Router, c: ApiContext, projectsDir?: string): void {
  const json = (req: Parameters<typeof readJson>[0], optional = false) => readJson(req, c.limits.jsonBytes, optional);

  router.add('POST', '/v1/boxes/:box_id/snapshots', async ({ req, res, params }) => {
    const box = boxOf(c, params.box_id);
    const b = fields<{ name: string; memory?: boolean }>(await json(req), { name: 'string', memory: 'boolean' }, 'CreateSnapshotRequest', ['name']);
    const s = await box.snapshots.create(name(b.name, 'the snapshot name'), { memory: !!b.memory });
    sendJson(res, 201, snapshotJson(box.id, s));
  });
  router.add('GET', '/v1/boxes/:box_id/snapshots', async ({ res, params }) => {
    const box = boxOf(c, params.box_id);
    sendJson(res, 200, { snapshots: (await box.snapshots.list()).map((s) => snapshotJson(box.id, s)) });
  });
  const snapshot = async (ref: string, snap: string) => {
    const box = boxOf(c, ref);
    const s = (await box.snapshots.list()).find((x) => x.name === snap);
    if (!s) throw notFound(`snapshot not found: ${snap} (of box ${box.name})`);
    return { box, s };
  };
  router.add('GET', '/v1/boxes/:box_id/snapshots/:snapshot_name', async ({ res, params }) => {
    const { box, s } = await snapshot(params.box_id, params.snapshot_name);
    sendJson(res, 200, snapshotJson(box.id, s));
  });
  router.add('DELETE', '/v1/boxes/:box_id/snapshots/:snapshot_name', async ({ res, params }) => {
    const { box } = await snapshot(params.box_id, params.snapshot_name);
    await box.snapshots.remove(params.snapshot_name);
    sendEmpty(res);
  });
  router.add('POST', '/v1/boxes/:box_id/snapshots/:snapshot_name/restore', async ({ res, params }) => {
    const { box } = await snapshot(params.box_id, params.snapshot_name);
    await box.snapshots.restore(params.snapshot_name);
    sendEmpty(res);
  });

  router.add('POST', '/v1/boxes/:box_id/clone', async ({ req, res, params }) => {
    const box = boxOf(c, params.box_id);
    const b = fields<{ name?: string; snapshot?: string }>(await json(req, true), { name: 'string', snapshot: 'string' }, 'CloneBoxRequest');
    const n = b.name !== undefined ? name(b.name, 'the clone name') : `${box.name}-clone-${Date.now().toString(36)}`;
    const [made] = await box.clone([n], b.snapshot ? { snapshot: name(b.snapshot, 'the snapshot name') } : {});
    c.counters.boxesCreated++;
    sendJson(res, 201, boxJson(made.info()), { location: `/v1/boxes/${made.id}` });
  });

  router.add('POST', '/v1/boxes/:box_id/fork', async ({ req, res, params }) => {
    const box = boxOf(c, params.box_id);
    const b = fields<{ name: string; count?: number }>(await json(req), { name: 'string', count: 'integer' }, 'ForkBoxRequest', ['name']);
    const count = b.count ?? 1;
    if (!(count >= 1 && count <= 16)) throw badRequest('ForkBoxRequest: count must be from 1 to 16');
    const n = name(b.name, 'the fork name');
    const made = await box.fork(count === 1 ? [n] : Array.from({ length: count }, (_, i) => `${n}-${i + 1}`));
    c.counters.boxesCreated += made.length;
    sendJson(res, 201, { boxes: made.map((m) => boxJson(m.info())) });
  });

  router.add('POST', '/v1/boxes/:box_id/pause', async ({ res, params }) => {
    const box = boxOf(c, params.box_id);
    if (box.info().state !== 'paused') await box.pause();
    sendJson(res, 200, boxJson(box.info()));
  });
  router.add('POST', '/v1/boxes/:box_id/resume', async ({ res, params }) => {
    const box = boxOf(c, params.box_id);
    await box.resume();
    sendJson(res, 200, boxJson(box.info()));
  });

  router.add('POST', '/v1/boxes/:box_id/export', async ({ req, res, params }) => {
    const box = boxOf(c, params.box_id);
    fields(await json(req, true), {}, 'ExportBoxRequest');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-export-'));
    try {
      const file = path.join(dir, `${box.name}.boxlite`);
      await box.export(file);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': fs.statSync(file).size, 'content-disposition': `attachment; filename="${box.name}.boxlite"` });
      await pipeline(fs.createReadStream(file), res);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  router.add('POST', '/v1/boxes/import', async ({ req, res, query }) => {
    const n = query.get('name');
    const limit = c.limits.uploadBytes;
    if (Number(req.headers['content-length'] ?? NaN) > limit) throw tooLarge(limit);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-import-'));
    try {
      const file = path.join(dir, 'box.boxlite');
      let size = 0;
      req.on('data', (d: Buffer) => {
        size += d.length;
        if (size > limit) req.destroy(tooLarge(limit));
      });
      await pipeline(req, fs.createWriteStream(file, { mode: 0o600 })).catch((e) => {
        throw e?.status ? e : badRequest(`the archive did not arrive whole: ${(e as Error).message}`);
      });
      const box = await c.rt.importBox(file, n ? { name: name(n, 'the box name') } : {});
      c.counters.boxesCreated++;
      sendJson(res, 201, { ...boxJson(box.info()), boxlite_notes: box.notes }, { location: `/v1/boxes/${box.id}` });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  // Deny events as JSON lines; with ?follow=true the response stays open and new ones follow as they happen.
  router.add('GET', '/v1/boxes/:box_id/events', async ({ req, res, params, query }) => {
    const box = boxOf(c, params.box_id);
    const follow = queryFlag(query, 'follow', false);
    const abort = new AbortController();
    req.socket.once('close', () => abort.abort());
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    res.flushHeaders();
    for await (const e of box.events({ follow, signal: abort.signal, sinceNow: queryFlag(query, 'since_now', false) })) {
      if (!res.write(JSON.stringify(e) + '\n')) await new Promise((r) => res.once('drain', r));
    }
    res.end();
  });

  // What `boxlite logs` shows: a project box's command output, or the guest console (the last 2 MiB at most).
  router.add('GET', '/v1/boxes/:box_id/logs', async ({ res, params, query }) => {
    const box = boxOf(c, params.box_id);
    const t = query.get('tail');
    const n = t === null ? undefined : Number(t);
    if (n !== undefined && !(Number.isInteger(n) && n >= 0)) throw badRequest('tail must be a whole number of lines');
    let text: string;
    if (projectLabel(box.info())?.applied.command && !queryFlag(query, 'console', false)) text = readLog({ box: box.name, file: box.logPath() }, n).map((l) => `${l.text}\n`).join(''); // kept on the host, in any state
    else {
      const file = box.consolePath();
      text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
      if (n !== undefined) text = text.split('\n').slice(-n - 1).join('\n');
    }
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(text);
  });

  // Projects: which boxes belong to which project (from their labels), and plan/up/down of a file the operator put
  // below --projects-dir.
  router.add('GET', '/v1/projects', ({ res }) => {
    const projects = new Map<string, string[]>();
    for (const r of c.rt.list()) {
      const p = projectLabel(r);
      if (p) projects.set(p.project, [...(projects.get(p.project) ?? []), r.id]);
    }
    sendJson(res, 200, { projects: [...projects].map(([n, ids]) => ({ name: n, box_ids: ids })) });
  });
  const project = async (req: Parameters<typeof readJson>[0], extra: Record<string, 'boolean'>) => {
    const b = fields<{ file: string } & Record<string, unknown>>(await json(req), { file: 'string', ...extra }, 'ProjectRequest', ['file']);
    if (!projectsDir) throw badRequest("this server reads no project files (its operator can allow a folder of them with 'boxlite serve --projects-dir DIR')");
    const root = fs.realpathSync(projectsDir);
    let file: string;
    try {
      file = fs.realpathSync(path.resolve(root, b.file));
    } catch {
      throw notFound(`project file not found: ${b.file} (below the server's projects folder)`);
    }
    if (!file.startsWith(root + path.sep)) throw badRequest(`project file ${b.file} is not below the server's projects folder`);
    if (fs.statSync(file).isDirectory()) file = path.join(file, 'boxlite.yaml');
    return { p: Project.load({ file, runtime: c.rt }), b };
  };
  router.add('POST', '/v1/projects/plan', async ({ req, res }) => {
    const { p } = await project(req, {});
    sendJson(res, 200, { project: p.name, plan: await p.plan() });
  });
  router.add('POST', '/v1/projects/up', async ({ req, res }) => {
    const { p, b } = await project(req, { wait: 'boolean', remove_orphans: 'boolean' });
    const r = await p.up({ wait: !!b.wait, removeOrphans: !!b.remove_orphans, renderer: 'silent' });
    sendJson(res, r.ok ? 200 : 409, { project: p.name, ok: r.ok, up_to_date: r.upToDate, errors: r.errors, orphans: r.orphans, plan: r.plan });
  });
  router.add('POST', '/v1/projects/down', async ({ req, res }) => {
    const { p, b } = await project(req, { remove: 'boolean' });
    sendJson(res, 200, { project: p.name, result: await p.down({ remove: !!b.remove }) });
  });
}
