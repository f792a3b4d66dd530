// The agent contract compiled at build time (dist/agent-bundle/agent.json, which the host's client and the guest's
// agent load instead of parsing agent.proto at each start) describes the same services as the .proto: the same
// methods, streaming kinds, and the same bytes for every message each way.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const OPTS = { keepCase: false, longs: Number, enums: Number, defaults: true };

describe('the compiled agent contract', () => {
  it('matches proto/agent.proto method by method and message by message', () => {
    const parsed = protoLoader.loadSync(path.join(ROOT, 'proto/agent.proto'), OPTS);
    const compiled = protoLoader.fromJSON(JSON.parse(fs.readFileSync(path.join(ROOT, 'dist/agent-bundle/agent.json'), 'utf8')), OPTS);
    expect(Object.keys(compiled).sort()).toEqual(Object.keys(parsed).sort());
    const services = Object.keys(parsed).filter((k) => !('format' in parsed[k]));
    expect(services).toContain('boxlite.agent.v1.Execution');
    let methods = 0;
    for (const s of services) {
      const a = parsed[s] as protoLoader.ServiceDefinition;
      const b = compiled[s] as protoLoader.ServiceDefinition;
      expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
      for (const m of Object.keys(a)) {
        methods++;
        expect([b[m].path, b[m].requestStream, b[m].responseStream]).toEqual([a[m].path, a[m].requestStream, a[m].responseStream]);
        for (const [de, ser] of [['requestDeserialize', 'requestSerialize'], ['responseDeserialize', 'responseSerialize']] as const) {
          const message = a[m][de](Buffer.alloc(0));
          expect(b[m][de](Buffer.alloc(0))).toEqual(message);
          expect(b[m][ser](message)).toEqual(a[m][ser](message));
        }
      }
    }
    expect(methods).toBeGreaterThan(10);
  });
});
