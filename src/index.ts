// boxlite SDK: boxes as local micro-VMs, from TypeScript.
export { Runtime, Box, DEFAULTS, MIN_MEMORY_MIB } from './runtime/runtime.js';
export type { RuntimeOptions, CreateOptions, BoxStatus, StopOptions, NetworkStats } from './runtime/runtime.js';
export { parsePort } from './runtime/network.js';
export { exportBox, importBox, ArchiveError } from './runtime/transfer.js';
export { Snapshots, SnapshotNotFoundError, SnapshotExistsError, SnapshotInUseError } from './runtime/snapshots.js';
export { cloneBox } from './runtime/clone.js';
export type { CloneOptions } from './runtime/clone.js';
export type { SnapshotInfo } from './runtime/snapshots.js';
export type { PortMapping, NetworkMode } from './runtime/network.js';
export { SimpleBox } from './runtime/simple-box.js';
export type { SimpleBoxOptions } from './runtime/simple-box.js';
export { Execution } from './runtime/execution.js';
export type { ExecOptions, ExecResult, ExitStatus } from './runtime/execution.js';
export type { BoxRecord, BoxOptions, BoxState, ExitInfo, ExitReason } from './runtime/records.js';
export { Images, parseReference, formatReference } from './runtime/images/index.js';
export type { ImageRecord, LayerProgress, PullOptions, RegistryOptions, Credentials } from './runtime/images/index.js';
export { setup, loadAssets } from './runtime/assets.js';
export * from './runtime/errors.js';
