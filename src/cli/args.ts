// A small argument parser for docker-style commands: options first, then positionals; the command to run in a
// box starts at the first positional past the fixed ones (or after `--`), and its own options are left alone.

export interface OptionSpec {
  short?: string;
  value?: boolean; // takes a value
  multiple?: boolean;
  help: string;
}

export type Parsed = {
  opts: Record<string, string | string[] | boolean | undefined>;
  positionals: string[];
  rest: string[];
};

export class UsageError extends Error {}

/**
 * fixed: how many positionals come before the free-form rest (e.g. 1 for `run SOURCE CMD…`); with -1 every
 * positional is fixed and there is no rest.
 */
export function parseArgs(argv: string[], spec: Record<string, OptionSpec>, fixed: number, command: string): Parsed {
  const opts: Parsed['opts'] = {};
  const positionals: string[] = [];
  const byShort = new Map(Object.entries(spec).filter(([, s]) => s.short).map(([k, s]) => [s.short!, k]));
  let i = 0;
  const set = (name: string, v: string | boolean) => {
    const s = spec[name];
    if (s.multiple) ((opts[name] as string[] | undefined) ?? (opts[name] = [])) && (opts[name] as string[]).push(v as string);
    else opts[name] = v;
  };
  const take = (name: string, inline: string | undefined, flag: string): void => {
    const s = spec[name];
    if (!s.value) {
      if (inline !== undefined) throw new UsageError(`${command}: option ${flag} takes no value`);
      return set(name, true);
    }
    const v = inline ?? argv[++i];
    if (v === undefined) throw new UsageError(`${command}: option ${flag} needs a value`);
    set(name, v);
  };
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      const more = argv.slice(i + 1);
      const need = fixed < 0 ? more.length : Math.max(0, fixed - positionals.length);
      positionals.push(...more.slice(0, need));
      return { opts, positionals, rest: more.slice(need) };
    }
    if (a.startsWith('--') && a.length > 2) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
      if (!spec[name]) throw new UsageError(`${command}: unknown option --${name}${suggest(name, Object.keys(spec))}`);
      take(name, eq > 0 ? a.slice(eq + 1) : undefined, `--${name}`);
    } else if (a.startsWith('-') && a.length > 1 && !/^-\d/.test(a)) {
      // Clustered short flags (-it), the last of which may take a value (-e K=V or -eK=V).
      for (let j = 1; j < a.length; j++) {
        const name = byShort.get(a[j]);
        if (!name) throw new UsageError(`${command}: unknown option -${a[j]}`);
        if (spec[name].value) {
          take(name, j + 1 < a.length ? a.slice(j + 1) : undefined, `-${a[j]}`);
          break;
        }
        set(name, true);
      }
    } else {
      // Past the fixed positionals, the rest is the command line for the box, its options included.
      if (fixed >= 0 && positionals.length === fixed) return { opts, positionals, rest: argv.slice(i) };
      positionals.push(a);
    }
  }
  return { opts, positionals, rest: [] };
}

function suggest(name: string, known: string[]): string {
  const near = known.find((k) => k.startsWith(name.slice(0, 3)));
  return near ? ` (did you mean --${near}?)` : '';
}

export function helpFor(spec: Record<string, OptionSpec>): string {
  return Object.entries(spec)
    .map(([k, s]) => `  ${s.short ? `-${s.short}, ` : '    '}--${k}${s.value ? ' VALUE' : ''}`.padEnd(30) + s.help)
    .join('\n');
}

/** K=V pairs from -e; a bare K takes the value from this process's environment, like docker. */
export function parseEnv(list: string[] | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of list ?? []) {
    const i = kv.indexOf('=');
    if (i === 0) throw new UsageError(`environment "${kv}" has no name: use -e NAME=value`);
    if (i < 0) {
      if (process.env[kv] !== undefined) env[kv] = process.env[kv]!;
    } else env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return env;
}

export function parseIntOpt(v: unknown, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new UsageError(`${what} must be a whole number (got "${v}")`);
  return n;
}
