// API Priority and Fairness on the real kube-apiserver answers the agent 429 with Retry-After, and the
// agent's own kube client and views honour it (issue 14). A FlowSchema matching only this test's service
// account sends it to a priority level of its own with a few seats and no queue (limitResponse Reject:
// https://kubernetes.io/docs/concepts/cluster-administration/flow-control/#rejection). "Blockers" of
// the same account hold those seats: a pod list "not older than" a resourceVersion from the future waits
// 3 s in the watch cache for it before answering 504. While they run, the views' lists and watches are
// rejected; the test checks that no view asks again before the advertised Retry-After, that the 429s are
// counted in imdsgate_kube_requests_total, and that every view syncs once the blockers stop.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { fromKubeconfigFile } from '../../../src/kube/kubeconfig.js';
import { KubeApiError, createKubeClient, type KubeClient } from '../../../src/kube/rest.js';
import { startNamespaceView, startServiceAccountView } from '../../../src/kube/views.js';
import { kubeClientFor } from '../../../src/kube/client.js';
import { createLogger } from '../../../src/logger.js';
import { createMetrics, kubeAnswer } from '../../../src/metrics.js';
import { startPodWatcher } from '../../../src/pods/watcher.js';
import { AGENT_RULES, agentKubeconfig, envState, waitUntil } from './support.js';

const st = envState();
const admin = createKubeClient(fromKubeconfigFile(st.kube.adminKubeconfig));
const id = `imdsgate-apf-${randomBytes(3).toString('hex')}`;
const FLOW = '/apis/flowcontrol.apiserver.k8s.io/v1';
const logger = createLogger('error', { write: () => undefined });
const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f().catch(() => undefined);
  await admin.close();
});

/** The priority level and the FlowSchema that sends only this test's service account to it. */
async function createApfObjects(): Promise<void> {
  await admin.request('POST', `${FLOW}/prioritylevelconfigurations`, {
    body: {
      metadata: { name: id },
      spec: {
        type: 'Limited',
        limited: {
          nominalConcurrencyShares: 1,
          lendablePercent: 0,
          borrowingLimitPercent: 0,
          limitResponse: { type: 'Reject' },
        },
      },
    },
  });
  cleanup.push(() => admin.request('DELETE', `${FLOW}/prioritylevelconfigurations/${id}`));
  await admin.request('POST', `${FLOW}/flowschemas`, {
    body: {
      metadata: { name: id },
      spec: {
        priorityLevelConfiguration: { name: id },
        matchingPrecedence: 500,
        distinguisherMethod: { type: 'ByUser' },
        rules: [
          {
            subjects: [
              { kind: 'ServiceAccount', serviceAccount: { name: id, namespace: 'imdsgate-system' } },
            ],
            resourceRules: [
              { verbs: ['*'], apiGroups: ['*'], resources: ['*'], clusterScope: true, namespaces: ['*'] },
            ],
          },
        ],
      },
    },
  });
  cleanup.push(() => admin.request('DELETE', `${FLOW}/flowschemas/${id}`));
}

type Call = { path: string; start: number; end?: number; status?: number; retryAfterMs?: number };

/** The agent's client, recording when each list and watch starts and how it ended. */
function recording(c: KubeClient, calls: Call[]): KubeClient {
  const track = async <T>(path: string, run: () => Promise<T>): Promise<T> => {
    const call: Call = { path, start: Date.now() };
    calls.push(call);
    try {
      return await run();
    } catch (err) {
      call.end = Date.now();
      if (err instanceof KubeApiError) {
        call.status = err.code;
        if (err.retryAfterMs !== undefined) call.retryAfterMs = err.retryAfterMs;
      }
      throw err;
    }
  };
  return {
    ...c,
    server: c.server,
    request: (...a) => c.request(...a),
    list: (path, ...rest) => track(path, () => c.list(path, ...rest)),
    watch: (path, ...rest) => track(path, () => c.watch(path, ...rest)),
    close: () => c.close(),
  };
}

describe('API Priority and Fairness 429 on the real API server', () => {
  it('the views wait as Retry-After says, count the 429s, and sync once seats free up', async () => {
    const kubeconfig = await agentKubeconfig(id, AGENT_RULES);
    cleanup.push(
      () => admin.request('DELETE', `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${id}`),
      () => admin.request('DELETE', `/apis/rbac.authorization.k8s.io/v1/clusterroles/${id}`),
      () => admin.request('DELETE', `/api/v1/namespaces/imdsgate-system/serviceaccounts/${id}`),
    );
    await createApfObjects();
    const target = fromKubeconfigFile(kubeconfig);

    // Blockers: each holds a seat for 3 s at a time; on a 429 it waits 1 s (not hammering the level,
    // whose Retry-After grows with the requests it drops).
    let blocking = true;
    const blockers = Array.from({ length: 4 }, () =>
      createKubeClient(target, { rateLimit: { qps: 0, burst: 1 }, timeoutMs: 10_000 }),
    );
    cleanup.push(() => Promise.all(blockers.map((b) => b.close())));
    const blockerRuns = blockers.map(async (b) => {
      while (blocking) {
        const err = await b
          .request('GET', `/api/v1/namespaces/${id}/pods`, {
            query: { resourceVersion: '999999999999', resourceVersionMatch: 'NotOlderThan' },
          })
          .then(() => undefined)
          .catch((e: unknown) => e);
        if (err instanceof KubeApiError && err.code === 429) await new Promise((r) => setTimeout(r, 1000));
      }
    });
    // The FlowSchema is in force once a blocker of ours is refused.
    const probe = createKubeClient(target, { rateLimit: { qps: 0, burst: 1 } });
    cleanup.push(() => probe.close());
    await waitUntil(
      async () => {
        const err = await probe.request('GET', '/api/v1/namespaces/default').catch((e: unknown) => e);
        return err instanceof KubeApiError && err.code === 429;
      },
      20_000,
      'a 429 from the test priority level (API Priority and Fairness on?)',
    );

    const metrics = createMetrics(new Registry(), { defaults: false });
    const calls: Call[] = [];
    const client = recording(
      kubeClientFor(kubeconfig, {
        onResponse: (s) => metrics.kubeRequests.inc({ code: kubeAnswer(s) }),
      }),
      calls,
    );
    cleanup.push(() => client.close());
    const clock = () => Date.now();
    const opts = { clock, maxStalenessSeconds: 0 };
    const pods = startPodWatcher({ client, nodeName: id, unknownPodWaitMs: 0, clock, metrics, logger });
    const nsView = startNamespaceView(client, logger, opts);
    const saView = startServiceAccountView(client, logger, opts);
    cleanup.push(async () => (pods.stop(), nsView.stop(), saView.stop()));

    const rejected = () => calls.filter((c) => c.status === 429);
    // Each of the three loops refused at least once, and one of them asked again after its wait.
    await waitUntil(
      () => new Set(rejected().map((c) => c.path)).size === 3 && rejected().length >= 4,
      30_000,
      'every view refused, one of them twice',
    );
    blocking = false;
    await Promise.all(blockerRuns);
    await Promise.race([
      Promise.all([pods.synced, nsView.synced, saView.synced]),
      new Promise((_, reject) => setTimeout(() => reject(new Error('views did not sync in 90 s')), 90_000)),
    ]);

    // Retry-After honoured: no later request of the same loop started before the advertised time.
    for (const r of rejected()) {
      expect(r.retryAfterMs, 'APF sends Retry-After with its 429').toBeGreaterThanOrEqual(1000);
      const next = calls.find((c) => c.path === r.path && c.start > r.start);
      expect(next, `${r.path} asked again`).toBeDefined();
      expect(next!.start - r.end!).toBeGreaterThanOrEqual(r.retryAfterMs! - 2);
    }
    const text = await metrics.registry.metrics();
    const count = (code: string) =>
      Number(new RegExp(`imdsgate_kube_requests_total\\{code="${code}"\\} (\\d+)`).exec(text)?.[1]);
    expect(count('429')).toBe(rejected().length);
    expect(count('2xx')).toBeGreaterThanOrEqual(3);
  }, 180_000);

  it('the API server accepts the priority level and FlowSchema docs/large-clusters.md recommends (dry run)', async () => {
    const doc = readFileSync(new URL('../../../docs/large-clusters.md', import.meta.url), 'utf8');
    const block = /```yaml\n([\s\S]*?)```/.exec(doc)?.[1] ?? '';
    type Obj = { kind: string; metadata: { name: string }; spec: Record<string, unknown> };
    const objs = parseAllDocuments(block).map((d) => d.toJS() as Obj);
    expect(objs.map((o) => o.kind)).toEqual(['PriorityLevelConfiguration', 'FlowSchema']);
    for (const o of objs) {
      const plural = o.kind === 'FlowSchema' ? 'flowschemas' : 'prioritylevelconfigurations';
      // dryRun=All: validated and admitted, never stored (nothing to clean up in the shared environment).
      const created = await admin.request<Obj>('POST', `${FLOW}/${plural}`, {
        query: { dryRun: 'All' },
        body: { ...o, metadata: { name: `${id}-doc` } },
      });
      expect(created.spec).toMatchObject(o.spec);
    }
  });
});
