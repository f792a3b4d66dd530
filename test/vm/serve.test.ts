// `boxlite serve` driven by a client written from BoxLite's OpenAPI description (test/boxlite-api.ts): every core
// route with its status codes and schemas, the attach WebSocket's framing, reattach, and the hostile cases first —
// no key, a wrong key, unknown fields, malformed and huge bodies, ".." in file paths and archives, unknown ids, a
// second attach, host paths, and a server that will not listen beyond loopback without a key. Real boxes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import * as https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pack as tarPack, extract as tarExtract } from 'tar-stream';
import { cleanupHome, cli, makeOciLayout, makeRootfs, quietRuntime, testHome } from '../helpers.js';
import { push, startRegistry, type Registry } from '../registry.js';
import { ApiClient, conforms } from '../boxlite-api.js';
import { BoxliteServer } from '../../src/server/server.js';
import type { Runtime } from '../../src/runtime/runtime.js';

const KEY = 'test-key-0123456789abcdef';
let home: string;
let rt: Runtime;
let reg: Registry;
let image: string;
let server: BoxliteServer;
let api: ApiClient;
let shared: string;
const logs: string[] = [];

beforeAll(async () => {
  home = testHome();
  rt = quietRuntime(home);
  reg = await startRegistry();
  await push(reg, makeOciLayout(makeRootfs(), { Env: ['PATH=/usr/bin:/bin'], Cmd: ['sh'] }), 'alpine:latest');
  image = `${reg.host}/alpine:latest`;
  shared = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-serve-shared-'));
  fs.mkdirSync(path.join(shared, 'ok'));
  fs.symlinkSync('/etc', path.join(shared, 'escape'));
  server = await BoxliteServer.start({ runtime: rt, listen: '127.0.0.1:0', apiKeys: [KEY], allowHostFolders: shared, limits: { jsonBytes: 64 << 10, uploadBytes: 4 << 20 }, log: (l) => logs.push(l) });
  api = new ApiClient(server.url, KEY);
});

afterAll(async () => {
  await server?.close();
  rt?.close();
  await reg?.stop();
  if (home) await cleanupHome(home);
  if (shared) fs.rmSync(shared, { recursive: true, force: true });
});

function tar(entries: { name: string; body?: string; type?: 'file' | 'directory' | 'link'; linkname?: string }[]): Promise<Buffer> {
  const p = tarPack();
  for (const e of entries) p.entry({ name: e.name, type: e.type ?? 'file', linkname: e.linkname, mode: e.type === 'directory' ? 0o755 : 0o644 }, e.body ?? '');
  p.finalize();
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    p.on('data', (d: unknown) => parts.push(d as Buffer));
    p.on('end', () => resolve(Buffer.concat(parts)));
  });
}

async function untarNames(buf: Buffer): Promise<Record<string, string>> {
  const ex = tarExtract();
  const got: Record<string, string> = {};
  ex.on('entry', (h, s, next) => {
    let b = '';
    s.on('data', (d: unknown) => (b += d as Buffer));
    s.on('end', () => ((got[h.name] = h.type === 'directory' ? '<dir>' : b), next()));
  });
  ex.end(buf);
  await new Promise<void>((r) => ex.on('finish', () => r()));
  return got;
}

describe('hostile requests', () => {
  it('every route but /v1/config wants the key: 401 without it or with a wrong one, in BoxLite\'s error shape', async () => {
    conforms('ServerConfig', await api.expect(200, 'GET', '/v1/config'));
    const routes: [string, string][] = [
      ['GET', '/v1/me'], ['GET', '/v1/boxes'], ['POST', '/v1/boxes'], ['GET', '/v1/boxes/x'], ['HEAD', '/v1/boxes/x'], ['DELETE', '/v1/boxes/x'],
      ['POST', '/v1/boxes/x/start'], ['POST', '/v1/boxes/x/stop'], ['GET', '/v1/boxes/x/metrics'], ['GET', '/v1/metrics'], ['POST', '/v1/boxes/x/exec'],
      ['GET', '/v1/boxes/x/executions/e'], ['DELETE', '/v1/boxes/x/executions/e'], ['POST', '/v1/boxes/x/executions/e/signal'], ['POST', '/v1/boxes/x/executions/e/resize'],
      ['PUT', '/v1/boxes/x/files?path=/'], ['GET', '/v1/boxes/x/files?path=/'], ['GET', '/v1/boxes/x/snapshots'], ['POST', '/v1/boxes/x/clone'], ['POST', '/v1/boxes/import'],
      ['POST', '/v1/boxes/x/pause'], ['GET', '/v1/boxes/x/events'], ['GET', '/v1/projects'], ['GET', '/v1/nothing-here'],
    ];
    for (const key of [null, 'wrong-key', `${KEY}x`, KEY.slice(0, -1), '']) {
      for (const [m, p] of routes) {
        const r = await api.call(m, p, m === 'GET' || m === 'HEAD' ? undefined : {}, { key });
        expect([m, p, key, r.status]).toEqual([m, p, key, 401]);
        if (m !== 'HEAD') expect(r.json.error).toMatchObject({ type: 'AuthError', code: 'unauthenticated' });
      }
    }
    for (const scheme of ['Basic', 'bearer', 'Token']) expect((await api.call('GET', '/v1/me', undefined, { key: null, headers: { authorization: `${scheme} ${KEY}` } })).status).toBe(401);
    conforms('Principal', await api.expect(200, 'GET', '/v1/me'));
    // The attach WebSocket too: refused before any upgrade.
    for (const key of [null, 'wrong']) {
      const a = api.attach('x', 'e', key);
      expect(await a.closed).toMatchObject({ status: 401 });
    }
    // The key never reaches the log, even from the requests that failed.
    expect(logs.join('\n')).not.toContain(KEY);
    expect(logs.join('\n')).not.toContain('wrong-key');
  });

  it('refuses to listen beyond loopback without a key (and with a short one, or a key file others can read)', async () => {
    await expect(BoxliteServer.start({ runtime: rt, listen: '0.0.0.0:0' })).rejects.toThrow('needs an API key');
    await expect(BoxliteServer.start({ runtime: rt, listen: '[::]:0' })).rejects.toThrow('needs an API key');
    await expect(BoxliteServer.start({ runtime: rt, listen: '0.0.0.0:0', apiKeys: ['short'] })).rejects.toThrow('at least 16 characters');
    const kf = path.join(home, 'keys');
    fs.writeFileSync(kf, `${KEY}\n`, { mode: 0o644 });
    fs.chmodSync(kf, 0o644);
    await expect(BoxliteServer.start({ runtime: rt, listen: '0.0.0.0:0', apiKeyFile: kf })).rejects.toThrow('can be read by other users');
    const r = await cli(home, ['serve', '--listen', '0.0.0.0:0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('needs an API key');
    // Loopback without a key: a key of its own, kept where only this user reads it.
    const local = await BoxliteServer.start({ runtime: rt, listen: '127.0.0.1:0' });
    try {
      expect(fs.statSync(local.keyFile!).mode & 0o777).toBe(0o600);
      const c = new ApiClient(local.url, fs.readFileSync(local.keyFile!, 'utf8').trim());
      expect((await c.call('GET', '/v1/me', undefined, { key: null })).status).toBe(401);
      await c.expect(200, 'GET', '/v1/me');
    } finally {
      await local.close();
    }
  });

  it('unknown fields, malformed JSON, bodies too large and wrong types are 400/413, and nothing is made', async () => {
    const before = (await api.expect(200, 'GET', '/v1/boxes')).boxes.length;
    for (const body of [{ image, memoryMB: 512 }, { image, network: { outbound: { mode: 'enabled' }, mode: 'enabled' } }, { image, cpus: '2' }, { image, secrets: [{ name: 'A', value: 'v', file: '/etc/shadow' }] },
      { image, secrets: [{ name: 'A', env: 'HOME' }] }, { image, network: { outbound: { mode: 'sideways' } } }, { image, cpus: 1000 }, { image, entrypoint: ['/bin/sh'] }, { image, ports: ['8080:80'] }]) {
      const e = await api.expect(400, 'POST', '/v1/boxes', body);
      expect(e.error.message).toMatch(/unknown field|must be|not both|required|not supported|cpus/);
    }
    expect((await api.expect(400, 'POST', '/v1/boxes', { image, bogus: 1 })).error.message).toContain('unknown field "bogus"');
    for (const bad of ['{', '[1,2]', '"text"', 'null', '{"image": "x",}']) expect((await api.call('POST', '/v1/boxes', bad)).status).toBe(400);
    const huge = await api.call('POST', '/v1/boxes', JSON.stringify({ image, env: { X: 'y'.repeat(200 << 10) } }));
    expect(huge.status).toBe(413);
    conforms('ErrorResponse', huge.json);
    expect((await api.expect(200, 'GET', '/v1/boxes')).boxes.length).toBe(before);
  });

  it('host paths: refused unless below --allow-host-folders, symlinks resolved; the server\'s own files never', async () => {
    const noFolders = await BoxliteServer.start({ runtime: rt, listen: '127.0.0.1:0', apiKeys: [KEY] });
    try {
      const c = new ApiClient(noFolders.url, KEY);
      expect((await c.expect(400, 'POST', '/v1/boxes', { image, volumes: [{ host_path: path.join(shared, 'ok'), guest_path: '/data' }] })).error.message).toContain('--allow-host-folders');
      await c.expect(400, 'POST', '/v1/boxes', { rootfs_path: shared });
      await c.expect(400, 'POST', '/v1/boxes', { image: '/etc' });
      await c.expect(400, 'POST', '/v1/boxes', { image: './x' });
    } finally {
      await noFolders.close();
    }
    for (const p of ['/etc', path.join(shared, 'escape'), path.join(shared, 'ok', '..', '..'), 'relative/path', path.join(shared, 'missing')]) {
      await api.expect(400, 'POST', '/v1/boxes', { image, volumes: [{ host_path: p, guest_path: '/data' }] });
    }
    await api.expect(400, 'POST', '/v1/boxes', { rootfs_path: path.join(shared, 'escape') });
    const b = await api.expect(201, 'POST', '/v1/boxes', { image, name: 'with-folder', volumes: [{ host_path: path.join(shared, 'ok'), guest_path: '/data', read_only: true }] }, 'Box');
    expect(rt.get(b.box_id).info().options.binds).toEqual([{ hostPath: fs.realpathSync(path.join(shared, 'ok')), target: '/data', readOnly: true }]);
    await api.expect(204, 'DELETE', `/v1/boxes/${b.box_id}`);
  });

  it('unknown boxes and executions are 404s; unknown routes 404, wrong methods 405', async () => {
    for (const [m, p] of [['GET', '/v1/boxes/nope'], ['DELETE', '/v1/boxes/nope'], ['POST', '/v1/boxes/nope/start'], ['POST', '/v1/boxes/nope/exec'], ['GET', '/v1/boxes/nope/executions/e'], ['GET', '/v1/boxes/nope/files?path=/']]) {
      const e = await api.expect(404, m, p, m === 'POST' ? { command: 'true' } : undefined);
      expect(e.error).toMatchObject({ type: 'NotFoundError', code: 'not_found' });
      expect(e.error.message).not.toContain(home); // the server's home is not the client's business
    }
    expect((await api.call('HEAD', '/v1/boxes/nope')).status).toBe(404);
    await api.expect(404, 'GET', '/v2/boxes');
    await api.expect(405, 'PATCH', '/v1/boxes');
  });
});

describe('boxes, executions and files', () => {
  let id: string;

  it('create (201, Location), get by id and name, head, list, start (idempotent), metrics, conflicts', async () => {
    const r = await api.call('POST', '/v1/boxes', { image, name: 'api-box', memory_mib: 256, env: { MODE: 'api' }, working_dir: '/tmp' });
    expect(r.status).toBe(201);
    conforms('Box', r.json);
    expect(r.headers.get('location')).toBe(`/v1/boxes/${r.json.box_id}`);
    expect(r.json).toMatchObject({ name: 'api-box', status: 'configured', image, cpus: 1, memory_mib: 256 });
    id = r.json.box_id;
    expect((await api.expect(409, 'POST', '/v1/boxes', { image, name: 'api-box' })).error.code).toBe('already_exists');
    expect((await api.expect(200, 'GET', '/v1/boxes/api-box', undefined, 'Box')).box_id).toBe(id);
    expect((await api.call('HEAD', `/v1/boxes/${id}`)).status).toBe(204);
    const list = await api.expect(200, 'GET', '/v1/boxes', undefined, 'ListBoxesResponse');
    expect(list.boxes.map((b: { box_id: string }) => b.box_id)).toContain(id);
    expect((await api.expect(200, 'GET', '/v1/boxes?status=configured', undefined, 'ListBoxesResponse')).boxes.map((b: { box_id: string }) => b.box_id)).toContain(id);
    expect((await api.expect(200, 'POST', `/v1/boxes/${id}/start`, undefined, 'Box')).status).toBe('running');
    expect((await api.expect(200, 'POST', `/v1/boxes/${id}/start`, undefined, 'Box')).status).toBe('running');
    expect((await api.expect(409, 'DELETE', `/v1/boxes/${id}`)).error.code).toBe('invalid_state');
    conforms('BoxMetrics', await api.expect(200, 'GET', `/v1/boxes/${id}/metrics`));
    conforms('RuntimeMetrics', await api.expect(200, 'GET', '/v1/metrics'));
  });

  async function run(body: object): Promise<{ out: string; err: string; code: number; frames: { channel: number; data: Buffer }[] }> {
    const e = await api.expect(201, 'POST', `/v1/boxes/${id}/exec`, body, 'ExecResponse');
    const a = api.attach(id, e.execution_id);
    const code = await a.exit();
    expect((await a.closed).code).toBe(1000);
    return { out: a.out(), err: a.err(), code, frames: a.frames };
  }

  it("exec + attach: BoxLite's framing, stdout and stderr apart and in order, env, working_dir, user, exit code", async () => {
    const r = await run({ command: 'sh', args: ['-c', 'echo $MODE $X; pwd; id -un; echo oops >&2; exit 3'], env: { X: 'x1' } });
    expect(r).toMatchObject({ out: 'api x1\n/tmp\nroot\n', err: 'oops\n', code: 3 });
    expect(new Set(r.frames.map((f) => f.channel))).toEqual(new Set([1, 2]));
    const w = await run({ command: 'pwd', working_dir: '/', user: 'app' });
    expect(w.out).toBe('/\n');
    expect((await run({ command: 'id', args: ['-un'], user: 'app' })).out).toBe('app\n');
    // Interleaved output: each stream complete and in order.
    const n = 3000;
    const big = await run({ command: 'sh', args: ['-c', `i=0; while [ $i -lt ${n} ]; do echo out$i; echo err$i >&2; i=$((i+1)); done`] });
    expect(big.out).toBe(Array.from({ length: n }, (_, i) => `out${i}\n`).join(''));
    expect(big.err).toBe(Array.from({ length: n }, (_, i) => `err${i}\n`).join(''));
    // stdin as a field.
    expect((await run({ command: 'cat', stdin: 'given\n' })).out).toBe('given\n');
  });

  it('stdin through binary frames and stdin_eof; signals by frame and by POST; DELETE kills; status and its schema', async () => {
    const e = await api.expect(201, 'POST', `/v1/boxes/${id}/exec`, { command: 'sh', args: ['-c', 'cat; echo done'] });
    const a = api.attach(id, e.execution_id);
    await a.opened;
    a.send('hello ');
    a.send('world\n');
    await a.until(() => a.out() === 'hello world\n', 'the echo of stdin');
    a.sendControl({ type: 'stdin_eof' });
    expect(await a.exit()).toBe(0);
    expect(a.out()).toBe('hello world\ndone\n');
    const info = await api.expect(200, 'GET', `/v1/boxes/${id}/executions/${e.execution_id}`, undefined, 'ExecutionInfo');
    expect(info).toMatchObject({ execution_id: e.execution_id, status: 'completed', exit_code: 0 });

    // A signal by frame: TERM ends the shell's wait.
    const t = await api.expect(201, 'POST', `/v1/boxes/${id}/exec`, { command: 'sh', args: ['-c', 'trap "echo got-term; exit 7" TERM; echo ready; while :; do sleep 0.05; done'] });
    const ta = api.attach(id, t.execution_id);
    await ta.until(() => ta.out().includes('ready'), 'ready');
    ta.sendControl({ type: 'signal', sig: 9 }); // not allowed by frame: an error frame, the connection stays
    await ta.until(() => ta.control.some((c) => c.type === 'error'), 'an error frame for signal 9');
    ta.sendControl({ type: 'nonsense' });
    ta.send('{not json', false);
    ta.sendControl({ type: 'signal', sig: 15 });
    expect(await ta.exit()).toBe(7);
    expect(ta.control.filter((c) => c.type === 'error').length).toBe(3);

    // By POST, and a kill by DELETE.
    const k = await api.expect(201, 'POST', `/v1/boxes/${id}/exec`, { command: 'sh', args: ['-c', 'echo up; while :; do sleep 0.05; done'] });
    const ka = api.attach(id, k.execution_id);
    await ka.until(() => ka.out() === 'up\n', 'up');
    expect((await api.expect(400, 'POST', `/v1/boxes/${id}/executions/${k.execution_id}/signal`, { signal: 9 })).error.message).toContain('DELETE');
    await api.expect(400, 'POST', `/v1/boxes/${id}/executions/${k.execution_id}/signal`, { signal: 'TERM' });
    await api.expect(400, 'POST', `/v1/boxes/${id}/executions/${k.execution_id}/signal`, { signal: 15, extra: 1 });
    await api.expect(409, 'POST', `/v1/boxes/${id}/executions/${k.execution_id}/resize`, { cols: 100, rows: 30 }); // no terminal
    await api.expect(204, 'DELETE', `/v1/boxes/${id}/executions/${k.execution_id}`);
    expect(await ka.exit()).toBe(137);
    await api.expect(404, 'GET', `/v1/boxes/${id}/executions/${k.execution_id}`);
    await api.expect(400, 'POST', `/v1/boxes/${id}/exec`, { command: 'true', timeout_seconds: 0 });
    await api.expect(400, 'POST', `/v1/boxes/${id}/exec`, { cmd: 'true' });
    await api.expect(400, 'POST', `/v1/boxes/${id}/exec`, { command: '' });
    // A timeout ends it, and says so.
    const to = await api.expect(201, 'POST', `/v1/boxes/${id}/exec`, { command: 'sh', args: ['-c', 'while :; do sleep 0.05; done'], timeout_seconds: 0.5 });
    const toa = api.attach(id, to.execution_id);
    await toa.exit();
    expect((await api.expect(200, 'GET', `/v1/boxes/${id}/executions/${to.execution_id}`, undefined, 'ExecutionInfo')).status).toBe('timed_out');
  });

  it('a terminal: tty output on channel 1, resize by frame and by POST', async () => {
    const e = await api.expect(201, 'POST', `/v1/boxes/${id}/exec`, { command: 'sh', tty: true, rows: 24, cols: 80 });
    const a = api.attach(id, e.execution_id);
    await a.opened;
    a.sendControl({ type: 'resize', cols: 123, rows: 45 });
    a.send('stty size; echo err >&2\n');
    await a.until(() => a.out().includes('45 123'), 'the new size');
    await api.expect(204, 'POST', `/v1/boxes/${id}/executions/${e.execution_id}/resize`, { cols: 99, rows: 33 });
    a.send('stty size; exit 4\n');
    expect(await a.exit()).toBe(4);
    expect(a.out()).toContain('33 99');
    expect(a.frames.every((f) => f.channel === 1)).toBe(true);
  });

  it('one client at a time (409); reattach gets what came while away, and the exit', async () => {
    const e = await api.expect(201, 'POST', `/v1/boxes/${id}/exec`, { command: 'sh', args: ['-c', 'echo first; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo second; echo third >&2'] });
    const a = api.attach(id, e.execution_id);
    await a.until(() => a.out() === 'first\n', 'first');
    const b = api.attach(id, e.execution_id);
    const refused = await b.closed;
    expect(refused.status).toBe(409);
    conforms('ErrorResponse', JSON.parse(refused.body!));
    a.ws.close();
    await a.closed;
    await run({ command: 'touch', args: ['/tmp/go'] });
    // The execution ends while nobody is attached; its output waits.
    for (;;) {
      const s = await api.expect(200, 'GET', `/v1/boxes/${id}/executions/${e.execution_id}`, undefined, 'ExecutionInfo');
      if (s.status !== 'running') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const c = api.attach(id, e.execution_id);
    expect(await c.exit()).toBe(0);
    expect([c.out(), c.err()]).toEqual(['second\n', 'third\n']);
  });

  it('files: PUT a tar and GET it back; ".." and absolute entries, bad paths, missing paths, huge uploads refused', async () => {
    const t = await tar([{ name: 'dir', type: 'directory' }, { name: 'dir/a.txt', body: 'alpha\n' }, { name: './b.txt', body: 'beta\n' }]);
    const put = await api.call('PUT', `/v1/boxes/${id}/files?path=/srv/up`, undefined, { raw: t, headers: { 'content-type': 'application/x-tar' } });
    expect(put.status).toBe(204);
    expect((await run({ command: 'cat', args: ['/srv/up/dir/a.txt', '/srv/up/b.txt'] })).out).toBe('alpha\nbeta\n');
    const got = await api.call('GET', `/v1/boxes/${id}/files?path=/srv/up/dir`);
    expect(got.status).toBe(200);
    expect(got.headers.get('content-type')).toBe('application/x-tar');
    expect(await untarNames(got.body)).toMatchObject({ 'dir/a.txt': 'alpha\n' });
    for (const entries of [[{ name: '../escape.txt', body: 'x' }], [{ name: '/etc/owned', body: 'x' }], [{ name: 'ok.txt', body: 'x' }, { name: 'a/../../b', body: 'x' }], [{ name: 'l', type: 'link' as const, linkname: '../../etc/passwd' }]]) {
      const r = await api.call('PUT', `/v1/boxes/${id}/files?path=/srv/bad`, undefined, { raw: await tar(entries), headers: { 'content-type': 'application/x-tar' } });
      expect(r.status).toBe(400);
      conforms('ErrorResponse', r.json);
    }
    // Nothing of a refused archive was written: not its good entries, not what it aimed outside.
    expect((await run({ command: 'sh', args: ['-c', 'for f in /srv/bad /escape.txt /srv/escape.txt /etc/owned /b; do [ -e $f ] && echo "found $f"; done; true'] })).out).toBe('');
    for (const p of ['/srv/../etc', 'relative', '', '/a/%00b']) {
      expect((await api.call('PUT', `/v1/boxes/${id}/files?path=${p}`, undefined, { raw: t })).status).toBe(400);
      expect((await api.call('GET', `/v1/boxes/${id}/files?path=${p}`)).status).toBe(400);
    }
    expect((await api.call('PUT', `/v1/boxes/${id}/files?path=/srv/x`, undefined, { raw: Buffer.from('not a tar at all'.repeat(100)) })).status).toBe(400);
    expect((await api.call('GET', `/v1/boxes/${id}/files?path=/no/such/file`)).status).toBe(404);
    const tooBig = await api.call('PUT', `/v1/boxes/${id}/files?path=/srv/big`, undefined, { raw: await tar([{ name: 'big', body: 'z'.repeat(5 << 20) }]) });
    expect(tooBig.status).toBe(413);
    // Nothing was lost: the box still answers, the first upload is whole.
    expect((await run({ command: 'cat', args: ['/srv/up/b.txt'] })).out).toBe('beta\n');
  });

  it('stop (200, stopped), files of a stopped box are a conflict, remove', async () => {
    const st = await api.expect(200, 'POST', `/v1/boxes/${id}/stop`, { timeout_seconds: 10 }, 'Box');
    expect(st.status).toBe('stopped');
    await api.expect(400, 'POST', `/v1/boxes/${id}/stop`, { timeout: 1 });
    expect((await api.call('GET', `/v1/boxes/${id}/files?path=/srv`)).status).toBe(409);
    await api.expect(204, 'DELETE', `/v1/boxes/${id}`);
    await api.expect(404, 'GET', `/v1/boxes/${id}`);
  });
});

describe('TLS and shutdown', () => {
  it('serves HTTPS with a certificate; a graceful stop tells attached clients and leaves boxes running', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`], { stdio: 'ignore' });
    const s = await BoxliteServer.start({ runtime: rt, listen: '127.0.0.1:0', apiKeys: [KEY], tlsCert: `${dir}/cert.pem`, tlsKey: `${dir}/key.pem` });
    try {
      expect(s.url).toMatch(/^https:/);
      const body = await new Promise<string>((resolve, reject) => {
        https.get(`${s.url}/v1/me`, { ca: fs.readFileSync(`${dir}/cert.pem`), headers: { authorization: `Bearer ${KEY}` } }, (res) => {
          let b = '';
          res.on('data', (d) => (b += d));
          res.on('end', () => resolve(b));
        }).on('error', reject);
      });
      conforms('Principal', JSON.parse(body));
    } finally {
      await s.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }

    const s2 = await BoxliteServer.start({ runtime: rt, listen: '127.0.0.1:0', apiKeys: [KEY] });
    const c = new ApiClient(s2.url, KEY);
    const b = await c.expect(201, 'POST', '/v1/boxes', { image, name: 'outlives' });
    await c.expect(200, 'POST', `/v1/boxes/${b.box_id}/start`);
    const e = await c.expect(201, 'POST', `/v1/boxes/${b.box_id}/exec`, { command: 'sh', args: ['-c', 'echo on; while :; do sleep 0.05; done'] });
    const a = c.attach(b.box_id, e.execution_id);
    await a.until(() => a.out() === 'on\n', 'on');
    await s2.close();
    const closed = await a.closed;
    expect(closed.code).toBe(1001);
    expect(a.control.at(-1)).toMatchObject({ type: 'error' });
    expect(a.control.at(-1).message).toContain('shutting down');
    expect(rt.get('outlives').info().state).toBe('running');
    await rt.get('outlives').remove({ force: true });
  });
});
