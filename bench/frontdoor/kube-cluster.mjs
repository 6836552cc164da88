// The API objects bench/frontdoor/kube.mjs serves: a node, a namespace, an annotated service account and
// a running pod on 127.0.0.1, plus optional churn; every one is deleted by the returned cleanups.
/* global setInterval, clearInterval */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

const ROLE_ARN = 'arn:aws:iam::123456789012:role/bench-role';

/** Sets up the API objects the agent will see: node, namespace, annotated SA, a running pod on 127.0.0.1. */
export async function cluster(work, kubeconfig, cleanups) {
  const { fromKubeconfigFile } = await import(join(work, 'dist/kube/kubeconfig.js'));
  const { createKubeClient } = await import(join(work, 'dist/kube/rest.js'));
  const k = createKubeClient(fromKubeconfigFile(kubeconfig), { rateLimit: { qps: 0, burst: 0 } });
  const id = randomBytes(3).toString('hex');
  const [node, ns] = [`bench-fd-node-${id}`, `bench-fd-${id}`];
  cleanups.push(() => k.close());
  const post = (path, body) => k.request('POST', path, { body });
  // BENCH_CHURN=n: n namespaces a second created (with an annotated service account) and deleted
  // while the load runs, as the shared test environment's other users do (and, with no namespace
  // controller there, each deleted namespace stays Terminating). Only with BENCH_CLUSTER=private.
  const churn = Number(process.env.BENCH_CHURN ?? 0);
  if (churn > 0 && process.env.BENCH_CLUSTER === 'private') {
    let i = 0;
    const timer = setInterval(() => {
      const n = `churn-${id}-${i++}`;
      void post('/api/v1/namespaces', {
        metadata: { name: n, annotations: { 'iam.amazonaws.com/permitted': '.*' } },
      })
        .then(() =>
          post(`/api/v1/namespaces/${n}/serviceaccounts`, {
            metadata: { name: 'app', annotations: { 'eks.amazonaws.com/role-arn': ROLE_ARN } },
          }),
        )
        .then(() => k.request('DELETE', `/api/v1/namespaces/${n}`))
        .catch(() => undefined);
    }, 1000 / churn);
    cleanups.push(() => clearInterval(timer));
  }
  await post('/api/v1/nodes', { metadata: { name: node } });
  cleanups.push(() => k.request('DELETE', `/api/v1/nodes/${node}`));
  await post('/api/v1/namespaces', { metadata: { name: ns } });
  cleanups.push(async () => {
    await k.request('DELETE', `/api/v1/namespaces/${ns}/pods/bench-0`, { query: { gracePeriodSeconds: 0 } });
    await k.request('DELETE', `/api/v1/namespaces/${ns}/serviceaccounts/bench`);
    await k.request('DELETE', `/api/v1/namespaces/${ns}`);
    await k.request('PUT', `/api/v1/namespaces/${ns}/finalize`, {
      body: { metadata: { name: ns }, spec: { finalizers: [] } },
    });
  });
  const sa = { metadata: { name: 'bench', annotations: { 'eks.amazonaws.com/role-arn': ROLE_ARN } } };
  await post(`/api/v1/namespaces/${ns}/serviceaccounts`, sa);
  const pod = await post(`/api/v1/namespaces/${ns}/pods`, {
    metadata: { name: 'bench-0' },
    spec: {
      nodeName: node,
      serviceAccountName: 'bench',
      containers: [{ name: 'c', image: 'example.invalid/c:1' }],
    },
  });
  pod.status = { phase: 'Running', podIP: '127.0.0.1', podIPs: [{ ip: '127.0.0.1' }] };
  await k.request('PUT', `/api/v1/namespaces/${ns}/pods/bench-0/status`, { body: pod });
  return { node, ns };
}
