// boxlite SDK: boxes as local micro-VMs, from TypeScript.
import { Runtime as BaseRuntime, type RuntimeOptions } from './runtime/runtime.js';
import { projectHooks } from './reconciler/hooks.js';

/** The SDK's runtime: boxes made by a project keep its policy whoever starts or restores them (their declared
 *  command is started at each boot, a before_apply policy snapshots before a restore). */
export class Runtime extends BaseRuntime {
  constructor(opts: RuntimeOptions = {}) {
    super({ hooks: projectHooks(), ...opts });
  }
}

export { Box, DEFAULTS, MIN_MEMORY_MIB } from './runtime/runtime.js';
export type { RuntimeOptions, RuntimeHooks, CreateOptions, BoxStatus, StopOptions, NetworkStats, Reconfigure } from './runtime/runtime.js';
export { parsePort } from './core/network.js';
export type { PortMapping, NetworkMode } from './core/network.js';
export { parseRule } from './core/egress.js';
export type { EgressPolicy } from './core/egress.js';
export type { EgressEvent, EventsOptions } from './runtime/runtime.js';
export { Snapshots } from './runtime/snapshots.js';
export type { CloneOptions } from './runtime/clone.js';
export { SimpleBox } from './runtime/simple-box.js';
export type { SimpleBoxOptions, SimpleBoxInfo, SimpleBoxMetrics, SimpleExecOptions, HostVolume, PortForward } from './runtime/simple-box.js';
export { CodeBox } from './runtime/code-box.js';
export { JsBoxlite, type JsBoxOptions, type JsRuntimeMetrics } from './client/jsboxlite.js';
export { JsBox, type JsBoxInfo, type JsBoxMetrics, type CopyOptions, type JsSnapshotInfo } from './client/jsbox.js';
export type { JsExecution, StdinWriter, OutputReader, ExecResultInfo } from './client/execution.js';
export { ApiKeyCredential, BoxliteRestOptions, AuthError, ServerUnreachableError, type Credential } from './client/rest.js';
export { BoxliteServer, type ServeOptions } from './server/server.js';
export type { BoxMetrics } from './runtime/metrics.js';
export { Execution } from './runtime/execution.js';
export type { ExecOptions, ExecResult, ExitStatus } from './runtime/execution.js';
export type { BoxRecord, BoxOptions, BoxState, ExitInfo, ExitReason, SnapshotInfo, Label, StartTimings } from './runtime/types.js';
export { Images, parseReference, formatReference } from './runtime/images/index.js';
export type { ImageRecord, LayerProgress, PullOptions, RegistryOptions, Credentials } from './runtime/images/index.js';
export { setup, loadAssets } from './runtime/assets.js';
export { Project, downProject, projectRuntime } from './reconciler/project.js';
export type { ProjectOptions, UpOptions, UpResult, DownOptions, DownResult } from './reconciler/project.js';
export type { Plan, BoxPlan } from './reconciler/plan.js';
export type { Watcher, WatchEvent, WatchOptions } from './reconciler/watch.js';
export type { LockResult, ProjectLock } from './reconciler/lock.js';
export { projectLabel, type ProjectLabel } from './reconciler/label.js';
export { SpecError } from './spec/errors.js';
export * from './core/errors.js';
