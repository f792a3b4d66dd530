// `boxlite commit BOX REF` and `boxlite push REF`: a box's disk as an image, and an image to a registry.
import { parseArgs, UsageError } from './args.js';
import type { Command } from './command.js';

const size = (n: number) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`);

export const PUBLISH_COMMANDS: Record<string, Command> = {
  commit: {
    usage: 'commit [-m MESSAGE] [--command CMD] BOX REFERENCE',
    help: "make an image of a box's disk: its image's layers plus one of what the box changed (a running box is frozen for the instant)",
    opts: {
      message: { short: 'm', value: true, help: "recorded in the image's history" },
      command: { value: true, help: "the image's command, a shell command line (default: the image's own)" },
    },
    async run({ rt, out, err }, args, spec) {
      const p = parseArgs(args, spec, -1, 'commit');
      if (p.positionals.length !== 2) throw new UsageError('commit: give a BOX and an image REFERENCE, e.g. boxlite commit dev registry.example/team/dev:1');
      const [box, ref] = p.positionals;
      const b = rt.get(box);
      const r = await b.commit(ref, { message: p.opts.message as string | undefined, command: p.opts.command ? ['sh', '-c', p.opts.command as string] : undefined });
      const layer = r.image.layers[r.image.layers.length - 1];
      err(`committed box ${b.name} as ${r.image.references[0]}: ${r.added} added, ${r.changed} changed, ${r.deleted} deleted (a layer of ${size(layer.size)} over ${r.image.layers.length - 1})`);
      out(r.image.id);
      return 0;
    },
  },
  push: {
    usage: 'push [--insecure] REFERENCE',
    help: 'push a stored image (pulled, loaded or committed) to the registry its reference names',
    opts: { insecure: { help: 'reach the registry over plain HTTP (loopback registries always are)' }, quiet: { short: 'q', help: 'no progress, only the digest' } },
    async run({ rt, out, err }, args, spec) {
      const p = parseArgs(args, spec, -1, 'push');
      if (p.positionals.length !== 1) throw new UsageError('push: give one image REFERENCE, e.g. boxlite push registry.example/team/dev:1');
      const ref = p.positionals[0];
      const r = await rt.push(ref, {
        insecure: p.opts.insecure ? [ref.split('/')[0]] : [],
        onBlob: p.opts.quiet ? undefined : (b) => b.phase !== 'uploading' && err(`${b.digest.slice(7, 19)}: ${b.phase === 'exists' ? 'already there' : b.phase === 'mounted' ? 'mounted from its source repository' : `pushed (${size(b.size)})`}`),
      });
      if (!p.opts.quiet) err(`pushed ${r.reference}`);
      out(`${r.reference.replace(/:[^:/]+$/, '')}@${r.digest}`);
      return 0;
    },
  },
};
