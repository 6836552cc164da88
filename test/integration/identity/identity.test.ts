// startKubeIdentity against the real kube-apiserver, with the agent running under exactly the RBAC the
// chart grants (AGENT_RULES). Namespace scoping, annotation changes, IP reuse under churn, unknown pods,
// malformed input, IPv6, prefetch from moto, and a missing permission.
import { randomBytes } from 'node:crypto';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { createCredentialCache } from '../../../src/credentials/cache.js';
import { createAssumeRoleIssuer } from '../../../src/credentials/sts.js';
import { startKubeIdentity, type KubeIdentity } from '../../../src/kube/identity.js';
import type { PodIdentity } from '../../../src/pods/types.js';
import { deps } from '../../unit/credentials/helpers.js';
import {
  AGENT_RULES,
  adminKc,
  agentKubeconfig,
  createPod,
  deleteNamespace,
  deletePod,
  ensureNamespace,
  envState,
  setPodStatus,
  setServiceAccount,
  waitUntil,
} from './support.js';

// The identity source alone: no interception rules, so no --host-ip either.
const NO_RULES = { IMDSGATE_MANAGE_RULES: 'false' };
const run = randomBytes(3).toString('hex');
const NODE = `node-${run}`;
const NS = `id-${run}`;
const NS_KIAM = `idk-${run}`;
const NS_BAD = `idb-${run}`;
const BASE = 'arn:aws:iam::123456789012:role/';
const octet = 1 + (parseInt(run.slice(0, 2), 16) % 200);
const ip = (n: number) => `169.254.${octet}.${n}`;

describe('kube identity (least-privilege agent)', () => {
  let identity: KubeIdentity;
  let cache: ReturnType<typeof createCredentialCache>;
  const d = deps();

  async function resolve(addr: string) {
    const r = await identity.podLookup.byIp(addr);
    if (r.kind !== 'found') return r;
    return { ...r, decision: await identity.roleResolver.resolve(r.pod) };
  }
  const events = async (ns: string) =>
    (await adminKc().makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: ns })).items.filter(
      (e) => e.reason === 'IMDSGateDenied',
    );

  beforeAll(async () => {
    await ensureNamespace(NS, { 'iam.amazonaws.com/allowed-roles': '["app-*"]' });
    await ensureNamespace(NS_KIAM, { 'iam.amazonaws.com/permitted': 'web-.*' });
    await ensureNamespace(NS_BAD, { 'iam.amazonaws.com/allowed-roles': '["app-*"' });
    await setServiceAccount(NS, 'irsa', { 'eks.amazonaws.com/role-arn': `${BASE}app-irsa` });
    const kubeconfig = await agentKubeconfig('imdsgate-agent-test', AGENT_RULES);
    const cfg = loadConfig(
      [
        '--node-name',
        NODE,
        '--kubeconfig',
        kubeconfig,
        '--base-role-arn',
        BASE,
        '--unknown-pod-wait-ms',
        '400',
      ],
      NO_RULES,
    );
    const issuer = createAssumeRoleIssuer({
      region: 'us-east-1',
      endpoint: envState().sts.endpoint,
      nodeCredentials: async () => ({ accessKeyId: 'AKIDNODE', secretAccessKey: 's' }),
      durationSeconds: 3600,
      sessionTags: false,
      clock: Date.now,
      metrics: d.metrics,
      logger: d.logger,
    });
    cache = createCredentialCache(issuer, {
      clock: Date.now,
      metrics: d.metrics,
      logger: d.logger,
      sweepIntervalMs: 0,
    });
    identity = await startKubeIdentity(cfg, {
      logger: d.logger,
      metrics: d.metrics,
      clock: Date.now,
      credentialIssuer: cache,
    });
    await identity.synced;
  });
  afterAll(async () => {
    identity?.stop();
    cache?.close();
    await Promise.all([NS, NS_KIAM, NS_BAD].map(deleteNamespace));
  });

  it('is ready after the first lists', () => {
    expect(identity.podLookup.isReady()).toBe(true);
  });

  it('IRSA service account, allowed by glob; credentials were prefetched', async () => {
    await createPod({
      namespace: NS,
      name: 'irsa-pod',
      nodeName: NODE,
      serviceAccount: 'irsa',
      ips: [ip(1)],
    });
    const r = await waitUntil(async () => {
      const x = await resolve(ip(1));
      return x.kind === 'found' ? x : undefined;
    });
    expect(r.decision).toMatchObject({ allow: true, roleArn: `${BASE}app-irsa`, source: 'service-account' });
    await waitUntil(() => cache.size() > 0, 5000, 'prefetch');
    const before = await d.metric('imdsgate_credential_cache_events_total', { event: 'hit' });
    await waitUntil(async () => {
      await cache.issue({ pod: r.pod, roleArn: `${BASE}app-irsa` });
      return (await d.metric('imdsgate_credential_cache_events_total', { event: 'hit' })) > before;
    });
  });

  it('glob deny → namespace_forbids and an Event on the pod', async () => {
    await createPod({
      namespace: NS,
      name: 'admin-pod',
      nodeName: NODE,
      annotations: { 'iam.amazonaws.com/role': 'admin' },
      ips: [ip(2)],
    });
    const r = await waitUntil(async () =>
      (await resolve(ip(2))).kind === 'found' ? resolve(ip(2)) : undefined,
    );
    expect(r).toMatchObject({ decision: { allow: false, reason: 'namespace_forbids' } });
    const ev = await waitUntil(async () =>
      (await events(NS)).find((e) => e.involvedObject.name === 'admin-pod'),
    );
    expect(ev.message).toContain('namespace_forbids');
    expect(ev.type).toBe('Warning');
  });

  it('kiam permitted regex: allow and anchored deny', async () => {
    await createPod({
      namespace: NS_KIAM,
      name: 'web',
      nodeName: NODE,
      annotations: { 'iam.amazonaws.com/role': 'web-1' },
      ips: [ip(3)],
    });
    await createPod({
      namespace: NS_KIAM,
      name: 'sneaky',
      nodeName: NODE,
      annotations: { 'iam.amazonaws.com/role': 'xweb-1' },
      ips: [ip(4)],
    });
    const ok = await waitUntil(async () =>
      (await resolve(ip(3))).kind === 'found' ? resolve(ip(3)) : undefined,
    );
    const no = await waitUntil(async () =>
      (await resolve(ip(4))).kind === 'found' ? resolve(ip(4)) : undefined,
    );
    expect(ok).toMatchObject({ decision: { allow: true, roleArn: `${BASE}web-1` } });
    expect(no).toMatchObject({ decision: { allow: false, reason: 'namespace_forbids' } });
  });

  it('annotation changes take effect: namespace, then service account', async () => {
    await ensureNamespace(NS, { 'iam.amazonaws.com/allowed-roles': '["app-*", "admin"]' });
    await waitUntil(
      async () => {
        const r = await resolve(ip(2));
        return 'decision' in r && r.decision.allow;
      },
      10_000,
      'namespace change',
    );
    await setServiceAccount(NS, 'irsa', { 'eks.amazonaws.com/role-arn': `${BASE}app-two` });
    await waitUntil(
      async () => {
        const r = await resolve(ip(1));
        return 'decision' in r && r.decision.allow && r.decision.roleArn === `${BASE}app-two`;
      },
      10_000,
      'service-account change',
    );
    // The new session is prefetched; the old one is dropped once no live pod needs it.
    await waitUntil(
      async () => (await d.metric('imdsgate_credential_cache_events_total', { event: 'evict' })) > 0,
      5000,
      'evict',
    );
  });

  it('malformed annotations and odd pods: deny with a reason and an Event, never a crash', async () => {
    await createPod({
      namespace: NS_BAD,
      name: 'bad-json',
      nodeName: NODE,
      annotations: { 'iam.amazonaws.com/role': 'app-1' },
      ips: [ip(5)],
    });
    await createPod({
      namespace: NS,
      name: 'bad-arn',
      nodeName: NODE,
      annotations: { 'iam.amazonaws.com/role': 'arn:aws:iam::1:role/x' },
      ips: [ip(6)],
    });
    await createPod({ namespace: NS, name: 'host', nodeName: NODE, hostNetwork: true, ips: [ip(7)] });
    await createPod({ namespace: NS, name: 'no-ip', nodeName: NODE });
    await createPod({ namespace: NS, name: 'done', nodeName: NODE, ips: [ip(8)], phase: 'Succeeded' });
    const bad = await waitUntil(async () =>
      (await resolve(ip(5))).kind === 'found' ? resolve(ip(5)) : undefined,
    );
    expect(bad).toMatchObject({ decision: { allow: false, reason: 'invalid_annotation' } });
    const arn = await waitUntil(async () =>
      (await resolve(ip(6))).kind === 'found' ? resolve(ip(6)) : undefined,
    );
    expect(arn).toMatchObject({ decision: { allow: false, reason: 'invalid_role' } });
    expect(await identity.podLookup.byIp(ip(7))).toEqual({ kind: 'unknown' });
    expect(await identity.podLookup.byIp(ip(8))).toEqual({ kind: 'unknown' });
    await waitUntil(async () =>
      (await events(NS_BAD)).some((e) => e.message?.includes('invalid_annotation')),
    );
    await waitUntil(async () => (await events(NS)).some((e) => e.message?.includes('invalid_role')));
    expect(identity.podLookup.isReady()).toBe(true);
  });

  it('an unknown IP fails closed after the bounded wait; one that appears during the wait is found early', async () => {
    const t0 = Date.now();
    expect(await identity.podLookup.byIp(ip(99))).toEqual({ kind: 'unknown' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(380);
    await createPod({ namespace: NS, name: 'late', nodeName: NODE });
    const pending = identity.podLookup.byIp(ip(9));
    await setPodStatus(NS, 'late', [ip(9)], 'Running');
    expect(await pending).toMatchObject({ kind: 'found', pod: { name: 'late' } });
  });

  it('IPv4 and IPv6 pod IPs both identify the pod', async () => {
    const v6 = `fd00:${octet.toString(16)}::a`;
    await createPod({ namespace: NS, name: 'dual', nodeName: NODE, ips: [ip(10), v6] });
    await waitUntil(async () => (await identity.podLookup.byIp(v6)).kind === 'found');
    expect(await identity.podLookup.byIp(ip(10))).toMatchObject({ kind: 'found', pod: { name: 'dual' } });
  });

  it('IP reuse under churn: each new pod gets its own identity; overlapping claims give nothing', async () => {
    const reused = ip(20);
    let prevUid = '';
    for (let k = 0; k < 8; k++) {
      const name = `churn-${k}`;
      const role = `app-${k}`;
      const pod = await createPod({
        namespace: NS,
        name,
        nodeName: NODE,
        annotations: { 'iam.amazonaws.com/role': role },
        ips: [reused],
      });
      const found = await waitUntil(
        async () => {
          const r = await resolve(reused);
          return r.kind === 'found' && r.pod.uid === pod.metadata?.uid ? r : undefined;
        },
        10_000,
        `churn ${k}`,
      );
      expect(found.pod.uid).not.toBe(prevUid);
      expect(found.decision).toMatchObject({ allow: true, roleArn: `${BASE}${role}` });
      prevUid = found.pod.uid;
      await deletePod(NS, name);
    }
    // Two live pods on one IP (e.g. a stale status): the caller gets nothing until one goes.
    await createPod({ namespace: NS, name: 'twin-a', nodeName: NODE, ips: [ip(21)] });
    await createPod({ namespace: NS, name: 'twin-b', nodeName: NODE, ips: [ip(21)] });
    await waitUntil(async () => (await identity.podLookup.byIp(ip(21))).kind === 'conflict');
    await deletePod(NS, 'twin-a');
    await waitUntil(async () => {
      const r = await identity.podLookup.byIp(ip(21));
      return r.kind === 'found' && r.pod.name === 'twin-b';
    });
  });

  it('does not see pods of other nodes', async () => {
    await createPod({ namespace: NS, name: 'elsewhere', nodeName: `${NODE}-other`, ips: [ip(30)] });
    expect(await identity.podLookup.byIp(ip(30))).toEqual({ kind: 'unknown' });
  });
});

describe('a missing permission', () => {
  it('without list/watch on namespaces the agent never becomes ready', async () => {
    const rules = AGENT_RULES.map((r) => ({
      ...r,
      resources: r.resources?.filter((x) => x !== 'namespaces'),
    }));
    const kubeconfig = await agentKubeconfig('imdsgate-agent-nons', rules);
    const d = deps();
    const cfg = loadConfig(
      ['--node-name', NODE, '--kubeconfig', kubeconfig, '--base-role-arn', BASE],
      NO_RULES,
    );
    const id = await startKubeIdentity(cfg, { logger: d.logger, metrics: d.metrics, clock: Date.now });
    await new Promise((r) => setTimeout(r, 1500));
    expect(id.podLookup.isReady()).toBe(false);
    id.stop();
  });

  it('without events create, denials are still denied and the failure is counted', async () => {
    const rules = AGENT_RULES.filter((r) => !r.resources?.includes('events'));
    const kubeconfig = await agentKubeconfig('imdsgate-agent-noev', rules);
    const d = deps();
    const cfg = loadConfig(
      ['--node-name', NODE, '--kubeconfig', kubeconfig, '--base-role-arn', BASE],
      NO_RULES,
    );
    const id = await startKubeIdentity(cfg, { logger: d.logger, metrics: d.metrics, clock: Date.now });
    await id.synced;
    const pod: PodIdentity = {
      ip: ip(50),
      namespace: 'default',
      name: 'x',
      uid: 'u',
      serviceAccount: 'default',
      annotations: { 'iam.amazonaws.com/role': 'a b' },
    };
    expect(await id.roleResolver.resolve(pod)).toMatchObject({ allow: false, reason: 'invalid_role' });
    await waitUntil(async () => (await d.metric('imdsgate_kube_events_total', { result: 'error' })) > 0);
    id.stop();
  });
});
