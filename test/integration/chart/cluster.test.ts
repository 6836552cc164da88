// The chart against the real kube-apiserver: every scenario's manifests pass a server-side dry run with
// strict field validation; helm install creates the objects; the chart's ServiceAccount can make exactly
// the calls the agent makes and no wider ones; and the node-boot guard's admission policy lets the agent
// remove only its startup taint, only from its own node. (No kubelet runs here, so no pod starts.)
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../../env/index.js';
import {
  adminKubeConfig,
  CHART,
  collectionPath,
  ensure,
  eventually,
  helm,
  installableChart,
  kube,
  monitoringCrds,
  render,
  saToken,
  tokenKubeConfig,
  type KubeObject,
} from './helpers.js';

const run = randomBytes(3).toString('hex');
const NS = `imdsgate-chart-${run}`;
const APPS = `apps-${run}`;
const TAINT = 'imdsgate.io/agent-not-ready';
const SCENARIOS = readdirSync(join(CHART, 'ci')).filter((f) => f.endsWith('-values.yaml'));
let admin: KubeConfig;

const install = async (release: string, set: string[]) => {
  const r = await helm([
    'install',
    release,
    await installableChart(admin),
    '--namespace',
    NS,
    '--kubeconfig',
    testEnv().kube.adminKubeconfig,
    ...set.flatMap((s) => ['--set', s]),
  ]);
  if (r.code !== 0) throw new Error(`helm install ${release}: ${r.stderr}`);
};

const node = (name: string, extraTaints: object[] = []): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name, labels: { 'kubernetes.io/os': 'linux' } },
  spec: { taints: [{ key: TAINT, value: 'true', effect: 'NoSchedule' }, ...extraTaints] },
});

beforeAll(async () => {
  admin = adminKubeConfig();
  for (const crd of monitoringCrds()) await ensure(admin, crd);
  for (const ns of [NS, APPS])
    await ensure(admin, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  await ensure(admin, {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: 'app', namespace: APPS },
  });
  // CRDs take a moment to be served.
  await eventually(
    async () =>
      (await kube(admin, 'GET', `/apis/monitoring.coreos.com/v1/namespaces/${NS}/podmonitors`)).status === 200
        ? true
        : undefined,
    20_000,
    'monitoring CRDs',
  );
});

afterAll(async () => {
  for (const release of [`d${run}`, `g${run}`]) {
    await helm([
      'uninstall',
      release,
      '--namespace',
      NS,
      '--kubeconfig',
      testEnv().kube.adminKubeconfig,
      '--wait=false',
    ]);
  }
  for (const path of [
    `/api/v1/namespaces/${NS}`,
    `/api/v1/namespaces/${APPS}`,
    `/api/v1/nodes/own-${run}`,
    `/api/v1/nodes/other-${run}`,
  ]) {
    await kube(admin, 'DELETE', path);
  }
});

describe('server-side dry run (strict field validation)', () => {
  it.each(SCENARIOS)('%s', async (file) => {
    const objs = await render({ files: [join(CHART, 'ci', file)], namespace: NS, release: `dry${run}` });
    expect(objs.length).toBeGreaterThan(1);
    // Pods need their ServiceAccount to exist even in a dry run: create those for real first.
    for (const o of objs.filter((x) => x.kind === 'ServiceAccount')) await ensure(admin, o);
    for (const o of objs.filter((x) => x.kind !== 'ServiceAccount')) {
      const path = `${collectionPath(o, o.metadata.namespace)}?dryRun=All&fieldValidation=Strict`;
      const r = await kube(admin, 'POST', path, o);
      expect(`${o.kind}/${o.metadata.name}: ${r.status} ${r.body.message ?? ''}`).toBe(
        `${o.kind}/${o.metadata.name}: 201 `,
      );
    }
  });
});

describe('helm install, then the agent ServiceAccount against the API server', () => {
  let plain: KubeConfig; // default release: assume-role, no startup taint
  let full: KubeConfig; // web-identity + startup taint + admission policy, token bound to a pod on own-<run>

  beforeAll(async () => {
    await install(`d${run}`, []);
    await install(`g${run}`, [
      'config.credentialMode=web-identity',
      'startupTaint.enabled=true',
      'metrics.service.enabled=true',
      'metrics.podMonitor.enabled=true',
      'prometheusRule.enabled=true',
      'dashboard.enabled=true',
    ]);
    await ensure(
      admin,
      node(`own-${run}`, [{ key: 'other.example.com/keep', value: 'x', effect: 'NoSchedule' }]),
    );
    await ensure(admin, node(`other-${run}`));
    plain = tokenKubeConfig(await saToken(admin, NS, `d${run}-imdsgate`));
    // The agent's real token is the kubelet's projected token, bound to its pod on its node.
    const pod = await kube(admin, 'POST', `/api/v1/namespaces/${NS}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `agent-${run}` },
      spec: {
        nodeName: `own-${run}`,
        serviceAccountName: `g${run}-imdsgate`,
        containers: [{ name: 'a', image: 'imdsgate:test' }],
      },
    });
    expect(pod.status).toBe(201);
    const uid = (pod.body.metadata as { uid: string }).uid;
    full = tokenKubeConfig(await saToken(admin, NS, `g${run}-imdsgate`, { name: `agent-${run}`, uid }));
  });

  it('installed the DaemonSet, ServiceAccount, RBAC and optional pieces', async () => {
    const ds = await kube(admin, 'GET', `/apis/apps/v1/namespaces/${NS}/daemonsets/g${run}-imdsgate`);
    expect(ds.status).toBe(200);
    expect(
      (ds.body.spec as { template: { spec: { serviceAccountName: string } } }).template.spec
        .serviceAccountName,
    ).toBe(`g${run}-imdsgate`);
    for (const path of [
      `/api/v1/namespaces/${NS}/serviceaccounts/g${run}-imdsgate`,
      `/apis/rbac.authorization.k8s.io/v1/clusterroles/g${run}-imdsgate`,
      `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/g${run}-imdsgate`,
      `/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/g${run}-imdsgate-startup-taint`,
      `/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/g${run}-imdsgate-startup-taint`,
      `/api/v1/namespaces/${NS}/services/g${run}-imdsgate-metrics`,
      `/api/v1/namespaces/${NS}/configmaps/g${run}-imdsgate-dashboard`,
      `/apis/monitoring.coreos.com/v1/namespaces/${NS}/podmonitors/g${run}-imdsgate`,
      `/apis/monitoring.coreos.com/v1/namespaces/${NS}/prometheusrules/g${run}-imdsgate`,
    ]) {
      expect((await kube(admin, 'GET', path)).status, path).toBe(200);
    }
    const st = await helm([
      'status',
      `g${run}`,
      '--namespace',
      NS,
      '--kubeconfig',
      testEnv().kube.adminKubeconfig,
    ]);
    expect(st.stdout).toContain('STATUS: deployed');
    expect(st.stdout).toContain('What is intercepted');
  });

  it.each([
    [
      'list this node’s pods (field selector)',
      'GET',
      `/api/v1/pods?fieldSelector=spec.nodeName%3Down-${'RUN'}`,
    ],
    [
      'watch this node’s pods',
      'GET',
      `/api/v1/pods?fieldSelector=spec.nodeName%3Down-${'RUN'}&watch=1&timeoutSeconds=1`,
    ],
    ['get a pod', 'GET', `/api/v1/namespaces/NS/pods/agent-RUN`],
    ['list namespaces', 'GET', '/api/v1/namespaces'],
    ['watch namespaces', 'GET', '/api/v1/namespaces?watch=1&timeoutSeconds=1'],
    ['get a service account', 'GET', `/api/v1/namespaces/APPS/serviceaccounts/app`],
    ['list service accounts', 'GET', '/api/v1/serviceaccounts'],
  ])('the agent may %s', async (_what, method, path) => {
    const p = path.replace(/RUN/g, run).replace('/NS/', `/${NS}/`).replace('/APPS/', `/${APPS}/`);
    for (const kc of [plain, full]) expect((await kube(kc, method, p)).status, p).toBe(200);
  });

  it('the agent may get, list and watch its own DaemonSet, by name only (uninstall.removeRules)', async () => {
    const ds = `/apis/apps/v1/namespaces/${NS}/daemonsets`;
    for (const [kc, own, other] of [
      [plain, `d${run}-imdsgate`, `g${run}-imdsgate`],
      [full, `g${run}-imdsgate`, `d${run}-imdsgate`],
    ] as const) {
      const byName = (n: string) => `${ds}?fieldSelector=metadata.name%3D${n}`;
      expect((await kube(kc, 'GET', `${ds}/${own}`)).status).toBe(200);
      expect((await kube(kc, 'GET', byName(own))).status).toBe(200);
      expect((await kube(kc, 'GET', `${byName(own)}&watch=1&timeoutSeconds=1`)).status).toBe(200);
      expect((await kube(kc, 'GET', `${ds}/${other}`)).status).toBe(403);
      expect((await kube(kc, 'GET', byName(other))).status).toBe(403);
      expect((await kube(kc, 'GET', ds)).status).toBe(403);
      expect((await kube(kc, 'DELETE', `${ds}/${own}?dryRun=All`)).status).toBe(403);
    }
  });

  it('the agent may create Events about a pod, and nothing more on Events', async () => {
    const event = {
      metadata: { name: `deny-${run}` },
      involvedObject: { kind: 'Pod', namespace: APPS, name: 'some-pod', apiVersion: 'v1' },
      reason: 'IMDSGateDenied',
      message: 'namespace_forbids',
      type: 'Warning',
      source: { component: 'imdsgate' },
    };
    const created = await kube(plain, 'POST', `/api/v1/namespaces/${APPS}/events`, event);
    expect(created.status, created.body.message).toBe(201);
    const patch = await kube(
      plain,
      'PATCH',
      `/api/v1/namespaces/${APPS}/events/deny-${run}`,
      { count: 2 },
      'application/merge-patch+json',
    );
    expect(patch.status).toBe(403);
    expect((await kube(plain, 'GET', `/api/v1/namespaces/${APPS}/events`)).status).toBe(403);
  });

  it('TokenRequest for a pod’s service account only in web-identity mode', async () => {
    const body = {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { audiences: ['sts.amazonaws.com'], expirationSeconds: 900 },
    };
    const path = `/api/v1/namespaces/${APPS}/serviceaccounts/app/token`;
    expect((await kube(full, 'POST', path, body)).status).toBe(201);
    const denied = await kube(plain, 'POST', path, body);
    expect(denied.status).toBe(403);
    expect(denied.body.message).toContain('cannot create resource "serviceaccounts/token"');
  });

  it.each([
    ['list secrets', 'GET', '/api/v1/secrets', 'cannot list resource "secrets"'],
    ['read configmaps', 'GET', `/api/v1/namespaces/NS/configmaps`, 'cannot list resource "configmaps"'],
    ['create pods', 'POST', `/api/v1/namespaces/APPS/pods`, 'cannot create resource "pods"'],
    ['delete pods', 'DELETE', `/api/v1/namespaces/NS/pods/agent-RUN`, 'cannot delete resource "pods"'],
    [
      'update service accounts',
      'PATCH',
      `/api/v1/namespaces/APPS/serviceaccounts/app`,
      'cannot patch resource "serviceaccounts"',
    ],
    ['patch namespaces', 'PATCH', `/api/v1/namespaces/APPS`, 'cannot patch resource "namespaces"'],
    ['list nodes', 'GET', '/api/v1/nodes', 'cannot list resource "nodes"'],
    ['patch nodes', 'PATCH', `/api/v1/nodes/own-RUN`, 'cannot patch resource "nodes"'],
    [
      'read its own RBAC',
      'GET',
      '/apis/rbac.authorization.k8s.io/v1/clusterroles',
      'cannot list resource "clusterroles"',
    ],
  ])('the default release may not %s', async (_what, method, path, message) => {
    const p = path.replace(/RUN/g, run).replace('/NS/', `/${NS}/`).replace('/APPS', `/${APPS}`);
    const body =
      method === 'GET' || method === 'DELETE'
        ? undefined
        : method === 'POST'
          ? { metadata: { name: 'x' } }
          : { metadata: { labels: { x: 'y' } } };
    const r = await kube(
      plain,
      method,
      p,
      body,
      method === 'PATCH' ? 'application/merge-patch+json' : 'application/json',
    );
    expect(r.status, p).toBe(403);
    expect(r.body.message).toContain(message);
  });

  describe('node-boot guard: the admission policy', () => {
    const taintsOf = async (name: string) =>
      ((await kube(admin, 'GET', `/api/v1/nodes/${name}`)).body.spec as { taints?: { key: string }[] })
        .taints ?? [];
    /** The agent's way of removing the taint: JSON patch with a test, against concurrent changes. */
    const removeTaint = async (kc: KubeConfig, name: string, key = TAINT) => {
      const taints = await taintsOf(name);
      const i = taints.findIndex((t) => t.key === key);
      return kube(
        kc,
        'PATCH',
        `/api/v1/nodes/${name}`,
        [
          { op: 'test', path: `/spec/taints/${i}/key`, value: key },
          { op: 'remove', path: `/spec/taints/${i}` },
        ],
        'application/json-patch+json',
      );
    };

    it('refuses the startup taint of another node', async () => {
      // The policy becomes active shortly after helm created it: wait for the first refusal.
      const r = await eventually(
        async () => {
          const res = await removeTaint(full, `other-${run}`);
          return res.status === 200
            ? Promise.reject(new Error('other node was patched: policy not active'))
            : res;
        },
        15_000,
        'the admission policy',
      );
      expect(r.status).toBe(403);
      expect(r.body.message).toContain('imdsgate may only change the node its own pod runs on');
      expect((await taintsOf(`other-${run}`)).map((t) => t.key)).toContain(TAINT);
    });

    it('refuses removing any other taint, or touching labels, on its own node', async () => {
      const other = await removeTaint(full, `own-${run}`, 'other.example.com/keep');
      expect(other.status).toBe(403);
      expect(other.body.message).toContain(`imdsgate may only remove the taint ${TAINT}`);
      const label = await kube(
        full,
        'PATCH',
        `/api/v1/nodes/own-${run}`,
        { metadata: { labels: { evil: 'yes' } } },
        'application/merge-patch+json',
      );
      expect(label.status).toBe(403);
      expect(label.body.message).toContain(
        "imdsgate may not change a node's labels, annotations or schedulability",
      );
      const cordon = await kube(
        full,
        'PATCH',
        `/api/v1/nodes/own-${run}`,
        { spec: { unschedulable: true } },
        'application/merge-patch+json',
      );
      expect(cordon.status).toBe(403);
    });

    it('lets the agent remove its startup taint from its own node', async () => {
      const r = await removeTaint(full, `own-${run}`);
      expect(`${r.status} ${r.body.message ?? ''}`).toBe('200 ');
      // (the API server's TaintNodesByCondition also put node.kubernetes.io/not-ready there at creation)
      const keys = (await taintsOf(`own-${run}`)).map((t) => t.key);
      expect(keys).not.toContain(TAINT);
      expect(keys).toContain('other.example.com/keep');
    });

    it('refuses a token that carries no node (not bound to a pod)', async () => {
      await kube(
        admin,
        'PATCH',
        `/api/v1/nodes/own-${run}`,
        { spec: { taints: [{ key: TAINT, value: 'true', effect: 'NoSchedule' }] } },
        'application/merge-patch+json',
      );
      const unbound = tokenKubeConfig(await saToken(admin, NS, `g${run}-imdsgate`));
      const r = await removeTaint(unbound, `own-${run}`);
      expect(r.status).toBe(403);
      expect(r.body.message).toContain('imdsgate may only change the node its own pod runs on');
    });
  });
});
