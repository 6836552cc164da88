// One place that turns configuration into a Kubernetes client: a kubeconfig file when given (tests,
// `explain` from a workstation), the pod's own service account otherwise (the DaemonSet).
import type { RateLimit } from './backoff.js';
import { fromCluster, fromKubeconfigFile } from './kubeconfig.js';
import { createKubeClient, type KubeClient, type KubeClientOptions } from './rest.js';

export type { KubeClient } from './rest.js';

export function kubeClientFor(kubeconfig: string | undefined, o: KubeClientOptions = {}): KubeClient {
  return createKubeClient(kubeconfig !== undefined ? fromKubeconfigFile(kubeconfig) : fromCluster(), o);
}

/** --kube-api-qps and --kube-api-burst as the client's token bucket. */
export function rateLimitOf(cfg: { readonly kubeApiQps: number; readonly kubeApiBurst: number }): RateLimit {
  return { qps: cfg.kubeApiQps, burst: cfg.kubeApiBurst };
}
