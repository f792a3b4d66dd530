// boxlite.yaml → Kubernetes objects. Each box becomes an agent-sandbox Sandbox (one stateful pod with a stable name
// and a headless Service) or, with api "statefulset", a StatefulSet of one and its headless Service; around it go
// a Service for its published ports, its claims, its NetworkPolicies and (when asked) a Secret. What cannot be
// carried is refused by name with its fix (K8sRefusedError, all at once); what is carried approximately is said
// in the warnings. Pure but for reading secret values when asked to print them.
import * as fs from 'node:fs';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import type { IPersistentVolumeClaimSpec } from 'kubernetes-models/v1/PersistentVolumeClaimSpec';
import { InvalidOptionError } from '../core/errors.js';
import type { BoxSpec, ProjectSpec } from '../spec/types.js';
import { BOX_LABEL, CONFIG_HASH, DEPENDS_ON, LAN_LABEL, RESTART, boxLabels, clusterName, configHash, formatDependsOn, projectLabels } from './names.js';
import { podSpec } from './pod.js';
import { boxPolicies, lanPolicy } from './policy.js';
import { K8sRefusedError, type Refusal } from './refusal.js';
import { SANDBOX_API_VERSION } from './sandbox-schema.js';
import type { K8sObject } from './validate.js';

export interface RenderOptions {
  namespace?: string;
  /** Default kata-qemu. */
  runtimeClass?: string;
  api?: 'sandbox' | 'statefulset';
  cni?: 'cilium';
  allowHostPath?: boolean;
  secretsAsEnv?: boolean;
  includeSecretValues?: boolean;
  setupAsInit?: boolean;
  /** Box name → an image reference that holds the box as provisioned (render --push). */
  images?: Record<string, string>;
}

export interface Rendered {
  namespace: string;
  objects: K8sObject[];
  warnings: string[];
  /** Box name → the workload's cluster name, in dependency order. */
  boxes: { box: string; name: string; kind: 'Sandbox' | 'StatefulSet'; dependsOn: Record<string, string> }[];
}

export const DEFAULT_RUNTIME_CLASS = 'kata-qemu';

/** Boxes in dependency order (a box after every box it depends on). */
export function dependencyOrder(spec: ProjectSpec): string[] {
  const out: string[] = [];
  const visit = (n: string) => {
    if (out.includes(n)) return;
    for (const d of Object.keys(spec.boxes[n].dependsOn)) visit(d);
    out.push(n);
  };
  for (const n of Object.keys(spec.boxes)) visit(n);
  return out;
}

const claimSpec = (sizeMib: number, mode: 'ReadWriteOnce' | 'ReadWriteMany'): IPersistentVolumeClaimSpec => ({ accessModes: [mode], resources: { requests: { storage: `${sizeMib}Mi` } } });

export function renderProject(spec: ProjectSpec, opts: RenderOptions = {}): Rendered {
  const api = opts.api ?? 'sandbox';
  const refusals: Refusal[] = [];
  const warnings: string[] = [];
  const namespace = opts.namespace ?? clusterName(spec.name);
  if (!namespace || !clusterName(namespace) || clusterName(namespace) !== namespace) {
    throw new InvalidOptionError(opts.namespace ? `namespace "${opts.namespace}" is not a valid Kubernetes name: use lower-case letters, digits and '-', starting with a letter` : `project ${spec.name} makes no valid namespace name: give one with --namespace`);
  }
  const objects: K8sObject[] = [];
  if (!opts.namespace) objects.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: projectLabels(spec.name) } });

  // Cluster names: boxes reach each other by them, so a box whose name changes is said.
  const names: Record<string, string> = {};
  for (const b of Object.keys(spec.boxes)) {
    const n = clusterName(b);
    if (!n) refusals.push({ box: b, field: 'name', why: `"${b}" makes no valid Kubernetes name (a DNS label: a letter first, letters, digits and '-')`, fix: 'rename the box to start with a letter' });
    else {
      const other = Object.entries(names).find(([, v]) => v === n);
      if (other) refusals.push({ box: b, field: 'name', why: `boxes ${other[0]} and ${b} would both be named "${n}" on the cluster`, fix: 'rename one of them' });
      if (n !== b) warnings.push(`box ${b} is named ${n} on the cluster: other boxes reach it by that name`);
      names[b] = n;
    }
  }

  // A volume mounted by one box is a claim template of that box; one mounted by several, a claim of its own.
  const users = new Map<string, string[]>();
  for (const b of Object.values(spec.boxes)) for (const m of b.volumes) if (m.type === 'volume') users.set(m.source, [...new Set([...(users.get(m.source) ?? []), b.name])]);
  const volName = (v: string) => clusterName(v) ?? `vol-${v.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`;
  for (const v of Object.values(spec.volumes)) {
    const u = users.get(v.name) ?? [];
    if (!u.length) warnings.push(`volume ${v.name} is mounted by no box: not rendered`);
    if (u.length > 1) {
      warnings.push(`volume ${v.name} is mounted by ${u.join(', ')}: it becomes one claim that needs ReadWriteMany (a storage class that offers it)`);
      objects.push({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: volName(v.name), namespace, labels: projectLabels(spec.name) }, spec: claimSpec(v.sizeMib, 'ReadWriteMany') });
    }
  }
  const shared = (v: string) => (users.get(v)?.length ?? 0) > 1;

  const boxes: Rendered['boxes'] = [];
  for (const bn of dependencyOrder(spec)) {
    const b = spec.boxes[bn];
    const name = names[bn];
    if (!name) continue;
    const refuse = (field: string, why: string, fix: string) => refusals.push({ box: bn, field, why, fix });
    const warn = (m: string) => warnings.push(m);
    const pushed = opts.images?.[bn];
    if (!pushed && b.image.startsWith('/')) refuse('image', `${b.image} is a folder or OCI layout on this machine, which a cluster cannot pull`, 'pass --push REGISTRY to commit each box and push it there, or push the image yourself and name it in image:');
    if (b.pauseAfterMs !== undefined) warn(`box ${bn}: pause_after is not carried (suspend a Sandbox with spec.operatingMode: Suspended)`);
    if (b.snapshots) warn(`box ${bn}: snapshots are not carried (a cluster snapshots claims with VolumeSnapshots)`);
    if (b.restart === 'unless-stopped') warn(`box ${bn}: restart "unless-stopped" becomes Always; stopping a box on a cluster is suspending its Sandbox (or scaling its StatefulSet to 0), which the controller keeps`);
    if (b.ports.some((p) => p.hostIp !== '127.0.0.1' && p.hostIp !== '0.0.0.0')) warn(`box ${bn}: the host addresses of its ports are not carried (a Service has none)`);

    const labels = boxLabels(spec.name, bn);
    const podLabels = { ...labels, ...(b.network === 'none' ? {} : { [LAN_LABEL]: 'true' }) };
    const secretName = `${name}-secrets`;
    const pod = podSpec(b, {
      api,
      runtimeClass: opts.runtimeClass ?? DEFAULT_RUNTIME_CLASS,
      image: pushed ?? b.image,
      setupBaked: !!pushed,
      volumeName: volName,
      claimOf: (v) => (shared(v) ? volName(v) : undefined),
      secretName,
      allowHostPath: !!opts.allowHostPath,
      secretsAsEnv: !!opts.secretsAsEnv,
      setupAsInit: !!opts.setupAsInit,
      refuse,
      warn,
    });
    if (b.secrets?.length && opts.secretsAsEnv) objects.push(...secretObject(b, secretName, namespace, labels, !!opts.includeSecretValues, refuse, warn));

    const hash = configHash(b);
    const annotations = {
      [CONFIG_HASH]: hash,
      [RESTART]: b.restart,
      ...(Object.keys(b.dependsOn).length ? { [DEPENDS_ON]: formatDependsOn(b.dependsOn, (d) => names[d] ?? d) } : {}),
    };
    const templates = b.volumes.flatMap((m) => (m.type === 'volume' && !shared(m.source) ? [{ metadata: { name: volName(m.source), labels: projectLabels(spec.name) }, spec: claimSpec(spec.volumes[m.source].sizeMib, 'ReadWriteOnce') }] : []));

    if (b.ports.length) objects.push(portsService(b, `${name}-ports`, namespace, labels));
    objects.push(...(boxPolicies(b, { project: spec.name, namespace, name, labels, cilium: opts.cni === 'cilium', refuse }) as unknown as K8sObject[]));
    if (api === 'sandbox') {
      objects.push({
        apiVersion: SANDBOX_API_VERSION,
        kind: 'Sandbox',
        metadata: { name, namespace, labels, annotations },
        spec: { podTemplate: { metadata: { labels: podLabels, annotations: { [CONFIG_HASH]: hash } }, spec: pod }, ...(templates.length ? { volumeClaimTemplates: templates } : {}), service: true },
      });
    } else {
      const headless: IService = {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name, namespace, labels },
        // Ready or not, as boxlite's LAN names resolve from the box's start.
        spec: { clusterIP: 'None', publishNotReadyAddresses: true, selector: labels, ...(pod.containers[0].ports ? { ports: pod.containers[0].ports.map((p) => ({ name: `${p.protocol!.toLowerCase()}-${p.containerPort}`, port: p.containerPort, protocol: p.protocol })) } : {}) },
      };
      const set: IStatefulSet = {
        apiVersion: 'apps/v1',
        kind: 'StatefulSet',
        metadata: { name, namespace, labels, annotations },
        spec: {
          replicas: 1,
          serviceName: name,
          selector: { matchLabels: labels },
          template: { metadata: { labels: podLabels, annotations: { [CONFIG_HASH]: hash } }, spec: pod },
          ...(templates.length ? { volumeClaimTemplates: templates.map((t) => ({ apiVersion: 'v1' as const, kind: 'PersistentVolumeClaim' as const, ...t })) } : {}),
        },
      };
      objects.push(headless as unknown as K8sObject, set as unknown as K8sObject);
    }
    boxes.push({ box: bn, name, kind: api === 'sandbox' ? 'Sandbox' : 'StatefulSet', dependsOn: Object.fromEntries(Object.entries(b.dependsOn).map(([d, c]) => [names[d] ?? d, c])) });
  }
  objects.splice(opts.namespace ? 0 : 1, 0, lanPolicy(spec.name, namespace, `${clusterName(spec.name) ?? 'project'}-lan`) as unknown as K8sObject);

  if (refusals.length) throw new K8sRefusedError(refusals);
  const seen = new Map<string, string>();
  for (const o of objects) {
    const k = `${o.kind}/${o.metadata.name}`;
    if (seen.has(k)) throw new InvalidOptionError(`two objects would be named ${k} on the cluster: rename a box (${o.metadata.labels?.[BOX_LABEL] ?? seen.get(k)})`);
    seen.set(k, o.metadata.labels?.[BOX_LABEL] ?? '');
  }
  return { namespace, objects, warnings, boxes };
}

/** Published ports: port = the host port, targetPort = the box port (a port chosen at start keeps the box's). */
function portsService(b: BoxSpec, name: string, namespace: string, labels: Record<string, string>): K8sObject {
  const ports = new Map<string, NonNullable<NonNullable<IService['spec']>['ports']>[number]>();
  for (const p of b.ports) {
    const port = p.hostPort || p.guestPort;
    const protocol = p.protocol === 'udp' ? ('UDP' as const) : ('TCP' as const);
    ports.set(`${port}/${protocol}`, { name: `${p.protocol}-${port}`, port, targetPort: p.guestPort, protocol });
  }
  const svc: IService = { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace, labels }, spec: { type: 'ClusterIP', selector: labels, ports: [...ports.values()] } };
  return svc as unknown as K8sObject;
}

/** The Secret of a box's secrets, printed only with their values when asked; otherwise how to make it. */
function secretObject(b: BoxSpec, name: string, namespace: string, labels: Record<string, string>, withValues: boolean, refuse: (f: string, why: string, fix: string) => void, warn: (m: string) => void): K8sObject[] {
  const list = b.secrets ?? [];
  warn(`box ${b.name}: secrets ${list.map((s) => s.name).join(', ')} become environment variables from Secret ${name}: the box can read them (a pod has no gateway), and the hosts they were limited to are not enforced`);
  if (!withValues) {
    const from = list.map((s) => ('env' in s.source ? `--from-literal=${s.name}="$${s.source.env}"` : `--from-file=${s.name}=${s.source.file}`)).join(' ');
    warn(`box ${b.name}: Secret ${name} is not printed (its values would be): make it with  kubectl -n ${namespace} create secret generic ${name} ${from}  (or render with --include-secret-values)`);
    return [];
  }
  const stringData: Record<string, string> = {};
  for (const s of list) {
    if ('env' in s.source) {
      const v = process.env[s.source.env];
      if (v === undefined) refuse(`secrets.${s.name}`, `its value comes from $${s.source.env}, which is not set`, `set ${s.source.env} in the environment of this command`);
      else stringData[s.name] = v;
    } else {
      try {
        stringData[s.name] = fs.readFileSync(s.source.file, 'utf8').replace(/\r?\n$/, '');
      } catch (e) {
        refuse(`secrets.${s.name}`, `its value comes from ${s.source.file}, which cannot be read (${(e as NodeJS.ErrnoException).code})`, 'fix the path in secrets.NAME.file');
      }
    }
  }
  return [{ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace, labels }, type: 'Opaque', stringData }];
}
