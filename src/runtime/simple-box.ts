// SimpleBox: the one-object way to use a box, familiar to BoxLite SDK users.
//   await using box = new SimpleBox({ image: './rootfs' });
//   const r = await box.exec('echo', 'hi');   // { exitCode, stdout, stderr }
// The box is created and booted on first use; disposal stops it and removes it unless keep: true.
import { Runtime, type Box } from './runtime.js';
import type { CreateOptions } from './options.js';
import type { ExecOptions, ExecResult, Execution } from './execution.js';

export interface SimpleBoxOptions extends Omit<CreateOptions, 'image' | 'rootfs' | 'autoRemove'> {
  /** An image reference (debian:12, ghcr.io/org/tool@sha256:…), or a path to a root filesystem folder or an OCI layout. */
  image: string;
  /** Keep the box (stopped) after disposal instead of removing it. */
  keep?: boolean;
  runtime?: Runtime;
}

export class SimpleBox implements AsyncDisposable {
  private box: Box | null = null;
  private starting: Promise<Box> | null = null;
  private readonly runtime: Runtime;
  private readonly ownsRuntime: boolean;

  constructor(private readonly opts: SimpleBoxOptions) {
    this.ownsRuntime = !opts.runtime;
    this.runtime = opts.runtime ?? new Runtime();
  }

  /** Creates and boots the box if that has not happened yet. */
  start(): Promise<Box> {
    this.starting ??= (async () => {
      const { image, keep: _keep, runtime: _runtime, ...create } = this.opts;
      const box = await this.runtime.create({ ...create, image });
      this.box = box;
      await box.start();
      return box;
    })();
    return this.starting;
  }

  get id(): string | undefined {
    return this.box?.id;
  }

  /** Runs a command to completion: exec('ls', '-l') or exec('ls', ['-l'], { cwd: '/tmp' }). */
  async exec(cmd: string, ...rest: (string | string[] | (ExecOptions & { input?: string | Buffer }))[]): Promise<ExecResult> {
    const args: string[] = [];
    let opts: ExecOptions & { input?: string | Buffer } = {};
    for (const r of rest) {
      if (typeof r === 'string') args.push(r);
      else if (Array.isArray(r)) args.push(...r);
      else opts = r;
    }
    return (await this.start()).exec([cmd, ...args], opts);
  }

  /** Starts a command and returns its streaming handle (stdout, stderr, stdin, wait, kill). */
  async spawn(argv: string[], opts?: ExecOptions): Promise<Execution> {
    return (await this.start()).spawn(argv, opts);
  }

  async stop(): Promise<void> {
    if (this.box) await this.box.stop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      if (this.starting) await this.starting.catch(() => {});
      if (this.box) {
        if (this.opts.keep) await this.box.stop();
        else await this.box.remove({ force: true });
      }
    } finally {
      if (this.ownsRuntime) this.runtime.close();
    }
  }
}
