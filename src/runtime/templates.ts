// Warm start. The first box of an image and shape that boots cold leaves a template at the instant its agent is
// ready: its disk, frozen into a layer, and its memory, saved. Later boxes of the same image and shape get a disk
// over that layer and continue from that memory instead of booting (the guest is then told its own name, clock,
// entropy and LAN address). A template is keyed by everything its memory and disk depend on, so a change of any
// input (guest assets, image base, cpus, memory, disk size, network, DNS, accelerator) keys another one; templates
// of bases that are gone, or all of them, are removed by `boxlite images prune`. The base is named by the verified
// layer blobs it was built from (images/assemble.ts), so images whose layers differ never share a template.
//   home/templates/<key>.json   { layer, state, ... }    the state file lives in home/states (see states.ts)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { ensureDir, readJson, writeJsonAtomic } from '../util/fs.js';
import { acquireLock, type Lock } from '../util/lock.js';
import { freeze } from './freeze.js';
import { deviceShape, stateMismatch } from './memory.js';
import { newStatePath, collectStates } from './states.js';
import { collectLayers } from './layers.js';
import { loadAssets } from './assets.js';
import { templatesDir } from './template-refs.js';
import { withRegistryLock, type RuntimeContext } from './context.js';
import type { BoxRecord, SavedState } from './types.js';

export interface Template {
  key: string;
  /** The frozen disk of the box the template was taken from. */
  layer: string;
  state: SavedState;
  image: string;
  base: string;
  createdAt: string;
}

const templateFile = (ctx: RuntimeContext, key: string) => path.join(templatesDir(ctx.home.root), `${key}.json`);

/** The template key of a box about to boot for the first time, or null when it cannot have one: only image boxes
 *  whose devices reach nothing outside the box (no named volumes, no host folders). BOXLITE_WARM=off turns warm
 *  starts off. */
export function templateKey(ctx: RuntimeContext, rec: BoxRecord): string | null {
  if (process.env.BOXLITE_WARM === 'off') return null;
  const src = rec.source;
  if (src.kind !== 'image' || rec.options.volumes?.length || rec.options.binds?.length) return null;
  const o = rec.options;
  const inputs = { shape: deviceShape(ctx, rec, { anyLanMac: true }), base: src.base, diskSizeMib: o.diskSizeMib, network: o.network, dns: o.dns, assets: loadAssets(ctx.home).key };
  return createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 24);
}

/** The template for key, if there is a usable one. */
export function findTemplate(ctx: RuntimeContext, rec: BoxRecord, key: string): Template | null {
  const t = readTemplate(templateFile(ctx, key));
  if (!t || !fs.existsSync(t.layer)) return null;
  return stateMismatch(ctx, rec, t.state, false, deviceShape(ctx, rec, { anyLanMac: true })) ? null : t;
}

/** Forgets a template that failed to continue: the next cold boot of its key leaves a new one. */
export function dropTemplate(ctx: RuntimeContext, key: string): void {
  fs.rmSync(templateFile(ctx, key), { force: true });
}

/** Held while the first box of a key boots cold and leaves the template, so the boxes of that key started beside
 *  it (a project's `up`) wait for the template instead of all booting cold. */
export function lockTemplate(ctx: RuntimeContext, key: string): Promise<Lock> {
  return acquireLock(path.join(ensureDir(templatesDir(ctx.home.root), 0o700), `${key}.lock`), 'the warm-start template being made', 10 * 60_000);
}

/** Takes the template from a box just booted cold (its agent ready, nothing of its own run yet): the box goes on,
 *  on a new top over the frozen layer. */
export async function takeTemplate(ctx: RuntimeContext, rec: BoxRecord, key: string): Promise<Template> {
  return withRegistryLock(ctx, async () => {
    const file = newStatePath(ctx);
    // The box has run nothing yet: its memory would hold no compiled exec path (see prepareForSave).
    const layer = await freeze(ctx, rec, file, { warmExec: true });
    const src = rec.source as Extract<BoxRecord['source'], { kind: 'image' }>;
    const t: Template = { key, layer, state: { file, shape: deviceShape(ctx, rec, { anyLanMac: true }) }, image: src.reference, base: src.base, createdAt: new Date().toISOString() };
    writeJsonAtomic(templateFile(ctx, key), t, 0o600);
    await collectStates(ctx); // a template this one replaces (see dropTemplate) kept its state until now
    return t;
  });
}

export function listTemplates(ctx: RuntimeContext): Template[] {
  let names: string[];
  try {
    names = fs.readdirSync(templatesDir(ctx.home.root)).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  return names.map((n) => readTemplate(path.join(templatesDir(ctx.home.root), n))).filter((t): t is Template => !!t);
}

/** A damaged template file is no template: the next cold boot of its key writes it again. */
function readTemplate(file: string): Template | null {
  try {
    const t = readJson<Template>(file);
    return t && typeof t.layer === 'string' && typeof t.state?.file === 'string' ? t : null;
  } catch {
    return null;
  }
}

/** Removes the templates of bases that are gone (all of them with all), then the layers and states only they kept. */
export async function pruneTemplates(ctx: RuntimeContext, all: boolean): Promise<number> {
  return withRegistryLock(ctx, async () => {
    let n = 0;
    for (const t of listTemplates(ctx)) {
      if (!all && fs.existsSync(t.base)) continue;
      fs.rmSync(templateFile(ctx, t.key), { force: true });
      n++;
    }
    await collectLayers(ctx.home, ctx.records);
    await collectStates(ctx);
    return n;
  });
}
