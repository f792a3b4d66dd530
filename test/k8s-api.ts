// A local HTTP server that answers as a Kubernetes API server would for what boxlite k8s asks: discovery of the
// kinds render makes, server-side apply (application/apply-patch+yaml, dry runs not stored), get, list by label,
// delete, RuntimeClasses; and, standing in for the controllers, a pod for each Sandbox or StatefulSet applied,
// whose phase and readiness the test sets. Every request is recorded, and each one is an event to wait on.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { EventEmitter } from 'node:events';
import { parse } from 'yaml';

export interface ApiRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType?: string;
  body?: any;
}

type Obj = { apiVersion: string; kind: string; metadata: Record<string, any>; status?: any; [k: string]: any };

const RESOURCES: Record<string, { name: string; kind: string; namespaced: boolean }[]> = {
  v1: [
    { name: 'namespaces', kind: 'Namespace', namespaced: false },
    { name: 'services', kind: 'Service', namespaced: true },
    { name: 'secrets', kind: 'Secret', namespaced: true },
    { name: 'persistentvolumeclaims', kind: 'PersistentVolumeClaim', namespaced: true },
    { name: 'pods', kind: 'Pod', namespaced: true },
  ],
  'apps/v1': [{ name: 'statefulsets', kind: 'StatefulSet', namespaced: true }],
  'networking.k8s.io/v1': [{ name: 'networkpolicies', kind: 'NetworkPolicy', namespaced: true }],
  'node.k8s.io/v1': [{ name: 'runtimeclasses', kind: 'RuntimeClass', namespaced: false }],
  'agents.x-k8s.io/v1beta1': [{ name: 'sandboxes', kind: 'Sandbox', namespaced: true }],
  'cilium.io/v2': [{ name: 'ciliumnetworkpolicies', kind: 'CiliumNetworkPolicy', namespaced: true }],
};

export class FakeApiServer extends EventEmitter {
  readonly requests: ApiRequest[] = [];
  readonly objects = new Map<string, Obj>();
  /** API groups the cluster serves (agent-sandbox and Cilium are CRDs a cluster may not have). */
  served = new Set(Object.keys(RESOURCES).filter((g) => g !== 'cilium.io/v2'));
  private server!: http.Server;
  private version = 1;
  kubeconfig = '';

  constructor(runtimeClasses: string[] = ['kata-qemu', 'kata-clh']) {
    super();
    for (const rc of runtimeClasses) this.objects.set(this.key('node.k8s.io/v1', 'RuntimeClass', undefined, rc), { apiVersion: 'node.k8s.io/v1', kind: 'RuntimeClass', metadata: { name: rc }, handler: rc });
  }

  key(apiVersion: string, kind: string, ns: string | undefined, name: string): string {
    return `${apiVersion}|${kind}|${ns ?? ''}|${name}`;
  }

  get(kind: string, name: string, ns?: string): Obj | undefined {
    return [...this.objects.values()].find((o) => o.kind === kind && o.metadata.name === name && (ns === undefined || o.metadata.namespace === ns));
  }

  /** The stand-in controllers' pod of a workload: its phase and Ready condition. */
  setPod(ns: string, name: string, phase: 'Pending' | 'Running' | 'Failed', ready: boolean): void {
    const pod = this.objects.get(this.key('v1', 'Pod', ns, name));
    if (!pod) throw new Error(`no pod ${ns}/${name}`);
    pod.status = { phase, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] };
  }

  /** Resolves at the first request (from now) that matches. */
  next(match: (r: ApiRequest) => boolean): Promise<ApiRequest> {
    return new Promise((resolve) => {
      const on = (r: ApiRequest) => {
        if (!match(r)) return;
        this.off('request', on);
        resolve(r);
      };
      this.on('request', on);
    });
  }

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      let data = '';
      req.on('data', (c) => (data += c));
      req.on('end', () => {
        const u = new URL(req.url!, 'http://x');
        const r: ApiRequest = { method: req.method!, path: u.pathname, query: Object.fromEntries(u.searchParams), contentType: req.headers['content-type'], body: data ? parse(data) : undefined };
        this.requests.push(r);
        const [status, body] = this.answer(r);
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        this.emit('request', r);
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const port = (this.server.address() as AddressInfo).port;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-kube-'));
    this.kubeconfig = path.join(dir, 'config');
    // Plain http on loopback: client-node 1.x refuses http unless the cluster entry skips TLS verification.
    fs.writeFileSync(
      this.kubeconfig,
      `apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}\nusers:\n- name: tester\n  user: {token: test-token}\ncontexts:\n- name: fake\n  context: {cluster: fake, user: tester, namespace: default}\n- name: other\n  context: {cluster: fake, user: tester}\ncurrent-context: other\n`,
    );
  }

  async stop(): Promise<void> {
    await new Promise((r) => this.server.close(r));
    fs.rmSync(path.dirname(this.kubeconfig), { recursive: true, force: true });
  }

  private notFound(what: string): [number, unknown] {
    return [404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `${what} not found`, reason: 'NotFound', code: 404 }];
  }

  private answer(r: ApiRequest): [number, unknown] {
    const m = /^\/(?:api\/(v1)|apis\/([^/]+\/[^/]+))(?:\/namespaces\/([^/]+))?(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(r.path);
    if (!m) return this.notFound(r.path);
    const apiVersion = m[1] ?? m[2];
    if (!this.served.has(apiVersion)) return this.notFound(`the server could not find the requested resource (${apiVersion})`);
    let [ns, plural, name]: (string | undefined)[] = [m[3], m[4], m[5]];
    // /api/v1/namespaces/NAME is the Namespace NAME itself.
    if (ns && !plural && apiVersion === 'v1') [plural, name, ns] = ['namespaces', ns, undefined];
    if (!plural) return [200, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: apiVersion, resources: RESOURCES[apiVersion].map((x) => ({ ...x, singularName: '', verbs: ['get', 'list', 'patch', 'delete'] })) }];
    const res = RESOURCES[apiVersion].find((x) => x.name === plural);
    if (!res) return this.notFound(plural);
    const key = this.key(apiVersion, res.kind, ns, name ?? '');
    if (!name) {
      if (r.method !== 'GET') return [405, {}];
      const sel = (r.query.labelSelector ?? '').split(',').filter(Boolean).map((s) => s.split('='));
      const items = [...this.objects.values()].filter((o) => o.apiVersion === apiVersion && o.kind === res.kind && (!ns || o.metadata.namespace === ns) && sel.every(([k, v]) => o.metadata.labels?.[k] === v));
      return [200, { kind: `${res.kind}List`, apiVersion, metadata: { resourceVersion: String(this.version) }, items: items.map(({ apiVersion: _a, kind: _k, ...o }) => o) }];
    }
    const live = this.objects.get(key);
    if (r.method === 'GET') return live ? [200, live] : this.notFound(`${plural} "${name}"`);
    if (r.method === 'DELETE') {
      if (!live) return this.notFound(`${plural} "${name}"`);
      this.objects.delete(key);
      return [200, { kind: 'Status', apiVersion: 'v1', status: 'Success' }];
    }
    if (r.method === 'PATCH') {
      if (r.contentType !== 'application/apply-patch+yaml') return [415, { message: `only server-side apply here, got ${r.contentType}` }];
      if (!r.query.fieldManager) return [422, { message: 'fieldManager is required for apply patch' }];
      if (res.namespaced && !this.objects.has(this.key('v1', 'Namespace', undefined, ns!))) return this.notFound(`namespaces "${ns}"`);
      const body = r.body as Obj;
      const same = live && JSON.stringify({ ...live, metadata: { ...live.metadata, uid: 0, resourceVersion: 0, creationTimestamp: 0, managedFields: 0 }, status: 0 }) === JSON.stringify({ ...body, metadata: { ...body.metadata, uid: 0, resourceVersion: 0, creationTimestamp: 0, managedFields: 0 }, status: 0 });
      const next: Obj = {
        ...body,
        metadata: { ...body.metadata, uid: live?.metadata.uid ?? `uid-${this.version}`, resourceVersion: same ? live!.metadata.resourceVersion : String(++this.version), creationTimestamp: live?.metadata.creationTimestamp ?? '2026-12-03T00:00:00Z', managedFields: [{ manager: r.query.fieldManager, operation: 'Apply' }] },
        ...(live?.status ? { status: live.status } : {}),
      };
      if (r.query.dryRun !== 'All') {
        this.objects.set(key, next);
        if (res.kind === 'Sandbox' || res.kind === 'StatefulSet') {
          const pod = res.kind === 'Sandbox' ? name : `${name}-0`;
          const pk = this.key('v1', 'Pod', ns, pod);
          if (!this.objects.has(pk)) this.objects.set(pk, { apiVersion: 'v1', kind: 'Pod', metadata: { name: pod, namespace: ns }, status: { phase: 'Pending' } });
        }
      }
      return [live ? 200 : 201, next];
    }
    return [405, {}];
  }
}
