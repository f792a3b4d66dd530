// Programs written for BoxLite's Node SDK, from its README and examples, run here as written: only the image
// reference differs (a registry on 127.0.0.1 serves it). Each one boots real boxes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, makeOciLayout, makeRootfs, quietRuntime, testHome } from '../helpers.js';
import { debianLayout, push, startRegistry, type Registry } from '../registry.js';
import { CodeBox, ExecError, InvalidOptionError, SimpleBox, type Runtime } from '../../src/index.js';
import { createOptions } from '../../src/runtime/simple-box.js';

let home: string;
let reg: Registry;
let image: string; // what BoxLite's examples call 'alpine:latest'
let rt: Runtime;
let shared: string;

beforeAll(async () => {
  home = testHome();
  process.env.BOXLITE_HOME = home; // BoxLite programs make their own runtime: it finds the home here
  reg = await startRegistry();
  await push(reg, makeOciLayout(makeRootfs(), { Env: ['PATH=/usr/bin:/bin'], Cmd: ['sh'] }), 'alpine:latest');
  image = `${reg.host}/alpine:latest`;
  rt = quietRuntime(home);
  shared = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-shared-'));
});

afterAll(async () => {
  rt?.close();
  await reg?.stop();
  if (home) await cleanupHome(home);
  if (shared) fs.rmSync(shared, { recursive: true, force: true });
});

describe("BoxLite's SimpleBox programs", () => {
  it('the quick start: exec, stop; autoRemove (the default) leaves nothing', async () => {
    let printed = '';
    // From BoxLite's README, as written.
    async function main() {
      const box = new SimpleBox({ image });
      try {
        const result = await box.exec('echo', 'Hello from BoxLite!');
        printed = result.stdout; // Hello from BoxLite!
      } finally {
        await box.stop();
      }
    }
    await main();
    expect(printed).toBe('Hello from BoxLite!\n');
    expect(rt.list()).toEqual([]);
  });

  it('await using; exec with env as a trailing object; exec(cmd, args, env, { cwd, user, timeoutSecs })', async () => {
    const out: string[] = [];
    {
      await using box = new SimpleBox({ image });
      const result = await box.exec('echo', 'Hello!');
      out.push(result.stdout);
      const result3 = await box.exec('sh', '-c', 'echo $MY_VAR', { MY_VAR: 'custom-value' });
      out.push(result3.stdout);
      const pwdResult = await box.exec('pwd', [], undefined, { cwd: '/tmp', user: 'app', timeoutSecs: 30 });
      out.push(pwdResult.stdout);
      const who = await box.exec('id', ['-un'], { HOME: '/x' }, { user: 'app' });
      out.push(who.stdout);
      // An object in the env place is the env, whatever its keys: data never becomes an option.
      const data = await box.exec('sh', '-c', 'echo $user; id -un', { user: 'app' });
      out.push(data.stdout);
      await expect(box.exec('true', [], undefined, { timeoutSecs: -1 })).rejects.toThrow('timeoutSecs must be a number of seconds');
      // A failing command is a result, not an exception (BoxLite's exec does not throw on exit status).
      const failed = await box.exec('sh', '-c', 'echo no >&2; exit 3');
      expect([failed.exitCode, failed.stderr]).toEqual([3, 'no\n']);
    }
    expect(out).toEqual(['Hello!\n', 'custom-value\n', '/tmp\n', 'app\n', 'app\nroot\n']);
    expect(rt.list()).toEqual([]); // disposal stopped it, and autoRemove removed it
  });

  it("BoxLite's options: volumes, ports, network, name, env, workingDir, resources; info, metrics; stop then exec again", async () => {
    fs.writeFileSync(path.join(shared, 'hello.txt'), 'from the host\n');
    const box = new SimpleBox({
      image,
      name: 'bl-options',
      autoRemove: false,
      memoryMib: 256,
      cpus: 2,
      diskSizeGb: 1,
      env: { MODE: 'boxlite' },
      workingDir: '/tmp',
      volumes: [{ hostPath: shared, guestPath: '/data', readOnly: true }],
      ports: [{ guestPort: 8080 }],
      network: { mode: 'enabled' },
    });
    try {
      expect(box.name).toBe('bl-options');
      const r = await box.exec('sh', '-c', 'mkdir -p /srv/www && echo served > /srv/www/index.html; cat /data/hello.txt; echo $MODE $(pwd) $(nproc); touch /data/x 2>/dev/null || echo read-only');
      expect(r.stdout).toBe('from the host\nboxlite /tmp 2\nread-only\n');
      const info = await box.info();
      expect(info).toMatchObject({ id: box.id, name: 'bl-options', state: { status: 'running', running: true }, image, cpus: 2, memoryMib: 256 });
      expect(info.record.options.diskSizeMib).toBe(1024);
      // The forward: the host port was chosen at start.
      await box.exec('sh', '-c', 'httpd -p 8080 -h /srv/www');
      const hostPort = info.record.ports!.find((p) => p.guestPort === 8080)!.hostPort;
      expect(await (await fetch(`http://127.0.0.1:${hostPort}/index.html`)).text()).toBe('served\n');
      const m = await box.metrics();
      expect(m.commandsExecutedTotal).toBe(2);
      expect(m.execErrorsTotal).toBe(0);
      expect(m.bytesReceivedTotal).toBeGreaterThan(0);
      expect(m.memoryBytes).toBeGreaterThan(0);
      expect(m.cpuPercent).toBeGreaterThan(0);
      expect(m.totalCreateDurationMs).toBeGreaterThan(0);
      // Stopped, then used again: autoRemove false keeps the box and its disk.
      await box.stop();
      expect(rt.get('bl-options').info().state).toBe('stopped');
      expect((await box.exec('cat', '/srv/www/index.html')).stdout).toBe('served\n');
      expect(box.info().id).toBe(info.id);
    } finally {
      await rt.get('bl-options').remove({ force: true });
    }
  });

  it('unknown options and those with no counterpart here are refused by name', () => {
    expect(() => new SimpleBox({ image, memoryMB: 512 } as never)).toThrow(InvalidOptionError);
    expect(() => new SimpleBox({ image, memoryMB: 512 } as never)).toThrow('SimpleBox: unknown option "memoryMB"');
    expect(() => new SimpleBox({ image, network: { mode: 'enabled', allowNet: ['api..openai.com'] } })).toThrow('network rule "api..openai.com"');
    expect(() => new SimpleBox({ image, network: { mode: 'enabled', allowNet: 'api.openai.com' } } as never)).toThrow('network.allowNet must be a list');
    expect(createOptions({ image, network: { mode: 'enabled', allowNet: ['api.openai.com', '*.github.com:443'] } }).egress).toEqual({ allow: ['api.openai.com', '*.github.com:443'], deny: [] });
    expect(() => new SimpleBox({ image, network: { mode: 'on' } } as never)).toThrow('network.mode must be "enabled" or "disabled"');
    expect(() => new SimpleBox({})).toThrow('give image');
    expect(() => new SimpleBox({ image }).id).toThrow('no box yet');
    expect(() => new SimpleBox({ image, constructor: 1 } as never)).toThrow('SimpleBox: unknown option "constructor"');
    expect(() => new SimpleBox({ image, ports: [{ guestPort: 80, protocol: 'sctp' }] } as never)).toThrow('protocol "sctp" is not "tcp" or "udp"');
    expect(() => new SimpleBox({ image, volumes: [null] } as never)).toThrow('SimpleBox option volumes');
  });
});

describe("BoxLite's CodeBox", () => {
  it('runs Python and returns what it printed; failing code throws ExecError', async () => {
    // BoxLite's README, with the Debian python image the tests build in place of python:slim.
    const codebox = new CodeBox({ image: debianLayout(), memoryMib: 512, cpus: 1 });
    try {
      const result = await codebox.run(`
import math
print(f"Pi is approximately {math.pi}")
  `);
      expect(result).toBe('Pi is approximately 3.141592653589793\n');
      const err = await codebox.run('print(undefined_variable)').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ExecError);
      expect((err as ExecError).exitCode).toBe(1);
      expect((err as ExecError).message).toContain("NameError: name 'undefined_variable' is not defined");
    } finally {
      await codebox.stop();
    }
  });
});
