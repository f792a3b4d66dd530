// The CLI against a boxlite server: --host URL (or BOXLITE_HOST, as docker's DOCKER_HOST) sends ps, create,
// start, stop, rm, exec (with -it), cp, logs, pause and resume to BoxLite's REST API there. The key comes from
// BOXLITE_API_KEY, or for a server on this machine's loopback from the serve.key a keyless `boxlite serve` made.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Home } from '../runtime/home.js';
import { isLoopback } from '../server/auth.js';
import { ApiKeyCredential, RestClient } from '../client/rest.js';
import { RemoteBoxes } from '../client/remote.js';
import { streamExecution } from '../client/stream-exec.js';
import { copyFrom, copyInto } from '../runtime/copy.js';
import { parseArgs, UsageError } from './args.js';
import { attachTerminal, EXEC_OPTS, execOptions } from './terminal.js';
import { BOX_OPTS, boxCreateOptions, needBoxes, stopTimeoutMs } from './boxes.js';
import { printTable } from './table.js';
import type { Command } from './command.js';

/** --host URL / --host=URL before the command; the rest of the arguments. */
export function hostOption(argv: string[]): { host?: string; rest: string[] } {
  const rest: string[] = [];
  let host: string | undefined;
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    const m = /^(?:--host|-H)(?:=(.*))?$/.exec(a);
    if (m) {
      host = m[1] ?? argv[++i];
      if (!host) throw new UsageError(`${a} needs a URL (http://HOST:PORT)`);
      continue;
    }
    if (!a.startsWith('-')) break;
    rest.push(a);
    if (/^(-f|--file|-p|--project)$/.test(a) && i + 1 < argv.length) rest.push(argv[++i]);
  }
  return { host, rest: [...rest, ...argv.slice(i)] };
}

export function remoteBoxes(url: string): RemoteBoxes {
  let cred = ApiKeyCredential.fromEnv();
  if (!cred) {
    let host = '';
    try {
      host = new URL(url).hostname;
    } catch {}
    const file = path.join(new Home().root, 'serve.key');
    if (isLoopback(host) && fs.existsSync(file)) cred = new ApiKeyCredential(fs.readFileSync(file, 'utf8').trim());
  }
  return new RemoteBoxes(new RestClient(url, cred ?? undefined));
}

type RemoteCommand = Omit<Command, 'run'> & { run(r: RemoteBoxes, out: (l: string) => void, args: string[], spec: Command['opts']): Promise<number> };

const each = (name: string, op: (r: RemoteBoxes, ref: string, p: ReturnType<typeof parseArgs>) => Promise<unknown>, extra: Command['opts'] = {}): RemoteCommand => ({
  usage: `${name} BOX…`,
  help: `${name} boxes on the server`,
  opts: extra,
  async run(r, out, args, spec) {
    const p = parseArgs(args, spec, -1, name);
    for (const ref of needBoxes(p, name)) {
      await op(r, ref, p);
      out(ref);
    }
    return 0;
  },
});

export const REMOTE_COMMANDS: Record<string, RemoteCommand> = {
  ps: {
    usage: 'ps [-a] [-q] [--json]',
    help: "list the server's boxes",
    opts: { all: { short: 'a', help: 'include boxes that are not running' }, quiet: { short: 'q', help: 'only their names' }, json: { help: 'print JSON' } },
    async run(r, out, args, spec) {
      const p = parseArgs(args, spec, -1, 'ps');
      const boxes = (await r.list()).filter((b) => p.opts.all || b.status === 'running' || b.status === 'paused');
      if (p.opts.json) out(JSON.stringify(boxes, null, 2));
      else if (p.opts.quiet) for (const b of boxes) out(b.name ?? b.box_id);
      else printTable(['ID', 'NAME', 'STATE', 'RESOURCES', 'SOURCE', 'CREATED'], boxes.map((b) => [b.box_id, b.name ?? '', b.boxlite?.state ?? b.status, `${b.cpus} cpu, ${b.memory_mib} MiB`, b.image, String(b.created_at).replace('T', ' ').slice(0, 19)]), out);
      return 0;
    },
  },
  create: {
    usage: 'create [OPTIONS] IMAGE',
    help: 'record a new box on the server',
    opts: BOX_OPTS,
    async run(r, out, args, spec) {
      const p = parseArgs(args, spec, -1, 'create');
      if (p.positionals.length !== 1) throw new UsageError('create: give exactly one IMAGE');
      const o = boxCreateOptions(p.opts);
      // A secret's value is read here, where the user runs the command: the server is sent the value.
      const secrets = o.secrets?.map((s) => {
        const v = process.env[(s as { env?: string }).env ?? ''];
        if (v === undefined) throw new UsageError(`--secret ${s.name}: set $${s.name} to its value`);
        return { name: s.name, hosts: s.hosts, value: v };
      });
      const src = p.positionals[0];
      const b = await r.create({ ...o, ...(/^(\/|\.)/.test(src) ? { rootfs: path.resolve(src) } : { image: src }), secrets, onPullProgress: undefined });
      out(b.name ?? b.box_id);
      return 0;
    },
  },
  start: each('start', (r, ref) => r.start(ref)),
  stop: each('stop', (r, ref, p) => r.stop(ref, stopTimeoutMs(p)), { time: { short: 't', value: true, help: 'seconds to wait for a clean shutdown (default 10)' } }),
  rm: each('rm', (r, ref, p) => r.remove(ref, !!p.opts.force), { force: { short: 'f', help: 'also remove running boxes' } }),
  pause: each('pause', (r, ref) => r.client.json('POST', `${r.client.box(ref)}/pause`)),
  resume: each('resume', (r, ref) => r.client.json('POST', `${r.client.box(ref)}/resume`)),
  exec: {
    usage: 'exec [OPTIONS] BOX [--] CMD…',
    help: 'run a command in a box on the server',
    opts: EXEC_OPTS,
    async run(r, _out, args, spec) {
      const p = parseArgs(args, spec, 1, 'exec');
      if (p.positionals.length !== 1) throw new UsageError('exec: name a BOX');
      if (p.rest.length === 0) throw new UsageError('exec: give the command to run: boxlite exec BOX -- CMD…');
      const e = execOptions(p.opts);
      const box = p.positionals[0];
      const { execution_id } = await r.client.json('POST', `${r.client.box(box)}/exec`, {
        command: p.rest[0], args: p.rest.slice(1), ...(Object.keys(e.exec.env ?? {}).length ? { env: e.exec.env } : {}), ...(e.exec.cwd ? { working_dir: e.exec.cwd } : {}),
        ...(e.exec.user ? { user: e.exec.user } : {}), ...(e.exec.tty ? { tty: true, rows: e.exec.rows, cols: e.exec.cols } : {}), ...(e.timeoutS ? { timeout_seconds: e.timeoutS } : {}),
        ...(e.interactive ? {} : { stdin: '' }),
      });
      return attachTerminal(streamExecution(r.client, box, execution_id), e);
    },
  },
  cp: {
    usage: 'cp BOX:PATH HOSTPATH | cp HOSTPATH BOX:PATH',
    help: 'copy files and folders between here and a box on the server',
    opts: {},
    async run(r, _out, args, spec) {
      const p = parseArgs(args, spec, -1, 'cp');
      if (p.positionals.length !== 2) throw new UsageError('cp: give a source and a destination, one of them BOX:PATH');
      const inBox = (a: string) => /^([^/:]+):(.*)$/.exec(a);
      const [src, dst] = p.positionals;
      const a = inBox(src);
      const b = inBox(dst);
      if (!!a === !!b) throw new UsageError('cp: exactly one of source and destination must be BOX:PATH (a box path starts after the colon)');
      if (a) await copyFrom(r.copyTarget(a[1], a[1]), a[2] || '/', dst);
      else await copyInto(r.copyTarget(b![1], b![1]), src, b![2] || '/');
      return 0;
    },
  },
  logs: {
    usage: 'logs [-n LINES] [--console] BOX',
    help: "print a box's guest console (a project box with a command: the command's output)",
    opts: { tail: { short: 'n', value: true, help: 'only the last LINES lines' }, console: { help: 'the guest console even for a box with a command' } },
    async run(r, _out, args, spec) {
      const p = parseArgs(args, spec, -1, 'logs');
      if (p.positionals.length !== 1) throw new UsageError('logs: name one BOX');
      const q = new URLSearchParams({ ...(p.opts.tail ? { tail: String(p.opts.tail) } : {}), ...(p.opts.console ? { console: 'true' } : {}) });
      const res = await r.client.request('GET', `${r.client.box(p.positionals[0])}/logs?${q}`);
      process.stdout.write(await res.text());
      return 0;
    },
  },
};
