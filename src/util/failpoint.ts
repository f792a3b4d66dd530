// Named moments in operations that must survive a crash. With BOXLITE_FAILPOINT=NAME the process announces the
// moment on stderr and kills itself with SIGKILL right there, so a test can land a crash exactly where it means
// to and check that it did (the announcement is the proof). Without the variable this costs one comparison.
import * as fs from 'node:fs';

export function failpoint(name: string): void {
  if (process.env.BOXLITE_FAILPOINT !== name) return;
  fs.writeSync(2, `boxlite: failpoint ${name}\n`);
  process.kill(process.pid, 'SIGKILL');
}
