// boxlite k8s plan, apply and down against a local server that answers as a Kubernetes API server would (no
// cluster can run here): the requests they make — server-side apply with field manager boxlite, dry runs for
// plan, depends_on order with waits on the dependencies' pods, prune, RuntimeClass and CRD discovery.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeApiServer, type ApiRequest } from '../k8s-api.js';
import { cli, testHome } from '../helpers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-k8s-cluster-'));
const file = path.join(dir, 'boxlite.yaml');
const PROJECT = `name: shop
boxes:
  db:
    image: postgres:16
    healthcheck: {test: pg_isready, interval: 1s}
    volumes: ["data:/var/lib/postgresql/data"]
  api:
    image: ghcr.io/example/api:1
    env: {MODE: prod}
    ports: ["8080:80"]
    depends_on: {db: {condition: healthy}}
  worker:
    image: alpine
    command: [sleep, infinity]
    depends_on: [api]
volumes:
  data: {size: 1GiB}
`;

let api: FakeApiServer;
let home: string;
const k8s = (args: string[], extra: string[] = ['--context', 'fake']) => cli(home, ['-f', file, 'k8s', ...args, '--kubeconfig', api.kubeconfig, ...extra], { env: { BOXLITE_K8S_POLL_MS: '20' } });
const writes = (from = 0) => api.requests.slice(from).filter((r) => r.method === 'PATCH' && r.query.dryRun !== 'All');
const what = (r: ApiRequest) => `${r.body.kind}/${r.body.metadata.name}`;
const patchOf = (kind: string, name: string) => (r: ApiRequest) => r.method === 'PATCH' && r.query.dryRun !== 'All' && r.body?.kind === kind && r.body?.metadata?.name === name;
const podRead = (name: string) => (r: ApiRequest) => r.method === 'GET' && r.path === `/api/v1/namespaces/shop/pods/${name}`;

beforeAll(async () => {
  api = new FakeApiServer();
  await api.start();
  home = testHome();
  fs.writeFileSync(file, PROJECT);
});
afterAll(async () => {
  await api.stop();
  fs.rmSync(home, { recursive: true, force: true });
});

describe('before anything is applied', () => {
  it('refuses a cluster without the RuntimeClass, naming the ones it has', async () => {
    const r = await k8s(['plan', '--runtime-class', 'kata-fc']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the cluster of context fake has no RuntimeClass "kata-fc" (it has: kata-qemu, kata-clh): install Kata Containers');
  });

  it('refuses a cluster without agent-sandbox, with --api statefulset as the fix', async () => {
    api.served.delete('agents.x-k8s.io/v1beta1');
    try {
      const r = await k8s(['plan']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("does not serve agent-sandbox's Sandbox (agents.x-k8s.io/v1beta1): install agent-sandbox, or pass --api statefulset");
    } finally {
      api.served.add('agents.x-k8s.io/v1beta1');
    }
  });

  it('names the contexts when --context names none', async () => {
    const r = await k8s(['plan'], ['--context', 'prod']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the kubeconfig has no context "prod" (it has: fake, other): name one of them with --context');
  });

  it('plans everything as a create, by dry runs only, and exits 2', async () => {
    const from = api.requests.length;
    const r = await k8s(['plan']);
    expect(r.stdout).toContain('Context fake, namespace shop: boxlite k8s apply will');
    expect(r.stdout).toContain('  + Namespace shop');
    expect(r.stdout).toContain('  + Sandbox db');
    expect(r.stdout).toContain('Plan: 7 to create, 0 to update, 0 to prune, 0 unchanged.');
    expect(r.code).toBe(2);
    expect(writes(from)).toEqual([]);
    const dry = api.requests.slice(from).filter((x) => x.method === 'PATCH');
    expect(dry.map(what)).toEqual(['Namespace/shop']); // nothing else has a namespace to be checked in yet
    expect(dry[0]).toMatchObject({ contentType: 'application/apply-patch+yaml', query: { fieldManager: 'boxlite', dryRun: 'All', force: 'true' } });
  });
});

describe('apply', () => {
  it('applies in depends_on order, each box once its dependencies are started or healthy', async () => {
    const from = api.requests.length;
    const run = k8s(['apply']);
    await api.next(patchOf('Sandbox', 'db'));
    // db is applied; api waits for db to be healthy, reading its pod.
    await api.next(podRead('db'));
    expect(writes(from).map(what)).not.toContain('Sandbox/api');
    api.setPod('shop', 'db', 'Running', false);
    await api.next(podRead('db'));
    await api.next(podRead('db'));
    expect(writes(from).map(what)).not.toContain('Sandbox/api');
    api.setPod('shop', 'db', 'Running', true);
    await api.next(patchOf('Sandbox', 'api'));
    // worker needs api started, not healthy.
    await api.next(podRead('api'));
    expect(writes(from).map(what)).not.toContain('Sandbox/worker');
    api.setPod('shop', 'api', 'Running', false);
    await api.next(patchOf('Sandbox', 'worker'));
    api.setPod('shop', 'worker', 'Running', false);
    const r = await run;
    expect(r.stderr).not.toContain('    at ');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('applied 7 objects to namespace shop of context fake');
    expect(writes(from).map(what)).toEqual(['Namespace/shop', 'NetworkPolicy/shop-lan', 'Sandbox/db', 'Service/api-ports', 'NetworkPolicy/api-published', 'Sandbox/api', 'Sandbox/worker']);
    for (const w of writes(from)) {
      expect(w.contentType).toBe('application/apply-patch+yaml');
      expect(w.query).toEqual({ fieldManager: 'boxlite', force: 'true' });
    }
    expect(api.get('Sandbox', 'api', 'shop')!.metadata.annotations['boxlite.dev/depends-on']).toBe('db=healthy');
  });

  it('then plans nothing: every dry run gives back what is there, exit 0', async () => {
    const from = api.requests.length;
    const r = await k8s(['plan']);
    expect(r.stdout).toContain('Nothing to do: 7 objects as the file says.');
    expect(r.code).toBe(0);
    expect(writes(from)).toEqual([]);
    expect(api.requests.slice(from).filter((x) => x.method === 'PATCH' && x.query.dryRun === 'All')).toHaveLength(7);
  });

  it('plans an edit as an update, naming the fields', async () => {
    fs.writeFileSync(file, PROJECT.replace('MODE: prod', 'MODE: staging'));
    const r = await k8s(['plan', '--json']);
    expect(r.code).toBe(2);
    const pl = JSON.parse(r.stdout);
    expect(pl.changes.filter((c: any) => c.action === 'update')).toEqual([{ action: 'update', kind: 'Sandbox', name: 'api', fields: ['metadata.annotations.boxlite.dev/config-hash', 'spec.podTemplate.metadata.annotations', 'spec.podTemplate.spec.containers'] }]);
  });

  it('prunes what the file no longer has, and never a claim', async () => {
    // The controller's claim of db's volume, as agent-sandbox makes it from the template.
    api.objects.set(api.key('v1', 'PersistentVolumeClaim', 'shop', 'data-db'), { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data-db', namespace: 'shop', labels: { 'app.kubernetes.io/managed-by': 'boxlite', 'app.kubernetes.io/part-of': 'shop' } }, spec: {} });
    fs.writeFileSync(file, PROJECT.replace(/ {2}worker:[\s\S]*?depends_on: \[api\]\n/, ''));
    const p = await k8s(['plan']);
    expect(p.stdout).toContain('  - Sandbox worker (no longer in the file)');
    expect(p.code).toBe(2);
    const from = api.requests.length;
    const r = await k8s(['apply']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('pruned Sandbox/worker');
    expect(api.requests.slice(from).filter((x) => x.method === 'DELETE').map((x) => x.path)).toEqual(['/apis/agents.x-k8s.io/v1beta1/namespaces/shop/sandboxes/worker']);
    expect(api.get('PersistentVolumeClaim', 'data-db')).toBeDefined();
  });
});

describe('down', () => {
  it('deletes the project\'s objects, keeps the claims and namespace; --volumes takes them too', async () => {
    const r = await k8s(['down']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Sandbox/db: deleted');
    expect(r.stdout).toContain('NetworkPolicy/shop-lan: deleted');
    expect(api.get('Sandbox', 'api')).toBeUndefined();
    expect(api.get('PersistentVolumeClaim', 'data-db')).toBeDefined();
    expect(api.get('Namespace', 'shop')).toBeDefined();
    const v = await k8s(['down', '--volumes']);
    expect(v.stdout).toContain('PersistentVolumeClaim/data-db: deleted');
    expect(v.stdout).toContain('Namespace/shop: deleted');
    expect(api.get('Namespace', 'shop')).toBeUndefined();
  });
});

describe('with --api statefulset', () => {
  it('waits on the StatefulSet pods (NAME-0)', async () => {
    fs.writeFileSync(file, PROJECT);
    const run = k8s(['apply', '--api', 'statefulset', '--no-wait']);
    await api.next(patchOf('StatefulSet', 'db'));
    await api.next(podRead('db-0'));
    api.setPod('shop', 'db-0', 'Running', true);
    await api.next(patchOf('StatefulSet', 'api'));
    api.setPod('shop', 'api-0', 'Running', false);
    const r = await run;
    expect(r.code).toBe(0);
    expect(api.get('Service', 'db', 'shop')!.spec.clusterIP).toBe('None');
    await k8s(['down', '--volumes']);
  });
});
