// `boxlite k8s …`: the project on a Kubernetes cluster. render prints the objects (and nothing else on stdout);
// the k8s modules load only when a k8s command runs (their schemas are large).
import { findProjectFile, loadProject } from '../spec/load.js';
import type { ProjectSpec } from '../spec/types.js';
import { helpFor, parseArgs, UsageError, type OptionSpec } from './args.js';
import type { Cli, Command } from './command.js';

const FILE: Record<string, OptionSpec> = {
  file: { short: 'f', value: true, help: 'the project file (default: boxlite.yaml here or in a folder above)' },
  project: { short: 'p', value: true, help: 'the project name (default: name: in the file, else the folder name)' },
  namespace: { short: 'n', value: true, help: "the namespace (default: the project's name, and a Namespace object for it)" },
  'runtime-class': { value: true, help: 'the pods\' RuntimeClass (default kata-qemu: Kata Containers on QEMU)' },
  api: { value: true, help: 'sandbox (agent-sandbox\'s Sandbox, the default) or statefulset (a StatefulSet of 1 and a headless Service)' },
  cni: { value: true, help: 'cilium: render domain rules as a CiliumNetworkPolicy with toFQDNs' },
  'allow-host-path': { help: 'mount host folders as hostPath volumes of the node (refused otherwise)' },
  'secrets-as-env': { help: 'make secrets environment variables from a Secret (the box can read them; refused otherwise)' },
  'include-secret-values': { help: "with --secrets-as-env: print the Secret with the values (read now from their env or file)" },
  'setup-as-init': { help: "run setup in an init container on the box's claim (refused otherwise: bake it with --push)" },
  push: { value: true, help: 'REGISTRY: commit each box as provisioned here (boxlite up), push it there, and render the pushed images' },
};

const CLUSTER: Record<string, OptionSpec> = {
  context: { value: true, help: 'the kubeconfig context (default: the current one)' },
  kubeconfig: { value: true, help: 'the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)' },
};

const SUB: Record<string, { usage: string; help: string; opts: Record<string, OptionSpec> }> = {
  render: { usage: 'k8s render [-f FILE] [-n NS] [--runtime-class NAME] [--api sandbox|statefulset] [OPTIONS]', help: 'print the project as Kubernetes objects (a YAML stream for kubectl apply -f -)', opts: FILE },
  plan: { usage: 'k8s plan [--context NAME] [RENDER OPTIONS]', help: "show what 'k8s apply' would change, by a server-side dry run (exit 0: nothing, 2: changes, 1: error)", opts: { ...FILE, ...CLUSTER, json: { help: 'print the plan as JSON' } } },
  apply: {
    usage: 'k8s apply [--context NAME] [--no-wait] [RENDER OPTIONS]',
    help: 'server-side apply (field manager boxlite) in depends_on order, waiting for each dependency; prune what the file no longer has',
    opts: { ...FILE, ...CLUSTER, 'no-wait': { help: 'return once applied, without waiting for the boxes to be ready' }, 'wait-timeout': { value: true, help: 'seconds to wait for a box (default 600)' }, 'no-prune': { help: "keep the project's objects the file no longer has" } },
  },
  down: { usage: 'k8s down [--context NAME] [-n NS] [--volumes]', help: "delete the project's objects from the cluster (--volumes: its claims too, and the Namespace boxlite made)", opts: { file: FILE.file, project: FILE.project, namespace: FILE.namespace, ...CLUSTER, volumes: { short: 'v', help: 'also delete the claims (the volumes\' data)' } } },
};

export function k8sUsage(): string {
  return ['Usage: boxlite k8s COMMAND', '', ...Object.entries(SUB).map(([k, c]) => `  ${k.padEnd(8)} ${c.help}`)].join('\n');
}

function renderOptions(o: Record<string, unknown>) {
  const api = (o.api as string | undefined) ?? 'sandbox';
  if (api !== 'sandbox' && api !== 'statefulset') throw new UsageError(`k8s: --api must be sandbox or statefulset (got "${api}")`);
  if (o.cni !== undefined && o.cni !== 'cilium') throw new UsageError(`k8s: --cni knows only cilium (got "${o.cni}")`);
  if (o['include-secret-values'] && !o['secrets-as-env']) throw new UsageError('k8s: --include-secret-values prints the Secret that --secrets-as-env makes: give both');
  return {
    namespace: o.namespace as string | undefined,
    runtimeClass: o['runtime-class'] as string | undefined,
    api: api as 'sandbox' | 'statefulset',
    cni: o.cni as 'cilium' | undefined,
    allowHostPath: !!o['allow-host-path'],
    secretsAsEnv: !!o['secrets-as-env'],
    includeSecretValues: !!o['include-secret-values'],
    setupAsInit: !!o['setup-as-init'],
  };
}

async function k8sCommand(cli: Cli, argv: string[]): Promise<number> {
  const [sub, ...args] = argv;
  if (!sub || sub === '--help' || sub === '-h') {
    cli.out(k8sUsage());
    return sub ? 0 : 1;
  }
  const c = SUB[sub];
  if (!c) throw new UsageError(`k8s: unknown command "${sub}"\n\n${k8sUsage()}`);
  if (args.includes('--help') || args.includes('-h')) {
    cli.out(`Usage: boxlite ${c.usage}\n\n${c.help}\n\n${helpFor(c.opts)}`);
    return 0;
  }
  const p = parseArgs(args, c.opts, -1, `k8s ${sub}`);
  if (p.positionals.length) throw new UsageError(`k8s ${sub}: takes no arguments (got ${p.positionals.join(' ')})`);
  const file = findProjectFile({ file: (p.opts.file as string) ?? cli.project.file });
  const spec = loadProject(file, { projectName: (p.opts.project as string) ?? cli.project.project });
  for (const w of spec.warnings) cli.err(`boxlite: ${w}`);
  if (sub !== 'render') return clusterCommand(cli, sub, spec, p.opts);
  const opts = renderOptions(p.opts);
  const { renderProject } = await import('../k8s/render.js');
  const { validateAll } = await import('../k8s/validate.js');
  const { toYamlStream } = await import('../k8s/output.js');
  // Refusals other than what --push answers (setup, folder images) are reported before anything is pushed.
  if (p.opts.push) renderProject(spec, { ...opts, images: Object.fromEntries(Object.keys(spec.boxes).map((b) => [b, 'registry.invalid/check:0'])) });
  const images = p.opts.push ? await (await import('../k8s/push.js')).pushBoxes(cli.rt, spec, p.opts.push as string, cli.err) : undefined;
  const r = renderProject(spec, { ...opts, images });
  await validateAll(r.objects);
  for (const w of r.warnings) cli.err(`boxlite: ${w}`);
  process.stdout.write(toYamlStream(r.objects));
  return 0;
}

async function clusterCommand(cli: Cli, sub: string, spec: ProjectSpec, o: Record<string, unknown>): Promise<number> {
  const { Cluster } = await import('../k8s/cluster.js');
  const k = await import('../k8s/reconcile.js');
  const cluster = await Cluster.connect({ context: o.context as string | undefined, kubeconfig: o.kubeconfig as string | undefined });
  if (sub === 'down') {
    const { clusterName } = await import('../k8s/names.js');
    const ns = (o.namespace as string | undefined) ?? clusterName(spec.name) ?? spec.name;
    const gone = await k.downCluster(cluster, ns, spec.name, { volumes: !!o.volumes });
    for (const g of gone) cli.out(`${g}: deleted`);
    if (!gone.length) cli.out(`project ${spec.name} has no objects in namespace ${ns} of context ${cluster.context}`);
    return 0;
  }
  const opts = renderOptions(o);
  const { renderProject, DEFAULT_RUNTIME_CLASS } = await import('../k8s/render.js');
  const { validateAll } = await import('../k8s/validate.js');
  const r = renderProject(spec, opts);
  await validateAll(r.objects);
  for (const w of r.warnings) cli.err(`boxlite: ${w}`);
  await k.preflight(cluster, r, opts.runtimeClass ?? DEFAULT_RUNTIME_CLASS);
  if (sub === 'plan') {
    const pl = await k.planCluster(cluster, r, spec.name);
    cli.out(o.json ? JSON.stringify({ context: cluster.context, ...pl }, null, 2) : k.renderK8sPlan(pl, cluster.context));
    return pl.changed ? 2 : 0;
  }
  const timeout = o['wait-timeout'] !== undefined ? Number(o['wait-timeout']) * 1000 : undefined;
  if (timeout !== undefined && !(timeout > 0)) throw new UsageError(`k8s apply: --wait-timeout must be a positive number of seconds (got "${o['wait-timeout']}")`);
  const res = await k.applyCluster(cluster, r, spec.name, {
    wait: !o['no-wait'],
    timeoutMs: timeout,
    prune: !o['no-prune'],
    renderer: process.stdout.isTTY && !process.env.CI ? 'default' : 'simple',
    pollMs: Number(process.env.BOXLITE_K8S_POLL_MS) || undefined,
    healthchecked: Object.fromEntries(Object.values(spec.boxes).map((b) => [b.name, !!b.healthcheck])),
  });
  cli.out(`applied ${res.applied} objects to namespace ${r.namespace} of context ${cluster.context}${res.pruned.length ? `; pruned ${res.pruned.join(', ')}` : ''}`);
  return 0;
}

export const K8S_COMMANDS: Record<string, Command> = {
  k8s: { usage: 'k8s COMMAND', help: 'the project on Kubernetes: render, plan, apply, down', opts: {}, ownHelp: true, run: (cli, args) => k8sCommand(cli, args) },
};
