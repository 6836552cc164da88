// One place that turns configuration into a Kubernetes client: a kubeconfig file when given (tests,
// `explain` from a workstation), the pod's own service account otherwise (the DaemonSet).
import { fromCluster, fromKubeconfigFile } from './kubeconfig.js';
import { createKubeClient, type KubeClient } from './rest.js';

export type { KubeClient } from './rest.js';

export function kubeClientFor(kubeconfig: string | undefined): KubeClient {
  return createKubeClient(kubeconfig !== undefined ? fromKubeconfigFile(kubeconfig) : fromCluster());
}
