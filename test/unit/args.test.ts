import { describe, expect, it } from 'vitest';
import { HelpRequested, parseArgs, parseEnv, UsageError, type OptionSpec } from '../../src/cli/args.js';

const spec: Record<string, OptionSpec> = {
  name: { value: true, help: '' },
  env: { short: 'e', value: true, multiple: true, help: '' },
  interactive: { short: 'i', help: '' },
  tty: { short: 't', help: '' },
  rm: { help: '' },
};

describe('parseArgs', () => {
  const cases: [string, string[], number, unknown][] = [
    ['options then source then command', ['--rm', '-e', 'A=1', 'src', 'echo', 'hi'], 1, { opts: { rm: true, env: ['A=1'] }, positionals: ['src'], rest: ['echo', 'hi'] }],
    ['the command keeps its own options', ['src', 'ls', '-la', '--color'], 1, { opts: {}, positionals: ['src'], rest: ['ls', '-la', '--color'] }],
    ['-- separates the command', ['-it', 'box', '--', '-weird'], 1, { opts: { interactive: true, tty: true }, positionals: ['box'], rest: ['-weird'] }],
    ['-- right after options', ['--name=x', '--', 'src', 'cmd'], 1, { opts: { name: 'x' }, positionals: ['src'], rest: ['cmd'] }],
    ['clustered value flag', ['-eK=V', '-e', 'B=2', 'a', 'b'], -1, { opts: { env: ['K=V', 'B=2'] }, positionals: ['a', 'b'], rest: [] }],
    ['no command', ['src'], 1, { opts: {}, positionals: ['src'], rest: [] }],
    ["the command's -h and --help are its own", ['box', 'ls', '-h', '--help'], 1, { opts: {}, positionals: ['box'], rest: ['ls', '-h', '--help'] }],
    ['-h after -- is the command\'s', ['-i', 'box', '--', 'df', '-h'], 1, { opts: { interactive: true }, positionals: ['box'], rest: ['df', '-h'] }],
    ["options after the box are the command's", ['box', '--name', 'x', '-e', 'K=V', '-h'], 1, { opts: {}, positionals: ['box'], rest: ['--name', 'x', '-e', 'K=V', '-h'] }],
    ['an empty value is a value', ['-e', '', 'box', 'id'], 1, { opts: { env: [''] }, positionals: ['box'], rest: ['id'] }],
    ['a value that looks like an option is still a value', ['-e', '-x', '--name', '--rm', 'src'], 1, { opts: { env: ['-x'], name: '--rm' }, positionals: ['src'], rest: [] }],
    ['a value that looks like the command is still a value', ['--name', 'x', '-e', 'A=1', 'src', 'cmd'], 1, { opts: { name: 'x', env: ['A=1'] }, positionals: ['src'], rest: ['cmd'] }],
  ];
  for (const [what, argv, fixed, want] of cases) {
    it(what, () => expect(parseArgs(argv, spec, fixed, 'run')).toEqual(want));
  }

  it('rejects unknown options, naming a close one', () => {
    expect(() => parseArgs(['--nmae', 'x'], spec, 1, 'run')).toThrow(UsageError);
    expect(() => parseArgs(['--interact'], spec, 1, 'run')).toThrow('run: unknown option --interact (did you mean --interactive?)');
    expect(() => parseArgs(['-x'], spec, 1, 'run')).toThrow('run: unknown option -x');
  });

  it('-h or --help among boxlite\'s own options asks for help', () => {
    expect(() => parseArgs(['-h'], spec, 1, 'run')).toThrow(HelpRequested);
    expect(() => parseArgs(['-it', '--help', 'box', 'ls'], spec, 1, 'run')).toThrow(HelpRequested);
  });

  it('rejects a missing value and a value given to a flag', () => {
    expect(() => parseArgs(['--name'], spec, 1, 'run')).toThrow('run: option --name needs a value');
    expect(() => parseArgs(['--rm=yes'], spec, 1, 'run')).toThrow('run: option --rm takes no value');
  });
});

describe('parseEnv', () => {
  it('parses NAME=value, keeps = in values, and passes bare names through from the environment', () => {
    process.env.BOXLITE_TEST_PASS = 'through';
    expect(parseEnv(['A=1', 'B=x=y', 'BOXLITE_TEST_PASS', 'UNSET_BOXLITE_VAR'])).toEqual({ A: '1', B: 'x=y', BOXLITE_TEST_PASS: 'through' });
    expect(() => parseEnv(['=1'])).toThrow('environment "=1" has no name');
  });
});
