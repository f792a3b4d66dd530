// BoxLite's error shape, {"error": {message, type, code}}, and which HTTP status each of boxlite's typed errors
// becomes. Anything untyped is a bug of ours: the client gets a plain "internal error" and the server's log gets
// the stack (never the request's headers).
import { UntrustedProjectError } from '../reconciler/trust.js';
import {
  AssetsMissingError, BootError, BoxBusyError, BoxExistsError, BoxNotFoundError, BoxStateError, BoxliteError, ExecError,
  ImageError, InvalidOptionError, QemuMissingError, SnapshotExistsError, SnapshotInUseError, SnapshotNotFoundError,
  TimeoutError, VolumeInUseError, VolumeNotFoundError,
} from '../core/errors.js';
import { SpecError } from '../spec/errors.js';

export type ErrorType =
  | 'InvalidArgumentError' | 'UnsupportedError' | 'AuthError' | 'NotFoundError' | 'AlreadyExistsError' | 'InvalidStateError'
  | 'ImageError' | 'ExecutionError' | 'ResourceExhaustedError' | 'EngineError' | 'InternalError' | 'TimeoutError' | 'ConfigError';

const CODES: Record<ErrorType, string> = {
  InvalidArgumentError: 'invalid_argument',
  UnsupportedError: 'unsupported',
  AuthError: 'unauthenticated',
  NotFoundError: 'not_found',
  AlreadyExistsError: 'already_exists',
  InvalidStateError: 'invalid_state',
  ImageError: 'image_pull_failed',
  ExecutionError: 'execution_failed',
  ResourceExhaustedError: 'resource_exhausted',
  EngineError: 'engine_unavailable',
  InternalError: 'internal',
  TimeoutError: 'timeout',
  ConfigError: 'config_error',
};

/** An error meant for the client: its status, BoxLite's type and code, and a message that names the fix. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: ErrorType,
    message: string,
  ) {
    super(message);
  }
  get code(): string {
    return CODES[this.type];
  }
  body(): { error: { message: string; type: ErrorType; code: string } } {
    return { error: { message: this.message, type: this.type, code: this.code } };
  }
}

export const badRequest = (m: string) => new ApiError(400, 'InvalidArgumentError', m);
export const notFound = (m: string) => new ApiError(404, 'NotFoundError', m);
export const conflict = (m: string) => new ApiError(409, 'InvalidStateError', m);
export const unsupported = (m: string) => new ApiError(400, 'UnsupportedError', m);

/** The ApiError a thrown value becomes; log receives what the client is not shown. */
export function toApiError(e: unknown, log: (line: string) => void): ApiError {
  if (e instanceof ApiError) return e;
  const m = (e as Error)?.message ?? String(e);
  if (e instanceof BoxNotFoundError || e instanceof SnapshotNotFoundError || e instanceof VolumeNotFoundError) return notFound(m);
  if (e instanceof BoxExistsError || e instanceof SnapshotExistsError) return new ApiError(409, 'AlreadyExistsError', m);
  if (e instanceof BoxStateError || e instanceof BoxBusyError || e instanceof SnapshotInUseError || e instanceof VolumeInUseError) return conflict(m);
  if (e instanceof InvalidOptionError || e instanceof SpecError) return badRequest(m);
  // A project file whose reach outside its folder is not approved on the server: its operator runs boxlite trust.
  if (e instanceof UntrustedProjectError) return new ApiError(403, 'ConfigError', m);
  if (e instanceof ImageError) return new ApiError(422, 'ImageError', m);
  if (e instanceof TimeoutError) return new ApiError(408, 'TimeoutError', m);
  if (e instanceof ExecError) return new ApiError(400, 'ExecutionError', m);
  if (e instanceof BootError || e instanceof QemuMissingError || e instanceof AssetsMissingError) return new ApiError(503, 'EngineError', m);
  if (e instanceof BoxliteError) return new ApiError(500, 'InternalError', m);
  log(`boxlite serve: internal error: ${(e as Error)?.stack ?? m}`);
  return new ApiError(500, 'InternalError', "internal error: the server's log has the details");
}
