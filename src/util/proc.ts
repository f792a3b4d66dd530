// Processes found again by pid: a pid is only trusted while its command line still says it is the process we
// started, so a reused pid is never signalled.
import * as fs from 'node:fs';

/** Whether a process with this pid exists (EPERM: it does, and belongs to someone else). */
export function pidAlive(pid: number): boolean {
  if (!(pid > 0)) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The command line of a live process, NUL-separated, or '' when it is gone. */
export function cmdlineOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
}

/** The pid in pidFile if that process is alive and its command line contains every mark. */
export function pidFromFile(pidFile: string, ...marks: string[]): number | null {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  } catch {
    return null;
  }
  if (!(pid > 0)) return null;
  const cmd = cmdlineOf(pid);
  return cmd && marks.every((m) => cmd.includes(m)) ? pid : null;
}

/** Sends a signal to a process, ignoring one that has already gone. */
export function signal(pid: number, sig: NodeJS.Signals = 'SIGTERM'): void {
  try {
    process.kill(pid, sig);
  } catch {}
}
