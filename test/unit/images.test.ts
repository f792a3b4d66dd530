// Pure parts of the image code: references, registry challenges, platform choice, what an image's claims are
// checked against and what its base is named by.
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, gzipSync } from 'node:zlib';
import { parseReference, formatReference } from '../../src/runtime/images/reference.js';
import { parseChallenge } from '../../src/runtime/images/registry.js';
import { pickPlatform } from '../../src/runtime/images/pull.js';
import { DigestMismatchError, ImageError } from '../../src/core/errors.js';
import { checkDiffIdCount, diffIdMismatch, hashingStream, namedDigest } from '../../src/runtime/images/verify.js';
import { baseKey } from '../../src/runtime/images/assemble.js';
import type { ImageRecord } from '../../src/runtime/images/store.js';

describe('references', () => {
  it('are resolved like docker', () => {
    const f = (s: string) => formatReference(parseReference(s));
    expect(f('alpine')).toBe('docker.io/library/alpine:latest');
    expect(f('python:3.12-slim')).toBe('docker.io/library/python:3.12-slim');
    expect(f('org/tool')).toBe('docker.io/org/tool:latest');
    expect(f('ghcr.io/org/tool:1.0')).toBe('ghcr.io/org/tool:1.0');
    expect(f('localhost/x')).toBe('localhost/x:latest');
    expect(f('127.0.0.1:5000/a/b/c:v1')).toBe('127.0.0.1:5000/a/b/c:v1');
    const d = `sha256:${'a'.repeat(64)}`;
    expect(f(`ghcr.io/org/tool@${d}`)).toBe(`ghcr.io/org/tool@${d}`);
    expect(f(`ghcr.io/org/tool:1@${d}`)).toBe(`ghcr.io/org/tool:1@${d}`);
    expect(f('index.docker.io/library/debian:12')).toBe('docker.io/library/debian:12');
    expect(() => parseReference('UPPER/case')).toThrow(ImageError);
    expect(() => parseReference('a@sha256:123')).toThrow(/is not a sha256 digest/);
    expect(() => parseReference('a:b:c')).toThrow(/invalid/);
  });
});

describe('WWW-Authenticate', () => {
  it('parses bearer and basic challenges', () => {
    expect(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' },
    });
    expect(parseChallenge('Basic realm="Registry Realm"')).toEqual({ scheme: 'basic', params: { realm: 'Registry Realm' } });
    expect(parseChallenge('')).toBeNull();
  });
});

describe('platforms', () => {
  const list = [
    { digest: 'a', platform: { os: 'linux', architecture: 'amd64' } },
    { digest: 'b', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
  ];
  it('picks the wanted one and lists the others when it is missing', () => {
    expect(pickPlatform(list, 'linux/amd64', 'x').digest).toBe('a');
    expect(pickPlatform(list, 'linux/arm64', 'x').digest).toBe('b');
    expect(pickPlatform(list, 'linux/arm64/v8', 'x').digest).toBe('b');
    expect(() => pickPlatform(list, 'linux/riscv64', 'img')).toThrow('image img has no linux/riscv64 variant (it has: linux/amd64, linux/arm64/v8)');
    expect(() => pickPlatform(list, 'linux', 'img')).toThrow(/platform "linux" is invalid/);
  });
});

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe("an image's claims", () => {
  it('the hash of a layer is taken from the decompressed stream as it passes, every byte of it', async () => {
    const tar = Buffer.concat([Buffer.alloc(300_000, 1), Buffer.alloc(10_240)]); // trailing zero blocks count too
    const h = hashingStream();
    const seen: Buffer[] = [];
    await pipeline(Readable.from([gzipSync(tar)]), createGunzip(), h.stream, async (src: AsyncIterable<Buffer>) => {
      for await (const c of src) seen.push(c);
    });
    expect(Buffer.concat(seen).equals(tar)).toBe(true);
    expect(h.digest()).toBe(sha(tar));
  });

  it('a mismatch names the image, the layer, its claim and its content', () => {
    const e = diffIdMismatch('image x', 2, sha('blob'), sha('claim'), sha('content'), 'nothing was built');
    expect(e).toBeInstanceOf(DigestMismatchError);
    expect(e.message).toBe(
      `image x: layer 2 (${sha('blob').slice(0, 19)}…) does not match the diff_id its config claims (${sha('claim').slice(0, 19)}…): its content is ${sha('content').slice(0, 19)}…; the image is corrupt or forged, and nothing was built: get it again from a source you trust`,
    );
  });

  it('a config must claim one sha256 diff_id per layer', () => {
    const layers = [{ digest: sha('a'), size: 1, mediaType: 'x' }, { digest: sha('b'), size: 1, mediaType: 'x' }];
    expect(() => checkDiffIdCount('image x', { layers, diffIds: [sha('a'), sha('b')] })).not.toThrow();
    expect(() => checkDiffIdCount('image x', { layers, diffIds: [sha('a')] })).toThrow('image x: its config lists 1 diff_id for 2 layers: the image is malformed or forged, and nothing was built');
    expect(() => checkDiffIdCount('image x', { layers, diffIds: [] })).toThrow('its config lists 0 diff_ids for 2 layers');
    expect(() => checkDiffIdCount('image x', { layers, diffIds: [sha('a'), 'sha512:00'] })).toThrow(/a diff_id that is not a sha256 digest/);
  });

  it('a docker save file names a digest only as blobs/sha256/HEX or HEX.json', () => {
    const hex = 'a'.repeat(64);
    expect(namedDigest(`blobs/sha256/${hex}`)).toBe(`sha256:${hex}`);
    expect(namedDigest(`./blobs/sha256/${hex}`)).toBe(`sha256:${hex}`);
    expect(namedDigest(`${hex}.json`)).toBe(`sha256:${hex}`);
    expect(namedDigest(`${hex}/layer.tar`)).toBeNull(); // a v1 layer ID, not a content digest
    expect(namedDigest(`blobs/sha256/${hex}x`)).toBeNull();
  });

  it('a base is named by the layer blobs, never by what the config claims they hold', () => {
    const rec = (layers: string[], diffIds: string[]) => ({ layers: layers.map((d) => ({ digest: d, size: 1, mediaType: 'x' })), diffIds }) as unknown as ImageRecord;
    const genuine = rec([sha('base'), sha('genuine')], [sha('t1'), sha('t2')]);
    const forged = rec([sha('base'), sha('forged')], [sha('t1'), sha('t2')]); // claims the genuine one's diff_ids
    expect(baseKey(forged)).not.toBe(baseKey(genuine));
    expect(baseKey(rec([sha('base'), sha('genuine')], [sha('x'), sha('y')]))).toBe(baseKey(genuine));
    expect(baseKey(genuine)).toMatch(/^[0-9a-f]{32}$/);
  });
});
