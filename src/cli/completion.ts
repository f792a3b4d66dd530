// boxlite completion bash|zsh: a completion script made from the command table itself, so it never lists a
// command or option that does not exist. Box names come from `boxlite ps -aq` as the user types.
import { UsageError } from './args.js';
import type { Command } from './command.js';

/** Commands whose positionals are boxes. */
const TAKES_BOXES = ['start', 'stop', 'restart', 'rm', 'exec', 'pause', 'resume', 'inspect', 'port', 'logs', 'events', 'stats', 'fork', 'clone', 'export', 'resize', 'snapshot', 'cp'];

function bash(commands: Record<string, Command>): string {
  const options = Object.entries(commands).map(([name, c]) => {
    const flags = Object.entries(c.opts).flatMap(([k, o]) => [`--${k}`, ...(o.short ? [`-${o.short}`] : [])]);
    return `    ${name}) opts="${[...flags, '--help'].join(' ')}" ;;`;
  });
  return `# boxlite bash completion: eval "$(boxlite completion bash)" (or save it in /etc/bash_completion.d/boxlite)
_boxlite() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" cmd="" i opts=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in
      -f|-p) ((i++)) ;;
      -*) ;;
      *) cmd="\${COMP_WORDS[i]}"; break ;;
    esac
  done
  if [ -z "$cmd" ]; then
    COMPREPLY=($(compgen -W "${Object.keys(commands).join(' ')} -f -p --help --version" -- "$cur"))
    return
  fi
  case "$cmd" in
${options.join('\n')}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    return
  fi
  case "$cmd" in
    ${TAKES_BOXES.filter((c) => commands[c]).join('|')})
      COMPREPLY=($(compgen -W "$(boxlite ps -aq 2>/dev/null)" -- "$cur")) ;;
    *) COMPREPLY=($(compgen -f -- "$cur")) ;;
  esac
}
complete -F _boxlite boxlite
`;
}

export function completionScript(shell: string | undefined, commands: Record<string, Command>): string {
  if (shell === 'bash') return bash(commands);
  // zsh runs bash completion functions through bashcompinit: one script to keep right, not two.
  if (shell === 'zsh') return `# boxlite zsh completion: eval "$(boxlite completion zsh)"\nautoload -U +X compinit && compinit\nautoload -U +X bashcompinit && bashcompinit\n${bash(commands)}`;
  throw new UsageError(`completion: say which shell: boxlite completion bash, or boxlite completion zsh (got ${shell ? `"${shell}"` : 'nothing'})`);
}
