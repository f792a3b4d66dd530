// The one rule for names a person gives: boxes, snapshots and volumes.
import { InvalidOptionError } from './errors.js';

const LIMITS = { box: 63, snapshot: 63, volume: 80 } as const;
export type NameKind = keyof typeof LIMITS;

export function isValidName(kind: NameKind, name: string): boolean {
  return new RegExp(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,${LIMITS[kind] - 1}}$`).test(name);
}

/** Throws, naming the thing and the rule, unless `name` is a valid name for a `kind`. */
export function checkName(kind: NameKind, name: string): string {
  if (!isValidName(kind, name)) {
    throw new InvalidOptionError(`${kind} name "${name}" is invalid: use letters, digits, '_', '.', '-' (up to ${LIMITS[kind]}, starting with a letter or digit)`);
  }
  return name;
}
