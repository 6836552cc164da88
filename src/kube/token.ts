// TokenRequest for a pod's service account (web-identity mode). The token is bound to the pod object,
// so the API server invalidates it when the pod is deleted, and it lives only the API minimum (10 min):
// the agent needs it once per STS call, never serves it. RBAC: create on serviceaccounts/token.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { PodIdentity } from '../pods/types.js';

export type TokenSource = (pod: PodIdentity) => Promise<string>;

export function createTokenSource(kc: KubeConfig, audience: string, expirationSeconds = 600): TokenSource {
  const api = kc.makeApiClient(CoreV1Api);
  return async (pod) => {
    const res = await api.createNamespacedServiceAccountToken({
      name: pod.serviceAccount,
      namespace: pod.namespace,
      body: {
        spec: {
          audiences: [audience],
          expirationSeconds,
          ...(pod.uid !== ''
            ? { boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.name, uid: pod.uid } }
            : {}),
        },
      },
    });
    const token = res.status?.token;
    if (token === undefined || token === '') throw new Error('TokenRequest returned no token');
    return token;
  };
}
