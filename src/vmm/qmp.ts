// Minimal QMP client: one command per connection, which is all boxlite needs (power-down, status, quit).
import * as net from 'node:net';

export async function qmp<T = unknown>(socketPath: string, command: string, args?: object, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let buf = '';
    let stage = 0; // 0: greeting, 1: capabilities answered, 2: command answered
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`QMP ${command}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (err: Error | null, v?: T) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(v as T);
    };
    sock.on('error', (e) => done(new Error(`QMP ${command}: ${e.message}`)));
    sock.on('close', () => {
      // `quit` closes the socket once QEMU exits; that is its answer.
      if (command === 'quit' && stage >= 1) done(null, undefined);
      else done(new Error(`QMP ${command}: connection closed`));
    });
    sock.on('data', (d) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const msg = JSON.parse(line);
        if (msg.event) continue;
        if (stage === 0 && msg.QMP) {
          stage = 1;
          sock.write(JSON.stringify({ execute: 'qmp_capabilities' }) + '\n');
        } else if (stage === 1 && 'return' in msg) {
          stage = 2;
          sock.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) }) + '\n');
        } else if (stage === 2) {
          if (msg.error) done(new Error(`QMP ${command}: ${msg.error.desc}`));
          else done(null, msg.return as T);
        }
      }
    });
  });
}
