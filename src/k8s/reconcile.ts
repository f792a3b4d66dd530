// plan, apply and down against a cluster, for the objects render makes. plan is a server-side dry run of each
// object, classed like the local plan: create, update (with the fields that change), unchanged, and prune (the
// project's objects the file no longer has). apply goes in depends_on order: a box's objects are applied once
// the boxes it depends on are started (their pod runs) or healthy (their pod is Ready), then it waits for every
// box, with listr2 progress. Claims are never pruned (a volume outlives its box, as here); down --volumes
// removes them.
import { Listr, type ListrTask } from 'listr2';
import { ClusterError, type Cluster } from './cluster.js';
import { MANAGED_BY, PART_OF, labelValue } from './names.js';
import type { Rendered } from './render.js';
import type { K8sObject } from './validate.js';
import { SANDBOX_API_VERSION } from './sandbox-schema.js';

export interface K8sChange {
  action: 'create' | 'update' | 'unchanged' | 'prune';
  kind: string;
  name: string;
  /** For an update: the fields that change. */
  fields?: string[];
}

export interface K8sPlan {
  namespace: string;
  changes: K8sChange[];
  /** Whether anything would change (plan's exit 2). */
  changed: boolean;
}

/** The kinds render makes that prune looks among (claims are not pruned; Namespaces are the user's to delete). */
const PRUNABLE: [string, string][] = [
  [SANDBOX_API_VERSION, 'Sandbox'],
  ['apps/v1', 'StatefulSet'],
  ['v1', 'Service'],
  ['v1', 'Secret'],
  ['networking.k8s.io/v1', 'NetworkPolicy'],
  ['cilium.io/v2', 'CiliumNetworkPolicy'],
];

export const selectorOf = (project: string) => `${MANAGED_BY}=boxlite,${PART_OF}=${labelValue(project)}`;

/** What the server fills in, which is not a difference. */
function comparable(o: K8sObject | null): Record<string, unknown> {
  if (!o) return {};
  const { status: _s, metadata, ...rest } = o as K8sObject & { status?: unknown };
  const { managedFields: _m, resourceVersion: _r, generation: _g, uid: _u, creationTimestamp: _c, selfLink: _l, ...meta } = metadata as Record<string, unknown>;
  return { ...rest, metadata: meta };
}

/** Paths (a.b.c, at most four deep) where two values differ. */
export function differences(a: unknown, b: unknown, at = '', depth = 0): string[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  const objects = a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b);
  if (!objects || depth >= 4) return [at || '(whole object)'];
  const keys = [...new Set([...Object.keys(a as object), ...Object.keys(b as object)])].sort();
  return keys.flatMap((k) => differences((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], at ? `${at}.${k}` : k, depth + 1));
}

/** Refuses, with the fix, a cluster that lacks what the objects need: the RuntimeClass, and agent-sandbox. */
export async function preflight(cluster: Cluster, r: Rendered, runtimeClass: string): Promise<void> {
  const classes = (await cluster.list('node.k8s.io/v1', 'RuntimeClass', undefined)).map((c) => c.metadata.name);
  if (!classes.includes(runtimeClass)) {
    throw new ClusterError(`the cluster of context ${cluster.context} has no RuntimeClass "${runtimeClass}" (it has: ${classes.join(', ') || 'none'}): install Kata Containers (kata-deploy makes kata-qemu, kata-clh, kata-fc), or pass --runtime-class with one it has`);
  }
  if (r.boxes.some((b) => b.kind === 'Sandbox') && !(await cluster.serves(SANDBOX_API_VERSION, 'Sandbox', r.namespace))) {
    throw new ClusterError(`the cluster of context ${cluster.context} does not serve agent-sandbox's Sandbox (${SANDBOX_API_VERSION}): install agent-sandbox, or pass --api statefulset`);
  }
  if (r.objects.some((o) => o.kind === 'CiliumNetworkPolicy') && !(await cluster.serves('cilium.io/v2', 'CiliumNetworkPolicy', r.namespace))) {
    throw new ClusterError(`the cluster of context ${cluster.context} does not serve CiliumNetworkPolicy: it needs Cilium for the domain rules, or render without --cni cilium`);
  }
}

/** The project's objects on the cluster that render no longer makes. */
async function orphans(cluster: Cluster, r: Rendered, project: string): Promise<K8sObject[]> {
  const want = new Set(r.objects.map((o) => `${o.kind}/${o.metadata.name}`));
  const out: K8sObject[] = [];
  for (const [apiVersion, kind] of PRUNABLE) {
    for (const o of await cluster.list(apiVersion, kind, r.namespace, selectorOf(project))) if (!want.has(`${kind}/${o.metadata.name}`)) out.push(o);
  }
  return out;
}

export async function planCluster(cluster: Cluster, r: Rendered, project: string): Promise<K8sPlan> {
  const changes: K8sChange[] = [];
  const nsLive = await cluster.read({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: r.namespace } });
  for (const o of r.objects) {
    const live = o.kind === 'Namespace' ? nsLive : nsLive ? await cluster.read(o) : null;
    if (!live) {
      // The server checks what would be created too, once there is a namespace to create it in.
      if (o.kind === 'Namespace' || nsLive || o.metadata.namespace === undefined) await cluster.apply(o, { dryRun: true });
      changes.push({ action: 'create', kind: o.kind, name: o.metadata.name });
      continue;
    }
    const dry = await cluster.apply(o, { dryRun: true });
    const fields = differences(comparable(live), comparable(dry));
    changes.push(fields.length ? { action: 'update', kind: o.kind, name: o.metadata.name, fields } : { action: 'unchanged', kind: o.kind, name: o.metadata.name });
  }
  if (nsLive) for (const o of await orphans(cluster, r, project)) changes.push({ action: 'prune', kind: o.kind, name: o.metadata.name });
  return { namespace: r.namespace, changes, changed: changes.some((c) => c.action !== 'unchanged') };
}

export function renderK8sPlan(p: K8sPlan, context: string): string {
  const sign = { create: '+', update: '~', unchanged: '=', prune: '-' } as const;
  const lines = [`Context ${context}, namespace ${p.namespace}: boxlite k8s apply will`];
  for (const c of p.changes) {
    if (c.action === 'unchanged') continue;
    lines.push(`  ${sign[c.action]} ${c.kind} ${c.name}${c.action === 'prune' ? ' (no longer in the file)' : ''}`);
    for (const f of c.fields ?? []) lines.push(`      ${f}`);
  }
  const n = (a: K8sChange['action']) => p.changes.filter((c) => c.action === a).length;
  lines.push('', p.changed ? `Plan: ${n('create')} to create, ${n('update')} to update, ${n('prune')} to prune, ${n('unchanged')} unchanged.` : `Nothing to do: ${n('unchanged')} objects as the file says.`);
  return lines.join('\n');
}

export interface ApplyOptions {
  /** Wait for every box to be started (healthy, with a healthcheck) before returning; default true. */
  wait?: boolean;
  timeoutMs?: number;
  pollMs?: number;
  renderer?: 'default' | 'simple' | 'silent';
  prune?: boolean;
  /** Box name → whether it has a healthcheck (healthy means Ready for it). */
  healthchecked: Record<string, boolean>;
}

/** The pod a box runs in: a Sandbox's has its name, a StatefulSet's the name and "-0". */
export const podOf = (b: Rendered['boxes'][number]) => (b.kind === 'Sandbox' ? b.name : `${b.name}-0`);

async function podState(cluster: Cluster, ns: string, pod: string): Promise<'absent' | 'pending' | 'started' | 'healthy' | 'ended'> {
  const p = (await cluster.read({ apiVersion: 'v1', kind: 'Pod', metadata: { name: pod, namespace: ns } })) as (K8sObject & { status?: { phase?: string; conditions?: { type: string; status: string }[] } }) | null;
  if (!p) return 'absent';
  const phase = p.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return 'ended';
  if (phase !== 'Running') return 'pending';
  return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? 'healthy' : 'started';
}

async function waitFor(cluster: Cluster, ns: string, box: Rendered['boxes'][number], want: 'started' | 'healthy', o: ApplyOptions, say: (m: string) => void): Promise<void> {
  const deadline = Date.now() + (o.timeoutMs ?? 600_000);
  for (;;) {
    const s = await podState(cluster, ns, podOf(box));
    if (s === 'healthy' || (want === 'started' && s === 'started')) return;
    if (s === 'ended') throw new ClusterError(`box ${box.box}'s pod ${podOf(box)} ended before it was ${want}: kubectl -n ${ns} logs ${podOf(box)}`);
    say(`waiting for ${box.box} to be ${want} (pod ${s})`);
    if (Date.now() > deadline) throw new ClusterError(`box ${box.box} was not ${want} within ${Math.round((o.timeoutMs ?? 600_000) / 1000)} s (pod ${s}): kubectl -n ${ns} describe pod ${podOf(box)}`);
    await new Promise((res) => setTimeout(res, o.pollMs ?? 1000));
  }
}

export async function applyCluster(cluster: Cluster, r: Rendered, project: string, o: ApplyOptions): Promise<{ applied: number; pruned: string[] }> {
  const boxOf = new Map(r.boxes.map((b) => [b.name, b]));
  const owner = (x: K8sObject) => x.metadata.labels?.['app.kubernetes.io/name'];
  const shared = r.objects.filter((x) => !owner(x) || !r.boxes.some((b) => b.box === owner(x) || b.name === owner(x)));
  const ofBox = (b: Rendered['boxes'][number]) => r.objects.filter((x) => !shared.includes(x) && (owner(x) === b.box || owner(x) === b.name));
  let applied = 0;
  const pruned: string[] = [];
  const put = async (x: K8sObject) => {
    await cluster.apply(x);
    applied++;
  };
  const tasks: ListrTask[] = [
    { title: `namespace ${r.namespace} and project objects`, task: async () => { for (const x of shared) await put(x); } },
    ...r.boxes.map(
      (b): ListrTask => ({
        title: b.box,
        task: async (_c, t) => {
          for (const [dep, cond] of Object.entries(b.dependsOn)) {
            t.title = `${b.box}: waiting for ${dep} (${cond})`;
            await waitFor(cluster, r.namespace, boxOf.get(dep)!, cond === 'healthy' ? 'healthy' : 'started', o, (m) => (t.output = m));
          }
          t.title = `${b.box}: applying`;
          for (const x of ofBox(b)) await put(x);
          t.title = `${b.box}: applied`;
        },
      }),
    ),
    ...(o.prune === false ? [] : [{ title: 'prune', task: async () => { for (const x of await orphans(cluster, r, project)) if (await cluster.delete(x)) pruned.push(`${x.kind}/${x.metadata.name}`); } }]),
    ...(o.wait === false ? [] : r.boxes.map((b): ListrTask => ({ title: `${b.box}: ready`, task: async (_c, t) => waitFor(cluster, r.namespace, b, o.healthchecked[b.box] ? 'healthy' : 'started', o, (m) => (t.output = m)) }))),
  ];
  await new Listr(tasks, { concurrent: false, exitOnError: true, renderer: o.renderer ?? 'silent', rendererOptions: { showErrorMessage: true } as never }).run();
  return { applied, pruned };
}

/** Deletes the project's objects (claims too with volumes, and the Namespace boxlite made for it). */
export async function downCluster(cluster: Cluster, namespace: string, project: string, o: { volumes?: boolean }): Promise<string[]> {
  const gone: string[] = [];
  const kinds: [string, string][] = [...PRUNABLE, ...(o.volumes ? ([['v1', 'PersistentVolumeClaim']] as [string, string][]) : [])];
  for (const [apiVersion, kind] of kinds) {
    for (const x of await cluster.list(apiVersion, kind, namespace, selectorOf(project))) if (await cluster.delete(x)) gone.push(`${kind}/${x.metadata.name}`);
  }
  if (o.volumes) {
    const ns = await cluster.read({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
    if (ns?.metadata.labels?.[MANAGED_BY] === 'boxlite' && ns.metadata.labels?.[PART_OF] === labelValue(project) && (await cluster.delete(ns))) gone.push(`Namespace/${namespace}`);
  }
  return gone;
}
