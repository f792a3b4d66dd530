// The shapes of what the runtime keeps under the home folder: box records and what they are made of. A leaf:
// every other runtime module may import it, and it imports only core types.
import type { NetworkMode, PortMapping } from '../core/network.js';
import type { EgressPolicy, SecretRef } from '../core/egress.js';

/** What a box's image says about how to run it, honoured the way `docker run` honours it. */
export interface ImageConfig {
  env: string[];
  entrypoint: string[];
  cmd: string[];
  workingDir: string;
  user: string;
}

/** Where a box's root file system comes from. */
export type Source =
  /** A plain folder: the box's disk is a full ext4 copy of it, made at first start. */
  | { kind: 'dir'; path: string; config: ImageConfig }
  /** An image from the store: the box's disk is a copy-on-write overlay of the image's shared base. */
  | { kind: 'image'; reference: string; imageId: string; manifestDigest: string; base: string; baseSizeMib: number; config: ImageConfig }
  /** A box imported from an archive or cloned: its disk came with it. */
  | { kind: 'disk'; origin: string; config: ImageConfig };

/** A mount of a named volume into a box. */
export interface VolumeMount {
  volume: string;
  target: string;
  readOnly: boolean;
}

export interface BindMount {
  /** Absolute host path: a folder or a file. */
  hostPath: string;
  target: string;
  readOnly: boolean;
}

export interface LanConfig {
  /** Names the LAN: boxes of one segment (a project of a home, or a fork) see each other. */
  segment: string;
  /** The box's address on the LAN (a /24). */
  address: string;
  mac: string;
}

/** A box's settings, validated (see options.ts). */
export interface BoxOptions {
  cpus: number;
  memoryMib: number;
  diskSizeMib: number;
  env: Record<string, string>;
  workingDir: string;
  user: string;
  network: NetworkMode;
  /** As declared: a host port of 0 is chosen at each start. */
  ports: PortMapping[];
  dns: string[];
  /** Outbound policy (absent: none; the box's traffic goes straight through passt). */
  egress?: EgressPolicy;
  /** Secrets put into requests at the network boundary: where each value comes from, never the value. */
  secrets?: SecretRef[];
  /** Named volumes mounted into the box. */
  volumes?: VolumeMount[];
  /** The guest's host name; default the box's name. */
  hostname?: string;
  /** A NIC on a project's private LAN. */
  lan?: LanConfig;
  /** Host folders and files mounted into the box (virtiofs). */
  binds?: BindMount[];
}

export type BoxState = 'created' | 'running' | 'stopped' | 'exited' | 'paused';
export type ExitReason = 'exit' | 'crash' | 'killed';

export interface ExitInfo {
  reason: ExitReason;
  detail: string;
  at: string;
}

/** A saved VM state (memory and devices) and what it must match to be continued. */
export interface SavedState {
  /** The state file (only boxlite's own processes write or read it). */
  file: string;
  /** The devices the state was saved with (see memory.ts deviceShape). */
  shape: string;
  /** The disk file as it was when the state was saved: a state may only continue on that same disk. */
  disk?: { ino: number; size: number; mtimeMs: number };
}

export interface SnapshotInfo {
  name: string;
  createdAt: string;
  /** A memory snapshot: restoring it brings back the processes too. */
  memory?: SavedState;
  /** Taken by a policy rather than by hand. */
  auto?: boolean;
  /** Taken before the box was cloned: it lives in a layer the box shares with its clones. */
  frozen?: boolean;
  /** For a frozen snapshot: the layer file that holds it. */
  layer?: string;
}

/** JSON a caller keeps with a box (the reconciler's project label). The runtime stores it and reads none of it. */
export type Label = Record<string, unknown>;

/** How the last start went, stage by stage (ms). A start from saved memory has no guest boot stages. */
export interface StartTimings {
  at: string;
  /** boot: the kernel booted; restore: memory continued (a resume, a warm start, a fork, a memory snapshot). */
  kind: 'boot' | 'restore';
  totalMs: number;
  /** The box's disk made or checked (its first start builds it from the image). */
  diskMs: number;
  /** Jail, ports and the network and folder-sharing helpers. */
  helpersMs: number;
  /** The VMM process started and answering. */
  vmSpawnMs: number;
  /** From the VMM's start to the agent's answer (for a restore: loading the memory too). */
  agentReadyMs: number;
  /** Guest clock: kernel start to init handing over to the agent's runtime, then to the agent being ready. */
  kernelToInitMs?: number;
  initToAgentMs?: number;
}

export interface BoxRecord {
  id: string;
  name: string;
  createdAt: string;
  source: Source;
  options: BoxOptions;
  state: BoxState;
  exit?: ExitInfo;
  startedAt?: string;
  stoppedAt?: string;
  lastStart?: StartTimings;
  accel?: string;
  /** When each snapshot was taken (the qcow2 disk says which exist). */
  snapshots?: SnapshotInfo[];
  /** The forwards in effect since the last start, with their host ports. */
  ports?: PortMapping[];
  /** The size the guest last grew the box's file system to (image boxes start at the image's size). */
  fsSizeMib?: number;
  /** Opaque to the runtime: set and read by whoever made the box (a project). */
  label?: Label;
  /** Layers made from this box's snapshots for clones (snapshot name → layer file), reused by later clones. */
  snapshotLayers?: Record<string, string>;
  /** Removed when it stops (run --rm). */
  autoRemove?: boolean;
  /** The uid its VMM and helpers run as when boxlite runs as root (see confine.ts). */
  vmmUid?: number;
  /** Set while paused: its memory, saved (pending while the save is under way). */
  paused?: { at: string; pending: boolean; state?: SavedState; /** paused for being idle (see idle.ts) */ idle?: boolean };
  /** A fork or a warm start: the first start continues from this state instead of booting. */
  restoreFrom?: SavedState;
}

export interface VolumeRecord {
  name: string;
  sizeMib: number;
  createdAt: string;
  /** Set for a volume declared by a project. */
  project?: string;
}
