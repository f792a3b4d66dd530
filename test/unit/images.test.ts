// Pure parts of the image code: references, registry challenges, platform choice.
import { describe, expect, it } from 'vitest';
import { parseReference, formatReference } from '../../src/runtime/images/reference.js';
import { parseChallenge } from '../../src/runtime/images/registry.js';
import { pickPlatform } from '../../src/runtime/images/pull.js';
import { ImageError } from '../../src/core/errors.js';

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
