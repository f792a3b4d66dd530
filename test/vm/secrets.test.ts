// Secrets at the network boundary, on a real box against test hosts in a network namespace: the guest holds a
// placeholder; the value reaches the secret's host over HTTP and HTTPS (the box trusts its own CA, the gateway
// checks the real server's certificate against the test's CA); the placeholder sent anywhere else is refused and
// reported; the value is nowhere in the guest nor in any file under the home; a missing source fails the start.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { cleanupHome, cli, makeRootfs, quietRuntime, testHome } from '../helpers.js';
import { HTTPS_NAME, startEgressHosts, type EgressHosts } from '../egress-host.js';
import type { Box, EgressEvent, Runtime } from '../../src/runtime/runtime.js';
import { GUEST_NODE } from '../../src/core/guest.js';

let home: string;
let rt: Runtime;
let rootfs: string;
let eh: EgressHosts;
let box: Box;
let zone: string;
const VALUE = `sk-real-${randomBytes(12).toString('hex')}`;

const sh = async (script: string) => (await box.exec(['sh', '-c', script])).stdout.trim();
/** What the test host's /echo saw, or the body the box got instead. */
const echoed = (body: string) => {
  try {
    return JSON.parse(body) as { url: string; headers: Record<string, string> };
  } catch {
    return body;
  }
};

/** Every file under dir that holds `needle`, read in chunks (disks included). */
function filesHolding(dir: string, needle: string): string[] {
  const hits: string[] = [];
  const want = Buffer.from(needle);
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const fd = fs.openSync(p, 'r');
        const buf = Buffer.alloc(1 << 20);
        let carry = Buffer.alloc(0);
        for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) {
          const chunk = Buffer.concat([carry, buf.subarray(0, n)]);
          if (chunk.includes(want)) {
            hits.push(p);
            break;
          }
          carry = chunk.subarray(Math.max(0, chunk.length - want.length));
        }
        fs.closeSync(fd);
      }
    }
  };
  walk(dir);
  return hits;
}

beforeAll(async () => {
  eh = await startEgressHosts();
  zone = `${eh.dns.replace(/\./g, '-')}.secrets.test`;
  eh.setNames({ [`api.${zone}`]: [eh.ips[1], 60], [HTTPS_NAME]: [eh.ips[0], 60], [`other.${zone}`]: [eh.ips[3], 60] });
  // The gateway checks the HTTPS server's certificate as a client would: the test's CA is one it trusts.
  process.env.NODE_EXTRA_CA_CERTS = eh.caFile;
  home = testHome();
  rt = quietRuntime(home);
  rootfs = makeRootfs();
  box = await rt.create({ rootfs, name: 'agent', memoryMib: 256, dns: [eh.dns], secrets: [{ name: 'API_KEY', value: VALUE, hosts: [`api.${zone}`, HTTPS_NAME] }] });
  await box.start();
});

afterAll(async () => {
  rt?.close();
  if (home) await cleanupHome(home);
  eh?.stop();
  if (rootfs) fs.rmSync(rootfs, { recursive: true, force: true });
});

describe('secrets', () => {
  it('the guest holds a placeholder, never the value', async () => {
    const placeholder = await sh('echo $API_KEY');
    expect(placeholder).toMatch(/^boxlite-secret-API_KEY-[0-9a-f]{24}$/);
    expect(await sh(`grep -rl '${VALUE}' /etc /root /tmp /proc/[0-9]*/environ 2>/dev/null; true`)).toBe('');
  });

  it('puts the value into the URL and headers of HTTP requests to its host (port 80)', async () => {
    const body = await sh(`timeout 8 wget -qO- --header "Authorization: Bearer $API_KEY" "http://api.${zone}/echo?key=$API_KEY" 2>&1`);
    // The host got the value; what it echoed back reached the box masked.
    expect(eh.seen().at(-1)).toMatchObject({ url: `/echo?key=${VALUE}`, headers: { authorization: `Bearer ${VALUE}` } });
    expect(echoed(body), body).toMatchObject({ url: `/echo?key=${'*'.repeat(VALUE.length)}` });
    expect(body).not.toContain(VALUE);
  });

  it('and over HTTPS: the box trusts its own CA, the gateway checks the real server', async () => {
    const get = `require('https').get('https://${HTTPS_NAME}:8443/echo?key='+process.env.API_KEY,{headers:{'x-api-key':process.env.API_KEY}},r=>{let b='';r.on('data',d=>b+=d);r.on('end',()=>console.log(b))}).on('error',e=>console.log('error',e.message))`;
    const body = await sh(`${GUEST_NODE} -e "${get}"`);
    expect(eh.seen().at(-1)).toMatchObject({ url: `/echo?key=${VALUE}`, headers: { 'x-api-key': VALUE } });
    expect(echoed(body), body).toMatchObject({ headers: { 'x-api-key': '*'.repeat(VALUE.length) } });
  });

  it('refuses the placeholder sent to any other host, or in plain HTTP on another port, and reports it', async () => {
    const port8080 = await sh(`timeout 8 wget -qO- --header "X-Key: $API_KEY" "http://api.${zone}:8080/echo" 2>&1; true`);
    expect(port8080).toMatch(/403 Forbidden|error/);
    expect(port8080).not.toContain(VALUE);
    const body = await sh(`timeout 8 wget -qO- --header "X-Key: $API_KEY" "http://other.${zone}:8080/echo" 2>&1; true`);
    expect(body).toMatch(/403 Forbidden|error/);
    expect(body).not.toContain(VALUE);
    const events: EgressEvent[] = [];
    for await (const e of box.events()) events.push(e);
    expect(events).toContainEqual(expect.objectContaining({ kind: 'secret', rule: `secret API_KEY is not for other.${zone}` }));
    const inspect = JSON.parse((await cli(home, ['inspect', 'agent'])).stdout);
    expect(inspect.denied.secret).toBeGreaterThanOrEqual(1);
    expect(JSON.stringify(inspect)).not.toContain(VALUE);
  });

  it('the value is in no file under the home: records, logs, events, disks', () => {
    expect(filesHolding(home, VALUE)).toEqual([]);
  });

  it('a box whose secret comes from an unset environment variable does not start, and says which', async () => {
    const made = await cli(home, ['create', '--name', 'envsecret', '--secret', `NO_SUCH_VAR_${randomBytes(3).toString('hex')}@api.example.com`, rootfs]);
    expect(made.code, made.stderr).toBe(0);
    const r = await cli(home, ['start', 'envsecret']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/secret NO_SUCH_VAR_\w+ comes from the environment variable NO_SUCH_VAR_\w+, which is not set here/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    await cli(home, ['rm', '-f', 'envsecret']);
  });

  it('a secret whose file is a FIFO or a device is refused at once, not read for ever', async () => {
    const fifo = path.join(home, 'secret.fifo');
    execFileSync('mkfifo', [fifo]);
    for (const [file, kind] of [[fifo, 'a FIFO'], ['/dev/zero', 'a device']]) {
      const b = await rt.create({ rootfs, memoryMib: 192, secrets: [{ name: 'FROM_FILE', file, hosts: ['api.example.com'] }] });
      await expect(b.start()).rejects.toThrow(`secret FROM_FILE comes from the file ${file}, which is not a regular file (${kind}): fix the file and run this again`);
      expect(b.info().state).toBe('created');
      await rt.remove(b.id, { force: true });
    }
  });
});
