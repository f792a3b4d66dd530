// The helper processes of a box — passt (network), virtiofsd (host folders), the UDP relay — started one way:
// detached (they outlive the CLI, like QEMU), each with a pid file helpers/NAME.pid in the box's folder that holds
// its pid and a mark its command line contains. The VM's supervisor ends every helper listed there when QEMU
// exits (see qemu.ts); stopHelpers does the same for a VM that never came up.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tailLines } from '../util/fs.js';
import { cmdlineOf, signal } from '../util/proc.js';
import { helperEnv } from './helper-env.js';

/** The folder (inside a box's folder) of its helpers' pid files; the supervisor script knows this name too. */
export const HELPERS_DIR = 'helpers';

const pidFile = (dir: string, name: string) => path.join(dir, HELPERS_DIR, `${name}.pid`);

export interface HelperSpec {
  /** The box's folder. */
  dir: string;
  /** Unique per box: passt, fs-0, udp-relay. */
  name: string;
  /** What it is, for messages: "the network helper (passt)". */
  what: string;
  command: string;
  args: string[];
  /** A string in the helper's command line, so that a reused pid is never taken for it. */
  mark: string;
  /** Its own output goes here (also what a failure message quotes). */
  log: string;
  /** Variables it gets beside the helpers' own environment. */
  env?: Record<string, string>;
  /** Open files handed to it as fds 3, 4, … (a seccomp filter for bubblewrap). */
  fds?: number[];
  /** Ready when this file exists (a socket it creates), or when it prints this line on stdout. */
  ready: { file: string } | { line: string };
  timeoutMs?: number;
}

/** What the user can do about a helper's failure, from its own last words (null when nothing is known to help). */
export function helperFix(log: string): string | null {
  if (/No permissions to create new namespace|creating new namespace failed|setting up uid map: Permission denied|unshare failed: Operation not permitted/i.test(log)) {
    return 'this host does not let a normal user make user namespaces, which the helper runs in: allow them (sysctl kernel.unprivileged_userns_clone=1, and user.max_user_namespaces above 0; on Ubuntu also kernel.apparmor_restrict_unprivileged_userns=0), or run boxlite as root';
  }
  if (/Too many open files|EMFILE/i.test(log)) return 'the open-file limit was reached: raise it (ulimit -n) and start the box again';
  if (/No space left on device|ENOSPC/i.test(log)) return 'the disk holding the home is full: free some space and start the box again';
  return null;
}

/** The helper's pid while it runs, else null. */
export function helperPid(dir: string, name: string): number | null {
  let lines: string[];
  try {
    lines = fs.readFileSync(pidFile(dir, name), 'utf8').split('\n');
  } catch {
    return null;
  }
  const pid = Number(lines[0]);
  const mark = lines[1] || dir;
  return pid > 0 && cmdlineOf(pid).includes(mark) ? pid : null;
}

export function stopHelper(dir: string, name: string): void {
  const pid = helperPid(dir, name);
  if (pid) signal(pid, 'SIGTERM');
}

/** Ends every helper of a box that still runs. */
export function stopHelpers(dir: string): void {
  let names: string[] = [];
  try {
    names = fs.readdirSync(path.join(dir, HELPERS_DIR));
  } catch {
    return;
  }
  for (const n of names) if (n.endsWith('.pid')) stopHelper(dir, n.slice(0, -4));
}

/** Starts a helper detached and resolves once it is ready; on failure it is ended and the error quotes its log. */
export async function startHelper(s: HelperSpec): Promise<number> {
  stopHelper(s.dir, s.name);
  fs.mkdirSync(path.join(s.dir, HELPERS_DIR), { recursive: true, mode: 0o700 });
  if ('file' in s.ready) fs.rmSync(s.ready.file, { force: true });
  const log = fs.openSync(s.log, 'w', 0o600);
  const byLine = 'line' in s.ready;
  const child = spawn(s.command, s.args, { detached: true, env: { ...helperEnv(), ...s.env }, stdio: ['ignore', byLine ? 'pipe' : log, log, ...(s.fds ?? [])] });
  fs.closeSync(log);
  let exited: number | null = null;
  const onExit = (code: number | null) => (exited = code ?? -1);
  child.on('exit', onExit);
  child.on('error', () => (exited = -1));
  fs.writeFileSync(pidFile(s.dir, s.name), `${child.pid}\n${s.mark}\n`, { mode: 0o600 });
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  const deadline = Date.now() + (s.timeoutMs ?? 10_000);
  try {
    for (;;) {
      if ('file' in s.ready ? fs.existsSync(s.ready.file) : out.includes(`${s.ready.line}\n`)) break;
      if (exited !== null || Date.now() > deadline) {
        const why = tailLines(s.log, 5).join(' ');
        const fix = helperFix(why);
        throw new Error(`${s.what} ${exited !== null ? `exited with status ${exited}` : 'did not start'}${why ? `: ${why}` : ''}${fix ? `; ${fix}` : ''}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  } catch (e) {
    if (child.pid) signal(child.pid, 'SIGKILL');
    throw e;
  }
  child.off('exit', onExit); // from here on it lives on its own
  child.stdout?.destroy();
  child.unref();
  return child.pid!;
}
