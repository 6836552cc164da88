// One place that turns configuration into a KubeConfig: a kubeconfig file when given (tests, `explain`
// from a workstation), the pod's own service account otherwise (the DaemonSet).
import { KubeConfig } from '@kubernetes/client-node';

export function loadKubeConfig(kubeconfig: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfig !== undefined) kc.loadFromFile(kubeconfig);
  else kc.loadFromCluster();
  return kc;
}
