// Bundles the guest agent into one file for the init image. koffi stays outside the bundle: it loads a native
// addon by path, so setup copies its package next to the bundle.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';

mkdirSync('dist/agent-bundle', { recursive: true });
await build({
  entryPoints: ['agent/main.ts'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  external: ['koffi'],
  outfile: 'dist/agent-bundle/agent.cjs',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
});
copyFileSync('proto/agent.proto', 'dist/agent-bundle/agent.proto');
copyFileSync('agent/boot.cjs', 'dist/agent-bundle/boot.cjs');
