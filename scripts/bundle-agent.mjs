// Bundles the guest agent into one file for the init image. koffi stays outside the bundle: it loads a native
// addon by path, so setup copies its package next to the bundle.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

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
// The agent contract compiled ahead: the host's agent client and the guest's agent load this descriptor instead of
// parsing the .proto text at every start (under TCG the guest's parse is the costlier). Field names are
// camel-cased as proto-loader's keepCase: false would make them. protobufjs is proto-loader's own.
const protobuf = createRequire(createRequire(import.meta.url).resolve('@grpc/proto-loader'))('protobufjs');
const root = new protobuf.Root();
root.loadSync('proto/agent.proto', { keepCase: false });
writeFileSync('dist/agent-bundle/agent.json', JSON.stringify(root.toJSON()));
copyFileSync('agent/boot.cjs', 'dist/agent-bundle/boot.cjs');
