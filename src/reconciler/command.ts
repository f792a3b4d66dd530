// A project box's declared command: started detached at every start of the box. Its output goes to the box's log
// (the guest agent stamps each line and sends it to the host, see agent/logport.ts), so `boxlite logs` reads it from
// the host whatever the box's state.
import type { Runtime } from '../runtime/runtime.js';
import { BUSYBOX } from '../core/guest.js';
import { GUEST_LOG_FIFO } from '../core/protocol.js';
import { updateProjectLabel } from './label.js';

/** Starts the box's declared command, detached, its output (stdout and stderr) into the box's log. */
export async function startCommand(rt: Runtime, id: string, command: string[]): Promise<void> {
  // A box whose VM has no log port (started by an older boxlite) has no FIFO: its command's output is dropped.
  const script = `L=${GUEST_LOG_FIFO}; [ -p $L ] || L=/dev/null; echo "--- boxlite: command started" >>$L; exec "$@" >>$L 2>&1`;
  const { execId } = await rt.startDetached(id, [BUSYBOX, 'sh', '-c', script, 'sh', ...command]);
  await updateProjectLabel(rt, id, (l) => l && { ...l, command: { execId, startedAt: new Date().toISOString() } });
}
