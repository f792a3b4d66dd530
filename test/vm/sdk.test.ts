// The SDK as an application uses it: SimpleBox with `await using`, exec results, a streaming handle.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHome, makeRootfs, quietRuntime, testHome } from '../helpers.js';
import { SimpleBox, Runtime, BoxNotFoundError, TimeoutError } from '../../src/index.js';

let home: string;
let rt: Runtime;

beforeAll(() => {
  home = testHome();
  rt = quietRuntime(home);
});

afterAll(async () => {
  rt?.close();
  if (home) await cleanupHome(home);
});

describe('SimpleBox', () => {
  it('boots on first use, runs commands, streams, and is removed on disposal', async () => {
    let id: string | undefined;
    {
      await using box = new SimpleBox({ image: makeRootfs(), cpus: 2, memoryMib: 256, env: { MODE: 'sdk' }, workingDir: '/tmp', runtime: rt });
      const hi = await box.exec('echo', 'hi');
      expect(hi).toEqual({ exitCode: 0, stdout: 'hi\n', stderr: '', signal: null, timedOut: false });
      const env = await box.exec('sh', ['-c', 'echo $MODE $(pwd) $(nproc)']);
      expect(env.stdout).toBe('sdk /tmp 2\n');
      const withOpts = await box.exec('sh', ['-c', 'cat; pwd'], undefined, { input: 'in ', cwd: '/' });
      expect(withOpts.stdout).toBe('in /\n');

      const ex = await box.spawn(['sh', '-c', 'read line; echo got:$line; echo oops >&2; exit 4'], { stdin: true });
      ex.stdin.write('abc\n');
      let out = '';
      let err = '';
      ex.stdout.on('data', (d) => (out += d));
      ex.stderr.on('data', (d) => (err += d));
      expect(await ex.wait()).toEqual({ exitCode: 4, signal: null, timedOut: false });
      expect([out, err]).toEqual(['got:abc\n', 'oops\n']);

      await expect(box.exec('sleep', ['10'], undefined, { timeoutMs: 500 })).rejects.toThrow(TimeoutError);
      id = box.id;
      expect(rt.get(id!).info().state).toBe('running');
    }
    expect(() => rt.get(id!)).toThrow(BoxNotFoundError);
  });
});
