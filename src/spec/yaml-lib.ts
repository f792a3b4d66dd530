// The YAML parser, loaded when a file is first parsed rather than when the CLI starts: `boxlite ps`, `exec` and
// `--version` never read a boxlite.yaml and should not pay for loading it. Synchronous (the parser's CommonJS
// build), so loading a project stays a plain function call.
import { createRequire } from 'node:module';

let lib: typeof import('yaml') | null = null;

export function yamlLib(): typeof import('yaml') {
  return (lib ??= createRequire(import.meta.url)('yaml') as typeof import('yaml'));
}
