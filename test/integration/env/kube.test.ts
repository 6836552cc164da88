// Smoke test of the real kube-apiserver: pods with kubelet-like status, field selectors, TokenRequest
// and RBAC, all through @kubernetes/client-node as the agent uses it.
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  coreApi,
  createNamespace,
  createPod,
  createServiceAccount,
  deleteNamespace,
  deletePod,
  kubeconfigForServiceAccount,
  serviceAccountToken,
  uniqueName,
} from '../../env/kube.js';

let ns: string;
beforeAll(async () => {
  ns = await createNamespace({ 'imdsgate.test/smoke': 'true' });
});
afterAll(async () => {
  await deleteNamespace(ns);
});

describe('kube-apiserver', () => {
  it('stores a pod with status set as a kubelet would and lists it back by spec.nodeName', async () => {
    const node = uniqueName('node');
    const pod = await createPod({ namespace: ns, nodeName: node, podIP: '169.254.50.7', phase: 'Running' });
    await createPod({ namespace: ns, nodeName: uniqueName('other'), podIP: '169.254.50.8' });
    const list = await coreApi().listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` });
    expect(list.items.map((p) => p.metadata?.name)).toEqual([pod.metadata?.name]);
    const got = list.items[0];
    expect(got?.status?.podIP).toBe('169.254.50.7');
    expect(got?.status?.podIPs).toEqual([{ ip: '169.254.50.7' }]);
    expect(got?.status?.phase).toBe('Running');
    expect(got?.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    await deletePod(ns, pod.metadata?.name ?? '');
    const after = await coreApi().listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` });
    expect(after.items).toHaveLength(0);
  });

  it('issues a TokenRequest JWT for a ServiceAccount with the requested audience', async () => {
    await createServiceAccount(ns, 'app', {
      'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/app',
    });
    const token = await serviceAccountToken(ns, 'app', { audiences: ['sts.amazonaws.com'] });
    const parts = token.split('.');
    expect(parts).toHaveLength(3);
    for (const p of parts) expect(p).toMatch(/^[A-Za-z0-9_-]+$/);
    const claims = JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString()) as Record<string, unknown>;
    expect(claims.sub).toBe(`system:serviceaccount:${ns}:app`);
    expect(claims.aud).toEqual(['sts.amazonaws.com']);
  });

  it('RBAC denies a ServiceAccount without a role (403), while it is authenticated', async () => {
    await createServiceAccount(ns, 'nobody');
    const kc = new KubeConfig();
    kc.loadFromFile(await kubeconfigForServiceAccount(ns, 'nobody'));
    const err = await kc
      .makeApiClient(CoreV1Api)
      .listNamespacedPod({ namespace: ns })
      .then(
        () => undefined,
        (e: unknown) => e as { code?: number; body?: string },
      );
    expect(err?.code).toBe(403);
    expect(String(err?.body)).toContain(`system:serviceaccount:${ns}:nobody`);
  });
});
