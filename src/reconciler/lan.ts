// The project LAN: boxes of one project reach each other by name, as compose's default network lets services do.
// Each box gets a second NIC whose frames the boxes' network guards carry between them, one segment per project
// and home; the guest's own traffic to the outside still goes only through its network helper. Addresses
// are handed out once, at create, and kept; names are written to /etc/hosts in each running box by the agent.
import { createHash } from 'node:crypto';
import type { Runtime } from '../runtime/runtime.js';
import type { BoxRecord, LanConfig } from '../runtime/types.js';
import { BUSYBOX } from '../core/guest.js';
import { lanSegment } from '../core/network.js';
import { BoxliteError } from '../core/errors.js';
import { projectLabel } from './label.js';

export const LAN_PREFIX = '10.89.0.';
const MARK = '# boxlite project LAN';

/** Addresses handed to boxes this process is still creating (their records do not exist yet): boxes of one
 *  project are created in parallel, and each must get an address of its own. Other processes wait for the
 *  project's lock. */
const pending = new Set<string>();

/** A LAN NIC for a new box of the project: the lowest address no box of the project holds. Call lanSettled with
 *  it once the box's record exists (or its create failed). */
export function allocateLan(rt: Runtime, project: string, box: string): LanConfig {
  const key = (a: string) => `${rt.home.root}\0${project}\0${a}`;
  const taken = new Set(projectBoxes(rt, project).map((r) => r.options.lan?.address));
  for (let i = 2; i < 255; i++) {
    const address = `${LAN_PREFIX}${i}`;
    if (taken.has(address) || pending.has(key(address))) continue;
    pending.add(key(address));
    const h = createHash('sha256').update(`${project}\0${box}\0${i}`).digest();
    const mac = `52:54:01:${[h[0], h[1], i].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
    // One segment per project and home: two projects (or homes) never share one.
    return { segment: lanSegment(`${rt.home.root}\0${project}`), address, mac };
  }
  throw new BoxliteError(`project ${project} has no LAN addresses left (253 boxes): split it into smaller projects`);
}

export function lanSettled(rt: Runtime, project: string, lan: LanConfig | undefined): void {
  if (lan) pending.delete(`${rt.home.root}\0${project}\0${lan.address}`);
}

function projectBoxes(rt: Runtime, project: string): BoxRecord[] {
  return rt.records.list().filter((r) => projectLabel(r)?.project === project);
}

/** The hosts lines every box of the project should have. */
export function lanHosts(records: BoxRecord[]): string[] {
  return records
    .filter((r) => r.options.lan && !projectLabel(r)?.retiredAt)
    .sort((a, b) => a.options.lan!.address.localeCompare(b.options.lan!.address, undefined, { numeric: true }))
    .map((r) => `${r.options.lan!.address} ${projectLabel(r)!.box} ${r.name}`);
}

/** Writes the project's names into /etc/hosts of its running boxes (only): ids limits it to some boxes. */
export async function syncHosts(rt: Runtime, project: string, ids?: string[]): Promise<void> {
  const all = projectBoxes(rt, project);
  const lines = lanHosts(all);
  if (!lines.length) return;
  const block = [MARK, ...lines, `${MARK} end`].join('\n');
  const script = `f=/etc/hosts; [ -f $f ] || printf '127.0.0.1 localhost\\n' > $f; ${BUSYBOX} sed -i '/^${MARK}$/,/^${MARK} end$/d' $f; printf '%s\\n' "$1" >> $f`;
  await Promise.all(
    all
      .filter((r) => r.options.lan && !projectLabel(r)?.retiredAt && (!ids || ids.includes(r.id)) && rt.status(r).state === 'running')
      .map((r) => rt.exec(r.id, [BUSYBOX, 'sh', '-c', script, 'sh', block], { user: '0' }).catch(() => {})),
  );
}
