// After a live clone or a fork, the running source's old disk is a frozen layer under every box made from it. The
// source's VMM still has that file in its jail's view (bound where its disk was): it must not be able to open it
// for writing, or a VMM taken over would rewrite what its clones read. Replayed as the VMM's own uid, through its
// own mount namespace (/proc/PID/root), as a VMM that broke out of QEMU would try.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, cli, makeRootfs, qemuPids, quietRuntime, testHome } from '../helpers.js';

let home: string;

beforeAll(async () => {
  home = testHome();
  expect((await cli(home, ['create', '--name', 'src', '-m', '192', '--disk', '128', makeRootfs()])).code).toBe(0);
  expect((await cli(home, ['start', 'src'])).code).toBe(0);
});

afterAll(async () => {
  await cleanupHome(home);
});

/** Opens the file read-write as uid, from inside the VMM's mount namespace: 'opened' or the error. */
function openAs(uid: number, file: string): string {
  const r = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '/usr/bin/python3', '-c', `import sys\ntry:\n open(sys.argv[1], 'r+b'); print('opened')\nexcept OSError as e: print(e.strerror)`, file], { encoding: 'utf8' });
  return r.stdout.trim() || r.stderr.trim();
}

describe('a frozen layer', () => {
  for (const how of ['clone', 'fork'] as const) {
    it(`after a live ${how}, is not writable by the source's running VMM (owner and its jail's view)`, async () => {
      const rt = quietRuntime(home);
      const rec = rt.records.list().find((r) => r.name === 'src')!;
      const dir = rt.home.boxDir(rec.id);
      const [pid] = qemuPids(home).filter((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(rec.id));
      const inView = `/proc/${pid}/root${path.join(dir, 'disk.qcow2')}`;
      const before = fs.statSync(inView).ino;
      expect((await cli(home, [how, 'src', `${how}-1`])).code).toBe(0);
      // The file the VMM's view holds is now the frozen layer, read by the new box too.
      const layer = fs.readdirSync(rt.home.layersDir).map((f) => path.join(rt.home.layersDir, f)).find((f) => fs.statSync(f).ino === before);
      expect(layer).toBeDefined();
      expect(fs.statSync(inView).ino).toBe(before);
      const st = fs.statSync(layer!);
      expect(st.uid).not.toBe(rec.vmmUid);
      expect(st.mode & 0o022).toBe(0);
      expect(openAs(rt.records.get(rec.id).vmmUid!, inView)).toBe('Permission denied');
      // The source goes on writing its new top, and the new box reads the layer.
      expect((await cli(home, ['exec', 'src', 'sh', '-c', `echo after > /after-${how} && sync && cat /after-${how}`])).stdout).toBe('after\n');
      if (how === 'clone') expect((await cli(home, ['start', `${how}-1`])).code).toBe(0);
      expect((await cli(home, ['exec', `${how}-1`, 'sh', '-c', `test -e /after-${how} || echo not-there`])).stdout).toBe('not-there\n');
      expect((await cli(home, ['rm', '-f', `${how}-1`])).code).toBe(0);
      rt.close();
    });
  }
});
