// `boxlite serve`: BoxLite's REST API on a port, until SIGINT or SIGTERM; boxes keep running after it.
import { parseArgs } from './args.js';
import type { Command } from './command.js';

export const SERVE_COMMAND: Command = {
  usage: 'serve [--listen ADDR:PORT] [--api-key-file F] [--tls-cert F --tls-key F] [--allow-host-folders DIR] [--projects-dir DIR]',
  help: "serve BoxLite's REST API for this home's boxes (default 127.0.0.1:8100; beyond loopback only with a key)",
  opts: {
    listen: { value: true, help: 'address and port (default 127.0.0.1:8100); an address beyond loopback needs --api-key-file' },
    'api-key-file': { value: true, help: "a file (mode 600) of API keys, one a line; without it a loopback server makes one in the home's serve.key" },
    'tls-cert': { value: true, help: 'serve HTTPS with this certificate (PEM)' },
    'tls-key': { value: true, help: "the certificate's private key (PEM)" },
    'allow-host-folders': { value: true, help: 'boxes made through the API may mount host folders (and boot root filesystems) below this folder only' },
    'projects-dir': { value: true, help: 'project files (boxlite.yaml) below this folder may be planned, brought up and down through the API' },
    quiet: { short: 'q', help: 'do not log each request' },
  },
  async run({ rt, err }, args, spec) {
    const p = parseArgs(args, spec, -1, 'serve');
    const o = p.opts as Record<string, string | undefined>;
    const { BoxliteServer } = await import('../server/server.js'); // the server's code only for serve
    const server = await BoxliteServer.start({
      runtime: rt,
      listen: o.listen,
      apiKeyFile: o['api-key-file'],
      tlsCert: o['tls-cert'],
      tlsKey: o['tls-key'],
      allowHostFolders: o['allow-host-folders'],
      projectsDir: o['projects-dir'],
      log: p.opts.quiet ? (l) => !l.startsWith('boxlite serve:') || err(l) : err,
    });
    err(`boxlite serve: listening on ${server.url}${server.keyFile ? ` (API key in ${server.keyFile}; clients on this machine read it from there)` : ''}`);
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        server.close().then(resolve, resolve);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    return 0;
  },
};
