// Image references, resolved the way docker resolves them: `alpine` is docker.io/library/alpine:latest,
// `ghcr.io/org/tool@sha256:…` names a registry, a repository and a digest.
import { ImageError } from '../../core/errors.js';

export interface ImageRef {
  /** Registry host as users write it (docker.io, ghcr.io, 127.0.0.1:5000). */
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

const DOCKER_HUB = 'docker.io';
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$/;

export function parseReference(input: string): ImageRef {
  const bad = (why: string) =>
    new ImageError(`image reference "${input}" is invalid: ${why} (expected [REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST], e.g. debian:12 or ghcr.io/org/tool:1.0)`);
  if (!input || /\s/.test(input)) throw bad('it is empty or contains spaces');
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(`"${digest}" is not a sha256 digest`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`"${tag}" is not a valid tag`);
  }
  const parts = rest.split('/');
  let registry = DOCKER_HUB;
  // Like docker: the first component is a registry when it looks like a host (a dot, a port, or localhost).
  if (parts.length > 1 && (/[.:]/.test(parts[0]) || parts[0] === 'localhost' || parts[0].startsWith('['))) {
    registry = parts.shift()!;
    if (!HOST.test(registry)) throw bad(`"${registry}" is not a valid registry host`);
  }
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DOCKER_HUB;
  if (parts.length === 0 || parts.some((p) => !COMPONENT.test(p))) {
    throw bad(`"${parts.join('/')}" is not a valid repository name (lower-case letters, digits and . _ - separators)`);
  }
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift('library');
  if (!tag && !digest) tag = 'latest';
  return { registry, repository: parts.join('/'), tag, digest };
}

/** The canonical form: docker.io/library/alpine:latest, host/repo@sha256:… */
export function formatReference(r: ImageRef): string {
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/** The canonical form of a name when it parses as a reference, else the name as given (oci-layout:PATH). */
export function canonicalName(name: string): string {
  try {
    return formatReference(parseReference(name));
  } catch {
    return name;
  }
}

/** The short form docker prints: alpine:latest for docker.io/library/alpine:latest. */
export function familiarReference(r: ImageRef): string {
  const full = formatReference(r);
  return full.replace(/^docker\.io\/library\//, '').replace(/^docker\.io\//, '');
}

/** Docker's default insecure registries: loopback. */
export function isLoopbackRegistry(host: string): boolean {
  const h = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}
