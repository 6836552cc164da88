// One place that turns configuration into a Kubernetes client: a kubeconfig file when given (tests,
// `explain` from a workstation), the pod's own service account otherwise (the DaemonSet).
import type { Config } from '../config.js';
import { kubeAnswer, type Metrics } from '../metrics.js';
import { fromCluster, fromKubeconfigFile } from './kubeconfig.js';
import { createKubeClient, type KubeClient, type KubeClientOptions } from './rest.js';

export type { KubeClient } from './rest.js';

export function kubeClientFor(kubeconfig: string | undefined, o: KubeClientOptions = {}): KubeClient {
  return createKubeClient(kubeconfig !== undefined ? fromKubeconfigFile(kubeconfig) : fromCluster(), o);
}

/**
 * The client as the configuration asks for it: --kubeconfig (or the pod's service account),
 * --kube-api-qps/--kube-api-burst as its token bucket and, given metrics, every answer counted in
 * imdsgate_kube_requests_total. The agent, `explain` and the identity's own fallback all build it here.
 */
export function kubeClientForConfig(
  cfg: Pick<Config, 'kubeconfig' | 'kubeApiQps' | 'kubeApiBurst'>,
  metrics?: Pick<Metrics, 'kubeRequests'>,
): KubeClient {
  return kubeClientFor(cfg.kubeconfig, {
    rateLimit: { qps: cfg.kubeApiQps, burst: cfg.kubeApiBurst },
    ...(metrics !== undefined
      ? { onResponse: (status) => metrics.kubeRequests.inc({ code: kubeAnswer(status) }) }
      : {}),
  });
}
