// What every CLI command gets: the runtime, the project named by -f/-p before the command (compose style), and
// where output goes. No globals: main builds one of these per invocation.
import type { Runtime } from '../runtime/runtime.js';
import type { OptionSpec } from './args.js';

/** -f/-p given before the command (boxlite -f x.yaml -p demo up). */
export interface ProjectContext {
  file?: string;
  project?: string;
}

export interface Cli {
  rt: Runtime;
  project: ProjectContext;
  out: (line: string) => void;
  err: (line: string) => void;
}

export interface Command {
  usage: string;
  help: string;
  opts: Record<string, OptionSpec>;
  /** Sub-commands parse their own arguments and print their own help (images, volume). */
  ownHelp?: boolean;
  run: (cli: Cli, args: string[], spec: Record<string, OptionSpec>) => Promise<number>;
}

export const stdout = (s: string) => process.stdout.write(s + '\n');
export const stderr = (s: string) => process.stderr.write(s + '\n');
