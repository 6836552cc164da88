// Registers the sandbox's pods in the real kube-apiserver, as the control plane and a kubelet would:
// namespace and service account with their role annotations, the pod bound to our node, then its
// status (phase Running, Ready, podIP = the pod namespace's address) through the status subresource.
import { CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';

export interface KubePod {
  readonly namespace: string;
  readonly name: string;
  readonly serviceAccount: string;
  readonly ip: string;
  readonly podAnnotations?: Readonly<Record<string, string>>;
}

export interface KubeRegistry {
  ensureNamespace(name: string, annotations?: Record<string, string>): Promise<void>;
  ensureServiceAccount(namespace: string, name: string, annotations?: Record<string, string>): Promise<void>;
  createPod(pod: KubePod, nodeName: string): Promise<void>;
  deletePod(namespace: string, name: string): Promise<void>;
  /** Deletes every pod and namespace this registry created. */
  cleanup(): Promise<void>;
}

export function kubeRegistry(kubeconfigPath: string): KubeRegistry {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const api = kc.makeApiClient(CoreV1Api);
  const namespaces = new Set<string>();
  const pods = new Set<string>();
  const deletePod = async (namespace: string, name: string) => {
    pods.delete(`${namespace}/${name}`);
    await api.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 }).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  };
  return {
    async ensureNamespace(name, annotations = {}) {
      const body = { metadata: { name, annotations } };
      await api.createNamespace({ body }).catch(async (err: unknown) => {
        if (!isConflict(err)) throw err;
        await api.replaceNamespace({ name, body: { ...(await api.readNamespace({ name })), ...body } });
      });
      namespaces.add(name);
    },
    async ensureServiceAccount(namespace, name, annotations = {}) {
      const body = { metadata: { name, namespace, annotations } };
      await api.createNamespacedServiceAccount({ namespace, body }).catch(async (err: unknown) => {
        if (!isConflict(err)) throw err;
        await api.replaceNamespacedServiceAccount({ name, namespace, body });
      });
    },
    async createPod(pod, nodeName) {
      const body: V1Pod = {
        metadata: { name: pod.name, namespace: pod.namespace, annotations: { ...pod.podAnnotations } },
        spec: {
          nodeName,
          serviceAccountName: pod.serviceAccount,
          automountServiceAccountToken: false,
          containers: [{ name: 'app', image: 'registry.invalid/sandbox:0' }],
        },
      };
      const created = await api.createNamespacedPod({ namespace: pod.namespace, body });
      pods.add(`${pod.namespace}/${pod.name}`);
      const now = new Date();
      created.status = {
        phase: 'Running',
        podIP: pod.ip,
        podIPs: [{ ip: pod.ip }],
        hostIP: '169.254.100.1',
        startTime: now,
        conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }],
      };
      await api.replaceNamespacedPodStatus({ name: pod.name, namespace: pod.namespace, body: created });
    },
    deletePod,
    async cleanup() {
      // No kubelet confirms deletion here, so pods go with grace 0. Without a controller manager a deleted
      // namespace stays Terminating: callers use names unique to the run (sandbox.ts does).
      for (const key of [...pods]) {
        const [namespace, name] = key.split('/') as [string, string];
        await deletePod(namespace, name);
      }
      for (const name of namespaces) {
        await api.deleteNamespace({ name }).catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        });
      }
      namespaces.clear();
    },
  };
}

const code = (err: unknown) => (err as { code?: number }).code;
const isConflict = (err: unknown) => code(err) === 409;
const isNotFound = (err: unknown) => code(err) === 404;
