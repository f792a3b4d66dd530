// Reading small files from a folder another uid may write (a VMM's run folder): only regular files, never through
// a symlink, and never blocking on a FIFO.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSmallRegularFile } from '../../src/util/fs.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-fs-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('readSmallRegularFile', () => {
  it('reads a regular file, up to its limit', () => {
    fs.writeFileSync(path.join(dir, 'pid'), '4242\n');
    expect(readSmallRegularFile(path.join(dir, 'pid'))).toBe('4242\n');
    expect(readSmallRegularFile(path.join(dir, 'pid'), 2)).toBe('42');
  });
  it('returns null for a FIFO at once, where a plain read would wait for a writer forever', () => {
    execFileSync('mkfifo', [path.join(dir, 'fifo')]);
    expect(readSmallRegularFile(path.join(dir, 'fifo'))).toBeNull();
  });
  it('does not follow a symlink, nor read a folder or a missing file', () => {
    fs.writeFileSync(path.join(dir, 'secret'), 'host secret');
    fs.symlinkSync(path.join(dir, 'secret'), path.join(dir, 'link'));
    expect(readSmallRegularFile(path.join(dir, 'link'))).toBeNull();
    expect(readSmallRegularFile(dir)).toBeNull();
    expect(readSmallRegularFile(path.join(dir, 'missing'))).toBeNull();
  });
});
