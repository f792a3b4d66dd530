// A box's network as NetworkPolicies: the project LAN (project pods reach each other, nothing else reaches them
// but published ports), `network: none` (nothing in or out), and outbound rules. A NetworkPolicy can only allow,
// so deny rules become `except` blocks and port ranges around the denied port; private ranges stay closed unless
// an allow rule names them (as boxlite's boundary keeps them). Domain rules need Cilium (toFQDNs); deny-by-name
// exists nowhere, so it is refused.
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { INetworkPolicyEgressRule } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyEgressRule';
import type { INetworkPolicyPort } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyPort';
import type { ICiliumNetworkPolicy } from '@kubernetes-models/cilium/cilium.io/v2/CiliumNetworkPolicy';
import { parseRule, SPECIAL_RANGES, type EgressRule } from '../core/egress.js';
import type { BoxSpec } from '../spec/types.js';
import { LAN_LABEL, projectLabels } from './names.js';

type Ports = INetworkPolicyPort[] | undefined; // undefined: every port and protocol
interface Block {
  net: number;
  bits: number;
  except: Block[];
  ports: Ports;
}

const toCidr = (b: { net: number; bits: number }) => `${[24, 16, 8, 0].map((s) => (b.net >>> s) & 255).join('.')}/${b.bits}`;
const bitsOf = (mask: number) => {
  let n = 0;
  for (let m = mask >>> 0; m; m = (m << 1) >>> 0) n++;
  return n;
};
const fromRule = (r: EgressRule) => ({ net: r.net!, bits: bitsOf(r.mask!) });
/** Whether a is inside b (or equal). */
const within = (a: { net: number; bits: number }, b: { net: number; bits: number }) => a.bits >= b.bits && (b.bits === 0 || a.net >>> (32 - b.bits) === b.net >>> (32 - b.bits));
const SPECIALS = SPECIAL_RANGES.map((c) => fromRule(parseRule(c)));
const PROTOS = ['TCP', 'UDP'] as const;

function portsOf(r: EgressRule): Ports {
  if (r.port === undefined) return undefined;
  return PROTOS.filter((p) => !r.protocol || p === r.protocol.toUpperCase()).map((protocol) => ({ protocol, port: r.port! }));
}

/** `have` without the port (and protocol) a deny rule names. */
function without(have: Ports, d: EgressRule): Ports {
  const hit = (proto: string) => !d.protocol || d.protocol.toUpperCase() === proto;
  if (!have) {
    const p = d.port!;
    return PROTOS.flatMap((protocol): INetworkPolicyPort[] => {
      if (!hit(protocol)) return [{ protocol }];
      return [...(p > 1 ? [{ protocol, port: 1, ...(p - 1 > 1 ? { endPort: p - 1 } : {}) }] : []), ...(p < 65535 ? [{ protocol, port: p + 1, ...(p + 1 < 65535 ? { endPort: 65535 } : {}) }] : [])];
    });
  }
  return have.filter((x) => !(x.port === d.port && hit(String(x.protocol))));
}

/** The allowed blocks: each allow rule (or everything, with only deny rules) less specials and denied ranges. */
function allowBlocks(allow: EgressRule[], deny: EgressRule[], denyInPolicy: boolean): Block[] {
  const starts = allow.length ? allow : deny.length ? [parseRule('0.0.0.0/0')] : [];
  const out: Block[] = [];
  for (const a of starts) {
    const block: Block = { ...fromRule(a), except: [], ports: portsOf(a) };
    block.except.push(...SPECIALS.filter((s) => s.bits > block.bits && within(s, block)).map((s) => ({ ...s, except: [], ports: undefined })));
    let gone = false;
    const extra: Block[] = [];
    for (const d of denyInPolicy ? deny : []) {
      const dr = fromRule(d);
      if (within(block, dr)) {
        if (d.port === undefined) gone = true;
        else block.ports = without(block.ports, d);
        if (block.ports?.length === 0) gone = true;
      } else if (within(dr, block)) {
        if (!block.except.some((e) => within(dr, e))) {
          block.except.push({ ...dr, except: [], ports: undefined });
          if (d.port !== undefined) {
            const rest = without(block.ports, d);
            if (rest?.length !== 0) extra.push({ ...dr, except: [], ports: rest });
          }
        }
      }
    }
    if (!gone) out.push(block, ...extra);
  }
  return out;
}

export interface PolicyContext {
  project: string;
  namespace: string;
  name: string;
  labels: Record<string, string>;
  cilium: boolean;
  refuse: (field: string, why: string, fix: string) => void;
}

const lanPeers = (project: string) => ({ podSelector: { matchLabels: { ...projectLabels(project), [LAN_LABEL]: 'true' } } });
const KUBE_DNS = { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } };
const DNS_PORTS: INetworkPolicyPort[] = [
  { protocol: 'UDP', port: 53 },
  { protocol: 'TCP', port: 53 },
];

/** The project's LAN: its pods take connections from each other only (published ports are opened per box). */
export function lanPolicy(project: string, namespace: string, name: string): INetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace, labels: projectLabels(project) },
    spec: { podSelector: lanPeers(project).podSelector, policyTypes: ['Ingress'], ingress: [{ from: [lanPeers(project)] }] },
  };
}

/** The policies one box needs, by its network settings. */
export function boxPolicies(b: BoxSpec, ctx: PolicyContext): (INetworkPolicy | ICiliumNetworkPolicy)[] {
  const meta = (suffix: string) => ({ name: `${ctx.name}-${suffix}`, namespace: ctx.namespace, labels: ctx.labels });
  const select = { matchLabels: ctx.labels };
  const out: (INetworkPolicy | ICiliumNetworkPolicy)[] = [];
  if (b.network === 'none') {
    // No rules under both types: nothing in, nothing out (its loopback still works).
    out.push({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: meta('isolated'), spec: { podSelector: select, policyTypes: ['Ingress', 'Egress'] } });
    return out;
  }
  if (b.ports.length) {
    const ports = [...new Map(b.ports.map((p) => [`${p.guestPort}/${p.protocol}`, { protocol: p.protocol.toUpperCase() as 'TCP' | 'UDP', port: p.guestPort }])).values()];
    out.push({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: meta('published'), spec: { podSelector: select, policyTypes: ['Ingress'], ingress: [{ ports }] } });
  }
  if (!b.egress) return out;
  const parsed = (kind: 'allow' | 'deny') => b.egress![kind].map((t, i) => ({ rule: parseRule(t), field: `network.${kind}[${i}]` }));
  const allow = parsed('allow');
  const deny = parsed('deny');
  for (const d of deny.filter((x) => x.rule.kind !== 'cidr')) {
    ctx.refuse(d.field, `"${d.rule.text}" denies a name, and neither a NetworkPolicy nor Cilium's egressDeny can deny by name`, 'deny its addresses (CIDR rules) instead, or remove the rule');
  }
  const names = allow.filter((x) => x.rule.kind !== 'cidr');
  if (names.length && !ctx.cilium) {
    for (const n of names) ctx.refuse(n.field, `"${n.rule.text}" allows a name, and a NetworkPolicy matches addresses only`, 'pass --cni cilium to render a CiliumNetworkPolicy with toFQDNs (the cluster must run Cilium), or allow the addresses instead');
    return out;
  }
  const cidrAllow = allow.filter((x) => x.rule.kind === 'cidr').map((x) => x.rule);
  const cidrDeny = deny.filter((x) => x.rule.kind === 'cidr').map((x) => x.rule);
  const extraDns = b.dns.map((ip) => ({ ipBlock: { cidr: `${ip}/32` } }));
  if (!names.length) {
    const blocks = allowBlocks(cidrAllow, cidrDeny, true);
    const egress: INetworkPolicyEgressRule[] = [
      { to: [KUBE_DNS, ...extraDns], ports: DNS_PORTS },
      { to: [lanPeers(ctx.project)] },
      ...blocks.map((bl) => ({ to: [{ ipBlock: { cidr: toCidr(bl), ...(bl.except.length ? { except: bl.except.map(toCidr) } : {}) } }], ...(bl.ports ? { ports: bl.ports } : {}) })),
    ];
    out.push({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: meta('egress'), spec: { podSelector: select, policyTypes: ['Egress'], egress } });
    return out;
  }
  // Cilium: names through its DNS proxy, denied addresses as egressDeny (which wins, as deny rules do here).
  const toPorts = (r: EgressRule) => (r.port === undefined ? {} : { toPorts: [{ ports: [{ port: String(r.port), protocol: (r.protocol?.toUpperCase() ?? 'ANY') as 'TCP' | 'UDP' | 'ANY' }] }] });
  const fqdn = (r: EgressRule) => (r.kind === 'wildcard' ? { matchPattern: `**.${r.host}` } : { matchName: r.host });
  const byPorts = new Map<string, EgressRule[]>();
  for (const { rule } of names) byPorts.set(`${rule.port}/${rule.protocol}`, [...(byPorts.get(`${rule.port}/${rule.protocol}`) ?? []), rule]);
  const blocks = allowBlocks(cidrAllow, [], false);
  out.push({
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: meta('egress'),
    spec: {
      endpointSelector: select,
      egress: [
        {
          toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' } }],
          toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }], rules: { dns: [{ matchPattern: '*' }] } }],
        },
        ...(b.dns.length ? [{ toCIDR: b.dns.map((ip) => `${ip}/32`), toPorts: [{ ports: [{ port: '53', protocol: 'ANY' as const }] }] }] : []),
        { toEndpoints: [{ matchLabels: lanPeers(ctx.project).podSelector.matchLabels }] },
        ...[...byPorts.values()].map((rs) => ({ toFQDNs: rs.map(fqdn), ...toPorts(rs[0]) })),
        ...blocks.map((bl) => ({ toCIDRSet: [{ cidr: toCidr(bl), ...(bl.except.length ? { except: bl.except.map(toCidr) } : {}) }], ...(bl.ports ? { toPorts: [{ ports: bl.ports.map((p) => ({ port: String(p.port), ...(p.endPort ? { endPort: p.endPort } : {}), protocol: p.protocol as 'TCP' | 'UDP' })) }] } : {}) })),
      ],
      ...(cidrDeny.length ? { egressDeny: cidrDeny.map((d) => ({ toCIDRSet: [{ cidr: toCidr(fromRule(d)) }], ...toPorts(d) })) } : {}),
    },
  });
  return out;
}
