// The environment every process a box runs on the host gets (QEMU, its supervisor, passt, virtiofsd, the relay,
// the egress gateway): only what they need. A secret's value may sit in the environment of the command that
// starts a box (--secret NAME@HOST reads $NAME), and a VMM or helper the guest took over must not find it there.
const KEEP = new Set(['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'NODE_EXTRA_CA_CERTS']);

export function helperEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (KEEP.has(k) || k.startsWith('BOXLITE_')) env[k] = v;
  return env;
}
