// A real distribution image: Debian bookworm minbase with python3, made by debootstrap (cached between runs),
// pushed to a registry on 127.0.0.1, pulled and booted.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cleanupHome, cli, testHome } from '../helpers.js';
import { debianLayout, push, startRegistry, type Registry } from '../registry.js';

let reg: Registry;
let home: string;

beforeAll(async () => {
  reg = await startRegistry();
  home = testHome();
  await push(reg, debianLayout(), 'debian:bookworm-python');
});

afterAll(async () => {
  await cleanupHome(home);
  await reg?.stop();
});

it('pulls a Debian image and runs python3 in a box; owners and setuid bits are as Debian made them', async () => {
  const ref = `${reg.host}/debian:bookworm-python`;
  const r = await cli(home, [
    'run', '--rm', '--memory', '384', ref, '--', 'sh', '-c',
    'python3 -c "import sys, hashlib; print(sys.version_info[0], hashlib.sha256(b\'box\').hexdigest()[:8], 6 * 7)"; ' +
      'stat -c "%a %U %G" /usr/bin/passwd /etc/shadow /tmp; cat /etc/debian_version | cut -d. -f1',
  ]);
  expect(r.stderr).not.toMatch(/error/i);
  expect(r.stdout).toBe('3 26f8567f 42\n4755 root root\n640 root shadow\n1777 root root\n12\n');
  expect(r.code).toBe(0);
});
