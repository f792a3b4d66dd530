// Files other users plant: a boxlite.yaml above the working folder that another user owns is named and passed
// over (git's rule), and a folder in the working directory never silently stands in for an image of its name.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProjectFile } from '../../src/spec/load.js';
import { sourceOption } from '../../src/cli/boxes.js';
import { CLI } from '../paths.js';

let top: string;
const OTHER = 65534; // nobody: a user other than the one running the tests

beforeAll(() => {
  top = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-planted-'));
  // /tmp/…/shared (another user's folder, as /tmp itself is) holds a boxlite.yaml; the user works in …/shared/mine.
  fs.mkdirSync(path.join(top, 'shared', 'mine'), { recursive: true });
  fs.writeFileSync(path.join(top, 'shared', 'boxlite.yaml'), 'name: planted\nboxes:\n  x: {image: /, volumes: ["/:/host"]}\n');
  execFileSync('chown', ['-R', `${OTHER}:${OTHER}`, path.join(top, 'shared')]);
  execFileSync('chown', [`${process.getuid!()}`, path.join(top, 'shared', 'mine')]);
});

afterAll(() => fs.rmSync(top, { recursive: true, force: true }));

describe('a planted project file', () => {
  it('is named and passed over when found by walking up, with the fix', () => {
    const said: string[] = [];
    expect(() => findProjectFile({ dir: path.join(top, 'shared', 'mine'), onSkip: (m) => said.push(m) })).toThrow(/no boxlite.yaml of yours in .* \(1 passed over, named above\)/);
    expect(said).toEqual([`${path.join(top, 'shared', 'boxlite.yaml')} is not used: it belongs to user nobody (uid 65534), not to you; give it with -f if you trust it, or take it over (chown)`]);
  });

  it('is used when named with -f, and when its owner is the user', () => {
    const f = path.join(top, 'shared', 'boxlite.yaml');
    expect(findProjectFile({ file: f })).toBe(f);
    const own = fs.mkdtempSync(path.join(top, 'own-'));
    fs.writeFileSync(path.join(own, 'boxlite.yaml'), 'boxes: {}\n');
    fs.mkdirSync(path.join(own, 'sub'));
    expect(findProjectFile({ dir: path.join(own, 'sub'), onSkip: () => expect.unreachable() })).toBe(path.join(own, 'boxlite.yaml'));
  });

  it('makes the CLI say so, and nothing of it is planned', () => {
    const r = spawnSync(process.execPath, [CLI, 'plan'], { cwd: path.join(top, 'shared', 'mine'), env: { ...process.env, BOXLITE_HOME: path.join(top, 'home') }, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`boxlite: ${path.join(top, 'shared', 'boxlite.yaml')} is not used: it belongs to user nobody (uid 65534)`);
    expect(r.stdout).not.toContain('planted');
  });
});

describe('a folder named like an image', () => {
  it('does not stand in for the image: the image is taken, and it is said', () => {
    const cwd = process.cwd();
    const dir = fs.mkdtempSync(path.join(top, 'cwd-'));
    fs.mkdirSync(path.join(dir, 'alpine'));
    process.chdir(dir);
    try {
      const said: string[] = [];
      expect(sourceOption('alpine', (m) => said.push(m))).toEqual({ image: 'alpine' });
      expect(said).toEqual(['boxlite: "alpine" is taken as the image alpine, not the folder ./alpine here: give ./alpine for the folder']);
      expect(sourceOption('./alpine')).toEqual({ rootfs: './alpine' });
      expect(sourceOption(path.join(dir, 'alpine'))).toEqual({ rootfs: path.join(dir, 'alpine') });
      expect(sourceOption('debian:12')).toEqual({ image: 'debian:12' });
    } finally {
      process.chdir(cwd);
    }
  });
});
