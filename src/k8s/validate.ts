// Every object render prints is checked before it is printed: Kubernetes' own kinds against the OpenAPI schema of
// Kubernetes v1.36.0 (kubernetes-models 5.1.0: ajv validators compiled from that schema, an npm dependency rather
// than a copy of the schema), CiliumNetworkPolicy against Cilium's CRD schema (@kubernetes-models/cilium 4.0.0),
// and Sandboxes against agent-sandbox's v1beta1 envelope (sandbox-schema.ts) with their PodSpec and claim specs
// against Kubernetes' own. Those validators accept unknown fields; our objects are typed with the same packages'
// interfaces, so tsc refuses an unknown field at build time, and the Sandbox envelope refuses one at run time.
import { Ajv2020 } from 'ajv/dist/2020.js';
import { isDnsLabel, isDnsSubdomain } from './names.js';
import { SANDBOX_ENVELOPE } from './sandbox-schema.js';

export const KUBERNETES_VERSION = 'v1.36.0';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: unknown;
}

interface AjvError {
  instancePath: string;
  message?: string;
  params?: Record<string, unknown>;
}
type Check = ((data: unknown) => boolean) & { errors?: AjvError[] | null };

const say = (errors: AjvError[] | null | undefined, at = '') =>
  (errors ?? []).map((e) => `${at}${e.instancePath || '/'} ${e.message ?? 'is invalid'}${e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : ''}${e.params?.allowedValues ? ` (${(e.params.allowedValues as unknown[]).join(', ')})` : ''}`);

/** The validator of one kind, loaded on first use (each pulls in a large compiled schema). */
const LOADERS: Record<string, () => Promise<Check>> = {
  'v1/Namespace': async () => (await import('kubernetes-models/_schemas/IoK8sApiCoreV1Namespace')).validate as Check,
  'v1/Service': async () => (await import('kubernetes-models/_schemas/IoK8sApiCoreV1Service')).validate as Check,
  'v1/Secret': async () => (await import('kubernetes-models/_schemas/IoK8sApiCoreV1Secret')).validate as Check,
  'v1/PersistentVolumeClaim': async () => (await import('kubernetes-models/_schemas/IoK8sApiCoreV1PersistentVolumeClaim')).validate as Check,
  'apps/v1/StatefulSet': async () => (await import('kubernetes-models/_schemas/IoK8sApiAppsV1StatefulSet')).validate as Check,
  'networking.k8s.io/v1/NetworkPolicy': async () => (await import('kubernetes-models/_schemas/IoK8sApiNetworkingV1NetworkPolicy')).validate as Check,
  'cilium.io/v2/CiliumNetworkPolicy': async () => {
    // This package ships no types for its compiled schemas: its model's validate() throws with the same errors.
    const { CiliumNetworkPolicy } = await import('@kubernetes-models/cilium/cilium.io/v2/CiliumNetworkPolicy');
    const check: Check = (data) => {
      try {
        new CiliumNetworkPolicy(data as never).validate();
        return true;
      } catch (e) {
        check.errors = [{ instancePath: '', message: (e as Error).message.replace(/\bdata\//g, '/') }];
        return false;
      }
    };
    return check;
  },
  'agents.x-k8s.io/v1beta1/Sandbox': async () => sandboxCheck(),
};
const loaded = new Map<string, Check>();

async function sandboxCheck(): Promise<Check> {
  const envelope = new Ajv2020({ allErrors: true, strict: false }).compile(SANDBOX_ENVELOPE);
  const podSpec = (await import('kubernetes-models/_schemas/IoK8sApiCoreV1PodSpec')).validate as Check;
  const claimSpec = (await import('kubernetes-models/_schemas/IoK8sApiCoreV1PersistentVolumeClaimSpec')).validate as Check;
  const meta = (await import('@kubernetes-models/apimachinery/_schemas/IoK8sApimachineryPkgApisMetaV1ObjectMeta')).validate as Check;
  const check: Check = (data: unknown) => {
    const errors: AjvError[] = [];
    const run = (fn: Check, value: unknown, at: string) => {
      if (!fn(value)) errors.push(...(fn.errors ?? []).map((e) => ({ ...e, instancePath: at + e.instancePath })));
    };
    run(envelope as unknown as Check, data, '');
    const o = data as { metadata?: unknown; spec?: { podTemplate?: { spec?: unknown }; volumeClaimTemplates?: { spec?: unknown }[] } };
    if (o.metadata) run(meta, o.metadata, '/metadata');
    if (o.spec?.podTemplate?.spec) run(podSpec, o.spec.podTemplate.spec, '/spec/podTemplate/spec');
    o.spec?.volumeClaimTemplates?.forEach((t, i) => t.spec && run(claimSpec, t.spec, `/spec/volumeClaimTemplates/${i}/spec`));
    check.errors = errors;
    return errors.length === 0;
  };
  return check;
}

/** Kinds whose names become DNS labels (Services and the pods of Sandboxes and StatefulSets). */
const LABEL_NAMED = new Set(['Service', 'Sandbox', 'StatefulSet', 'Namespace']);

/** The problems of one object ([] when valid). */
export async function validateObject(o: K8sObject): Promise<string[]> {
  const key = `${o.apiVersion}/${o.kind}`;
  const load = LOADERS[key];
  if (!load) return [`no schema for ${key}`];
  let fn = loaded.get(key);
  if (!fn) loaded.set(key, (fn = await load()));
  const problems = fn(o) ? [] : say(fn.errors);
  const name = o.metadata?.name ?? '';
  if (LABEL_NAMED.has(o.kind) ? !isDnsLabel(name) : !isDnsSubdomain(name)) problems.push(`/metadata/name "${name}" is not a valid ${LABEL_NAMED.has(o.kind) ? 'DNS label' : 'DNS subdomain'}`);
  return problems;
}

/** Throws, naming each object and what is wrong with it, unless every object is valid. */
export async function validateAll(objects: K8sObject[]): Promise<void> {
  const bad: string[] = [];
  for (const o of objects) {
    const p = await validateObject(o);
    if (p.length) bad.push(`${o.kind} ${o.metadata?.name}: ${p.join('; ')}`);
  }
  if (bad.length) throw new Error(`boxlite rendered objects that are not valid (a bug in boxlite; please report it):\n  ${bad.join('\n  ')}`);
}
