// The quick start's example (compiled with the project; `await using` needs TypeScript on Node 20): builds a tiny root filesystem from the host's static busybox, then boots it as a
// box with the SDK and runs a few commands in its own kernel.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SimpleBox } from '../../src/index.js';

const rootfs = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-hello-'));
for (const d of ['bin', 'etc', 'root', 'tmp']) fs.mkdirSync(path.join(rootfs, d));
fs.copyFileSync('/bin/busybox', path.join(rootfs, 'bin/busybox'));
fs.chmodSync(path.join(rootfs, 'bin/busybox'), 0o755);
for (const applet of execFileSync('/bin/busybox', ['--list']).toString().split('\n')) {
  if (applet && applet !== 'busybox') fs.symlinkSync('busybox', path.join(rootfs, 'bin', applet));
}
fs.writeFileSync(path.join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');

const t0 = Date.now();
{
  await using box = new SimpleBox({ image: rootfs, name: `hello-${process.pid}`, memoryMib: 256 });
  const r = await box.exec('sh', '-c', 'echo "hello from $(hostname): kernel $(uname -r), $(nproc) cpu, $(free -m | awk "/Mem/ {print \\$2}") MiB"');
  process.stdout.write(r.stdout);
  console.log(`box booted and answered in ${Date.now() - t0} ms; it is removed now.`);
}
fs.rmSync(rootfs, { recursive: true, force: true });
