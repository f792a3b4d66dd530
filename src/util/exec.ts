import { spawn, type SpawnOptions } from 'node:child_process';

export class CommandError extends Error {
  constructor(message: string, readonly stderr: string, readonly code: number | null) {
    super(message);
  }
}

/** Runs a host command to completion; rejects with its stderr when it fails. */
export function run(cmd: string, args: string[], opts: SpawnOptions & { input?: string | Buffer } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d) => (out += d));
    child.stderr?.on('data', (d) => (err += d));
    child.on('error', (e) =>
      reject(new CommandError(`cannot run ${cmd}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not installed' : e.message}`, '', null)),
    );
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new CommandError(`${cmd} ${args.join(' ')} failed (exit ${code}): ${err.trim() || out.trim()}`, err, code));
    });
    child.stdin?.end(opts.input ?? undefined);
  });
}
