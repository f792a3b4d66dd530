// One box → the pod it becomes: its container (image, command, env, working_dir, user, resources, ports,
// probes, mounts), an init container for setup when asked, and the pod-level settings of a boxlite box (no
// service account token, no service links: a box gets neither from boxlite). Refusals and warnings are collected
// by the caller.
import * as fs from 'node:fs';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IVolumeMount } from 'kubernetes-models/v1/VolumeMount';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { BoxSpec } from '../spec/types.js';

export interface PodContext {
  api: 'sandbox' | 'statefulset';
  runtimeClass: string;
  /** The image the box runs (a pushed commit of it with --push). */
  image: string;
  /** Whether the image already holds what setup makes (a commit pushed with --push). */
  setupBaked: boolean;
  /** Cluster names of named volumes; `shared` ones are standalone claims named in `claimOf`. */
  volumeName: (v: string) => string;
  claimOf: (v: string) => string | undefined;
  secretName: string;
  allowHostPath: boolean;
  secretsAsEnv: boolean;
  setupAsInit: boolean;
  refuse: (field: string, why: string, fix: string) => void;
  warn: (m: string) => void;
}

const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));
const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** A box without a command idles, as a boxlite box does: a shell loop that ends on SIGTERM. */
export const IDLE_COMMAND = ['sh', '-c', "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"];

function probes(b: BoxSpec): Pick<IContainer, 'readinessProbe' | 'startupProbe'> {
  const h = b.healthcheck;
  if (!h) return {};
  // Readiness only: an unhealthy box is taken out of its Service, never killed (docker only marks it).
  const readinessProbe: IProbe = { exec: { command: h.test }, periodSeconds: seconds(h.intervalMs), timeoutSeconds: seconds(h.timeoutMs), failureThreshold: Math.max(1, h.retries), successThreshold: 1 };
  if (!h.startPeriodMs) return { readinessProbe };
  // The start period in probe periods, then as many failures as docker allows before it would say unhealthy.
  const startupProbe: IProbe = { ...readinessProbe, failureThreshold: Math.ceil(h.startPeriodMs / h.intervalMs) + Math.max(1, h.retries) };
  return { readinessProbe, startupProbe };
}

function securityContext(b: BoxSpec, ctx: PodContext): IContainer['securityContext'] {
  if (!b.user) return undefined;
  const m = /^(\d+)(?::(\d+))?$/.exec(b.user);
  if (!m) {
    ctx.refuse('user', `"${b.user}" is a user name, and a pod runs as a numeric uid (runAsUser)`, `write the uid, e.g. user: "1000" or "1000:1000" ('boxlite exec ${b.name} id ${b.user}' shows it)`);
    return undefined;
  }
  return { runAsUser: Number(m[1]), ...(m[2] !== undefined ? { runAsGroup: Number(m[2]) } : {}) };
}

function env(b: BoxSpec, ctx: PodContext): IEnvVar[] {
  const list: IEnvVar[] = Object.entries(b.env).map(([name, value]) => ({ name, value }));
  for (const s of b.secrets ?? []) {
    if (!ctx.secretsAsEnv) {
      ctx.refuse(
        `secrets.${s.name}`,
        `the value is put into requests to ${s.hosts.join(', ')} by the box's network boundary, and a pod has no such gateway`,
        `pass --secrets-as-env to make it an environment variable from a Secret (the box can then read it), or remove the secret`,
      );
      continue;
    }
    list.push({ name: s.name, valueFrom: { secretKeyRef: { name: ctx.secretName, key: s.name } } });
  }
  return list;
}

function mounts(b: BoxSpec, ctx: PodContext): { volumeMounts: IVolumeMount[]; volumes: IVolume[] } {
  const volumeMounts: IVolumeMount[] = [];
  const volumes: IVolume[] = [];
  b.volumes.forEach((m, i) => {
    if (m.type === 'volume') {
      const name = ctx.volumeName(m.source);
      volumeMounts.push({ name, mountPath: m.target, ...(m.readOnly ? { readOnly: true } : {}) });
      const claim = ctx.claimOf(m.source);
      if (claim) volumes.push({ name, persistentVolumeClaim: { claimName: claim, ...(m.readOnly ? { readOnly: true } : {}) } });
      return;
    }
    if (!ctx.allowHostPath) {
      ctx.refuse(`volumes[${i}]`, `${m.source} is a folder of this machine, which a cluster's nodes do not have`, `use a named volume (and copy the files in), bake them into the image ('boxlite commit'), or pass --allow-host-path to mount that path of the node`);
      return;
    }
    const name = `host-${i}`;
    const isFile = fs.existsSync(m.source) && fs.statSync(m.source).isFile();
    ctx.warn(`box ${b.name}: volumes[${i}] mounts ${m.source} of whichever node runs the pod (hostPath), not of this machine`);
    volumes.push({ name, hostPath: { path: m.source, type: isFile ? 'File' : 'Directory' } });
    volumeMounts.push({ name, mountPath: m.target, ...(m.readOnly ? { readOnly: true } : {}) });
  });
  return { volumeMounts, volumes };
}

/** The init container that runs setup once: a marker on the box's first named volume says it has run. */
function setupContainer(b: BoxSpec, base: IContainer, ctx: PodContext): IContainer | undefined {
  if (!b.setup.length || ctx.setupBaked) return undefined;
  if (!ctx.setupAsInit) {
    ctx.refuse('setup', 'a pod has no step that runs once when the box is made', `bake it into an image ('boxlite k8s render --push REGISTRY' commits and pushes each provisioned box), or pass --setup-as-init to run it in an init container on the box's claim`);
    return undefined;
  }
  const claimMount = b.volumes.find((m) => m.type === 'volume' && !m.readOnly);
  const kept = b.volumes.filter((m) => m.type === 'volume').map((m) => m.target);
  ctx.warn(`box ${b.name}: setup runs in an init container; only what it writes under ${kept.length ? kept.join(', ') : '(no volume)'} reaches the box${claimMount ? '' : ', and with no writable named volume it runs at every start of the pod'}`);
  const steps = b.setup.map((argv) => argv.map(shq).join(' ')).join('\n');
  const marker = claimMount ? `${claimMount.target.replace(/\/$/, '')}/.boxlite-setup-done` : '';
  const script = marker ? `[ -e ${shq(marker)} ] && exit 0\nset -e\n${steps}\ntouch ${shq(marker)}` : `set -e\n${steps}`;
  const { readinessProbe: _r, startupProbe: _s, ports: _p, ...rest } = base;
  return { ...rest, name: 'setup', command: ['sh', '-c', script] };
}

/** One containerPort per box port and protocol (two host ports may forward to one box port). */
function containerPorts(b: BoxSpec): NonNullable<IContainer['ports']> {
  const seen = new Set<string>();
  return b.ports
    .filter((p) => !seen.has(`${p.guestPort}/${p.protocol}`) && !!seen.add(`${p.guestPort}/${p.protocol}`))
    .map((p) => ({ containerPort: p.guestPort, protocol: p.protocol === 'udp' ? ('UDP' as const) : ('TCP' as const) }));
}

function restartPolicy(b: BoxSpec, ctx: PodContext): IPodSpec['restartPolicy'] {
  if (ctx.api === 'statefulset') {
    if (b.restart === 'no' || b.restart === 'on-failure') ctx.warn(`box ${b.name}: restart "${b.restart}" becomes Always: a StatefulSet's pods always restart (use --api sandbox to keep it)`);
    return 'Always';
  }
  return ({ no: 'Never', 'on-failure': 'OnFailure', always: 'Always', 'unless-stopped': 'Always' } as const)[b.restart];
}

export function podSpec(b: BoxSpec, ctx: PodContext): IPodSpec {
  const { volumeMounts, volumes } = mounts(b, ctx);
  const main: IContainer = {
    name: 'box',
    image: ctx.image,
    command: b.command ?? IDLE_COMMAND,
    ...(b.workingDir ? { workingDir: b.workingDir } : {}),
    env: env(b, ctx),
    resources: {
      requests: { cpu: String(b.cpus), memory: `${b.memoryMib}Mi`, 'ephemeral-storage': `${b.diskMib}Mi` },
      limits: { cpu: String(b.cpus), memory: `${b.memoryMib}Mi`, 'ephemeral-storage': `${b.diskMib}Mi` },
    },
    ...(b.ports.length ? { ports: containerPorts(b) } : {}),
    ...probes(b),
    ...(volumeMounts.length ? { volumeMounts } : {}),
  };
  const sc = securityContext(b, ctx);
  if (sc) main.securityContext = sc;
  if (!main.env?.length) delete main.env;
  const init = setupContainer(b, main, ctx);
  return {
    runtimeClassName: ctx.runtimeClass,
    restartPolicy: restartPolicy(b, ctx),
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    ...(b.dns.length ? { dnsConfig: { nameservers: b.dns } } : {}),
    ...(init ? { initContainers: [init] } : {}),
    containers: [main],
    ...(volumes.length ? { volumes } : {}),
  };
}
