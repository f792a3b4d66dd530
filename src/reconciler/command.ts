// A project box's declared command: started detached at every start of the box, its output kept in a log in the box.
import type { Runtime } from '../runtime/runtime.js';
import { BUSYBOX } from '../core/guest.js';
import { updateProjectLabel } from './label.js';

const COMMAND_LOG_DIR = '/var/log/boxlite';
export const COMMAND_LOG = `${COMMAND_LOG_DIR}/command.log`;

/** Starts the box's declared command, detached; its output goes to a log in the box ('boxlite logs'). */
export async function startCommand(rt: Runtime, id: string, command: string[]): Promise<void> {
  await rt.exec(id, [BUSYBOX, 'sh', '-c', `mkdir -p ${COMMAND_LOG_DIR} && chmod 1777 ${COMMAND_LOG_DIR}`], { user: '0' });
  const { execId } = await rt.startDetached(id, [BUSYBOX, 'sh', '-c', `echo "--- boxlite: command started $(date)" >>${COMMAND_LOG}; exec "$@" >>${COMMAND_LOG} 2>&1`, 'sh', ...command]);
  await updateProjectLabel(rt, id, (l) => l && { ...l, command: { execId, startedAt: new Date().toISOString() } });
}

/** The last lines of the command's log (all of it without n). */
export async function commandLog(rt: Runtime, id: string, n?: number): Promise<string> {
  const r = await rt.exec(id, [BUSYBOX, 'sh', '-c', `[ -f ${COMMAND_LOG} ] && ${n !== undefined ? `tail -n ${Math.max(0, Math.floor(n))}` : 'cat'} ${COMMAND_LOG}; true`]);
  return r.stdout;
}
