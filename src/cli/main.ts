// The boxlite command line: global options, dispatch to one command group per file, and one way of reporting
// errors (a BoxliteError's message names the thing and the fix; anything else is a bug, shown with its stack).
import { printable } from '../util/printable.js';
import { BoxliteError } from '../core/errors.js';
import { VERSION } from '../core/version.js';
import { projectRuntime } from '../reconciler/project.js';
import { helpFor, HelpRequested, parseArgs, UsageError } from './args.js';
import { stderr, stdout, type Cli, type Command, type ProjectContext } from './command.js';
import { BOX_COMMANDS, EVENTS_COMMAND } from './boxes.js';
import { STATE_COMMANDS } from './state.js';
import { IMAGE_COMMANDS } from './images.js';
import { VOLUME_COMMANDS } from './volumes.js';
import { HOST_COMMANDS } from './host.js';
import { STATS_COMMANDS } from './stats.js';
import { completionScript } from './completion.js';
import { K8S_COMMANDS } from './k8s.js';
import { PUBLISH_COMMANDS } from './publish.js';
import { SERVE_COMMAND } from './serve.js';
import { hostOption, remoteBoxes, REMOTE_COMMANDS } from './remote.js';
import { PROJECT_COMMANDS, globalOptions, installNameResolver } from './project.js';

const COMMANDS: Record<string, Command> = {
  setup: HOST_COMMANDS.setup,
  ...IMAGE_COMMANDS,
  ...PUBLISH_COMMANDS,
  ...BOX_COMMANDS,
  events: EVENTS_COMMAND,
  ...STATE_COMMANDS,
  ...STATS_COMMANDS,
  doctor: HOST_COMMANDS.doctor,
  serve: SERVE_COMMAND,
  ...VOLUME_COMMANDS,
  ...PROJECT_COMMANDS,
  ...K8S_COMMANDS,
  completion: {
    usage: 'completion bash|zsh',
    help: 'print a shell completion script: eval "$(boxlite completion bash)"',
    opts: {},
    async run({ out }, args, spec) {
      const p = parseArgs(args, spec, -1, 'completion');
      out(completionScript(p.positionals[0], COMMANDS));
      return 0;
    },
  },
};

function usage(): string {
  return [
    'boxlite — local micro-VM sandboxes',
    '',
    'Usage: boxlite [-f FILE] [-p PROJECT] COMMAND [OPTIONS]',
    '',
    ...Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(9)} ${c.help}`),
    '',
    "Run 'boxlite COMMAND --help' for a command's options. -f/-p name a project (boxlite.yaml) for plan, up, down,\nconfig, watch and for boxes by their name in it. Home: $BOXLITE_HOME (default ~/.boxlite).",
  ].join('\n');
}

export async function main(argvAll: string[]): Promise<number> {
  let project: ProjectContext;
  let argv: string[];
  let host: string | undefined;
  let argvIn: string[];
  try {
    ({ host, rest: argvIn } = hostOption(argvAll));
    host ??= process.env.BOXLITE_HOST || undefined;
    ({ ctx: project, rest: argv } = globalOptions(argvIn));
  } catch (e) {
    stderr(`boxlite: ${printable((e as Error).message)}`);
    return 1;
  }
  const [cmd, ...args] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    stdout(usage());
    return 0;
  }
  if (cmd === '--version' || cmd === 'version') {
    stdout(`boxlite ${VERSION}`);
    return 0;
  }
  if (host && cmd !== 'serve') return remote(host, cmd, args);
  const c = COMMANDS[cmd];
  if (!c) {
    stderr(`boxlite: unknown command "${cmd}"\n\n${usage()}`);
    return 1;
  }
  const rt = projectRuntime({ say: stderr });
  installNameResolver(rt, project);
  const cli: Cli = { rt, project, out: stdout, err: stderr };
  try {
    return await c.run(cli, args, c.opts);
  } catch (e) {
    // -h/--help among the command's own options (not in the command it runs in a box).
    if (e instanceof HelpRequested) {
      stdout(`Usage: boxlite ${c.usage}\n\n${c.help}\n\n${helpFor(c.opts)}\n  -h, --help                  show this help`);
      return 0;
    }
    // An error may quote the guest (its console's last lines, an agent's message): shown as printable text only.
    if (e instanceof UsageError) stderr(`boxlite: ${printable(e.message)}${c.ownHelp ? '' : `\nUsage: boxlite ${c.usage}`}`);
    else if (e instanceof BoxliteError) stderr(`boxlite: ${printable(e.message)}`);
    else stderr(`boxlite: ${printable(String((e as Error).stack ?? e))}`);
    return cmd === 'run' || cmd === 'exec' ? 125 : 1;
  } finally {
    rt.close();
  }
}

/** A command against a boxlite server (--host / BOXLITE_HOST). */
async function remote(host: string, cmd: string, args: string[]): Promise<number> {
  const c = REMOTE_COMMANDS[cmd];
  if (!c) {
    stderr(`boxlite: ${cmd} does not work against a server (--host ${host}): ${Object.keys(REMOTE_COMMANDS).join(', ')} do; run it on the server itself`);
    return 1;
  }
  try {
    return await c.run(remoteBoxes(host), stdout, args, c.opts);
  } catch (e) {
    if (e instanceof HelpRequested) {
      stdout(`Usage: boxlite --host URL ${c.usage}\n\n${c.help}\n\n${helpFor(c.opts)}\n  -h, --help                  show this help`);
      return 0;
    }
    // A server's answer may quote its boxes: printable text only, as for a local command.
    if (e instanceof UsageError) stderr(`boxlite: ${printable(e.message)}\nUsage: boxlite --host URL ${c.usage}`);
    else if (e instanceof BoxliteError) stderr(`boxlite: ${printable(e.message)}`);
    else stderr(`boxlite: ${printable(String((e as Error).stack ?? e))}`);
    return cmd === 'exec' ? 125 : 1;
  }
}
