// Approvals of what a project file reaches outside its folder (src/spec/reach.ts), recorded in the home per project
// file against a hash of exactly those parts. up and watch refuse a set that is not approved; `boxlite trust`
// (or up --trust, or BOXLITE_TRUST=HASH for CI) approves it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { BoxliteError } from '../core/errors.js';
import { writeJsonAtomic } from '../util/fs.js';
import { describePart, reachHash, reachParts, type ReachPart } from '../spec/reach.js';
import type { ProjectSpec } from '../spec/types.js';

export interface TrustState {
  parts: ReachPart[];
  hash: string;
  /** Nothing reaches out, or these very parts were approved. */
  approved: boolean;
  /** Parts not in the last approval (all of them when there was none). */
  unapproved: ReachPart[];
}

interface Approval {
  file: string;
  hash: string;
  parts: ReachPart[];
  approvedAt: string;
}

export class UntrustedProjectError extends BoxliteError {
  constructor(
    readonly file: string,
    readonly state: TrustState,
  ) {
    const shown = path.relative(process.cwd(), file) || file;
    super(
      `${shown} reaches outside its folder in ways not approved on this machine:\n` +
        state.unapproved.map((p) => `  ${describePart(p)}`).join('\n') +
        `\nread the file, then approve: boxlite trust${shown === 'boxlite.yaml' ? '' : ` -f ${shown}`} (or up --trust; in CI BOXLITE_TRUST=${state.hash})`,
    );
  }
}

function approvalFile(home: string, projectFile: string): string {
  return path.join(home, 'trust', `${createHash('sha256').update(path.resolve(projectFile)).digest('hex').slice(0, 32)}.json`);
}

function readApproval(home: string, projectFile: string): Approval | undefined {
  try {
    const a = JSON.parse(fs.readFileSync(approvalFile(home, projectFile), 'utf8')) as Approval;
    return a.file === path.resolve(projectFile) && typeof a.hash === 'string' && Array.isArray(a.parts) ? a : undefined;
  } catch {
    return undefined; // none (or unreadable: as good as none, so nothing is trusted by accident)
  }
}

const key = (p: ReachPart) => JSON.stringify([p.box, p.field, p.touches]);

/** Where the project stands; accept is a hash given for this run (BOXLITE_TRUST). */
export function trustState(home: string, spec: ProjectSpec, accept?: string): TrustState {
  const parts = reachParts(spec);
  const hash = reachHash(parts);
  const known = new Set((readApproval(home, spec.file)?.parts ?? []).map(key));
  // A part dropped since the approval narrows the reach: only a part not approved needs the user.
  const unapproved = accept === hash ? [] : parts.filter((p) => !known.has(key(p)));
  return { parts, hash, approved: unapproved.length === 0, unapproved };
}

/** Records an approval of the project's current parts (an empty set removes the record). */
export function approve(home: string, spec: ProjectSpec): TrustState {
  const parts = reachParts(spec);
  const file = approvalFile(home, spec.file);
  if (!parts.length) fs.rmSync(file, { force: true });
  else {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeJsonAtomic(file, { file: path.resolve(spec.file), hash: reachHash(parts), parts, approvedAt: new Date().toISOString() } satisfies Approval, 0o600);
  }
  return { parts, hash: reachHash(parts), approved: true, unapproved: [] };
}

export function revoke(home: string, projectFile: string): boolean {
  const file = approvalFile(home, projectFile);
  const had = fs.existsSync(file);
  fs.rmSync(file, { force: true });
  return had;
}

/** Throws UntrustedProjectError unless the project's parts are approved (or accepted for this run). */
export function requireTrust(home: string, spec: ProjectSpec, accept?: string): TrustState {
  const s = trustState(home, spec, accept);
  if (!s.approved) throw new UntrustedProjectError(spec.file, s);
  return s;
}
