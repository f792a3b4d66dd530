// Disk tools on guest-written files run jailed: a uid of their own (as root), no capabilities, no network, a view
// of only the files they are handed. Checked with real programs in the real jail.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runTool, TOOL_UID } from '../../src/vmm/tool-jail.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-tool-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const root = process.getuid!() === 0;

describe('a jailed disk tool', () => {
  it('runs as the tools uid with no capabilities, and sees only what it is handed', async () => {
    expect((await runTool('/usr/bin/id', ['-u'], {})).trim()).toBe(String(root ? TOOL_UID : process.getuid!()));
    expect(await runTool('/usr/bin/grep', ['^CapEff', '/proc/self/status'], {})).toMatch(/CapEff:\s+0+\n/);
    await expect(runTool('/usr/bin/cat', ['/etc/shadow'], {})).rejects.toThrow(/^\/usr\/bin\/cat \/etc\/shadow failed \(exit 1\): .*No such file or directory/);
    await expect(runTool('/usr/bin/ls', [os.homedir()], {})).rejects.toThrow(/No such file or directory/);
  });

  it('writes the file it is handed, which keeps its owner and mode', async () => {
    const f = path.join(dir, 'disk.img');
    fs.writeFileSync(f, 'old', { mode: 0o600 });
    const before = fs.statSync(f);
    await runTool('/usr/bin/sh', ['-c', `echo new > ${f}`], { rw: [f] });
    expect(fs.readFileSync(f, 'utf8')).toBe('new\n');
    const after = fs.statSync(f);
    expect([after.uid, after.gid, after.mode & 0o777]).toEqual([before.uid, before.gid, 0o600]);
    const other = path.join(dir, 'other');
    fs.writeFileSync(other, 'x');
    await expect(runTool('/usr/bin/sh', ['-c', `echo y > ${other}`], { rw: [f] })).rejects.toThrow(/failed \(exit [12]\)/);
    expect(fs.readFileSync(other, 'utf8')).toBe('x');
  });
});
