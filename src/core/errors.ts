// Typed errors of the SDK and the CLI. Every message names the thing and the fix.

export class BoxliteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
export class BoxNotFoundError extends BoxliteError {}
export class BoxExistsError extends BoxliteError {}
export class BoxStateError extends BoxliteError {}
export class BoxBusyError extends BoxliteError {}
export class BootError extends BoxliteError {
  constructor(message: string, readonly consoleTail: string[] = []) {
    super(message);
  }
}
export class RootfsError extends BoxliteError {}
/** Pulling, loading, storing or assembling an image failed. */
export class ImageError extends BoxliteError {}
export class ImageNotFoundError extends ImageError {}
export class RegistryAuthError extends ImageError {}
export class RegistryUnreachableError extends ImageError {}
export class DigestMismatchError extends ImageError {}
export class InvalidOptionError extends BoxliteError {}
export class AgentVersionError extends BoxliteError {}
/** A call the guest agent answered with an error: its own words (never a gRPC stack trace), with the gRPC code. */
export class AgentCallError extends BoxliteError {
  constructor(readonly code: number, readonly details: string) {
    super(`the box's agent refused the call: ${details}`);
  }
}
export class QemuMissingError extends BoxliteError {}
export class AssetsMissingError extends BoxliteError {}
export class ExecError extends BoxliteError {
  /** For a command that ran and failed (CodeBox.run): what BoxLite's ExecError carries. */
  constructor(message: string, readonly command?: string, readonly exitCode?: number, readonly stderr?: string) {
    super(message);
  }
}
export class TimeoutError extends BoxliteError {}
export class VolumeNotFoundError extends BoxliteError {}
export class VolumeInUseError extends BoxliteError {}
export class SnapshotNotFoundError extends InvalidOptionError {}
export class SnapshotExistsError extends InvalidOptionError {}
export class SnapshotInUseError extends InvalidOptionError {}
/** A box archive (boxlite export) that is truncated, tampered with or not one. */
export class ArchiveError extends InvalidOptionError {}
