// Project folders for tests that bring projects up on real boxes: a home, a shared busybox root filesystem linked
// into each folder as ./rootfs, and the records of a project's boxes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cleanupHome, makeRootfs, quietRuntime, testHome } from './helpers.js';
import { projectLabel } from '../src/reconciler/label.js';

export class ProjectFixture {
  readonly home = testHome();
  readonly rootfs = makeRootfs();
  private dirs: string[] = [];

  /** A project folder with this boxlite.yaml; ./rootfs is the shared busybox root filesystem. */
  dir(yaml: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-proj-'));
    fs.symlinkSync(this.rootfs, path.join(dir, 'rootfs'));
    fs.writeFileSync(path.join(dir, 'boxlite.yaml'), yaml);
    this.dirs.push(dir);
    return dir;
  }

  edit(dir: string, f: (s: string) => string): void {
    const file = path.join(dir, 'boxlite.yaml');
    fs.writeFileSync(file, f(fs.readFileSync(file, 'utf8')));
  }

  /** The project's boxes (kept-aside ones too), with their labels. */
  records(project: string) {
    const rt = quietRuntime(this.home);
    try {
      return rt
        .list()
        .map((r) => ({ ...r, project: projectLabel(r) }))
        .filter((r) => r.project?.project === project)
        .sort((a, b) => a.name.localeCompare(b.name));
    } finally {
      rt.close();
    }
  }

  async cleanup(): Promise<void> {
    await cleanupHome(this.home);
    for (const d of this.dirs) fs.rmSync(d, { recursive: true, force: true });
    fs.rmSync(this.rootfs, { recursive: true, force: true });
  }
}
