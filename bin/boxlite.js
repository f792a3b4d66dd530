#!/usr/bin/env node
// --version answers before anything is loaded: scripts ask it to see that boxlite is there.
if (process.argv.length === 3 && (process.argv[2] === '--version' || process.argv[2] === 'version')) {
  const { VERSION } = await import('../dist/src/core/version.js');
  process.stdout.write(`boxlite ${VERSION}\n`);
  process.exit(0);
}
const { main } = await import('../dist/src/cli/main.js');

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
