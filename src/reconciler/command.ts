// A project box's declared command: started detached at every start of the box, its output kept in a log in the box.
import type { Runtime } from '../runtime/runtime.js';

const COMMAND_LOG_DIR = '/var/log/boxlite';
export const COMMAND_LOG = `${COMMAND_LOG_DIR}/command.log`;
export const BUSYBOX = '/.boxlite/bin/busybox';

/** Starts the box's declared command, detached; its output goes to a log in the box ('boxlite logs'). */
export async function startCommand(rt: Runtime, id: string, command: string[]): Promise<void> {
  await rt.exec(id, [BUSYBOX, 'sh', '-c', `mkdir -p ${COMMAND_LOG_DIR} && chmod 1777 ${COMMAND_LOG_DIR}`], { user: '0' });
  const { execId } = await rt.startDetached(id, [BUSYBOX, 'sh', '-c', `echo "--- boxlite: command started $(date)" >>${COMMAND_LOG}; exec "$@" >>${COMMAND_LOG} 2>&1`, 'sh', ...command]);
  await rt.setProjectLabel(id, (l) => l && { ...l, command: { execId, startedAt: new Date().toISOString() } });
}

