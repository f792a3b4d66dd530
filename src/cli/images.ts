// `boxlite images …`: pull, load, ls, inspect, rm, prune.
import { Images, type ImageRecord } from '../runtime/images/index.js';
import type { Runtime } from '../runtime/runtime.js';
import { printTable } from './table.js';
import { helpFor, parseArgs, UsageError, type OptionSpec } from './args.js';
import { LayerBars } from './progress.js';
import { stderr as err, stdout as out, type Command } from './command.js';

export const PULL_OPTS: Record<string, OptionSpec> = {
  platform: { value: true, help: 'os/arch of the image to pick from a multi-platform image (default linux/amd64)' },
  insecure: { help: 'reach the registry over plain HTTP (loopback registries always are)' },
  quiet: { short: 'q', help: 'no progress, only the image ID' },
};

const SUB: Record<string, { usage: string; help: string; opts: Record<string, OptionSpec> }> = {
  pull: { usage: 'images pull [OPTIONS] REFERENCE', help: 'download an image from a registry into the store', opts: PULL_OPTS },
  load: { usage: 'images load FILE', help: 'load images from a docker save / podman save archive (tar or tar.gz)', opts: { quiet: PULL_OPTS.quiet } },
  ls: { usage: 'images ls [--json]', help: 'list stored images', opts: { json: { help: 'print JSON' } } },
  inspect: { usage: 'images inspect IMAGE', help: 'print everything stored about an image, as JSON', opts: {} },
  rm: { usage: 'images rm [-f] IMAGE…', help: 'remove image references (the image goes with its last one)', opts: { force: { short: 'f', help: 'also when boxes were made from it (they keep working)' } } },
  prune: { usage: 'images prune [-a]', help: 'delete unreferenced images, blobs, bases, partial downloads and the warm-start templates of deleted bases', opts: { all: { short: 'a', help: 'also images no box uses, and every warm-start template' } } },
};


export function imagesUsage(): string {
  return ['Usage: boxlite images COMMAND', '', ...Object.entries(SUB).map(([k, c]) => `  ${k.padEnd(8)} ${c.help}`)].join('\n');
}

const size = (n: number) => (n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(2)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`);
const shortId = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);

const table = (head: string[], rows: string[][]) => printTable(head, rows);

export async function pullWithProgress(rt: Runtime, ref: string, o: { platform?: string; insecure?: boolean; quiet?: boolean }): Promise<ImageRecord> {
  const bars = o.quiet ? null : new LayerBars();
  const insecure = o.insecure ? [ref.split('/')[0]] : [];
  try {
    return await rt.images.pull(ref, { platform: o.platform, insecure, onLayer: bars?.update });
  } finally {
    bars?.finish();
  }
}

async function imagesCommand(rt: Runtime, argv: string[]): Promise<number> {
  const [sub, ...args] = argv;
  if (!sub || sub === '--help' || sub === '-h') {
    out(imagesUsage());
    return sub ? 0 : 1;
  }
  const c = SUB[sub];
  if (!c) throw new UsageError(`images: unknown command "${sub}"\n\n${imagesUsage()}`);
  if (args.includes('--help') || args.includes('-h')) {
    out(`Usage: boxlite ${c.usage}\n\n${c.help}\n\n${helpFor(c.opts)}`);
    return 0;
  }
  const p = parseArgs(args, c.opts, -1, `images ${sub}`);
  switch (sub) {
    case 'pull': {
      if (p.positionals.length !== 1) throw new UsageError('images pull: give one image REFERENCE, e.g. debian:12');
      const rec = await pullWithProgress(rt, p.positionals[0], { platform: p.opts.platform as string, insecure: !!p.opts.insecure, quiet: !!p.opts.quiet });
      if (!p.opts.quiet) err(`pulled ${Images.label(rec)} (${rec.platform}, ${size(rec.size)})`);
      out(rec.id);
      return 0;
    }
    case 'load': {
      if (p.positionals.length !== 1) throw new UsageError('images load: give one FILE (made by docker save or podman save)');
      const recs = await rt.images.load(p.positionals[0]);
      for (const r of recs) out(`loaded ${r.references.length ? r.references.join(', ') : shortId(r.id)} (${shortId(r.id)})`);
      return 0;
    }
    case 'ls': {
      const list = rt.images.list();
      if (p.opts.json) {
        out(JSON.stringify(list, null, 2));
        return 0;
      }
      const rows: string[][] = [];
      for (const r of list) {
        const names = r.references.length ? r.references : ['<none>'];
        for (const n of names) rows.push([n, shortId(r.id), r.platform, size(r.size), (r.created ?? '').replace('T', ' ').slice(0, 19), rt.images.usedBy(r.id).length.toString()]);
      }
      table(['REFERENCE', 'ID', 'PLATFORM', 'SIZE', 'CREATED', 'BOXES'], rows);
      return 0;
    }
    case 'inspect': {
      if (p.positionals.length !== 1) throw new UsageError('images inspect: name one IMAGE');
      const r = rt.images.get(p.positionals[0]);
      const base = rt.images.existingBase(r);
      out(JSON.stringify({ ...r, base: base ?? undefined, boxes: rt.images.usedBy(r.id) }, null, 2));
      return 0;
    }
    case 'rm': {
      if (p.positionals.length === 0) throw new UsageError('images rm: name at least one IMAGE');
      for (const ref of p.positionals) {
        const res = await rt.images.remove(ref, { force: !!p.opts.force });
        for (const u of res.untagged) out(`untagged ${u}`);
        if (res.removed) out(`removed ${ref}`);
      }
      return 0;
    }
    case 'prune': {
      const r = await rt.pruneImages({ all: !!p.opts.all });
      for (const i of r.images) out(`removed ${i}`);
      const templates = r.templates ? `, ${r.templates} warm-start template${r.templates === 1 ? '' : 's'}` : '';
      out(`freed ${size(r.bytes)} (${r.blobs} blob${r.blobs === 1 ? '' : 's'}, ${r.bases} base${r.bases === 1 ? '' : 's'}${templates})`);
      return 0;
    }
  }
  return 1;
}

export const IMAGE_COMMANDS: Record<string, Command> = {
  images: { usage: 'images COMMAND', help: 'manage images: pull, load, ls, inspect, rm, prune', opts: {}, ownHelp: true, run: ({ rt }, args) => imagesCommand(rt, args) },
  pull: { usage: 'pull [OPTIONS] REFERENCE', help: "download an image (same as 'images pull')", opts: {}, ownHelp: true, run: ({ rt }, args) => imagesCommand(rt, ['pull', ...args]) },
  load: { usage: 'load FILE', help: "load a docker save / podman save archive (same as 'images load')", opts: {}, ownHelp: true, run: ({ rt }, args) => imagesCommand(rt, ['load', ...args]) },
};
