// Registers the sandbox's pods in the real kube-apiserver through the test environment's helpers
// (test/env/kube.ts), as the control plane and a kubelet would: namespace and service account with their
// role annotations, the pod bound to our node, then its status (Running, Ready, podIP = the pod
// namespace's address) through the status subresource. Remembers what it made, to remove it again.
import {
  createNamespace,
  createPod,
  createServiceAccount,
  deleteNamespace,
  deletePod,
} from '../../env/kube.js';

export interface KubePod {
  readonly namespace: string;
  readonly name: string;
  readonly serviceAccount: string;
  readonly ip: string;
  /** Dual-stack pods: the IPv6 address as well. */
  readonly ip6?: string | undefined;
  readonly podAnnotations?: Readonly<Record<string, string>>;
}

export interface KubeRegistry {
  ensureNamespace(name: string, annotations?: Record<string, string>): Promise<void>;
  ensureServiceAccount(namespace: string, name: string, annotations?: Record<string, string>): Promise<void>;
  createPod(pod: KubePod, nodeName: string): Promise<void>;
  /** Deletes every pod and namespace this registry created. */
  cleanup(): Promise<void>;
}

export function kubeRegistry(): KubeRegistry {
  const namespaces = new Set<string>();
  const pods = new Set<string>();
  return {
    async ensureNamespace(name, annotations = {}) {
      await createNamespace(annotations, name);
      namespaces.add(name);
    },
    async ensureServiceAccount(namespace, name, annotations = {}) {
      await createServiceAccount(namespace, name, annotations);
    },
    async createPod(pod, nodeName) {
      await createPod({
        namespace: pod.namespace,
        name: pod.name,
        nodeName,
        serviceAccount: pod.serviceAccount,
        annotations: { ...pod.podAnnotations },
        podIP: pod.ip,
        podIPs: pod.ip6 === undefined ? [pod.ip] : [pod.ip, pod.ip6],
        phase: 'Running',
      });
      pods.add(`${pod.namespace}/${pod.name}`);
    },
    async cleanup() {
      // Without a controller manager a deleted namespace stays Terminating and keeps its pods, so pods
      // go first (grace 0: no kubelet confirms), and callers use namespace names unique to the run.
      for (const key of [...pods]) {
        const [namespace, name] = key.split('/') as [string, string];
        await deletePod(namespace, name);
        pods.delete(key);
      }
      for (const name of namespaces) await deleteNamespace(name);
      namespaces.clear();
    },
  };
}
