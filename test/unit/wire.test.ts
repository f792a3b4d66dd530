// The agent's hand-made encoding of Output messages decodes, with the host's own protobuf decoder, to the bytes
// it joined, in order, on the right stream.
import { describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { encodeOutputChunk } from '../../agent/wire.js';
import { REPO } from '../paths.js';

const def = protoLoader.loadSync(path.join(REPO, 'proto/agent.proto'), { keepCase: false, longs: Number, enums: Number, defaults: true });
const decode = (grpc.loadPackageDefinition(def) as any).boxlite.agent.v1.Execution.service.Output.responseDeserialize as (b: Buffer) => { stream: number; data: Buffer };

describe('Output message encoding', () => {
  const cases: [string, number, number[]][] = [
    ['one small piece of stdout', 0, [5]],
    ['stderr, a length needing a two-byte varint', 1, [200]],
    ['pieces joined as read from a pipe', 0, [65536, 4096, 1, 65536]],
    ['a full message of 1 MiB', 1, [1 << 20]],
    ['nothing', 0, []],
  ];
  for (const [name, stream, sizes] of cases) {
    it(name, () => {
      const parts = sizes.map((n) => randomBytes(n));
      const size = sizes.reduce((a, b) => a + b, 0);
      const got = decode(encodeOutputChunk({ stream, parts, size }));
      expect(got.stream).toBe(stream);
      expect(Buffer.compare(Buffer.from(got.data), Buffer.concat(parts))).toBe(0);
    });
  }
});
