// What a compose user writes out of habit, through the CLI as they type it (`boxlite config` and `plan` read and check the
// file, no box needed): compose's key names get a "did you mean", "$i" in a command says how to keep it, once, at
// its line:col, a protocol after a colon gets the slash form, and plan refuses what up would fail on (up then makes
// nothing).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers.js';

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-home-'));
const dirs: string[] = [];

afterAll(() => {
  for (const d of [home, ...dirs]) fs.rmSync(d, { recursive: true, force: true });
});

/** `boxlite config` in a folder holding this boxlite.yaml. */
async function config(yaml: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-proj-'));
  dirs.push(dir);
  fs.writeFileSync(path.join(dir, 'boxlite.yaml'), yaml);
  const r = await cli(home, ['config'], { cwd: dir });
  return { ...r, err: r.stderr.trimEnd().split('\n') };
}

describe("compose's key names", () => {
  it('services: did you mean boxes, and no second complaint that boxes is missing', async () => {
    const r = await config('name: shop\nservices:\n  web:\n    image: x\n');
    expect(r.code).toBe(1);
    expect(r.err).toEqual(['boxlite: boxlite.yaml:2:1: services: unknown key "services" (did you mean "boxes"? compose\'s services are boxes here)']);
  });

  it('environment: did you mean env; expose: not needed, with what to do instead', async () => {
    const r = await config('name: shop\nboxes:\n  web:\n    image: x\n    environment: {A: b}\n    expose: ["80"]\n');
    expect(r.code).toBe(1);
    expect(r.err).toEqual([
      'boxlite: boxlite.yaml:5:5: boxes.web.environment: unknown key "environment" (did you mean "env"? compose\'s environment is env here, a mapping or a list of NAME=value)',
      'boxlite.yaml:6:5: boxes.web.expose: unknown key "expose" (compose\'s expose is not needed: a project\'s boxes reach each other on any port by name over the project LAN; publish to the host with ports)',
    ]);
  });
});

describe('$ in a command', () => {
  it('an unset $i says, once and at its own line:col, that $$i keeps it for the shell', async () => {
    const r = await config("name: shop\nboxes:\n  web:\n    image: x\n    command: sh -c 'for i in 1 2; do echo $i $i; done'\n    setup: ['echo $i']\n");
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("boxlite: warning: boxlite.yaml:5:43: variable i is not set: using an empty string (write $$i to keep a literal $i for the box's shell, set i, or write ${i:-default})\n");
  });

  it('$$i is the literal, with no warning', async () => {
    const r = await config("name: shop\nboxes:\n  web:\n    image: x\n    command: sh -c 'for i in 1 2; do echo $$i; done'\n");
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('for i in 1 2; do echo $i; done');
  });
});

describe('a protocol after a colon', () => {
  it('"80:8080:tcp" suggests "80:8080/tcp"', async () => {
    const r = await config('name: shop\nboxes:\n  web:\n    image: x\n    ports: ["80:8080:tcp"]\n');
    expect(r.code).toBe(1);
    expect(r.err).toEqual(['boxlite: boxlite.yaml:5:13: boxes.web.ports[0]: "80:8080:tcp": the protocol goes after a slash: did you mean "80:8080/tcp"?']);
  });

  it('and on the command line, with an address', async () => {
    const r = await cli(home, ['create', '-p', '127.0.0.1:80:8080:udp', 'x']);
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')[0]).toBe('boxlite: port spec "127.0.0.1:80:8080:udp": the protocol goes after a slash: did you mean "127.0.0.1:80:8080/udp"?');
  });
});

describe('plan checks what it can before promising a create', () => {
  it('an image neither stored nor pullable, a missing root filesystem, a port another process holds: plan fails, up makes nothing', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, r));
    const port = (server.address() as net.AddressInfo).port;
    const comm = fs.readFileSync('/proc/self/comm', 'utf8').trim();
    try {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-proj-'));
      dirs.push(dir);
      fs.writeFileSync(path.join(dir, 'boxlite.yaml'), `name: oops\nboxes:\n  a:\n    image: 127.0.0.1:1/nope:1\n  b:\n    image: ./rootfs\n  c:\n    image: ${process.cwd()}\n    ports: ["${port}:80"]\n`);
      const expected = [
        '✖ a: image 127.0.0.1:1/nope:1 is not stored and cannot be pulled: cannot reach registry 127.0.0.1:1 (http://127.0.0.1:1) for 127.0.0.1:1/nope:1: ECONNREFUSED',
        `✖ b: image ${fs.realpathSync(dir)}/rootfs does not exist: give a root filesystem folder or an OCI layout there, or an image reference`,
        `✖ c: host port ${port} is held by another process: pid ${process.pid} (${comm}): stop it or pick another host port`,
      ];
      const plan = await cli(home, ['plan'], { cwd: dir });
      expect(plan.code).toBe(1);
      expect(plan.stderr.trimEnd().split('\n')).toEqual([...expected, "✖ project oops: 'up' would fail (3 problems found by the plan)"]);
      const up = await cli(home, ['up', '--trust'], { cwd: dir });
      expect(up.code).toBe(1);
      expect(up.stdout).toBe('');
      expect(up.stderr.trimEnd().split('\n')).toEqual([...expected, '✖ project oops: nothing was made (3 problems found by the plan)']);
      const ps = await cli(home, ['ps', '-aq', '--all-projects'], { cwd: dir });
      expect(ps.stdout).toBe('');
    } finally {
      server.close();
    }
  });
});

describe('the quick start example out of the repository', () => {
  it('a copy gets its own root filesystem and takes another host port: plan promises the create, with no problem', async () => {
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-hello-'));
    dirs.push(copy);
    fs.cpSync(path.join(process.cwd(), 'examples/hello/boxlite.yaml'), path.join(copy, 'boxlite.yaml'));
    execFileSync(process.execPath, ['scripts/hello-rootfs.mjs', copy]);
    expect(fs.statSync(path.join(copy, 'rootfs/bin/busybox')).isFile()).toBe(true);
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen({ host: '127.0.0.1', port: 0 }, r));
    const port = (probe.address() as net.AddressInfo).port; // one free here, as a user would pick
    await new Promise((r) => probe.close(r));
    const plan = await cli(home, ['plan'], { cwd: copy, env: { HELLO_PORT: String(port) } });
    expect(plan.stderr).toBe('');
    expect(plan.code).toBe(2);
    expect(plan.stdout.split('\n')[0]).toBe('Project hello: boxlite up will');
    expect(plan.stdout).toContain(`image: ${fs.realpathSync(copy)}/rootfs`);
    expect(plan.stdout).toContain(`127.0.0.1:${port}->80/tcp`);
  });
});
