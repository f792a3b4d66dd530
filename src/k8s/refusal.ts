// A field of boxlite.yaml that cannot go to a cluster as it is: each refusal names the box, the field and the fix,
// and render reports all of them at once (so one run shows everything to change).
import { BoxliteError } from '../core/errors.js';

export interface Refusal {
  box: string;
  /** The field as written in boxlite.yaml (secrets.OPENAI_API_KEY, volumes[0], setup). */
  field: string;
  why: string;
  fix: string;
}

export class K8sRefusedError extends BoxliteError {
  constructor(readonly refusals: Refusal[]) {
    super(
      `${refusals.length === 1 ? 'one field' : `${refusals.length} fields`} of boxlite.yaml cannot go to Kubernetes as written:\n` +
        refusals.map((r) => `  box ${r.box}, ${r.field}: ${r.why}\n    fix: ${r.fix}`).join('\n'),
    );
  }
}
