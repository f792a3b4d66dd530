// koffi (calls into libc that Node does not offer), loaded at its first call: loading its native module costs a
// CLI start ~70 ms, and `ps`, `--version` or a lock nobody contends never need it.
import { createRequire } from 'node:module';
import type koffiModule from 'koffi';

let lib: typeof koffiModule | null = null;

export function koffiLib(): typeof koffiModule {
  return (lib ??= createRequire(import.meta.url)('koffi') as typeof koffiModule);
}
