// CodeBox: a SimpleBox for running Python, as BoxLite's SDK has it: run(code) returns what the code printed and
// throws ExecError when it fails; installPackage(s) uses pip in the box.
import * as fs from 'node:fs';
import { ExecError, InvalidOptionError } from '../core/errors.js';
import { SimpleBox, type SimpleBoxOptions } from './simple-box.js';

/** The box's python: python3 where there is one (Debian), else python (the python images). */
const PYTHON = ['sh', '-c', 'p=$(command -v python3 || command -v python) || { echo "no python in this box" >&2; exit 127; }; exec "$p" "$@"', 'python'];

export class CodeBox extends SimpleBox {
  constructor(opts: SimpleBoxOptions = {}) {
    super({ ...opts, image: opts.image ?? (opts.rootfsPath ? undefined : 'python:slim') });
  }

  /** Runs Python source; resolves with its standard output. */
  async run(code: string): Promise<string> {
    return this.python(['-c', code], 'python code');
  }

  /** Runs a Python file of the host. */
  async runScript(hostPath: string): Promise<string> {
    return this.run(fs.readFileSync(hostPath, 'utf8'));
  }

  async installPackage(name: string): Promise<string> {
    return this.installPackages(name);
  }

  async installPackages(...names: string[]): Promise<string> {
    const bad = names.find((n) => typeof n !== 'string' || !n || n.startsWith('-'));
    if (bad !== undefined) throw new InvalidOptionError(`installPackages: ${JSON.stringify(bad)} is not a package name (names cannot be empty or start with '-')`);
    return this.python(['-m', 'pip', 'install', '--quiet', ...names], `pip install ${names.join(' ')}`);
  }

  private async python(args: string[], what: string): Promise<string> {
    const [cmd, ...rest] = PYTHON;
    const r = await this.exec(cmd, [...rest, ...args]);
    if (r.exitCode !== 0) throw new ExecError(`${what} failed with exit status ${r.exitCode}: ${r.stderr.trim().split('\n').slice(-3).join('\n')}`, what, r.exitCode, r.stderr);
    return r.stdout;
  }
}
