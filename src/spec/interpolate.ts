// ${VAR} interpolation in project files, as compose does it:
//   ${VAR} / $VAR        the value, or "" (with a warning) when unset
//   ${VAR:-default}      default when VAR is unset or empty;  ${VAR-default}  only when unset
//   ${VAR:?message}      an error when VAR is unset or empty; ${VAR?message}  only when unset
//   $$                   a literal $

export class InterpolationError extends Error {}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

/** warn gets the message and the index in s of the "$" it is about. */
export type Warn = (m: string, at: number) => void;

export function interpolate(s: string, env: Record<string, string | undefined>, warn: Warn): string {
  let out = '';
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c !== '$') {
      out += c;
      i++;
      continue;
    }
    const next = s[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (next === '{') {
      const end = s.indexOf('}', i + 2);
      if (end < 0) throw new InterpolationError(`unterminated "\${" in "${s}": close it with "}" (write $$ for a literal $)`);
      const at = i;
      out += expand(s.slice(i + 2, end), env, (m) => warn(m, at));
      i = end + 1;
      continue;
    }
    const m = NAME.exec(s.slice(i + 1));
    if (m) {
      out += lookup(m[0], env, (t) => warn(t, i));
      i += 1 + m[0].length;
      continue;
    }
    out += '$';
    i++;
  }
  return out;
}

function lookup(name: string, env: Record<string, string | undefined>, warn: (m: string) => void): string {
  const v = env[name];
  if (v === undefined) {
    // Most often a shell variable of a command, which compose's rule interpolates too: say how to keep it.
    warn(`variable ${name} is not set: using an empty string (write $$${name} to keep a literal $${name} for the box's shell, set ${name}, or write \${${name}:-default})`);
    return '';
  }
  return v;
}

function expand(body: string, env: Record<string, string | undefined>, warn: (m: string) => void): string {
  const m = NAME.exec(body);
  if (!m) throw new InterpolationError(`"\${${body}}" is not a variable: write \${NAME}, \${NAME:-default} or \${NAME:?message}`);
  const name = m[0];
  const rest = body.slice(name.length);
  if (rest === '') return lookup(name, env, warn);
  const v = env[name];
  const op = /^(:?[-?])/.exec(rest);
  if (!op) throw new InterpolationError(`"\${${body}}": after the name, expected :-, -, :? or ? (as in \${${name}:-default})`);
  const arg = rest.slice(op[1].length);
  const missing = op[1].startsWith(':') ? v === undefined || v === '' : v === undefined;
  if (op[1].endsWith('-')) return missing ? interpolate(arg, env, (m2) => warn(m2)) : v!;
  if (missing) throw new InterpolationError(`${name} is required: ${arg || `set ${name} in the environment or in .env`}`);
  return v!;
}

/** KEY=VALUE lines of a .env file: comments, blank lines, "export " and quotes as a shell user would write them. */
export function parseDotenv(text: string, file: string): Record<string, string> {
  const out: Record<string, string> = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new InterpolationError(`${file}:${i + 1}: expected NAME=value, got "${line}"`);
    let v = m[2];
    if (/^".*"$/.test(v)) v = v.slice(1, -1).replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
    else if (/^'.*'$/.test(v)) v = v.slice(1, -1);
    else v = v.replace(/\s+#.*$/, '');
    out[m[1]] = v;
  });
  return out;
}
