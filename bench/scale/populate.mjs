// Fills the private cluster quickly: parallel POSTs through the agent's own REST client (built dist,
// client-side rate limit off), every object under names that start with the benchmark's prefix.
/* global */
import { join } from 'node:path';

/** Runs fn over 0..n-1 with `width` calls in flight. */
export async function pmap(n, width, fn) {
  let next = 0;
  const worker = async () => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(width, n) }, worker));
}

export async function adminClient(dist, kubeconfig) {
  const { fromKubeconfigFile } = await import(join(dist, 'kube/kubeconfig.js'));
  const { createKubeClient } = await import(join(dist, 'kube/rest.js'));
  return createKubeClient(fromKubeconfigFile(kubeconfig), {
    rateLimit: { qps: 0, burst: 0 },
    timeoutMs: 60_000,
  });
}

const ROLE = (i) => `arn:aws:iam::123456789012:role/bench-${i % 50}`;
const swallow409 = (p) => p.catch((e) => (e.code === 409 ? undefined : Promise.reject(e)));

/** The agents' RBAC: what the DaemonSet's ClusterRole grants (charts/imdsgate), for an ordinary user. */
export async function grantAgent(k, user) {
  const rules = [
    {
      apiGroups: [''],
      resources: ['pods', 'namespaces', 'serviceaccounts'],
      verbs: ['get', 'list', 'watch'],
    },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  ];
  await swallow409(
    k.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
      body: { metadata: { name: 'imdsgate-bench' }, rules },
    }),
  );
  await swallow409(
    k.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      body: {
        metadata: { name: 'imdsgate-bench' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'imdsgate-bench' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
      },
    }),
  );
}

const nsName = (i) => `bench-ns-${i}`;

/** Namespaces [from, to): every tenth one restricts roles, as a multi-tenant cluster would. */
export async function namespaces(k, from, to, width = 48) {
  await pmap(to - from, width, (j) => {
    const i = from + j;
    const annotations = i % 10 === 0 ? { 'iam.amazonaws.com/allowed-roles': '["bench-*"]' } : {};
    return swallow409(
      k.request('POST', '/api/v1/namespaces', {
        body: { metadata: { name: nsName(i), annotations, labels: { team: `t${i % 20}` } } },
      }),
    );
  });
}

/**
 * Service accounts [from, to), spread over `nsCount` namespaces; a tenth carry an IRSA role, and each
 * carries what a real one carries (a kubectl last-applied annotation, labels), which the agent must not keep.
 */
export async function serviceAccounts(k, from, to, nsCount, width = 48) {
  await pmap(to - from, width, (j) => {
    const i = from + j;
    const annotations = {
      'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({
        kind: 'ServiceAccount',
        name: `sa-${i}`,
        pad: 'x'.repeat(200),
      }),
      ...(i % 10 === 0 ? { 'eks.amazonaws.com/role-arn': ROLE(i) } : {}),
    };
    return swallow409(
      k.request('POST', `/api/v1/namespaces/${nsName(i % nsCount)}/serviceaccounts`, {
        body: { metadata: { name: `sa-${i}`, annotations, labels: { app: `a${i % 100}` } } },
        // secrets/imagePullSecrets would be typical too; the name list alone is enough weight here
      }),
    );
  });
}

/** `count` pods on `node` (namespace bench-ns-0), with status.podIP set as a kubelet would. */
export async function podsOnNode(k, node, count, ipBase, width = 16) {
  await pmap(count, width, async (i) => {
    const name = `${node}-p${i}`;
    const path = `/api/v1/namespaces/${nsName(0)}/pods`;
    const pod = await swallow409(k.request('POST', path, { body: podBody(name, node, i) }));
    if (pod === undefined) return;
    const ip = `${ipBase}.${10 + Math.floor(i / 250)}.${(i % 250) + 1}`;
    pod.status = { phase: 'Running', podIP: ip, podIPs: [{ ip }] };
    await k.request('PUT', `${path}/${name}/status`, { body: pod });
  });
}

/** Pods [from, to) spread over `nodes` node names that no measured agent uses (node-x-*); no status. */
export async function podsElsewhere(k, from, to, nodes, width = 48) {
  await pmap(to - from, width, (j) => {
    const i = from + j;
    const node = `node-x-${i % nodes}`;
    return swallow409(
      k.request('POST', `/api/v1/namespaces/${nsName(0)}/pods`, { body: podBody(`px-${i}`, node, i) }),
    );
  });
}

function podBody(name, node, i) {
  return {
    metadata: {
      name,
      labels: { app: `a${i % 100}`, 'pod-template-hash': 'abcdef1234' },
      annotations: { 'example.com/owner': 'team-a' },
    },
    spec: {
      nodeName: node,
      serviceAccountName: 'default',
      containers: [
        {
          name: 'app',
          image: 'example.invalid/app:1.2.3',
          env: [{ name: 'MODE', value: 'bench' }],
          resources: { requests: { cpu: '100m', memory: '128Mi' } },
        },
      ],
    },
  };
}

/** The "default" service account of bench-ns-0 (pods name it; admission refuses pods without it). */
export async function defaultServiceAccount(k) {
  await swallow409(
    k.request('POST', `/api/v1/namespaces/${nsName(0)}/serviceaccounts`, {
      body: { metadata: { name: 'default' } },
    }),
  );
}
