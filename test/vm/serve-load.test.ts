// Load through one server: 50 executions at once, each output complete and in order; then, once its table of
// finished executions is full (600 in), 1000 more, after which the server holds no more file descriptors and no
// more heap than before them (the server runs as
// its own process, `node --expose-gc boxlite serve`, so that its figures are its own and its heap is collected
// before it is read). Bounded in count, on loopback.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, makeOciLayout, makeRootfs, testHome } from '../helpers.js';
import { push, startRegistry, type Registry } from '../registry.js';
import { CLI } from '../paths.js';
import { ApiClient } from '../boxlite-api.js';

const KEY = 'load-key-0123456789abcdef';
let home: string;
let reg: Registry;
let child: ChildProcess;
let api: ApiClient;
let boxId: string;

beforeAll(async () => {
  home = testHome();
  reg = await startRegistry();
  await push(reg, makeOciLayout(makeRootfs(), { Env: ['PATH=/usr/bin:/bin'] }), 'alpine:latest');
  const keyFile = path.join(home, 'keys');
  fs.writeFileSync(keyFile, `${KEY}\n`, { mode: 0o600 });
  child = spawn(process.execPath, ['--expose-gc', CLI, 'serve', '--listen', '127.0.0.1:0', '--api-key-file', keyFile, '--quiet'], { env: { ...process.env, BOXLITE_HOME: home }, stdio: ['ignore', 'ignore', 'pipe'] });
  let said = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d) => {
      said += d;
      const m = /listening on (http:\/\/\S+)/.exec(said);
      if (m) resolve(m[1]);
    });
    child.once('exit', (c) => reject(new Error(`boxlite serve exited (${c}): ${said}`)));
  });
  api = new ApiClient(url, KEY);
  const b = await api.expect(201, 'POST', '/v1/boxes', { image: `${reg.host}/alpine:latest`, name: 'load', memory_mib: 256 });
  boxId = b.box_id;
  await api.expect(200, 'POST', `/v1/boxes/${boxId}/start`);
});

afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  await reg?.stop();
  if (home) await cleanupHome(home);
});

async function run(command: string, args: string[]): Promise<{ out: string; err: string; code: number }> {
  const e = await api.expect(201, 'POST', `/v1/boxes/${boxId}/exec`, { command, args });
  const a = api.attach(boxId, e.execution_id);
  const code = await a.exit();
  return { out: a.out(), err: a.err(), code };
}

const figures = async () => (await api.expect(200, 'GET', '/v1/metrics')).boxlite.server as { open_fds: number; open_connections: number; heap_used_bytes: number; rss_bytes: number };

describe('one server under load', () => {
  it('50 concurrent executions: every output complete and in order, stdout and stderr apart', async () => {
    const lines = 2000;
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, n) => run('sh', ['-c', `i=0; while [ $i -lt ${lines} ]; do echo "${n}:$i"; i=$((i+1)); done; echo "done ${n}" >&2; exit ${n % 7}`])),
    );
    results.forEach((r, n) => {
      expect(r.out).toBe(Array.from({ length: lines }, (_, i) => `${n}:${i}\n`).join(''));
      expect([r.err, r.code]).toEqual([`done ${n}\n`, n % 7]);
    });
  });

  it('1000 executions: no file descriptor or heap growth once the table of finished ones is full', async () => {
    let n = 0;
    const round = async () => {
      const rs = await Promise.all(Array.from({ length: 50 }, () => n++).map((i) => run('echo', [`run ${i}`]).then((r) => [r, i] as const)));
      for (const [r, i] of rs) expect([r.out, r.code]).toEqual([`run ${i}\n`, 0]);
    };
    // The server keeps up to 512 finished executions (for GET and reattach): past that, what it holds is flat.
    for (let i = 0; i < 12; i++) await round();
    const before = await figures();
    for (let i = 0; i < 20; i++) await round();
    const after = await figures();
    expect(n).toBe(600 + 1000);
    // The client's pool keeps some connections open between rounds, a different number each time: each is an fd of
    // the server's, so what is compared is the fds beside them.
    expect(before.open_connections).toBeGreaterThan(0);
    expect(after.open_fds - after.open_connections).toBeLessThanOrEqual(before.open_fds - before.open_connections + 2);
    expect(after.heap_used_bytes - before.heap_used_bytes).toBeLessThan(4 << 20);
    const m = await api.expect(200, 'GET', '/v1/metrics');
    expect(m.boxlite.executions_running).toBe(0);
    expect(m.total_commands_executed).toBeGreaterThanOrEqual(1650);
    // What is left of the finished executions is bounded.
    expect(m.boxlite.executions_tracked).toBeLessThanOrEqual(512);
  });
});
