// The typed, normalised project: what boxlite.yaml means once parsed, interpolated, validated and defaulted.
import type { PortMapping, NetworkMode } from '../core/network.js';
import type { EgressPolicy } from '../core/egress.js';
export { DEFAULT_VOLUME_MIB } from '../core/defaults.js';

export type RestartPolicy = 'no' | 'on-failure' | 'always' | 'unless-stopped';
export type DependCondition = 'started' | 'healthy';

export type MountSpec =
  | { type: 'volume'; source: string; target: string; readOnly: boolean }
  | { type: 'bind'; source: string; target: string; readOnly: boolean };

export interface HealthcheckSpec {
  /** The argv run in the box; a command line is run as ["sh", "-c", line]. */
  test: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

export interface SnapshotPolicy {
  beforeApply: boolean;
  everyMs?: number;
  keep?: number;
}

export interface BoxSpec {
  name: string;
  /** An image reference, or an absolute path to a rootfs folder or OCI layout. */
  image: string;
  cpus: number;
  memoryMib: number;
  diskMib: number;
  env: Record<string, string>;
  workingDir: string;
  user: string;
  network: NetworkMode;
  /** Outbound rules (absent when the box has none). */
  egress?: EgressPolicy;
  /** Secrets and where their values come from (absent when the box has none). */
  secrets?: { name: string; hosts: string[]; source: { env: string } | { file: string } }[];
  dns: string[];
  volumes: MountSpec[];
  ports: PortMapping[];
  /** Each an argv; a command line is ["sh", "-c", line]. */
  setup: string[][];
  command?: string[];
  healthcheck?: HealthcheckSpec;
  restart: RestartPolicy;
  dependsOn: Record<string, DependCondition>;
  /** Brought up only when one of these is asked for (absent: always). */
  profiles?: string[];
  /** One of the replicas NAME-1 … NAME-N of the box NAME declared with `replicas: N`. */
  replicaOf?: string;
  snapshots?: SnapshotPolicy;
  /** Paused by `up --watch` after this long without use (no exec, no network traffic); woken by the next use. */
  pauseAfterMs?: number;
}

export interface VolumeSpec {
  name: string;
  sizeMib: number;
}

export interface ProjectSpec {
  name: string;
  /** The project file, absolute. */
  file: string;
  dir: string;
  boxes: Record<string, BoxSpec>;
  volumes: Record<string, VolumeSpec>;
  warnings: string[];
  /** Boxes declared with `replicas: N`, by their declared name: the plan removes replicas beyond N. */
  replicas?: Record<string, number>;
  /** The host's variables the file read while interpolating (not its .env's), and where (absent: none). */
  hostVariables?: { name: string; box: string; field: string }[];
}

export const HEALTH_DEFAULTS = { intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 };
