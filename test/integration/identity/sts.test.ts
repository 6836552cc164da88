// The STS issuers against real moto: AssumeRole signed with (any) node credentials, validation before the
// call, error mapping, and the cache serving through an STS outage (moto behind a relay we cut).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCredentialCache } from '../../../src/credentials/cache.js';
import { createAssumeRoleIssuer } from '../../../src/credentials/sts.js';
import { ImdsError } from '../../../src/errors.js';
import { deps, pod } from '../../unit/credentials/helpers.js';
import { envState, startRelay } from './support.js';

const ROLE = 'arn:aws:iam::123456789012:role/app';
const nodeCredentials = async () => ({ accessKeyId: 'AKIDNODEEXAMPLE', secretAccessKey: 'node-secret' });

function issuer(endpoint: string, over: { sessionTags?: boolean; clock?: () => number } = {}) {
  const d = deps();
  const i = createAssumeRoleIssuer({
    region: 'us-east-1',
    endpoint,
    nodeCredentials,
    durationSeconds: 3600,
    sessionTags: over.sessionTags ?? false,
    nodeName: 'node-a',
    clock: over.clock ?? Date.now,
    metrics: d.metrics,
    logger: d.logger,
  });
  return { i, d };
}

describe('assume-role issuer against moto', () => {
  const sts = envState().sts.endpoint;

  it('returns credentials with a Date expiration about an hour out, and the account', async () => {
    const { i, d } = issuer(sts, { sessionTags: true });
    const c = await i.issue({ pod: pod(), roleArn: ROLE, externalId: 'ext-123' });
    expect(c.accessKeyId).toMatch(/^ASIA/);
    expect(c.sessionToken.length).toBeGreaterThan(10);
    expect(c.expiration).toBeInstanceOf(Date);
    expect(c.expiration.getTime() - Date.now()).toBeGreaterThan(3500_000);
    expect(c.accountId).toBe('123456789012');
    expect(await d.metric('imdsgate_sts_requests_total', { api: 'AssumeRole', outcome: 'success' })).toBe(1);
  });

  it('never sends what moto would accept but STS refuses (invalid ARN), item 60', async () => {
    const { i } = issuer(sts);
    await expect(i.issue({ pod: pod(), roleArn: 'notanarn' })).rejects.toMatchObject({
      code: 'CREDENTIALS_UNAVAILABLE',
    });
  });

  it('maps a dead endpoint to CREDENTIALS_UNAVAILABLE quickly (no SDK retries)', async () => {
    const { i } = issuer('http://127.0.0.1:9');
    const t0 = Date.now();
    const err = (await i.issue({ pod: pod(), roleArn: ROLE }).catch((e: unknown) => e)) as ImdsError;
    expect(err).toBeInstanceOf(ImdsError);
    expect(err.detail).toBe('AssumeRole: NetworkError');
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  describe('STS outage behind the cache', () => {
    let relay: Awaited<ReturnType<typeof startRelay>>;
    beforeAll(async () => {
      relay = await startRelay(sts);
    });
    afterAll(() => relay.close());

    it('keeps serving cached credentials while STS is down, and recovers', async () => {
      let now = Date.now();
      const clock = () => now;
      const { i, d } = issuer(relay.url, { clock });
      const cache = createCredentialCache(i, { ...d, clock, sweepIntervalMs: 0, backoffInitialMs: 1000 });
      const first = await cache.issue({ pod: pod(), roleArn: ROLE });
      relay.down();
      now += 26 * 60_000; // 34 min left: due for refresh whatever the jitter drew, STS unreachable
      for (let k = 0; k < 5; k++) {
        expect(await cache.issue({ pod: pod(), roleArn: ROLE })).toBe(first);
        await cache.sweep();
        await new Promise((r) => setTimeout(r, 100)); // the real connection attempt fails meanwhile
        now += 500;
      }
      expect(await d.metric('imdsgate_sts_requests_total', { outcome: 'NetworkError' })).toBeGreaterThan(0);
      expect(
        await d.metric('imdsgate_credential_cache_events_total', { event: 'stale_served' }),
      ).toBeGreaterThan(0);
      // A pod that had nothing cached fails closed with 503, not with someone else's session.
      await expect(cache.issue({ pod: pod({ name: 'new' }), roleArn: ROLE })).rejects.toMatchObject({
        status: 503,
      });
      relay.up();
      now += 60_000;
      await cache.sweep();
      const next = await cache.issue({ pod: pod(), roleArn: ROLE });
      expect(next.accessKeyId).not.toBe(first.accessKeyId);
      cache.close();
    });
  });
});
