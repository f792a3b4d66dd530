// Disk tools (e2fsck, resize2fs, qemu-img) on files a box's guest or VMM could have written are parsers of hostile
// input: they run in the same jail as a VMM — a uid of their own when boxlite runs as root, no capabilities,
// no network, a file system view of only the files they work on — so a bug they have reaches nothing else.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CommandError, run } from '../util/exec.js';
import { JAIL_UID_BASE, jailArgv, jailWanted, probeJail } from './jail.js';

/** The disk tools' uid (root callers): just below the boxes' own, owning nothing but what it is handed. */
export const TOOL_UID = JAIL_UID_BASE - 1;

export interface ToolFiles {
  /** Files the tool reads and writes; owned by the tool's uid while it runs, given back after. */
  rw?: string[];
  /** Files or folders it may read (they must be readable by others, as disk layers and bases are). */
  ro?: string[];
}

/** Runs a disk tool jailed (or as is, with BOXLITE_JAIL=off or where the jail cannot run); its stdout. */
export async function runTool(cmd: string, args: string[], files: ToolFiles): Promise<string> {
  const rw = [...new Set((files.rw ?? []).map((f) => path.resolve(f)))];
  const ro = [...new Set((files.ro ?? []).map((f) => path.resolve(f)))].filter((f) => !rw.includes(f) && fs.existsSync(f));
  if (!jailWanted() || probeJail().problem) return run(cmd, args);
  const root = process.getuid?.() === 0;
  const owners = rw.map((f) => fs.statSync(f));
  const largest = Math.max(0, ...owners.map((st) => st.size));
  const argv = jailArgv(
    {
      as: root ? { uid: TOOL_UID, gid: TOOL_UID } : undefined,
      ro,
      rw,
      devices: [],
      // A tool may grow a file it works on (a qcow2's metadata), never fill the disk.
      limits: { nofile: 256, fsizeBytes: largest * 2 + 1024 ** 3 },
      cwd: '/tmp',
    },
    [cmd, ...args],
    { vmm: false },
  );
  if (root) for (const f of rw) fs.chownSync(f, TOOL_UID, TOOL_UID);
  try {
    return await run(argv[0], argv.slice(1));
  } catch (e) {
    // Said as the tool's own failure, not the jail's command line.
    if (e instanceof CommandError) throw new CommandError(`${cmd} ${args.join(' ')} failed (exit ${e.code}): ${e.stderr.trim() || e.message.replace(/^.*failed \(exit \d+\): /s, '')}`, e.stderr, e.code);
    throw e;
  } finally {
    if (root) rw.forEach((f, i) => fs.chownSync(f, owners[i].uid, owners[i].gid));
  }
}
