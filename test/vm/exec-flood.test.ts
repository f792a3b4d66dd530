// A command that floods its output (256 MiB, the attack of issue 21): every byte reaches the host in order, the
// box keeps answering other executions while it flows, and the agent's memory stays bounded because the command's
// pipe is what waits, never a buffer. On a box of its own: the flood would otherwise slow the other exec tests.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cleanupHome, cli, makeRootfs, quietRuntime, testHome } from '../helpers.js';
import { CLI } from '../paths.js';
import type { Box, Runtime } from '../../src/runtime/runtime.js';

const TOTAL = 256 << 20;
// A block of random bytes whose length is prime: repeated, no two 64 KiB pieces of the stream are alike, so a lost,
// doubled or reordered piece changes the checksum.
const BLOCK = randomBytes(1048573);
const REPEATS = Math.floor(TOTAL / BLOCK.length);
const TAIL = TOTAL - REPEATS * BLOCK.length;
// What the agent may hold at its peak over a whole run, floods included: it starts at ~50 MiB; buffering a flood
// took it past 150 MiB.
const AGENT_PEAK_MIB = 96;

let home: string;
let rt: Runtime;
let box: Box;
let tmp: string;

beforeAll(async () => {
  home = testHome();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-flood-'));
  rt = quietRuntime(home);
  box = await rt.create({ rootfs: makeRootfs(), name: 'flood' });
  await box.start();
  const up = await box.spawn(['sh', '-c', 'cat > /tmp/block'], { stdin: true });
  up.stdin.end(BLOCK);
  expect((await up.wait()).exitCode).toBe(0);
});

afterAll(async () => {
  rt?.close();
  if (home) await cleanupHome(home);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** The agent's resident memory at its peak so far (VmHWM), in MiB, read inside the box. */
async function agentPeakMib(): Promise<number> {
  const r = await box.exec(['sh', '-c', 'grep VmHWM /proc/$(pidof boxlite-agent)/status']);
  const m = /VmHWM:\s+(\d+) kB/.exec(r.stdout);
  if (!m) throw new Error(`no VmHWM in: ${r.stdout}${r.stderr}`);
  return Number(m[1]) / 1024;
}

describe('a flood of exec output', () => {
  it('delivers 256 MiB exactly, in order, while the box answers other executions, its agent bounded', async () => {
    const expected = createHash('sha256');
    for (let i = 0; i < REPEATS; i++) expected.update(BLOCK);
    expected.update(BLOCK.subarray(0, TAIL));

    const ex = await box.spawn(['sh', '-c', `i=0; while [ $i -lt ${REPEATS} ]; do cat /tmp/block; i=$((i+1)); done; head -c ${TAIL} /tmp/block`]);
    // Not read at first: the command must wait on its pipe while the host is not reading.
    await once(ex.stdout, 'readable');
    // Other executions meanwhile: on this connection, and from another process (another agent port).
    expect((await box.exec(['echo', 'alive'])).stdout).toBe('alive\n');
    const other = await cli(home, ['exec', 'flood', '--', 'echo', 'alive from another process']);
    expect(other.stdout).toBe('alive from another process\n');
    expect(other.code).toBe(0);
    expect(await agentPeakMib()).toBeLessThan(AGENT_PEAK_MIB);

    // Now read it all, and exec once more a quarter of the way through: the answer comes while the flood still flows.
    const got = createHash('sha256');
    let bytes = 0;
    let done = false;
    let aliveDuring: Promise<boolean> | null = null;
    ex.stdout.on('data', (d: Buffer) => {
      got.update(d);
      bytes += d.length;
      if (!aliveDuring && bytes > TOTAL / 4) {
        aliveDuring = box.exec(['echo', 'alive']).then((r) => r.stdout === 'alive\n' && !done);
      }
    });
    const status = await ex.wait();
    done = true;
    expect(status.exitCode).toBe(0);
    expect(bytes).toBe(TOTAL);
    expect(got.digest('hex')).toBe(expected.digest('hex'));
    expect(await aliveDuring).toBe(true);
    expect(await agentPeakMib()).toBeLessThan(AGENT_PEAK_MIB);
  });

  it('boxlite exec BOX -- head -c 268435456 /dev/zero > file writes all of it, and the box still answers', async () => {
    const file = path.join(tmp, 'out');
    const fd = fs.openSync(file, 'w');
    const child = spawn(process.execPath, [CLI, 'exec', 'flood', '--', 'head', '-c', String(TOTAL), '/dev/zero'], {
      env: { ...process.env, BOXLITE_HOME: home },
      stdio: ['ignore', fd, 'pipe'],
    });
    fs.closeSync(fd);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const [code] = await once(child, 'close');
    expect(code, stderr).toBe(0);
    expect(fs.statSync(file).size).toBe(TOTAL);
    const zeros = createHash('sha256');
    const z = Buffer.alloc(1 << 20);
    for (let i = 0; i < TOTAL / z.length; i++) zeros.update(z);
    const sum = createHash('sha256');
    for await (const d of fs.createReadStream(file)) sum.update(d as Buffer);
    expect(sum.digest('hex')).toBe(zeros.digest('hex'));
    expect((await box.exec(['echo', 'alive'])).stdout).toBe('alive\n');
    expect(await agentPeakMib()).toBeLessThan(AGENT_PEAK_MIB);
  });
});
