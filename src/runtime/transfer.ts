// Export and import of a box: one tar archive holding the box's disk, flattened into a standalone qcow2 (its
// image base folded in, so the archive needs nothing else), and a manifest last with the box's options and the
// size and sha256 of every part. Import checks every part before anything is registered: a truncated or
// tampered archive is refused and leaves nothing behind.
import { runTool } from '../vmm/tool-jail.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { extract as tarExtract, failEntry, pack as tarPack } from '../util/tar.js';
import { diskToolFiles } from './layers.js';
import { ensureDir, renameDurable, sha256File } from '../util/fs.js';
import { tryLock } from '../util/lock.js';
import { failpoint } from '../util/failpoint.js';
import { ArchiveError, BoxExistsError, BoxStateError, InvalidOptionError } from '../core/errors.js';
import { checkName } from '../core/names.js';
import { ensureDisk } from './disks.js';
import { boxStatus } from './status.js';
import { withBoxLock, withRegistryLock, type RuntimeContext } from './context.js';
import type { BoxOptions, BoxRecord, ImageConfig } from './types.js';
import { checkForeignDisk, checkManifest, type ImportOverrides } from './foreign.js';

const FORMAT = 'boxlite-export/1';

interface Manifest {
  format: string;
  name: string;
  exportedAt: string;
  options: BoxOptions;
  config: ImageConfig;
  origin: string;
  fsSizeMib?: number;
  parts: { name: string; size: number; sha256: string }[];
}

export async function exportBox(ctx: RuntimeContext, id: string, file: string): Promise<void> {
  const out = path.resolve(file);
  if (!fs.existsSync(path.dirname(out))) throw new InvalidOptionError(`export: folder ${path.dirname(out)} does not exist`);
  await withBoxLock(ctx, id, async () => {
    const rec = ctx.records.get(id);
    if (boxStatus(ctx, rec).state === 'running') throw new BoxStateError(`box ${rec.name} is running: stop it first ('boxlite stop ${rec.name}'), so its disk is consistent`);
    const disk = await ensureDisk(ctx, rec);
    const part = `${out}.part-${process.pid}`;
    const flat = `${out}.disk-${process.pid}`;
    try {
      // A standalone copy of the disk as the guest sees it (snapshots are not carried).
      fs.writeFileSync(flat, '', { mode: 0o600 }); // made here, so the jailed converter is handed only it to write
      await runTool('qemu-img', ['convert', '-O', 'qcow2', disk, flat], { rw: [disk, flat], ro: diskToolFiles(ctx.home, disk).ro });
      const size = fs.statSync(flat).size;
      const sum = sha256File(flat);
      const manifest: Manifest = {
        format: FORMAT,
        name: rec.name,
        exportedAt: new Date().toISOString(),
        options: rec.options,
        config: rec.source.config,
        origin: rec.source.kind === 'dir' ? rec.source.path : rec.source.kind === 'image' ? rec.source.reference : rec.source.origin,
        fsSizeMib: rec.source.kind === 'image' ? rec.fsSizeMib : rec.options.diskSizeMib,
        parts: [{ name: 'disk.qcow2', size, sha256: sum }],
      };
      const pack = tarPack();
      const written = pipeline(pack, fs.createWriteStream(part));
      const entry = pack.entry({ name: 'disk.qcow2', size, mode: 0o600 });
      await pipeline(fs.createReadStream(flat), entry);
      pack.entry({ name: 'manifest.json', mode: 0o644 }, JSON.stringify(manifest, null, 2));
      pack.finalize();
      await written;
      renameDurable(part, out);
    } catch (e) {
      fs.rmSync(part, { force: true });
      if ((e as NodeJS.ErrnoException).code === 'ENOSPC' || /No space left/.test((e as Error).message)) {
        throw new InvalidOptionError(`export of box ${rec.name}: no space left on the device holding ${path.dirname(out)}; nothing was written`);
      }
      throw e;
    } finally {
      fs.rmSync(flat, { force: true });
    }
  });
}

export interface ImportOptions extends ImportOverrides {
  name?: string;
}

const MAX_MANIFEST_BYTES = 1 << 20;

/** Makes a box from an archive, trusting nothing in it that was not checked (see foreign.ts). */
export async function importBox(ctx: RuntimeContext, file: string, opts: ImportOptions = {}): Promise<{ record: BoxRecord; notes: string[] }> {
  const src = path.resolve(file);
  const what = `box archive ${file}`;
  if (!fs.statSync(src, { throwIfNoEntry: false })?.isFile()) throw new ArchiveError(`${what} does not exist or is not a file`);
  if (opts.name !== undefined) checkName('box', opts.name);
  const id = randomBytes(6).toString('hex');
  // Unpacked into a folder the registry ignores (no record) until every part checks out.
  const stage = ensureDir(path.join(ensureDir(ctx.home.boxesDir, 0o700), `.import-${id}`), 0o700);
  // Held while staging: a folder whose lock is free belongs to an import that was killed, and is swept.
  const stageLock = tryLock(path.join(stage, '.lock'));
  try {
    const seen = new Map<string, { size: number; sha256: string }>();
    let manifest: Manifest | undefined;
    const extract = tarExtract();
    extract.on('entry', (h, stream, next) => {
      if (h.name === 'manifest.json' && h.type === 'file') {
        let text = '';
        stream.on('data', (d) => {
          text += d;
          if (text.length > MAX_MANIFEST_BYTES) stream.destroy(new ArchiveError(`${what}: its manifest is larger than ${MAX_MANIFEST_BYTES} bytes; nothing was imported`));
        });
        stream.on('error', (e) => next(e));
        stream.on('end', () => {
          try {
            manifest = JSON.parse(text);
            next();
          } catch {
            next(new ArchiveError(`${what}: its manifest is not valid JSON`));
          }
        });
        return;
      }
      if (h.name !== 'disk.qcow2' || h.type !== 'file') {
        return failEntry(stream, next, new ArchiveError(`${what}: unexpected entry "${h.name}": it was not made by 'boxlite export'`));
      }
      const target = path.join(stage, h.name);
      let announced = false;
      stream.on('data', () => {
        if (!announced) (announced = true), failpoint('import:unpacking');
      });
      pipeline(stream, fs.createWriteStream(target)).then(() => {
        seen.set(h.name, { size: fs.statSync(target).size, sha256: sha256File(target) });
        next();
      }, next);
    });
    try {
      await pipeline(fs.createReadStream(src), extract);
    } catch (e) {
      if (e instanceof ArchiveError) throw e;
      throw new ArchiveError(`${what} is truncated or corrupt (${(e as Error).message}); nothing was imported`);
    }
    if (!manifest) throw new ArchiveError(`${what} has no manifest (it is truncated, or not made by 'boxlite export'); nothing was imported`);
    if (manifest.format !== FORMAT) throw new ArchiveError(`${what} has format "${manifest.format}", which this boxlite does not read (${FORMAT})`);
    if (!Array.isArray(manifest.parts) || manifest.parts.length !== 1 || manifest.parts[0]?.name !== 'disk.qcow2') {
      throw new ArchiveError(`${what}: its manifest lists parts other than one disk.qcow2; nothing was imported`);
    }
    for (const p of manifest.parts) {
      const got = seen.get(p.name);
      if (!got) throw new ArchiveError(`${what}: part ${p.name} is missing; nothing was imported`);
      if (got.size !== p.size || got.sha256 !== p.sha256) {
        throw new ArchiveError(`${what}: part ${p.name} does not match its checksum (the archive was changed or damaged); nothing was imported`);
      }
    }
    const { manifest: m, notes } = checkManifest(manifest, what, { ports: opts.ports, volumes: opts.volumes, binds: opts.binds });
    await checkForeignDisk(path.join(stage, 'disk.qcow2'), what, m.options.diskSizeMib);
    for (const v of m.options.volumes ?? []) ctx.volumes.get(v.volume);
    failpoint('import:checked');
    return await withRegistryLock(ctx, () => {
      const name = opts.name ?? m.name;
      const taken = ctx.records.list().find((r) => r.name === name);
      if (taken) throw new BoxExistsError(`a box named "${name}" already exists (id ${taken.id}): import with --name NEW`);
      const dir = ctx.home.boxDir(id);
      fs.renameSync(stage, dir);
      failpoint('import:moved');
      const rec: BoxRecord = {
        id,
        name,
        createdAt: new Date().toISOString(),
        source: { kind: 'disk', origin: `imported from ${src} (exported from ${m.origin})`, config: m.config },
        options: m.options,
        state: 'created',
        fsSizeMib: m.fsSizeMib,
      };
      ctx.records.create(rec); // last: until here the box does not exist
      return { record: rec, notes };
    });
  } finally {
    stageLock?.release();
    fs.rmSync(stage, { recursive: true, force: true });
  }
}
