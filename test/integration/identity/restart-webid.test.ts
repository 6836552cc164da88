// The pod watch across a kube-apiserver restart (a private apiserver on the shared etcd, killed and
// restarted on the same port), and web identity end to end: TokenRequest on the real apiserver →
// AssumeRoleWithWebIdentity at moto.
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { kubeClientFor } from '../../../src/kube/client.js';
import { createTokenSource } from '../../../src/kube/token.js';
import { createWebIdentityIssuer } from '../../../src/credentials/web-identity.js';
import { startPodWatcher } from '../../../src/pods/watcher.js';
import { deps } from '../../unit/credentials/helpers.js';
import {
  AGENT_RULES,
  WEB_IDENTITY_RULES,
  agentKubeconfig,
  createPod,
  deleteNamespace,
  ensureNamespace,
  envState,
  startPrivateApiserver,
  waitUntil,
} from './support.js';

const run = randomBytes(3).toString('hex');
const NS = `idr-${run}`;
const NODE = `node-r-${run}`;
const octet = 1 + (parseInt(run.slice(0, 2), 16) % 200);

afterAll(() => deleteNamespace(NS));

describe('pod watch across an API server restart', () => {
  it('keeps its view while the server is down and catches up after it returns', async () => {
    await ensureNamespace(NS);
    const api = await startPrivateApiserver();
    const d = deps();
    const kc = kubeClientFor(await agentKubeconfig('imdsgate-agent-restart', AGENT_RULES, api.server));
    const w = startPodWatcher({
      client: kc,
      nodeName: NODE,
      unknownPodWaitMs: 0,
      clock: Date.now,
      metrics: d.metrics,
      logger: d.logger,
      backoffInitialMs: 100,
      backoffMaxMs: 1000,
    });
    try {
      await createPod({ namespace: NS, name: 'before', nodeName: NODE, ips: [`169.254.${octet}.1`] });
      await w.synced;
      await waitUntil(async () => (await w.byIp(`169.254.${octet}.1`)).kind === 'found');
      await api.stop();
      // Created through the shared apiserver while ours is down.
      await createPod({ namespace: NS, name: 'during', nodeName: NODE, ips: [`169.254.${octet}.2`] });
      await new Promise((r) => setTimeout(r, 500));
      expect(w.isReady()).toBe(true);
      expect((await w.byIp(`169.254.${octet}.1`)).kind).toBe('found');
      const t0 = Date.now();
      await api.restart();
      expect(Date.now() - t0).toBeLessThan(60_000);
      await waitUntil(
        async () => (await w.byIp(`169.254.${octet}.2`)).kind === 'found',
        30_000,
        'pod after restart',
      );
      expect(await d.metric('imdsgate_pod_watch_restarts_total', { cause: 'error' })).toBeGreaterThan(0);
    } finally {
      w.stop();
      await kc.close();
      await api.stop();
    }
  }, 150_000);
});

describe('web identity end to end', () => {
  it('TokenRequest for the pod service account, then AssumeRoleWithWebIdentity at moto', async () => {
    await ensureNamespace(NS);
    const pod = await createPod({ namespace: NS, name: 'wi', nodeName: NODE, ips: [`169.254.${octet}.3`] });
    const d = deps();
    const kc = kubeClientFor(await agentKubeconfig('imdsgate-agent-webid', WEB_IDENTITY_RULES));
    const tokens = createTokenSource(kc, 'sts.amazonaws.com');
    let seenToken = '';
    const issuer = createWebIdentityIssuer({
      region: 'us-east-1',
      endpoint: envState().sts.endpoint,
      durationSeconds: 3600,
      tokenFor: async (p) => (seenToken = await tokens(p)),
      clock: Date.now,
      metrics: d.metrics,
      logger: d.logger,
    });
    const identity = {
      ip: `169.254.${octet}.3`,
      namespace: NS,
      name: 'wi',
      uid: pod.metadata?.uid ?? '',
      serviceAccount: 'default',
      annotations: {},
    };
    const c = await issuer.issue({ pod: identity, roleArn: 'arn:aws:iam::123456789012:role/web' });
    expect(c.accessKeyId).toMatch(/^ASIA/);
    const claims = JSON.parse(Buffer.from(seenToken.split('.')[1] ?? '', 'base64url').toString()) as {
      aud: string[];
      sub: string;
      exp: number;
      iat: number;
    };
    expect(claims.aud).toEqual(['sts.amazonaws.com']);
    expect(claims.sub).toBe(`system:serviceaccount:${NS}:default`);
    expect(claims.exp - claims.iat).toBeLessThanOrEqual(3600);
    expect(
      await d.metric('imdsgate_sts_requests_total', { api: 'AssumeRoleWithWebIdentity', outcome: 'success' }),
    ).toBe(1);
  });

  it('without serviceaccounts/token create the pod gets CREDENTIALS_UNAVAILABLE', async () => {
    const d = deps();
    const kc = kubeClientFor(await agentKubeconfig('imdsgate-agent-notoken', AGENT_RULES));
    const issuer = createWebIdentityIssuer({
      region: 'us-east-1',
      endpoint: envState().sts.endpoint,
      durationSeconds: 3600,
      tokenFor: createTokenSource(kc, 'sts.amazonaws.com'),
      clock: Date.now,
      metrics: d.metrics,
      logger: d.logger,
    });
    const identity = {
      ip: '169.254.0.9',
      namespace: NS,
      name: 'wi',
      uid: '',
      serviceAccount: 'default',
      annotations: {},
    };
    await expect(
      issuer.issue({ pod: identity, roleArn: 'arn:aws:iam::123456789012:role/web' }),
    ).rejects.toMatchObject({ code: 'CREDENTIALS_UNAVAILABLE' });
  });
});
