// A box's outbound policy: rules as users write them ("api.example.com", "*.github.com", "10.1.2.0/24:443",
// "9.9.9.9:53/udp") and the decision for one connection. Pure: the gateway process (src/vmm/egress) asks it.
import { createRequire } from 'node:module';
import { InvalidOptionError } from './errors.js';

export interface EgressPolicy {
  allow: string[];
  deny: string[];
}

export type Protocol = 'tcp' | 'udp';

export interface EgressRule {
  text: string;
  kind: 'domain' | 'wildcard' | 'cidr';
  /** The domain (lower case; for a wildcard, the part after "*."), or the network address. */
  host: string;
  /** For cidr rules: network and mask as 32-bit numbers. */
  net?: number;
  mask?: number;
  port?: number;
  /** Absent: both. */
  protocol?: Protocol;
}

export const RULE_FORMS = '"api.example.com", "*.example.com", "203.0.113.7", "203.0.113.0/24", each optionally with ":443" or ":53/udp"';

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

let suffixes: { getDomain: (d: string, o: object) => string | null } | null = null;

/** Whether a name is a public suffix (the Public Suffix List, private domains such as github.io included), read
 *  from a maintained package only when a wildcard needs it. */
export function isPublicSuffix(domain: string): boolean {
  suffixes ??= createRequire(import.meta.url)('tldts') as NonNullable<typeof suffixes>;
  return suffixes.getDomain(domain, { allowPrivateDomains: true }) === null;
}

export const ipToNumber = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
export const isIpv4 = (s: string) => IPV4.test(s);

export function parseRule(text: string): EgressRule {
  const bad = (why: string) => new InvalidOptionError(`network rule "${text}": ${why}; accepted forms: ${RULE_FORMS}`);
  if (typeof text !== 'string' || !text.trim()) throw bad('it is empty');
  const m = /^([^:/]+(?:\/\d{1,2})?)(?::(\d{1,5})(?:\/(tcp|udp))?)?$/.exec(text.trim().toLowerCase());
  if (!m) throw bad('it is malformed');
  const [, hostPart, portText, proto] = m;
  let port: number | undefined;
  if (portText !== undefined) {
    port = Number(portText);
    if (port < 1 || port > 65535) throw bad(`port ${port} is out of range (1–65535)`);
  }
  const base = { text: text.trim(), ...(port !== undefined ? { port } : {}), ...(proto ? { protocol: proto as Protocol } : {}) };
  const slash = hostPart.indexOf('/');
  const addr = slash < 0 ? hostPart : hostPart.slice(0, slash);
  if (IPV4.test(addr)) {
    const bits = slash < 0 ? 32 : Number(hostPart.slice(slash + 1));
    if (bits > 32) throw bad(`prefix /${bits} is longer than 32`);
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    return { ...base, kind: 'cidr', host: hostPart, net: (ipToNumber(addr) & mask) >>> 0, mask };
  }
  if (slash >= 0) throw bad(`"${addr}" is not an IPv4 address, so it takes no prefix`);
  if (/^[\d.]+$/.test(addr)) throw bad(`"${addr}" is not a valid IPv4 address`);
  const wildcard = addr.startsWith('*.');
  const domain = wildcard ? addr.slice(2) : addr;
  if (domain.length > 253 || !domain.split('.').every((l) => LABEL.test(l))) {
    throw bad(`"${addr}" is not a domain name${addr.includes('*') ? ' (a wildcard is allowed only as the first label, "*.")' : ''}`);
  }
  // "*.co.uk" or "*.github.io" names everybody's domains below a public suffix, not a service.
  if (wildcard && isPublicSuffix(domain)) throw bad(`"${domain}" is a public suffix, so "*.${domain}" would name every domain registered under it: name the domain itself (*.example.${domain})`);
  return { ...base, kind: wildcard ? 'wildcard' : 'domain', host: domain };
}

/** Checks every rule, so a policy is refused whole before anything uses it. */
export function parsePolicy(p: Partial<EgressPolicy> | undefined): EgressPolicy {
  const list = (v: unknown, what: string): string[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw new InvalidOptionError(`network ${what} must be a list of rules (${RULE_FORMS})`);
    return v.map((r) => parseRule(String(r)).text);
  };
  return { allow: list(p?.allow, 'allow'), deny: list(p?.deny, 'deny') };
}

export const hasPolicy = (p: EgressPolicy | undefined): p is EgressPolicy => !!p && (p.allow.length > 0 || p.deny.length > 0);

/** Whether a domain (or wildcard) rule covers a name: "*.example.com" covers names below example.com, not itself. */
export function ruleCoversName(r: EgressRule, name: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  if (r.kind === 'domain') return n === r.host;
  if (r.kind === 'wildcard') return n.endsWith(`.${r.host}`);
  return false;
}

/** Never opened, whatever a rule says: the gateway connects from the host, where these are the host's own. */
const CLOSED: [string, string][] = [
  ['0.0.0.0/8', 'this network (never opened)'],
  ['127.0.0.0/8', "the host's loopback (never opened)"],
];
const SPECIAL: [string, string][] = [
  ['10.0.0.0/8', 'a private range'],
  ['100.64.0.0/10', 'a shared (carrier NAT) range'],
  ['169.254.0.0/16', 'link-local and cloud metadata'],
  ['168.63.129.16/32', "cloud metadata (Azure's wire server)"],
  ['192.0.0.0/24', 'IETF protocol assignments and cloud metadata'],
  ['172.16.0.0/12', 'a private range'],
  ['192.168.0.0/16', 'a private range'],
  ['224.0.0.0/3', 'multicast and reserved'],
];
const compile = (list: [string, string][]) => list.map(([c, why]) => ({ rule: parseRule(c), why }));
const CLOSED_RULES = compile(CLOSED);
const SPECIAL_RULES = compile(SPECIAL);
/** The ranges an address rule opens only when it names them, no wider (for policies rendered elsewhere). */
export const SPECIAL_RANGES: readonly string[] = SPECIAL.map(([c]) => c);
const inRange = (n: number, r: EgressRule) => ((n & r.mask!) >>> 0) === r.net;

export interface SpecialRange {
  why: string;
  /** The mask an address rule needs at least to open it: a rule as wide as 0.0.0.0/0 names no private range. */
  mask: number;
  never?: boolean;
}

/** Why an address is closed unless an address rule names it (private, link-local, the host's own), else null. */
export function specialAddress(ip: string, hostAddresses: Set<string>): SpecialRange | null {
  const n = ipToNumber(ip);
  const closed = CLOSED_RULES.find((s) => inRange(n, s.rule));
  if (closed) return { why: closed.why, mask: 0xffffffff, never: true };
  if (hostAddresses.has(ip)) return { why: "the host's own address", mask: 0xffffffff };
  const s = SPECIAL_RULES.find((x) => inRange(n, x.rule));
  return s ? { why: s.why, mask: s.rule.mask! } : null;
}

export interface Destination {
  ip: string;
  port: number;
  protocol: Protocol;
  /** Names whose DNS answers (to this box, still within their TTL) gave this address. */
  names: string[];
}

export interface Decision {
  allowed: boolean;
  /** The rule that decided, or a short reason ("no allow rule matches"). */
  rule: string;
}

function matches(r: EgressRule, d: Destination): boolean {
  if (r.port !== undefined && r.port !== d.port) return false;
  if (r.protocol !== undefined && r.protocol !== d.protocol) return false;
  if (r.kind === 'cidr') return ((ipToNumber(d.ip) & r.mask!) >>> 0) === r.net;
  return d.names.some((n) => ruleCoversName(r, n));
}

/** Compiled once per policy: the gateway decides every connection with it. */
export class PolicyMatcher {
  readonly allow: EgressRule[];
  readonly deny: EgressRule[];
  constructor(
    readonly policy: EgressPolicy,
    private hostAddresses: Set<string> = new Set(),
  ) {
    this.allow = policy.allow.map(parseRule);
    this.deny = policy.deny.map(parseRule);
  }

  decide(d: Destination): Decision {
    const denied = this.deny.find((r) => matches(r, d));
    if (denied) return { allowed: false, rule: `deny ${denied.text}` };
    // Private, link-local and the host's own addresses open only to a rule that names the address itself: a DNS
    // answer for an allowed name cannot lead a box there (rebinding).
    const special = specialAddress(d.ip, this.hostAddresses);
    if (special?.never) return { allowed: false, rule: special.why };
    if (special) {
      // Named: by an address rule no wider than the range itself (the host's own address: by itself).
      const named = this.allow.find((r) => r.kind === 'cidr' && (r.mask! & special.mask) >>> 0 === special.mask && matches(r, d));
      return named ? { allowed: true, rule: `allow ${named.text}` } : { allowed: false, rule: `${special.why} (closed unless an allow rule names the address)` };
    }
    if (this.allow.length === 0) return { allowed: true, rule: 'no allow rules' };
    const allowed = this.allow.find((r) => matches(r, d));
    return allowed ? { allowed: true, rule: `allow ${allowed.text}` } : { allowed: false, rule: 'no allow rule matches' };
  }

  /** Whether the box's DNS may answer a name: not when a deny rule covers it, nor (with allow rules) when none does. */
  decideName(name: string): Decision {
    const denied = this.deny.find((r) => ruleCoversName(r, name));
    if (denied) return { allowed: false, rule: `deny ${denied.text}` };
    if (this.allow.length === 0) return { allowed: true, rule: 'no allow rules' };
    const allowed = this.allow.find((r) => ruleCoversName(r, name));
    return allowed ? { allowed: true, rule: `allow ${allowed.text}` } : { allowed: false, rule: 'no allow rule names it' };
  }
}

/** Where a secret's value comes from; the value itself is never recorded. */
export type SecretSource = { env: string } | { file: string } | { sdk: true };

export interface SecretRef {
  name: string;
  /** Domains or *.domains the value may be sent to. */
  hosts: string[];
  /** What the guest's environment holds in its place. */
  placeholder: string;
  source: SecretSource;
}

/** A secret as callers give it: its value directly (the SDK), or where to read it at each start. */
export interface SecretInput {
  name: string;
  hosts: string[];
  value?: string;
  env?: string;
  file?: string;
  /** Kept by an existing box (its guest already has it). */
  placeholder?: string;
  /** An existing box's secret whose value its SDK program gives. */
  sdk?: boolean;
}

const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** Checks secrets as create does; placeholders are made for new ones. */
export function parseSecrets(list: unknown, makePlaceholder: (name: string) => string): SecretRef[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new InvalidOptionError('secrets must be a list of { name, hosts, value | env | file }');
  const seen = new Set<string>();
  return list.map((s: SecretInput) => {
    const what = `secret ${JSON.stringify(s?.name)}`;
    if (typeof s?.name !== 'string' || !SECRET_NAME.test(s.name)) throw new InvalidOptionError(`${what}: a name is an environment variable name (letters, digits, '_'; not starting with a digit)`);
    if (seen.has(s.name)) throw new InvalidOptionError(`${what} is given twice`);
    seen.add(s.name);
    if (!Array.isArray(s.hosts) || !s.hosts.length) throw new InvalidOptionError(`${what}: give the hosts it may be sent to (hosts: [api.example.com])`);
    const hosts = s.hosts.map((h) => {
      const r = parseRule(String(h));
      if ((r.kind !== 'domain' && r.kind !== 'wildcard') || r.port !== undefined) throw new InvalidOptionError(`${what}: host "${h}" must be a domain or *.domain, without a port`);
      // A wildcard as wide as *.com would send the value to anyone's host (parseRule refuses *.co.uk and the like).
      if (r.host.split('.').length < 2) throw new InvalidOptionError(`${what}: host "${h}" is too wide: name a domain of at least two labels (api.example.com, *.example.com)`);
      return r.text.toLowerCase();
    });
    const sources = [s.value !== undefined, s.env !== undefined, s.file !== undefined, !!s.sdk].filter(Boolean).length;
    if (sources !== 1) throw new InvalidOptionError(`${what}: give exactly one source: env (a host environment variable) or file (from the SDK: value)`);
    if (s.value !== undefined && (typeof s.value !== 'string' || !s.value)) throw new InvalidOptionError(`${what}: its value must be a non-empty string`);
    if (s.env !== undefined && (typeof s.env !== 'string' || !SECRET_NAME.test(s.env))) throw new InvalidOptionError(`${what}: env must name an environment variable of the host`);
    if (s.file !== undefined && (typeof s.file !== 'string' || !s.file.startsWith('/'))) throw new InvalidOptionError(`${what}: file must be an absolute path`);
    const source: SecretSource = s.env !== undefined ? { env: s.env } : s.file !== undefined ? { file: s.file } : { sdk: true };
    return { name: s.name, hosts, placeholder: s.placeholder ?? makePlaceholder(s.name), source };
  });
}
