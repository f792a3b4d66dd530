// Where boxlite keeps its state: $BOXLITE_HOME, default ~/.boxlite.
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureDir } from '../util/fs.js';

export class Home {
  readonly root: string;
  constructor(root?: string) {
    this.root = path.resolve(root ?? process.env.BOXLITE_HOME ?? path.join(os.homedir(), '.boxlite'));
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
  /** Held while box names and ids are allocated or released, so names stay unique across processes. */
  get registryLock(): string {
    return path.join(ensureDir(this.root), 'registry.lock');
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
