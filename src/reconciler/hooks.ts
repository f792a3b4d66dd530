// A project's policy for its boxes, applied whoever operates on them (the CLI, the SDK, watch): a box that boots
// gets its project's LAN names and its declared command started, and a box whose snapshot policy says
// before_apply is snapshotted before a restore overwrites its disk.
import type { Runtime, RuntimeHooks } from '../runtime/runtime.js';
import { projectLabel } from './label.js';
import { startCommand } from './command.js';
import { syncHosts } from './lan.js';
import { stamp } from './plan.js';

export function projectHooks(say: (m: string) => void = () => {}): RuntimeHooks {
  return {
    async afterStart(rt: Runtime, id: string) {
      const l = projectLabel(rt.record(id));
      if (!l || l.retiredAt) return;
      await syncHosts(rt, l.project, [id]);
      // Not before setup has run: apply starts the command itself once the box is provisioned.
      const command = l.applied.command as string[] | undefined;
      if (command && l.setup === 'done') await startCommand(rt, id, command);
    },
    async beforeRestore(rt: Runtime, id: string) {
      const l = projectLabel(rt.record(id));
      const policy = l?.applied.snapshots as { beforeApply?: boolean } | undefined;
      if (!policy?.beforeApply) return;
      const name = `before-restore-${stamp(new Date())}`;
      await rt.snapshots(id).create(name, { auto: true });
      say(`boxlite: took snapshot ${name} first (snapshot policy before_apply)`);
    },
  };
}
