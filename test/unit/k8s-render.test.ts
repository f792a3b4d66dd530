// boxlite k8s render: the examples and a file that uses every field become Kubernetes objects that validate
// against Kubernetes v1.36.0's OpenAPI schema (and Cilium's and agent-sandbox's for theirs), mapped field by field as
// the README's table says; what cannot be carried is refused naming the box, the field and the fix.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadProject, parseProject } from '../../src/spec/load.js';
import { renderProject, type RenderOptions } from '../../src/k8s/render.js';
import { validateAll, validateObject, type K8sObject } from '../../src/k8s/validate.js';
import { fromYamlStream, toYamlStream } from '../../src/k8s/output.js';
import { K8sRefusedError } from '../../src/k8s/refusal.js';
import { cli, testHome } from '../helpers.js';
import { REPO } from '../paths.js';

const EXAMPLES = ['hello', 'notes', 'python-agent', 'web-server'];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-k8s-'));
fs.mkdirSync(path.join(dir, 'src'));
const file = path.join(dir, 'boxlite.yaml');

// Every field of boxlite.yaml, each in a form that is carried (the refused ones are below).
const EVERY = `name: every
boxes:
  db:
    image: postgres:16
    cpus: 2
    memory: 1GiB
    disk: 8GiB
    env: {POSTGRES_PASSWORD: "on", PGDATA: /var/lib/postgresql/data/pg}
    working_dir: /var/lib/postgresql
    user: "999:999"
    dns: [9.9.9.9]
    volumes: ["pgdata:/var/lib/postgresql/data"]
    ports: ["5432:5432"]
    command: [postgres, -c, max_connections=50]
    healthcheck: {test: [CMD-SHELL, "pg_isready -U postgres"], interval: 5s, timeout: 3s, retries: 4, start_period: 20s}
    restart: unless-stopped
    network:
      allow: ["10.20.0.0/16:443", "0.0.0.0/0:80", "9.9.9.9:53/udp"]
      deny: ["10.20.30.0/24", "203.0.113.9"]
    snapshots: {before_apply: true, every: 1h, keep: 3}
  api:
    image: ghcr.io/example/api:1.2
    env: [MODE=prod]
    user: "1000"
    ports: ["8080:80", "5353:53/udp", "9000"]
    depends_on: {db: {condition: healthy}}
    healthcheck: {test: "wget -q -O /dev/null http://127.0.0.1/", interval: 2s}
    restart: on-failure
    volumes: ["cache:/cache:ro"]
    pause_after: 10m
  worker:
    image: debian:12
    network: none
    depends_on: [api]
    restart: "no"
volumes:
  pgdata: {size: 4GiB}
  cache: {size: 512MiB}
`;

function render(text: string, opts: RenderOptions = {}) {
  fs.writeFileSync(file, text);
  return renderProject(loadProject(file, { env: {} }), opts);
}
const find = (objs: K8sObject[], kind: string, name: string) => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name} among ${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return o as any;
};
const pod = (o: any) => (o.kind === 'Sandbox' ? o.spec.podTemplate.spec : o.spec.template.spec);
function refusals(text: string, opts: RenderOptions = {}): string[] {
  try {
    render(text, opts);
  } catch (e) {
    if (e instanceof K8sRefusedError) return e.refusals.map((r) => `${r.box} ${r.field}: ${r.why} | ${r.fix}`);
    throw e;
  }
  throw new Error('rendered without a refusal');
}
async function expectValid(objs: K8sObject[]) {
  for (const o of objs) expect({ object: `${o.kind}/${o.metadata.name}`, problems: await validateObject(o) }).toEqual({ object: `${o.kind}/${o.metadata.name}`, problems: [] });
}

describe('the examples', () => {
  for (const ex of EXAMPLES) {
    for (const api of ['sandbox', 'statefulset'] as const) {
      it(`${ex} (${api}) renders valid objects with --setup-as-init`, async () => {
        const spec = loadProject(path.join(REPO, 'examples', ex, 'boxlite.yaml'), { env: {} });
        // hello runs a folder of this machine: --push would commit it; here it is named as if pushed.
        const images = ex === 'hello' ? { web: 'registry.example/hello/web:1', client: 'registry.example/hello/client:1' } : undefined;
        const r = renderProject(spec, { api, setupAsInit: true, images });
        await expectValid(r.objects);
        await validateAll(r.objects);
        const workloads = r.objects.filter((o) => o.kind === (api === 'sandbox' ? 'Sandbox' : 'StatefulSet'));
        expect(workloads.map((w) => w.metadata.name).sort()).toEqual(Object.keys(spec.boxes).sort());
        expect(fromYamlStream(toYamlStream(r.objects))).toEqual(JSON.parse(JSON.stringify(r.objects)));
      });
    }
    it(`${ex} without opt-ins refuses what it must, naming box, field and fix`, () => {
      const got = refusals(fs.readFileSync(path.join(REPO, 'examples', ex, 'boxlite.yaml'), 'utf8').replace(/image: \.\/rootfs/g, 'image: busybox'));
      expect(got.length).toBeGreaterThan(0);
      for (const g of got) expect(g).toMatch(/^\S+ setup: a pod has no step that runs once .* \| bake it into an image \('boxlite k8s render --push REGISTRY'.*--setup-as-init/);
    });
  }
  it('hello runs a folder image: refused with --push as the fix', () => {
    const spec = loadProject(path.join(REPO, 'examples', 'hello', 'boxlite.yaml'), { env: {} });
    let e: unknown;
    try {
      renderProject(spec, { setupAsInit: true });
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(K8sRefusedError);
    expect((e as Error).message).toContain('box web, image: ');
    expect((e as Error).message).toContain('fix: pass --push REGISTRY to commit each box and push it there');
  });
});

describe('a file that uses every field', () => {
  it('renders valid Sandboxes, Services and NetworkPolicies', async () => {
    const r = render(EVERY);
    await expectValid(r.objects);
    expect(r.namespace).toBe('every');
    expect(r.objects[0]).toMatchObject({ kind: 'Namespace', metadata: { name: 'every' } });
    expect(r.boxes.map((b) => b.box)).toEqual(['db', 'api', 'worker']); // dependency order
    expect(JSON.stringify(r.objects)).not.toContain('livenessProbe');
  });

  it('maps the box itself: runtime class, labels, hash, image, command, env, user, resources, probes', () => {
    const { objects } = render(EVERY);
    const db = find(objects, 'Sandbox', 'db');
    expect(db.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'boxlite', 'app.kubernetes.io/part-of': 'every', 'app.kubernetes.io/name': 'db' });
    expect(db.metadata.annotations['boxlite.dev/config-hash']).toMatch(/^[0-9a-f]{16}$/);
    expect(db.spec.service).toBe(true);
    const p = pod(db);
    expect(p.runtimeClassName).toBe('kata-qemu');
    expect(p.automountServiceAccountToken).toBe(false);
    expect(p.restartPolicy).toBe('Always'); // unless-stopped
    expect(p.dnsConfig).toEqual({ nameservers: ['9.9.9.9'] });
    const c = p.containers[0];
    expect(c.image).toBe('postgres:16');
    expect(c.command).toEqual(['postgres', '-c', 'max_connections=50']);
    expect(c.workingDir).toBe('/var/lib/postgresql');
    expect(c.env).toEqual([
      { name: 'POSTGRES_PASSWORD', value: 'on' },
      { name: 'PGDATA', value: '/var/lib/postgresql/data/pg' },
    ]);
    expect(c.securityContext).toEqual({ runAsUser: 999, runAsGroup: 999 });
    const res = { cpu: '2', memory: '1024Mi', 'ephemeral-storage': '8192Mi' };
    expect(c.resources).toEqual({ requests: res, limits: res });
    expect(c.readinessProbe).toEqual({ exec: { command: ['sh', '-c', 'pg_isready -U postgres'] }, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 4, successThreshold: 1 });
    expect(c.startupProbe).toEqual({ ...c.readinessProbe, failureThreshold: 4 + 4 }); // 20 s of 5 s periods, then 4 failures
    expect(c.livenessProbe).toBeUndefined();
    expect(c.ports).toEqual([{ containerPort: 5432, protocol: 'TCP' }]);
    const api = pod(find(objects, 'Sandbox', 'api'));
    expect(api.containers[0].securityContext).toEqual({ runAsUser: 1000 });
    expect(api.containers[0].startupProbe).toBeUndefined();
    expect(api.restartPolicy).toBe('OnFailure');
    expect(pod(find(objects, 'Sandbox', 'worker')).restartPolicy).toBe('Never');
    // A box without a command idles as a boxlite box does.
    expect(pod(find(objects, 'Sandbox', 'worker')).containers[0].command).toEqual(['sh', '-c', "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"]);
  });

  it('keeps depends_on as the annotation apply honours', () => {
    const { objects } = render(EVERY);
    expect(find(objects, 'Sandbox', 'api').metadata.annotations['boxlite.dev/depends-on']).toBe('db=healthy');
    expect(find(objects, 'Sandbox', 'worker').metadata.annotations['boxlite.dev/depends-on']).toBe('api=started');
    expect(find(objects, 'Sandbox', 'db').metadata.annotations['boxlite.dev/depends-on']).toBeUndefined();
  });

  it('maps ports to a Service (port = host port, targetPort = box port, TCP and UDP)', () => {
    const { objects } = render(EVERY);
    expect(find(objects, 'Service', 'api-ports').spec).toEqual({
      type: 'ClusterIP',
      selector: { 'app.kubernetes.io/managed-by': 'boxlite', 'app.kubernetes.io/part-of': 'every', 'app.kubernetes.io/name': 'api' },
      ports: [
        { name: 'tcp-8080', port: 8080, targetPort: 80, protocol: 'TCP' },
        { name: 'udp-5353', port: 5353, targetPort: 53, protocol: 'UDP' },
        { name: 'tcp-9000', port: 9000, targetPort: 9000, protocol: 'TCP' },
      ],
    });
    expect(find(objects, 'NetworkPolicy', 'api-published').spec.ingress).toEqual([
      {
        ports: [
          { protocol: 'TCP', port: 80 },
          { protocol: 'UDP', port: 53 },
          { protocol: 'TCP', port: 9000 },
        ],
      },
    ]);
  });

  it('maps named volumes to claim templates with their size, read_only to readOnly', () => {
    const { objects } = render(EVERY);
    expect(find(objects, 'Sandbox', 'db').spec.volumeClaimTemplates).toEqual([{ metadata: { name: 'pgdata', labels: { 'app.kubernetes.io/managed-by': 'boxlite', 'app.kubernetes.io/part-of': 'every' } }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '4096Mi' } } } }]);
    expect(pod(find(objects, 'Sandbox', 'api')).containers[0].volumeMounts).toEqual([{ name: 'cache', mountPath: '/cache', readOnly: true }]);
    const set = find(render(EVERY, { api: 'statefulset' }).objects, 'StatefulSet', 'db');
    expect(set.spec.volumeClaimTemplates).toEqual([{ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'pgdata', labels: { 'app.kubernetes.io/managed-by': 'boxlite', 'app.kubernetes.io/part-of': 'every' } }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '4096Mi' } } } }]);
  });

  it('makes a volume several boxes mount one ReadWriteMany claim, with a note', async () => {
    fs.writeFileSync(file, EVERY);
    const spec = loadProject(file, { env: {} });
    spec.boxes.worker.volumes.push({ type: 'volume', source: 'cache', target: '/cache', readOnly: true });
    const r = renderProject(spec);
    await expectValid(r.objects);
    expect(find(r.objects, 'PersistentVolumeClaim', 'cache').spec).toEqual({ accessModes: ['ReadWriteMany'], resources: { requests: { storage: '512Mi' } } });
    expect(pod(find(r.objects, 'Sandbox', 'worker')).volumes).toEqual([{ name: 'cache', persistentVolumeClaim: { claimName: 'cache', readOnly: true } }]);
    expect(find(r.objects, 'Sandbox', 'api').spec.volumeClaimTemplates).toBeUndefined();
    expect(r.warnings).toContain('volume cache is mounted by api, worker: it becomes one claim that needs ReadWriteMany (a storage class that offers it)');
  });

  it('maps network none and address rules to NetworkPolicies, with the DNS rule and the project LAN', () => {
    const { objects } = render(EVERY);
    expect(find(objects, 'NetworkPolicy', 'worker-isolated').spec).toEqual({ podSelector: { matchLabels: find(objects, 'Sandbox', 'worker').metadata.labels }, policyTypes: ['Ingress', 'Egress'] });
    expect(pod(find(objects, 'Sandbox', 'worker')) && find(objects, 'Sandbox', 'worker').spec.podTemplate.metadata.labels['boxlite.dev/lan']).toBeUndefined();
    expect(find(objects, 'NetworkPolicy', 'every-lan').spec.ingress).toEqual([{ from: [{ podSelector: { matchLabels: { 'app.kubernetes.io/managed-by': 'boxlite', 'app.kubernetes.io/part-of': 'every', 'boxlite.dev/lan': 'true' } } }] }]);
    const egress = find(objects, 'NetworkPolicy', 'db-egress').spec.egress;
    expect(egress[0]).toEqual({
      to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }, { ipBlock: { cidr: '9.9.9.9/32' } }],
      ports: [
        { protocol: 'UDP', port: 53 },
        { protocol: 'TCP', port: 53 },
      ],
    });
    expect(egress[1]).toEqual({ to: [{ podSelector: { matchLabels: { 'app.kubernetes.io/managed-by': 'boxlite', 'app.kubernetes.io/part-of': 'every', 'boxlite.dev/lan': 'true' } } }] });
    expect(egress.slice(2)).toEqual([
      // 10.20.0.0/16:443 less the denied 10.20.30.0/24
      { to: [{ ipBlock: { cidr: '10.20.0.0/16', except: ['10.20.30.0/24'] } }], ports: [{ protocol: 'TCP', port: 443 }, { protocol: 'UDP', port: 443 }] },
      // 0.0.0.0/0:80 opens no private range, and not the denied address
      { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '100.64.0.0/10', '169.254.0.0/16', '168.63.129.16/32', '192.0.0.0/24', '172.16.0.0/12', '192.168.0.0/16', '224.0.0.0/3', '203.0.113.9/32'] } }], ports: [{ protocol: 'TCP', port: 80 }, { protocol: 'UDP', port: 80 }] },
      { to: [{ ipBlock: { cidr: '9.9.9.9/32' } }], ports: [{ protocol: 'UDP', port: 53 }] },
    ]);
  });

  it('turns a deny rule with a port into the port ranges around it', async () => {
    const r = render(`boxes:\n  a:\n    image: alpine\n    network: {deny: ["198.51.100.0/24:22"]}\n`);
    await expectValid(r.objects);
    expect(find(r.objects, 'NetworkPolicy', 'a-egress').spec.egress.slice(2)).toEqual([
      { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '100.64.0.0/10', '169.254.0.0/16', '168.63.129.16/32', '192.0.0.0/24', '172.16.0.0/12', '192.168.0.0/16', '224.0.0.0/3', '198.51.100.0/24'] } }] },
      {
        to: [{ ipBlock: { cidr: '198.51.100.0/24' } }],
        ports: [
          { protocol: 'TCP', port: 1, endPort: 21 },
          { protocol: 'TCP', port: 23, endPort: 65535 },
          { protocol: 'UDP', port: 1, endPort: 21 },
          { protocol: 'UDP', port: 23, endPort: 65535 },
        ],
      },
    ]);
  });

  it('with --api statefulset: a StatefulSet of one and its headless Service', async () => {
    const r = render(EVERY, { api: 'statefulset', runtimeClass: 'kata-clh', namespace: 'team-a' });
    await expectValid(r.objects);
    expect(r.objects.some((o) => o.kind === 'Namespace')).toBe(false); // the user's namespace
    const set = find(r.objects, 'StatefulSet', 'db');
    expect(set.metadata.namespace).toBe('team-a');
    expect(set.spec).toMatchObject({ replicas: 1, serviceName: 'db', selector: { matchLabels: set.metadata.labels } });
    expect(pod(set).runtimeClassName).toBe('kata-clh');
    expect(find(r.objects, 'Service', 'db').spec).toEqual({ clusterIP: 'None', publishNotReadyAddresses: true, selector: set.metadata.labels, ports: [{ name: 'tcp-5432', port: 5432, protocol: 'TCP' }] });
    expect(pod(find(r.objects, 'StatefulSet', 'worker')).restartPolicy).toBe('Always');
    expect(r.warnings).toContain('box worker: restart "no" becomes Always: a StatefulSet\'s pods always restart (use --api sandbox to keep it)');
  });

  it('says what it carries only approximately', () => {
    const { warnings } = render(EVERY);
    expect(warnings).toEqual(
      expect.arrayContaining([
        'box db: snapshots are not carried (a cluster snapshots claims with VolumeSnapshots)',
        'box api: pause_after is not carried (suspend a Sandbox with spec.operatingMode: Suspended)',
        expect.stringMatching(/^box db: restart "unless-stopped" becomes Always/),
      ]),
    );
  });

  it('prints YAML kubectl reads as written ("on" stays a string)', () => {
    const text = toYamlStream(render(EVERY).objects);
    expect(text).toContain('value: "on"');
    expect(text).not.toMatch(/[&*]a\d/); // no anchors
    expect(fromYamlStream(text).length).toBe(render(EVERY).objects.length);
  });
});

describe('refusals and their opt-ins', () => {
  const one = (extra: string) => `name: r\nboxes:\n  web:\n    image: alpine\n${extra}`;

  it('a host folder: refused, or a hostPath with --allow-host-path', async () => {
    expect(refusals(one('    volumes: ["./src:/work:ro"]\n'))).toEqual([`web volumes[0]: ${path.join(dir, 'src')} is a folder of this machine, which a cluster's nodes do not have | use a named volume (and copy the files in), bake them into the image ('boxlite commit'), or pass --allow-host-path to mount that path of the node`]);
    const r = render(one('    volumes: ["./src:/work:ro"]\n'), { allowHostPath: true });
    await expectValid(r.objects);
    const p = pod(find(r.objects, 'Sandbox', 'web'));
    expect(p.volumes).toEqual([{ name: 'host-0', hostPath: { path: path.join(dir, 'src'), type: 'Directory' } }]);
    expect(p.containers[0].volumeMounts).toEqual([{ name: 'host-0', mountPath: '/work', readOnly: true }]);
    expect(r.warnings).toContain(`box web: volumes[0] mounts ${path.join(dir, 'src')} of whichever node runs the pod (hostPath), not of this machine`);
  });

  const SECRET = '    secrets: {API_TOKEN: {env: K8S_TEST_TOKEN, hosts: [api.example.com]}}\n';
  it('a boundary secret: refused, or an env var from a Secret whose value is printed only when asked', async () => {
    expect(refusals(one(SECRET))).toEqual(['web secrets.API_TOKEN: the value is put into requests to api.example.com by the box\'s network boundary, and a pod has no such gateway | pass --secrets-as-env to make it an environment variable from a Secret (the box can then read it), or remove the secret']);
    process.env.K8S_TEST_TOKEN = 'tok-5ec2e7-value';
    try {
      const r = render(one(SECRET), { secretsAsEnv: true });
      await expectValid(r.objects);
      expect(JSON.stringify(r.objects)).not.toContain('tok-5ec2e7-value');
      expect(r.objects.some((o) => o.kind === 'Secret')).toBe(false);
      expect(pod(find(r.objects, 'Sandbox', 'web')).containers[0].env).toEqual([{ name: 'API_TOKEN', valueFrom: { secretKeyRef: { name: 'web-secrets', key: 'API_TOKEN' } } }]);
      expect(r.warnings).toContain('box web: Secret web-secrets is not printed (its values would be): make it with  kubectl -n r create secret generic web-secrets --from-literal=API_TOKEN="$K8S_TEST_TOKEN"  (or render with --include-secret-values)');
      expect(r.warnings.join('\n')).toContain('the box can read them (a pod has no gateway)');
      const v = render(one(SECRET), { secretsAsEnv: true, includeSecretValues: true });
      await expectValid(v.objects);
      expect(find(v.objects, 'Secret', 'web-secrets').stringData).toEqual({ API_TOKEN: 'tok-5ec2e7-value' });
    } finally {
      delete process.env.K8S_TEST_TOKEN;
    }
  });

  it('domain rules: refused without Cilium; a CiliumNetworkPolicy with toFQDNs with --cni cilium; deny by name always refused', async () => {
    const net = '    network: {allow: ["api.example.com:443", "*.github.com", "198.51.100.0/24"], deny: ["198.51.100.7"]}\n';
    expect(refusals(one(net))).toEqual(['web network.allow[0]: "api.example.com:443" allows a name, and a NetworkPolicy matches addresses only | pass --cni cilium to render a CiliumNetworkPolicy with toFQDNs (the cluster must run Cilium), or allow the addresses instead', 'web network.allow[1]: "*.github.com" allows a name, and a NetworkPolicy matches addresses only | pass --cni cilium to render a CiliumNetworkPolicy with toFQDNs (the cluster must run Cilium), or allow the addresses instead']);
    const r = render(one(net), { cni: 'cilium' });
    await expectValid(r.objects);
    const cnp = find(r.objects, 'CiliumNetworkPolicy', 'web-egress');
    expect(cnp.spec.egress).toEqual(
      expect.arrayContaining([
        { toFQDNs: [{ matchName: 'api.example.com' }], toPorts: [{ ports: [{ port: '443', protocol: 'ANY' }] }] },
        { toFQDNs: [{ matchPattern: '**.github.com' }] },
        { toCIDRSet: [{ cidr: '198.51.100.0/24' }] },
        { toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }], rules: { dns: [{ matchPattern: '*' }] } }] },
      ]),
    );
    expect(cnp.spec.egressDeny).toEqual([{ toCIDRSet: [{ cidr: '198.51.100.7/32' }] }]);
    expect(refusals(one('    network: {deny: ["uploads.example.com"]}\n'), { cni: 'cilium' })).toEqual(['web network.deny[0]: "uploads.example.com" denies a name, and neither a NetworkPolicy nor Cilium\'s egressDeny can deny by name | deny its addresses (CIDR rules) instead, or remove the rule']);
  });

  it('setup: refused, or an init container that runs it once on the claim with --setup-as-init', async () => {
    const text = `name: r\nboxes:\n  web:\n    image: alpine\n    volumes: ["data:/data"]\n    setup: ["echo it's here > /data/x", [touch, /data/y]]\nvolumes:\n  data: {}\n`;
    expect(refusals(text)).toEqual([expect.stringMatching(/^web setup: /)]);
    const r = render(text, { setupAsInit: true });
    await expectValid(r.objects);
    const init = pod(find(r.objects, 'Sandbox', 'web')).initContainers;
    expect(init).toHaveLength(1);
    expect(init[0]).toMatchObject({ name: 'setup', image: 'alpine', volumeMounts: [{ name: 'data', mountPath: '/data' }] });
    expect(init[0].command).toEqual(['sh', '-c', `[ -e '/data/.boxlite-setup-done' ] && exit 0\nset -e\n'sh' '-c' 'echo it'\\''s here > /data/x'\n'touch' '/data/y'\ntouch '/data/.boxlite-setup-done'`]);
    expect(r.warnings).toContain('box web: setup runs in an init container; only what it writes under /data reaches the box');
  });

  it('a user name: refused with the uid as the fix', () => {
    expect(refusals(one('    user: postgres\n'))).toEqual([`web user: "postgres" is a user name, and a pod runs as a numeric uid (runAsUser) | write the uid, e.g. user: "1000" or "1000:1000" ('boxlite exec web id postgres' shows it)`]);
  });

  it('reports every refusal of a file at once', () => {
    const got = refusals(one(`    user: app\n    volumes: ["./src:/w"]\n    setup: [make]\n${SECRET}    network: {deny: [evil.example.com]}\n`));
    expect(got.map((g) => g.split(':')[0])).toEqual(['web volumes[0]', 'web secrets.API_TOKEN', 'web user', 'web setup', 'web network.deny[0]']);
  });

  it('a box name that makes no DNS label is refused; one that changes is said', () => {
    expect(refusals('boxes:\n  1web:\n    image: alpine\n')).toEqual([`1web name: "1web" makes no valid Kubernetes name (a DNS label: a letter first, letters, digits and '-') | rename the box to start with a letter`]);
    const r = renderProject(parseProject('boxes:\n  my_db:\n    image: alpine\n', file, { env: {} }));
    expect(r.boxes[0].name).toBe('my-db');
    expect(r.warnings).toContain('box my_db is named my-db on the cluster: other boxes reach it by that name');
  });
});

describe('the validators are real', () => {
  const base = () => render('name: r\nboxes:\n  web:\n    image: alpine\n').objects;
  it('refuse a Sandbox with a field agent-sandbox does not have, or a pod spec Kubernetes would refuse', async () => {
    const sb = find(base(), 'Sandbox', 'web');
    expect(await validateObject({ ...sb, spec: { ...sb.spec, replica: 1 } })).toEqual(['/spec must NOT have additional properties (replica)']);
    const broken = structuredClone(sb);
    broken.spec.podTemplate.spec.restartPolicy = 'Sometimes';
    broken.spec.podTemplate.spec.containers[0].ports = [{ containerPort: 'http' }];
    const p = await validateObject(broken);
    expect(p.join('\n')).toContain('/spec/podTemplate/spec/restartPolicy');
    expect(p.join('\n')).toContain('/spec/podTemplate/spec/containers/0/ports/0/containerPort');
    expect(await validateObject({ ...sb, metadata: { ...sb.metadata, name: 'web.1' } })).toEqual(expect.arrayContaining(['/metadata/name must match pattern "^[a-z]([-a-z0-9]*[a-z0-9])?$"']));
  });
  it('refuse a NetworkPolicy and a Service Kubernetes would refuse', async () => {
    const np = find(base(), 'NetworkPolicy', 'r-lan');
    expect((await validateObject({ ...np, spec: { ...np.spec, policyTypes: ['Sideways'] } })).join()).toContain('/spec/policyTypes/0');
    expect(await validateObject({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'x' }, spec: { ports: [{ port: 'eighty' }] } })).not.toEqual([]);
    expect(await validateObject({ apiVersion: 'v1', kind: 'Thing', metadata: { name: 'x' } })).toEqual(['no schema for v1/Thing']);
  });
});

describe('the command', () => {
  it('prints only YAML on stdout, warnings on stderr; exits 1 on refusals with nothing on stdout', async () => {
    const home = testHome();
    fs.writeFileSync(file, EVERY);
    const ok = await cli(home, ['-f', file, 'k8s', 'render', '--api', 'statefulset']);
    expect(ok.code).toBe(0);
    const objs = fromYamlStream(ok.stdout);
    expect(objs.map((o) => o.kind)).toContain('StatefulSet');
    await validateAll(objs);
    expect(ok.stderr).toContain('boxlite: box db: snapshots are not carried');
    fs.writeFileSync(path.join(dir, 'bad.yaml'), 'boxes:\n  web:\n    image: alpine\n    setup: [make]\n');
    const bad = await cli(home, ['k8s', 'render', '-f', path.join(dir, 'bad.yaml')]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toContain('box web, setup: a pod has no step that runs once when the box is made');
    expect(bad.stderr).not.toContain('    at ');
    const usage = await cli(home, ['k8s', 'render', '-f', file, '--api', 'deployment']);
    expect(usage.code).toBe(1);
    expect(usage.stderr).toContain('--api must be sandbox or statefulset (got "deployment")');
    fs.rmSync(home, { recursive: true, force: true });
  });
});
