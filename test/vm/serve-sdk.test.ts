// BoxLite's runtime-level programs (its examples/node cp.js, rest_connect_and_list.js and simplebox.js, and the
// Execution's streams) run unchanged against this machine's runtime and against a `boxlite serve`: only the line
// that makes the runtime differs (and the image, which a registry on 127.0.0.1 serves). Real boxes both ways.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, makeOciLayout, makeRootfs, testHome } from '../helpers.js';
import { push, startRegistry, type Registry } from '../registry.js';
import { ApiKeyCredential, BoxliteRestOptions, BoxNotFoundError, InvalidOptionError, JsBoxlite, SimpleBox, Runtime, AuthError } from '../../src/index.js';
import { BoxliteServer } from '../../src/server/server.js';

const API_KEY = 'local-dev-key'; // what BoxLite's rest_connect_and_list.js sends
let home: string;
let reg: Registry;
let image: string;
let server: BoxliteServer;
let serverRt: Runtime;
let tmp: string;

beforeAll(async () => {
  home = testHome();
  process.env.BOXLITE_HOME = home;
  reg = await startRegistry();
  await push(reg, makeOciLayout(makeRootfs(), { Env: ['PATH=/usr/bin:/bin'], Cmd: ['sh'] }), 'alpine:latest');
  image = `${reg.host}/alpine:latest`;
  serverRt = new Runtime({ home, say: () => {} });
  server = await BoxliteServer.start({ runtime: serverRt, listen: '127.0.0.1:0', apiKeys: [API_KEY] });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-sdk-'));
});

afterAll(async () => {
  await server?.close();
  serverRt?.close();
  await reg?.stop();
  if (home) await cleanupHome(home);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const runtimes: [string, () => JsBoxlite][] = [
  ['local', () => JsBoxlite.withDefaultConfig()],
  ['remote', () => JsBoxlite.rest(new BoxliteRestOptions({ url: server.url, credential: new ApiKeyCredential(API_KEY) }))],
];

describe.each(runtimes)("BoxLite's runtime programs, %s", (where, makeRuntime) => {
  it('cp.js: create, start, copyIn a folder to a new path, exec ls, copyOut, stop, remove', async () => {
    const printed: string[] = [];
    const log = (...a: unknown[]) => printed.push(a.join(' '));
    // examples/node/cp.js, as written (console.log → log, its /tmp folders under this test's own).
    const rt = makeRuntime();
    const name = `node-copy-demo-${Date.now()}`;
    const box = await rt.create({ image }, name);
    await box.start();
    const hostDir = path.join(tmp, `${where}-boxlite_node_copy`);
    fs.mkdirSync(hostDir, { recursive: true });
    fs.writeFileSync(path.join(hostDir, 'hello.txt'), 'hello from node\n');
    await box.copyIn(hostDir, '/app', {});
    const exec = await box.exec('ls', ['/app']);
    const res = await exec.wait();
    log('exit code:', res.exitCode);
    const outDir = path.join(tmp, `${where}-boxlite_node_copy_out`);
    fs.rmSync(outDir, { recursive: true, force: true });
    fs.mkdirSync(outDir, { recursive: true });
    await box.copyOut('/app', outDir, {});
    const data = fs.readFileSync(path.join(outDir, 'app', 'hello.txt'), 'utf8');
    log('Round-trip content:', data.trim());
    await box.stop();
    await rt.remove(name, true);
    expect(printed).toEqual(['exit code: 0', 'Round-trip content: hello from node']);
    expect(await rt.get(name)).toBeNull();
    await expect(box.copyIn(hostDir, '/x', { followSymlinks: true })).rejects.toThrow(InvalidOptionError);
    rt.close();
  });

  it('rest_connect_and_list.js and the runtime calls: getOrCreate, get, getInfo, listInfo, remove', async () => {
    const rt = makeRuntime();
    const { created, box } = await rt.getOrCreate({ image, memoryMib: 256, env: [{ key: 'GREETING', value: 'hi' }] }, `listed-${where}`);
    expect(created).toBe(true);
    expect((await rt.getOrCreate({ image }, `listed-${where}`)).created).toBe(false);
    // rest_connect_and_list.js's loop, over whichever runtime.
    const boxes = await rt.listInfo();
    const lines = boxes.map((info) => `    - ${info.id}  name=${info.name}  status=${info.state.status}`);
    expect(lines).toContain(`    - ${box.id}  name=listed-${where}  status=configured`);
    expect(await rt.getInfo(`listed-${where}`)).toMatchObject({ id: box.id, image, cpus: 1, memoryMib: 256, state: { status: 'configured', running: false } });
    expect((await rt.get(box.id))!.name).toBe(`listed-${where}`);
    expect(await rt.get('no-such-box')).toBeNull();
    await expect(rt.remove('no-such-box')).rejects.toThrow(BoxNotFoundError);
    await expect(rt.create({ image, memoryMB: 1 } as never)).rejects.toThrow('unknown option "memoryMB"');
    // The streaming Execution: stdin in, stdout out chunk by chunk until null, the exit code.
    await box.start();
    expect(box.info().state.running).toBe(true);
    const ex = await box.exec('sh', ['-c', 'echo $GREETING $X; cat; echo err >&2; exit 5'], [['X', 'there']]);
    const stdin = await ex.stdin();
    await stdin.writeString('from stdin\n');
    await stdin.close();
    const out = await ex.stdout();
    let text = '';
    for (let c = await out.next(); c !== null; c = await out.next()) text += c;
    const err = await ex.stderr();
    expect(await err.next()).toBe('err\n');
    expect(await ex.wait()).toMatchObject({ exitCode: 5 });
    expect(text).toBe('hi there\nfrom stdin\n');
    const m = await box.metrics();
    expect(m.commandsExecutedTotal).toBeGreaterThan(0);
    const killed = await box.exec('sleep', ['600']);
    await killed.kill();
    expect((await killed.wait()).exitCode).toBe(137);
    const tty = await box.exec('sh', [], null, true);
    await tty.resizeTty(30, 100);
    const ti = await tty.stdin();
    await ti.writeString('stty size; exit\n');
    const to = await tty.stdout();
    let tt = '';
    for (let c = await to.next(); c !== null; c = await to.next()) tt += c;
    expect(tt).toContain('30 100');
    await rt.remove(box.id, true);
    rt.close();
  });

  it('simplebox.js with SimpleBox({ runtime }): exec forms, info, reuseExisting, stop removes', async () => {
    const rt = makeRuntime();
    const box = new SimpleBox({ image, runtime: rt });
    let madeId = '';
    try {
      const result1 = await box.exec('echo', 'Hello from BoxLite!');
      expect([result1.stdout.trim(), result1.exitCode]).toEqual(['Hello from BoxLite!', 0]);
      madeId = box.id;
      const result2 = await box.exec('ls', '-la', '/');
      expect(result2.stdout.split('\n').length).toBeGreaterThan(3);
      const result3 = await box.exec('sh', '-c', 'echo $MY_VAR', { MY_VAR: 'custom-value' });
      expect(result3.stdout.trim()).toBe('custom-value');
      const info = await box.info();
      expect(info).toMatchObject({ id: box.id, state: { status: 'running', running: true }, image });
      const box2 = new SimpleBox({ image, name: `reuse-demo-${where}`, reuseExisting: true, runtime: rt });
      try {
        expect((await box2.exec('echo', 'first open')).stdout.trim()).toBe('first open');
        expect(box2.created).toBe(true);
        const box3 = new SimpleBox({ image, name: `reuse-demo-${where}`, reuseExisting: true, runtime: rt });
        try {
          expect((await box3.exec('echo', 'second open')).stdout.trim()).toBe('second open');
          expect(box3.created).toBe(false);
        } finally {
          await box3.stop();
        }
      } finally {
        await box2.stop();
      }
      const m = await box.metrics();
      expect(m.commandsExecutedTotal).toBe(3);
    } finally {
      await box.stop();
    }
    // autoRemove (the default) removed the boxes these objects made.
    expect((await rt.listInfo()).filter((i) => i.name?.startsWith('reuse-demo') || i.id === madeId)).toEqual([]);
    rt.close();
  });
});

describe('a remote runtime refused', () => {
  it('without a key, with a wrong one, and at an address nothing serves', async () => {
    await expect(JsBoxlite.rest(server.url).listInfo()).rejects.toThrow(AuthError);
    await expect(JsBoxlite.rest(server.url, new ApiKeyCredential('nope')).listInfo()).rejects.toThrow(AuthError);
    await expect(JsBoxlite.rest('http://127.0.0.1:1', new ApiKeyCredential(API_KEY)).listInfo()).rejects.toThrow('cannot be reached');
    expect(() => JsBoxlite.rest('ftp://x')).toThrow('http:// or https://');
    delete process.env.BOXLITE_API_KEY;
    expect(ApiKeyCredential.fromEnv()).toBeNull();
    process.env.BOXLITE_API_KEY = API_KEY;
    expect(ApiKeyCredential.fromEnv()!.getToken()).toEqual({ token: API_KEY, expiresAt: null });
    expect(JSON.stringify({ c: new ApiKeyCredential(API_KEY) })).not.toContain(API_KEY);
    delete process.env.BOXLITE_API_KEY;
  });
});
