// Kubernetes helpers over the real test API server. No kubelet, scheduler or controller-manager runs,
// so these do their jobs by hand: pods get spec.nodeName directly and their status (podIP, phase,
// Ready) through the status subresource as a kubelet would; namespaces get their "default"
// ServiceAccount here.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CoreV1Api,
  KubeConfig,
  type V1Node,
  type V1Pod,
  type V1ServiceAccount,
  type V1Taint,
} from '@kubernetes/client-node';
import { testEnv } from './index.js';

export type Annotations = Record<string, string>;

export function adminKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(testEnv().kube.adminKubeconfig);
  return kc;
}

export const coreApi = (kc: KubeConfig = adminKubeConfig()): CoreV1Api => kc.makeApiClient(CoreV1Api);

/** A DNS-1123 name unique enough for one test run: `prefix-xxxxxx`. */
export const uniqueName = (prefix = 't'): string => `${prefix}-${randomBytes(3).toString('hex')}`;

const statusOf = (err: unknown): number | undefined => (err as { code?: number }).code;

async function ignoring<T>(code: number, p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (statusOf(err) === code) return undefined;
    throw err;
  }
}

/** Creates a namespace (random name unless given) and its "default" ServiceAccount; returns the name. */
export async function createNamespace(
  annotations: Annotations = {},
  name: string = uniqueName('ns'),
  labels: Record<string, string> = {},
): Promise<string> {
  const api = coreApi();
  await api.createNamespace({ body: { metadata: { name, annotations, labels } } });
  await ignoring(
    409,
    api.createNamespacedServiceAccount({ namespace: name, body: { metadata: { name: 'default' } } }),
  );
  return name;
}

export async function deleteNamespace(name: string): Promise<void> {
  await ignoring(404, coreApi().deleteNamespace({ name }));
}

export async function createServiceAccount(
  namespace: string,
  name: string,
  annotations: Annotations = {},
): Promise<V1ServiceAccount> {
  return coreApi().createNamespacedServiceAccount({ namespace, body: { metadata: { name, annotations } } });
}

/** A Node object (no kubelet behind it), e.g. for startup-taint tests. */
export async function createNode(name: string, taints: V1Taint[] = []): Promise<V1Node> {
  return coreApi().createNode({ body: { metadata: { name }, spec: { taints } } });
}

export interface PodSpec {
  namespace: string;
  name?: string;
  nodeName: string;
  serviceAccount?: string;
  annotations?: Annotations;
  labels?: Record<string, string>;
  /** Set through the status subresource; omit for a pod that has no IP yet. */
  podIP?: string;
  /** Defaults to [podIP]; give two for dual-stack. */
  podIPs?: string[];
  phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
  /** Ready condition; defaults to phase === 'Running'. */
  ready?: boolean;
  hostNetwork?: boolean;
}

/** Creates a pod bound to nodeName and sets its status as the kubelet would; returns the stored pod. */
export async function createPod(spec: PodSpec): Promise<V1Pod> {
  const api = coreApi();
  const sa = spec.serviceAccount ?? 'default';
  // The ServiceAccount admission plugin refuses a pod whose SA does not exist.
  await ignoring(
    409,
    api.createNamespacedServiceAccount({ namespace: spec.namespace, body: { metadata: { name: sa } } }),
  );
  const name = spec.name ?? uniqueName('pod');
  await api.createNamespacedPod({
    namespace: spec.namespace,
    body: {
      metadata: { name, annotations: spec.annotations ?? {}, labels: spec.labels ?? {} },
      spec: {
        nodeName: spec.nodeName,
        serviceAccountName: sa,
        hostNetwork: spec.hostNetwork ?? false,
        containers: [{ name: 'app', image: 'example.invalid/app:1' }],
      },
    },
  });
  return setPodStatus(spec.namespace, name, spec);
}

/** Rewrites a pod's status (IP, phase, Ready) as a kubelet would, e.g. to simulate IP reuse. */
export async function setPodStatus(
  namespace: string,
  name: string,
  s: Pick<PodSpec, 'podIP' | 'podIPs' | 'phase' | 'ready'>,
): Promise<V1Pod> {
  const api = coreApi();
  const pod = await api.readNamespacedPodStatus({ namespace, name });
  const phase = s.phase ?? 'Running';
  const ready = s.ready ?? phase === 'Running';
  const ips = s.podIPs ?? (s.podIP ? [s.podIP] : []);
  const now = new Date();
  pod.status = {
    ...pod.status,
    phase,
    podIP: ips[0],
    podIPs: ips.map((ip) => ({ ip })),
    hostIP: '169.254.100.1',
    conditions: [
      { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
      { type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: now },
    ],
  };
  return api.replaceNamespacedPodStatus({ namespace, name, body: pod });
}

/**
 * Deletes a pod. Without a kubelet a graceful delete never completes (the pod stays Terminating with
 * a deletionTimestamp), so the default is immediate; pass graceful: true to get that Terminating state.
 */
export async function deletePod(
  namespace: string,
  name: string,
  opts: { graceful?: boolean } = {},
): Promise<void> {
  await ignoring(
    404,
    coreApi().deleteNamespacedPod({ namespace, name, gracePeriodSeconds: opts.graceful ? 30 : 0 }),
  );
}

/** A bound ServiceAccount token from the TokenRequest API. */
export async function serviceAccountToken(
  namespace: string,
  name: string,
  opts: { audiences?: string[]; expirationSeconds?: number } = {},
): Promise<string> {
  const tr = await coreApi().createNamespacedServiceAccountToken({
    namespace,
    name,
    body: { spec: { audiences: opts.audiences ?? [], expirationSeconds: opts.expirationSeconds ?? 3600 } },
  });
  if (!tr.status?.token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
  return tr.status.token;
}

/** Writes a kubeconfig that authenticates as namespace/name with a TokenRequest token; returns its path. */
export async function kubeconfigForServiceAccount(namespace: string, name: string): Promise<string> {
  const env = testEnv();
  const token = await serviceAccountToken(namespace, name);
  const dir = join(env.runDir, 'kubeconfigs');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${namespace}.${name}.${randomBytes(3).toString('hex')}.kubeconfig`);
  const user = `system:serviceaccount:${namespace}:${name}`;
  const kc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name: 'testenv', cluster: { server: env.kube.server, 'certificate-authority': env.kube.caFile } },
    ],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: 'testenv', context: { cluster: 'testenv', user, namespace } }],
    'current-context': 'testenv',
  };
  writeFileSync(file, JSON.stringify(kc, null, 2), { mode: 0o600 });
  return file;
}
