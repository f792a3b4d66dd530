// The cluster of a kubeconfig context, through @kubernetes/client-node (1.x: it runs on Node 20; 2.x needs 22).
// Every write is a server-side apply by the field manager "boxlite" (what kubectl apply --server-side does), a
// dry run for plan. Errors say which context and server, and what to do.
import { BoxliteError } from '../core/errors.js';
import type { K8sObject } from './validate.js';

type Client = typeof import('@kubernetes/client-node');
type ObjectApi = import('@kubernetes/client-node').KubernetesObjectApi;

export const FIELD_MANAGER = 'boxlite';

export class ClusterError extends BoxliteError {}

export interface ClusterOptions {
  /** A kubeconfig context; default the current one. */
  context?: string;
  /** A kubeconfig file; default $KUBECONFIG or ~/.kube/config. */
  kubeconfig?: string;
}

interface ApiError {
  code?: number;
  body?: unknown;
  message?: string;
}

const codeOf = (e: unknown) => (e as ApiError)?.code;

export class Cluster {
  private constructor(
    private readonly k8s: Client,
    private readonly api: ObjectApi,
    readonly context: string,
    readonly server: string,
  ) {}

  static async connect(o: ClusterOptions = {}): Promise<Cluster> {
    const k8s = await import('@kubernetes/client-node');
    const kc = new k8s.KubeConfig();
    try {
      if (o.kubeconfig) kc.loadFromFile(o.kubeconfig);
      else kc.loadFromDefault();
    } catch (e) {
      throw new ClusterError(`cannot read the kubeconfig${o.kubeconfig ? ` ${o.kubeconfig}` : ''}: ${(e as Error).message}`);
    }
    if (o.context) {
      if (!kc.getContexts().some((c) => c.name === o.context)) {
        throw new ClusterError(`the kubeconfig has no context "${o.context}" (it has: ${kc.getContexts().map((c) => c.name).join(', ') || 'none'}): name one of them with --context`);
      }
      kc.setCurrentContext(o.context);
    }
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new ClusterError('the kubeconfig names no cluster for its current context: set one with kubectl config use-context, or give --context');
    return new Cluster(k8s, k8s.KubernetesObjectApi.makeApiClient(kc), kc.getCurrentContext(), cluster.server);
  }

  private fail(what: string, e: unknown): never {
    const err = e as ApiError;
    if (err?.code) {
      const body = typeof err.body === 'string' ? safeJson(err.body) : err.body;
      const msg = (body as { message?: string })?.message ?? err.message ?? '';
      throw new ClusterError(`${what}: the API server of context ${this.context} answered ${err.code}${msg ? `: ${msg}` : ''}`);
    }
    throw new ClusterError(`${what}: cannot reach the API server of context ${this.context} (${this.server}): ${(e as Error)?.message ?? e}`);
  }

  /** The live object, or null when there is none. */
  async read(o: Pick<K8sObject, 'apiVersion' | 'kind' | 'metadata'>): Promise<K8sObject | null> {
    try {
      return (await this.api.read({ apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.metadata.name, namespace: o.metadata.namespace } })) as unknown as K8sObject;
    } catch (e) {
      if (codeOf(e) === 404) return null;
      this.fail(`reading ${o.kind} ${o.metadata.name}`, e);
    }
  }

  /** A server-side apply (a dry run with dryRun): the object as the server makes it. */
  async apply(o: K8sObject, opts: { dryRun?: boolean } = {}): Promise<K8sObject> {
    try {
      return (await this.api.patch(o as never, undefined, opts.dryRun ? 'All' : undefined, FIELD_MANAGER, true, this.k8s.PatchStrategy.ServerSideApply)) as unknown as K8sObject;
    } catch (e) {
      this.fail(`${opts.dryRun ? 'planning' : 'applying'} ${o.kind} ${o.metadata.name}`, e);
    }
  }

  /** The objects of a kind with these labels ([] when the cluster has no such kind). */
  async list(apiVersion: string, kind: string, namespace: string | undefined, labelSelector?: string): Promise<K8sObject[]> {
    try {
      const r = await this.api.list(apiVersion, kind, namespace, undefined, undefined, undefined, undefined, labelSelector);
      return (r.items as unknown as K8sObject[]).map((i) => ({ ...i, apiVersion, kind }));
    } catch (e) {
      if (codeOf(e) === 404 || /unrecognized|not found|no resource/i.test((e as Error)?.message ?? '')) return [];
      this.fail(`listing ${kind} objects`, e);
    }
  }

  /** Whether the cluster serves a kind at all (a CRD may not be installed). */
  async serves(apiVersion: string, kind: string, namespace: string): Promise<boolean> {
    try {
      await this.api.list(apiVersion, kind, namespace, undefined, undefined, undefined, undefined, undefined, 1);
      return true;
    } catch (e) {
      if (codeOf(e) === 404 || /unrecognized|not found|no resource/i.test((e as Error)?.message ?? '')) return false;
      this.fail(`looking for ${kind} (${apiVersion})`, e);
    }
  }

  async delete(o: Pick<K8sObject, 'apiVersion' | 'kind' | 'metadata'>): Promise<boolean> {
    try {
      await this.api.delete({ apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.metadata.name, namespace: o.metadata.namespace } }, undefined, undefined, undefined, undefined, 'Background');
      return true;
    } catch (e) {
      if (codeOf(e) === 404) return false;
      this.fail(`deleting ${o.kind} ${o.metadata.name}`, e);
    }
  }
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return {};
  }
}
