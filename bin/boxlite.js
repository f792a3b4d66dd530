#!/usr/bin/env node
import { main } from '../dist/src/cli/main.js';

// A closed pipe (boxlite ps | head) ends output quietly, like other CLI tools.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

main(process.argv.slice(2)).then(
  (code) => {
    // Done: file watchers, agent channels or timers of a watch must not keep the process alive (stdout and
    // stderr are synchronous for files and pipes on Linux, so nothing written is lost).
    process.exit(code);
  },
  (e) => {
    process.stderr.write(`boxlite: ${e?.stack ?? e}\n`);
    process.exitCode = 1;
  },
);
