// Signal numbers as BoxLite's API gives them, and their names.
import { constants } from 'node:os';
import { InvalidOptionError } from '../core/errors.js';

const NAMES = new Map(Object.entries(constants.signals).map(([k, v]) => [v as number, k]));

export function signalName(n: number): string {
  const name = NAMES.get(n);
  if (!name) throw new InvalidOptionError(`${n} is not a signal number`);
  return name;
}
