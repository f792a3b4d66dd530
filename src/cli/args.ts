// Arguments of docker-style commands. Node's util.parseArgs (maintained with Node, strict, no dependency) parses
// boxlite's own options; the one thing no parser offers is where they end: the command to run in a box starts at
// the first positional past the fixed ones (or after `--`), and everything from there on, -h and --help included,
// belongs to that command.
import { parseArgs as nodeParseArgs, type ParseArgsConfig } from 'node:util';

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

/** -h or --help among a command's own options: main prints the command's help. */
export class HelpRequested extends Error {}

const HELP: OptionSpec = { short: 'h', help: 'show this help' };

/**
 * fixed: how many positionals come before the free-form rest (e.g. 1 for `run SOURCE CMD…`); with -1 every
 * positional is fixed and there is no rest.
 */
export function parseArgs(argv: string[], spec: Record<string, OptionSpec>, fixed: number, command: string): Parsed {
  const withHelp = { help: HELP, ...spec };
  const { own, after, rest } = split(argv, withHelp, fixed);
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const [name, s] of Object.entries(withHelp)) {
    options[name] = { type: s.value ? 'string' : 'boolean', ...(s.short ? { short: s.short } : {}), ...(s.multiple ? { multiple: true } : {}) };
  }
  let parsed;
  try {
    parsed = nodeParseArgs({ args: own, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(`${command}: ${explain(e as Error & { code?: string }, Object.keys(spec))}`);
  }
  const { help, ...opts } = parsed.values as Parsed['opts'];
  if (help) throw new HelpRequested();
  return { opts, positionals: [...parsed.positionals, ...after], rest };
}

/** Where boxlite's options end: own (options and fixed positionals), after (fixed positionals given after `--`),
 *  rest (the box's command line). A value given as the next argument is joined to its option (--name=V, -tV) so
 *  that it is taken whatever it looks like (-t -5), as getopt does. Unknown options stay, for the parser to refuse. */
function split(argv: string[], spec: Record<string, OptionSpec>, fixed: number): { own: string[]; after: string[]; rest: string[] } {
  const byShort = new Map(Object.entries(spec).filter(([, s]) => s.short).map(([name, s]) => [s.short!, { name, ...s }]));
  const own: string[] = [];
  let positionals = 0;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    // Past the fixed positionals everything is the box's command line, its options included (docker's rule).
    if (fixed > 0 && positionals === fixed) return { own, after: [], rest: argv.slice(a === '--' ? i + 1 : i) };
    if (a === '--') {
      const more = argv.slice(i + 1);
      const need = fixed < 0 ? more.length : Math.max(0, fixed - positionals);
      return { own, after: more.slice(0, need), rest: more.slice(need) };
    }
    if (a.startsWith('--') && a.length > 2) {
      own.push(!a.includes('=') && spec[a.slice(2)]?.value && i + 1 < argv.length ? `${a}=${argv[++i]}` : a);
    } else if (a.startsWith('-') && a.length > 1) {
      // Clustered short flags (-it); the last may take a value, given in the same argument (-eK=V) or the next
      // (joined as --name=V: an empty value stays a value).
      let j = 1;
      while (j < a.length && byShort.has(a[j]) && !byShort.get(a[j])!.value) j++;
      const valued = j < a.length ? byShort.get(a[j]) : undefined;
      if (!valued?.value) own.push(a);
      else {
        if (j > 1) own.push(a.slice(0, j));
        if (j + 1 < a.length) own.push(`--${valued.name}=${a.slice(j + 1)}`);
        else if (i + 1 < argv.length) own.push(`--${valued.name}=${argv[++i]}`);
        else own.push(`-${a[j]}`); // the parser says the value is missing
      }
    } else {
      positionals++;
      own.push(a);
    }
  }
  return { own, after: [], rest: [] };
}

/** util.parseArgs's errors, said the way boxlite says them. */
function explain(e: Error & { code?: string }, known: string[]): string {
  const flag = /'(--?[^' ,]+)/.exec(e.message)?.[1] ?? '';
  const long = /--([\w-]+)/.exec(e.message)?.[0] ?? flag;
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${flag}${flag.startsWith('--') ? suggest(flag.slice(2), known) : ''}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return /does not take an argument/.test(e.message) ? `option ${long} takes no value` : `option ${long} needs a value`;
    default:
      return e.message;
  }
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
