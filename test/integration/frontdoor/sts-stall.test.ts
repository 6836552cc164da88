// A stalled STS (a proxy in front of moto that accepts connections and reads nothing): the real agent
// answers a pod 503 within --credential-wait-ms, the STS call it started goes on, and once STS recovers
// the pod is served, by that same call when it was still running, or by a retry after it was cut at the
// total deadline (src/credentials/sts-call.ts STS_LIMITS).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STS_LIMITS } from '../../../src/credentials/sts-call.js';
import { startStallProxy, type StallProxy } from '../../env/stall-proxy.js';
import { ROLE, ROLE_ARN, call, env, startAemm, startAgent, until, type Aemm, type Agent } from './harness.js';

const WAIT_MS = 900;
const LIST = '/latest/meta-data/iam/security-credentials/';
const OTHER_ARN = 'arn:aws:iam::123456789012:role/frontdoor-other';
let aemm: Aemm;
let sts: StallProxy;
let agent: Agent;

beforeAll(async () => {
  aemm = await startAemm();
  sts = await startStallProxy(env().sts.endpoint);
  sts.stalled = true;
  agent = await startAgent({
    upstream: aemm.url,
    stsEndpoint: sts.url,
    args: ['--region=us-east-1', `--credential-wait-ms=${WAIT_MS}`],
    pods: [{ ip: '127.0.0.1', name: 'app-0', roleArn: ROLE_ARN }],
  });
});
afterAll(async () => {
  await agent?.stop();
  await sts?.stop();
  await aemm?.stop();
});

const creds = async (role: string, localAddress: string) => {
  const t0 = performance.now();
  const r = await call(`${agent.url}${LIST}${role}`, { localAddress });
  return { ...r, ms: performance.now() - t0 };
};
const stsCalls = async (outcome: string) =>
  (await agent.metrics.registry.getSingleMetric('imdsgate_sts_requests_total')!.get()).values
    .filter((v) => v.labels.outcome === outcome)
    .reduce((n, v) => n + v.value, 0);

describe('a stalled STS', () => {
  it('answers the pod 503 within the wait bound; the call goes on and serves the pod once STS answers', async () => {
    // The first request starts the call (file identity: no prefetch), the second joins it.
    for (let i = 0; i < 2; i++) {
      const r = await creds(ROLE, '127.0.0.1');
      expect(r.status).toBe(503);
      expect(r.text).toContain('503 - Service Unavailable');
      expect(r.ms).toBeGreaterThanOrEqual(WAIT_MS - 10);
      expect(r.ms).toBeLessThan(WAIT_MS + 400);
    }
    // STS recovers while the call is still within its deadline: that call completes and fills the cache.
    sts.stalled = false;
    sts.release();
    await until(async () => (await stsCalls('success')) === 1);
    const r = await creds(ROLE, '127.0.0.1');
    expect(r.status).toBe(200);
    expect(r.ms).toBeLessThan(300);
    expect(await stsCalls('success')).toBe(1);
    expect(sts.accepted()).toBe(1);
  });

  it('cuts a call that outlives the total deadline, answers promptly meanwhile, and recovers', async () => {
    sts.stalled = true;
    agent.writePods([
      { ip: '127.0.0.1', name: 'app-0', roleArn: ROLE_ARN },
      { ip: '127.0.0.3', name: 'other-0', roleArn: OTHER_ARN },
    ]);
    await until(async () => (await creds('frontdoor-other', '127.0.0.3')).status !== 404);
    const started = performance.now();
    while (performance.now() - started < STS_LIMITS.totalMs + 500) {
      const r = await creds('frontdoor-other', '127.0.0.3');
      expect(r.status).toBe(503);
      expect(r.ms).toBeLessThan(WAIT_MS + 400);
    }
    expect(await stsCalls('Timeout')).toBeGreaterThanOrEqual(1);
    sts.drop();
    sts.stalled = false;
    await until(async () => (await creds('frontdoor-other', '127.0.0.3')).status === 200, 10_000);
    // The pod that already had credentials kept being served from the cache throughout.
    expect((await creds(ROLE, '127.0.0.1')).status).toBe(200);
  });
});
