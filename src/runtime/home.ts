// Where boxlite keeps its state: $BOXLITE_HOME, default ~/.boxlite.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureDir } from '../util/fs.js';

export class Home {
  readonly root: string;
  constructor(root?: string) {
    this.root = path.resolve(root ?? process.env.BOXLITE_HOME ?? path.join(os.homedir(), '.boxlite'));
  }
  /** Makes the home private to its user (0700): records hold environment values, consoles what boxes print. A
   *  home made more open by hand is closed again. */
  secure(): void {
    const st = fs.statSync(this.root, { throwIfNoEntry: false });
    if (!st) fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
    else if (st.isDirectory() && (st.mode & 0o077) !== 0 && st.uid === process.getuid?.()) fs.chmodSync(this.root, 0o700);
  }
  get assetsDir(): string {
    return path.join(this.root, 'assets');
  }
  get cacheDir(): string {
    return path.join(this.root, 'cache');
  }
  get boxesDir(): string {
    return path.join(this.root, 'boxes');
  }
  get layersDir(): string {
    return path.join(this.root, 'layers');
  }
  get volumesDir(): string {
    return path.join(this.root, 'volumes');
  }
  boxDir(id: string): string {
    return path.join(this.boxesDir, id);
  }
  /** A project LAN's folder: its boxes' network guards meet there (inside the home, closed to other users). */
  lanDir(segment: string): string {
    return path.join(this.root, 'lan', segment);
  }
  /** Held while box names and ids are allocated or released, so names stay unique across processes. */
  get registryLock(): string {
    this.secure();
    return path.join(this.root, 'registry.lock');
  }
  /** Held for as long as an operation changes a box (start, stop, snapshot, resize): one at a time per box. */
  boxLock(id: string): string {
    return path.join(this.boxDir(id), 'lock');
  }
  /** Held only while a box's record is read, changed and written back. */
  recordLock(id: string): string {
    return path.join(this.boxDir(id), 'record.lock');
  }
  get setupLock(): string {
    return path.join(ensureDir(this.root), 'setup.lock');
  }
}
