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
  boxDir(id: string): string {
    return path.join(this.boxesDir, id);
  }
  /** Held while box names and ids are allocated or released, so names stay unique across processes. */
  get registryLock(): string {
    return path.join(ensureDir(this.root), 'registry.lock');
  }
  get setupLock(): string {
    return path.join(ensureDir(this.root), 'setup.lock');
  }
}
