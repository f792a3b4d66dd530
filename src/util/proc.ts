// Helper processes a box keeps beside its VM (passt, the UDP relay), found again by pid file. A pid is only
// trusted while its command line still names the box, so a reused pid is never signalled.
import * as fs from 'node:fs';

/** The pid in pidFile if that process is alive and its command line contains every mark. */
export function helperPid(pidFile: string, ...marks: string[]): number | null {
  try {
    const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
    const cmd = pid > 0 ? fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8') : '';
    return pid > 0 && marks.every((m) => cmd.includes(m)) ? pid : null;
  } catch {
    return null;
  }
}

/** Asks the helper in pidFile to end, if it is still the one recorded there. */
export function stopHelper(pidFile: string, ...marks: string[]): void {
  const pid = helperPid(pidFile, ...marks);
  if (pid) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {}
  }
}
