// A process in a box attached to this terminal: exec and run. -i sends stdin, -t asks for a terminal (raw mode and
// size changes follow), --timeout kills the command (exit 124, as timeout(1) does).
import type { Execution } from '../runtime/execution.js';
import type { ExecOptions } from '../runtime/execution.js';
import { parseEnv, UsageError, type OptionSpec } from './args.js';
import { stderr } from './command.js';

export const EXEC_OPTS: Record<string, OptionSpec> = {
  interactive: { short: 'i', help: 'keep stdin open and send it to the command' },
  tty: { short: 't', help: 'allocate a terminal for the command' },
  env: { short: 'e', value: true, multiple: true, help: 'set an environment variable (NAME=value, or NAME to pass it on)' },
  workdir: { short: 'w', value: true, help: 'working directory for commands in the box' },
  user: { short: 'u', value: true, help: 'user for commands in the box (name, uid or uid:gid)' },
  timeout: { value: true, help: 'kill the command after this many seconds (exit status 124)' },
};

export interface TerminalOptions {
  interactive: boolean;
  timeoutS?: number;
  exec: ExecOptions & { tty: boolean };
}

export function execOptions(o: Record<string, unknown>): TerminalOptions {
  const timeoutS = o.timeout !== undefined ? Number(o.timeout) : undefined;
  if (timeoutS !== undefined && !(timeoutS > 0)) throw new UsageError(`--timeout must be a positive number of seconds (got "${o.timeout}")`);
  const interactive = !!o.interactive;
  // A terminal fed by a pipe (or by nothing, without -i) never sees input or end of input: the command would wait.
  if (o.tty && !process.stdin.isTTY) {
    throw new UsageError(interactive ? '-t: stdin is not a terminal: drop -t and send it with -i alone' : '-t: stdin is not a terminal, so the command would wait for input that never comes: use -i to send stdin to it, or -it from a terminal')
  }
  return {
    interactive,
    timeoutS,
    exec: {
      tty: !!o.tty,
      stdin: interactive,
      // A terminal that reports 0x0 (a pty nobody sized, as under script(1)) has no size: take the usual one.
      rows: process.stdout.rows || 24,
      cols: process.stdout.columns || 80,
      env: parseEnv(o.env as string[] | undefined),
      cwd: o.workdir as string | undefined,
      user: o.user as string | undefined,
      timeoutMs: timeoutS ? Math.round(timeoutS * 1000) : undefined,
    },
  };
}

/** Runs an execution attached to this terminal; returns the CLI's exit status. */
export async function attachTerminal(ex: Pick<Execution, 'stdin' | 'stdout' | 'stderr' | 'wait' | 'resize'>, o: TerminalOptions): Promise<number> {
  const stdin = process.stdin;
  const raw = o.exec.tty && o.interactive && stdin.isTTY;
  const onResize = () => void ex.resize(process.stdout.rows || 24, process.stdout.columns || 80).catch(() => {});
  if (raw) {
    stdin.setRawMode(true);
    process.stdout.on('resize', onResize);
  }
  if (o.interactive) stdin.pipe(ex.stdin);
  ex.stdout.pipe(process.stdout, { end: false });
  ex.stderr.pipe(process.stderr, { end: false });
  try {
    const s = await ex.wait();
    if (s.timedOut) {
      stderr(`boxlite: the command was killed after the ${o.timeoutS} s timeout`);
      return 124;
    }
    return s.exitCode;
  } finally {
    if (raw) {
      stdin.setRawMode(false);
      process.stdout.off('resize', onResize);
    }
    stdin.unpipe();
    stdin.pause();
    stdin.destroy();
  }
}
