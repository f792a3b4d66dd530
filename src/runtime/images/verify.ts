// What an image claims about its own content, checked. A config's rootfs.diff_ids say what each layer holds once
// decompressed; whoever made the image wrote them, so they are true only once a layer's tar stream has been hashed
// and compared (assemble.ts does so while it unpacks the layer). Files in a docker save archive may be named by a
// digest (docker 25+ writes blobs/sha256/HEX, and every version names the config HEX.json): the name is a claim too.
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { DigestMismatchError } from '../../core/errors.js';
import type { ImageRecord } from './store.js';

/** A digest short enough for a message: sha256 and the first 12 hex digits. */
export const shortDigest = (d: string) => `${d.slice(0, 19)}…`;

/** A pass-through stream that hashes what flows through it: the hash costs no second read of the layer. */
export function hashingStream(): { stream: Transform; digest: () => string } {
  const h = createHash('sha256');
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      cb(null, chunk);
    },
  });
  return { stream, digest: () => `sha256:${h.digest('hex')}` };
}

/** The refusal of a layer whose content is not the diff_id its config claims; outcome says what was not done. */
export function diffIdMismatch(what: string, n: number, blob: string, claimed: string, actual: string, outcome: string): DigestMismatchError {
  return new DigestMismatchError(
    `${what}: layer ${n} (${shortDigest(blob)}) does not match the diff_id its config claims (${shortDigest(claimed)}): its content is ${shortDigest(actual)}; ` +
      `the image is corrupt or forged, and ${outcome}: get it again from a source you trust`,
  );
}

/** A config must claim one diff_id per layer: an image whose layers are not all claimed cannot be checked. */
export function checkDiffIdCount(what: string, rec: Pick<ImageRecord, 'layers' | 'diffIds'>): void {
  const n = rec.diffIds.length;
  if (n !== rec.layers.length || !rec.diffIds.every((d) => /^sha256:[a-f0-9]{64}$/.test(d))) {
    throw new DigestMismatchError(
      n !== rec.layers.length
        ? `${what}: its config lists ${n} diff_id${n === 1 ? '' : 's'} for ${rec.layers.length} layer${rec.layers.length === 1 ? '' : 's'}: the image is malformed or forged, and nothing was built`
        : `${what}: its config lists a diff_id that is not a sha256 digest: the image is malformed, and nothing was built`,
    );
  }
}

/** The digest a file of a docker save archive is named by, if its name is one (blobs/sha256/HEX, or HEX.json). */
export function namedDigest(p: string): string | null {
  const m = /(?:^|\/)blobs\/sha256\/([a-f0-9]{64})$/.exec(p) ?? /^([a-f0-9]{64})\.json$/.exec(p);
  return m ? `sha256:${m[1]}` : null;
}
