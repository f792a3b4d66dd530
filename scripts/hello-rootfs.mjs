// Makes examples/hello/rootfs, the root file system of the quick start's project: the host's static busybox with
// every applet, so the example needs no registry. Run by `npm run quickstart`; given a folder (a copy of
// examples/hello elsewhere), it makes FOLDER/rootfs instead.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = process.argv[2]
  ? path.resolve(process.argv[2], 'rootfs')
  : path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'hello', 'rootfs');
const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => fs.existsSync(p));
if (!busybox) throw new Error("busybox is missing: run 'node bin/boxlite.js setup' (it installs busybox-static)");
fs.rmSync(root, { recursive: true, force: true });
for (const d of ['bin', 'etc', 'root', 'tmp', 'var/www']) fs.mkdirSync(path.join(root, d), { recursive: true });
fs.copyFileSync(busybox, path.join(root, 'bin/busybox'));
fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
for (const applet of execFileSync(busybox, ['--list']).toString().split('\n')) {
  if (applet && applet !== 'busybox') fs.symlinkSync('busybox', path.join(root, 'bin', applet));
}
fs.writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
fs.writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\n');
fs.chmodSync(path.join(root, 'tmp'), 0o1777);
console.log(`made ${path.relative(process.cwd(), root)}`);
