// What every runtime module works with: the home and its records, the VM engine, the image and volume stores,
// this process's agent connections, and the hooks a caller installed. The Runtime builds one; the modules that
// implement boxes (boot, lifecycle, exec, snapshots, clones …) take it instead of the Runtime, so none of them
// imports the Runtime and the Runtime imports them all.
import type { VmEngine } from '../vmm/engine.js';
import type { AgentClient } from '../vmm/agent-client.js';
import type { AccelChoice } from '../vmm/accel.js';
import { withLock } from '../util/lock.js';
import type { Home } from './home.js';
import type { RecordStore } from './records.js';
import type { Images } from './images/index.js';
import type { Volumes } from './volumes.js';

/** Policy a caller adds to every box operation, whoever calls it (CLI, SDK, watch): a project's, for one. */
export interface BoxHooks {
  /** After a box has booted (not when it was already running). */
  afterStart?(id: string): Promise<void>;
  /** Before a snapshot restore overwrites the box's disk. */
  beforeRestore?(id: string, snapshot: string): Promise<void>;
}

export interface RuntimeContext {
  readonly home: Home;
  readonly records: RecordStore;
  readonly engine: VmEngine;
  readonly images: Images;
  readonly volumes: Volumes;
  /** One-line notices (the software-emulation note, a corrupt record skipped). */
  readonly say: (m: string) => void;
  readonly clients: Map<string, AgentClient>;
  readonly hooks: BoxHooks;
  /** Whether VMMs run jailed (src/vmm/jail.ts): on unless turned off. */
  readonly jail: boolean;
  accel(): AccelChoice;
}

/** Runs fn holding the box's operation lock: start, stop, snapshots, resize … one at a time per box. */
export function withBoxLock<T>(ctx: RuntimeContext, id: string, fn: () => Promise<T>): Promise<T> {
  return withLock(ctx.home.boxLock(id), `box ${ctx.records.read(id)?.name ?? id}`, fn);
}

/** Runs fn holding the registry lock: box names are allocated and released under it. */
export function withRegistryLock<T>(ctx: RuntimeContext, fn: () => Promise<T> | T): Promise<T> {
  return withLock(ctx.home.registryLock, `the box registry in ${ctx.home.root}`, fn);
}

/** Closes this process's agent connection to a box, if it has one. */
export function dropClient(ctx: RuntimeContext, id: string): void {
  ctx.clients.get(id)?.close();
  ctx.clients.delete(id);
}
