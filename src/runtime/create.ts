// Making a box: its options validated, its source resolved (an image is pulled if needed and its shared base
// assembled), a thin disk over that base, and its record written last — so a folder without a record is a
// create that was interrupted, which the next create sweeps away.
import { boxCa, rememberValues } from './secrets.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { BoxExistsError, ImageError, InvalidOptionError } from '../core/errors.js';
import { checkName } from '../core/names.js';
import { ensureDir } from '../util/fs.js';
import { tryLock } from '../util/lock.js';
import { stopHelpers } from '../vmm/helpers.js';
import { isOciLayout, resolveDir } from './rootfs.js';
import { ensureDisk } from './disks.js';
import { validateOptions, type CreateOptions } from './options.js';
import { withRegistryLock, type RuntimeContext } from './context.js';
import type { BoxRecord, Source } from './types.js';

/** Records a new box. Lazy: its VM is booted by the first start. */
export async function createBox(ctx: RuntimeContext, opts: CreateOptions): Promise<BoxRecord> {
  const options = validateOptions(opts);
  if (opts.name !== undefined) checkName('box', opts.name);
  for (const m of options.volumes ?? []) ctx.volumes.get(m.volume);
  // Shared: an image prune waits until this box's record says which base it uses.
  const use = await ctx.images.store.use(`the image store in ${ctx.images.store.root}`);
  try {
    const source = await resolveSource(ctx, opts);
    if (source.kind === 'image' && options.diskSizeMib < source.baseSizeMib) {
      throw new InvalidOptionError(`disk size ${options.diskSizeMib} MiB is smaller than image ${source.reference} (${source.baseSizeMib} MiB): give a disk of at least ${source.baseSizeMib} MiB`);
    }
    ensureDir(ctx.home.boxesDir, 0o700);
    return await withRegistryLock(ctx, async () => {
      await sweepInterrupted(ctx);
      const id = randomBytes(6).toString('hex');
      const name = opts.name ?? `box-${id.slice(0, 6)}`;
      const taken = ctx.records.list().find((r) => r.name === name);
      if (taken) throw new BoxExistsError(`a box named "${name}" already exists (id ${taken.id}): choose another name or remove it with 'boxlite rm ${name}'`);
      ensureDir(ctx.home.boxDir(id), 0o700);
      const rec: BoxRecord = { id, name, createdAt: new Date().toISOString(), source, options, state: 'created', autoRemove: opts.autoRemove, ...(opts.label ? { label: opts.label } : {}) };
      try {
        if (source.kind === 'image') await ensureDisk(ctx, rec); // a thin overlay: no image data is copied
        rememberValues(id, opts.secrets);
        if (options.secrets?.length) boxCa(ctx.home.boxDir(id), id); // the box's own CA, made with it
        ctx.records.create(rec); // the record last: a folder without one is an interrupted create
      } catch (e) {
        fs.rmSync(ctx.home.boxDir(id), { recursive: true, force: true });
        throw e;
      }
      return rec;
    });
  } finally {
    use.release();
  }
}

/** Box folders without a record are creates or removes that were killed half way; under the registry lock none
 *  is in progress, so they are deleted (with any VM or helper a killed start left running in them). */
async function sweepInterrupted(ctx: RuntimeContext): Promise<void> {
  let names: string[] = [];
  try {
    names = fs.readdirSync(ctx.home.boxesDir);
  } catch {
    return;
  }
  for (const n of names) {
    const dir = ctx.home.boxDir(n);
    if (n.startsWith('.import-')) {
      // An import stages here, holding the folder's lock; a free lock means the import was killed.
      const lockFile = path.join(dir, '.lock');
      const l = fs.existsSync(lockFile) ? tryLock(lockFile) : null;
      const lockless = !fs.existsSync(lockFile) && Date.now() - fs.statSync(dir).mtimeMs > 60_000;
      if (l || lockless) fs.rmSync(dir, { recursive: true, force: true });
      l?.release();
      continue;
    }
    if (n.startsWith('.') || fs.existsSync(path.join(dir, 'box.json'))) continue;
    if (ctx.engine.status(dir).kind === 'running') await ctx.engine.kill(dir);
    stopHelpers(dir);
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
  }
}

const looksLikePath = (s: string) => /^(\/|\.\.?(\/|$)|~)/.test(s);

/** A folder stays a folder; an image (by reference, or an OCI layout folder) goes through the store and gets its
 *  shared base built, so that starting the box later only adds a thin overlay. */
async function resolveSource(ctx: RuntimeContext, opts: CreateOptions): Promise<Source> {
  if ((opts.image === undefined) === (opts.rootfs === undefined)) {
    throw new InvalidOptionError('give a box either an image (a reference such as debian:12) or a rootfs (a folder), not both or neither');
  }
  const local = opts.rootfs ?? (looksLikePath(opts.image!) ? opts.image! : undefined);
  let rec;
  if (local !== undefined) {
    const abs = path.resolve(local);
    if (!isOciLayout(abs)) return resolveDir(abs);
    rec = await ctx.images.loadLayout(abs);
  } else {
    const ref = opts.image!;
    const pullOpts = { onLayer: opts.onPullProgress };
    if (opts.pull === 'always') rec = await ctx.images.pull(ref, pullOpts);
    else if (opts.pull === 'never') rec = ctx.images.get(ref);
    else rec = await ctx.images.ensure(ref, pullOpts);
  }
  if (rec.platform !== 'linux/amd64') {
    throw new ImageError(`image ${opts.image ?? opts.rootfs} is for ${rec.platform}, but boxes run linux/amd64: pull the linux/amd64 variant (--platform linux/amd64)`);
  }
  const base = await ctx.images.base(rec, ctx.say);
  return {
    kind: 'image',
    reference: local !== undefined ? path.resolve(local) : opts.image!,
    imageId: rec.id,
    manifestDigest: rec.manifestDigest,
    base: base.path,
    baseSizeMib: base.sizeMib,
    config: rec.config,
  };
}
