// TokenRequest for a pod's service account (web-identity mode). The token is bound to the pod object,
// so the API server invalidates it when the pod is deleted, and it lives only the API minimum (10 min):
// the agent needs it once per STS call, never serves it. RBAC: create on serviceaccounts/token.
import type { AuthenticationV1TokenRequest } from '@kubernetes/client-node';
import type { PodIdentity } from '../pods/types.js';
import type { KubeClient } from './rest.js';

export type TokenSource = (pod: PodIdentity) => Promise<string>;

export function createTokenSource(
  client: KubeClient,
  audience: string,
  expirationSeconds = 600,
): TokenSource {
  return async (pod) => {
    const ns = encodeURIComponent(pod.namespace);
    const sa = encodeURIComponent(pod.serviceAccount);
    const body: AuthenticationV1TokenRequest = {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {
        audiences: [audience],
        expirationSeconds,
        ...(pod.uid !== ''
          ? { boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.name, uid: pod.uid } }
          : {}),
      },
    };
    const res = await client.request<AuthenticationV1TokenRequest | undefined>(
      'POST',
      `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`,
      { body },
    );
    const token = res?.status?.token;
    if (token === undefined || token === '') throw new Error('TokenRequest returned no token');
    return token;
  };
}
