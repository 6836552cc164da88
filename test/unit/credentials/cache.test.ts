import { describe, expect, it } from 'vitest';
import { createCredentialCache, type CredentialCacheOptions } from '../../../src/credentials/cache.js';
import type { CredentialIssuer, CredentialRequest, Credentials } from '../../../src/credentials/types.js';
import { ImdsError } from '../../../src/errors.js';
import { ROLE, deps, pod } from './helpers.js';

const HOUR = 3600_000;
const MIN = 60_000;

/** A fake STS: counts calls, can be told to fail, answers 1 h sessions by default. */
function fakeIssuer(clock: () => number) {
  let n = 0;
  let failWith: Error | undefined;
  const pending: (() => void)[] = [];
  let hold = false;
  const issuer: CredentialIssuer & { calls: () => number } = {
    calls: () => n,
    async issue(req: CredentialRequest): Promise<Credentials> {
      n += 1;
      const id = n;
      if (hold) await new Promise<void>((r) => pending.push(r));
      if (failWith) throw failWith;
      return {
        accessKeyId: `ASIA${id}`,
        secretAccessKey: 's',
        sessionToken: `t-${req.roleArn}`,
        expiration: new Date(clock() + HOUR),
        lastUpdated: new Date(clock()),
      };
    },
  };
  return {
    issuer,
    fail: (e?: Error) => {
      failWith = e;
    },
    hold: (h: boolean) => {
      hold = h;
      if (!h) pending.splice(0).forEach((r) => r());
    },
  };
}

function setup(over: Partial<CredentialCacheOptions> = {}) {
  const d = deps();
  const f = fakeIssuer(d.clock);
  // No jitter unless a test asks for it: refreshes start exactly 45 min before expiry, retries after the
  // full backoff.
  const cache = createCredentialCache(f.issuer, { ...d, sweepIntervalMs: 0, random: () => 0, ...over });
  return { d, f, cache };
}

const req = (over: Partial<CredentialRequest> = {}): CredentialRequest => ({
  pod: pod(),
  roleArn: ROLE,
  ...over,
});
const outage = new ImdsError('CREDENTIALS_UNAVAILABLE', 'AssumeRole: NetworkError');

describe('createCredentialCache', () => {
  it('serves from cache after the first call', async () => {
    const { f, cache, d } = setup();
    const a = await cache.issue(req());
    const b = await cache.issue(req());
    expect(b).toBe(a);
    expect(f.issuer.calls()).toBe(1);
    expect(await d.metric('imdsgate_credential_cache_events_total', { event: 'hit' })).toBe(1);
    expect(await d.metric('imdsgate_credential_cache_entries')).toBe(1);
  });

  it('makes one STS call for concurrent misses of one key', async () => {
    const { f, cache } = setup();
    f.hold(true);
    const all = Promise.all([cache.issue(req()), cache.issue(req()), cache.issue(req())]);
    await Promise.resolve();
    f.hold(false);
    const [a, b, c] = await all;
    expect(f.issuer.calls()).toBe(1);
    expect(a).toBe(b);
    expect(b).toBe(c);
  });

  it('keeps separate sessions for different external IDs and roles', async () => {
    const { f, cache } = setup();
    await cache.issue(req());
    await cache.issue(req({ externalId: 'e1' }));
    await cache.issue(req({ roleArn: `${ROLE}2` }));
    expect(f.issuer.calls()).toBe(3);
    expect(cache.size()).toBe(3);
  });

  it('refreshes in the background once within refreshBeforeSeconds, serving the old creds meanwhile', async () => {
    const { f, cache, d } = setup();
    const first = await cache.issue(req());
    d.advance(14 * MIN); // 46 min left: not yet due
    expect(await cache.issue(req())).toBe(first);
    expect(f.issuer.calls()).toBe(1);
    d.advance(2 * MIN); // 44 min left: due
    expect(await cache.issue(req())).toBe(first);
    await cache.sweep();
    const fresh = await cache.issue(req());
    expect(fresh).not.toBe(first);
    expect(f.issuer.calls()).toBe(2);
  });

  it('spreads refreshes over the first half of the window: 45 min left at the earliest, 35 at the latest', async () => {
    const late = setup({ random: () => 0.999 });
    const first = await late.cache.issue(req());
    late.d.advance(16 * MIN); // 44 min left: due without jitter, not with this draw
    await late.cache.sweep();
    expect(late.f.issuer.calls()).toBe(1);
    late.d.advance(9 * MIN + 30_000); // 34.5 min left: past the latest start
    await late.cache.sweep();
    expect(late.f.issuer.calls()).toBe(2);
    expect(await late.cache.issue(req())).not.toBe(first);
  });

  it('draws a new refresh time for every session, so sessions fetched together refresh apart', async () => {
    const draws = [0, 0.999];
    const { f, cache, d } = setup({ random: () => draws.shift() ?? 0 });
    await cache.issue(req());
    await cache.issue(req({ roleArn: `${ROLE}2` }));
    d.advance(16 * MIN); // 44 min left: only the first is due
    await cache.sweep();
    expect(f.issuer.calls()).toBe(3);
  });

  it('shortens each retry delay by up to a third, at random, never lengthening it', async () => {
    const { f, cache, d } = setup({ random: () => 0.999, backoffInitialMs: 3000 });
    f.fail(outage);
    await expect(cache.issue(req())).rejects.toMatchObject({ code: 'CREDENTIALS_UNAVAILABLE' });
    d.advance(1990); // 3000 × (1 - 0.999/3) = 2001 ms: still backing off
    await expect(cache.issue(req())).rejects.toMatchObject({ code: 'CREDENTIALS_UNAVAILABLE' });
    expect(f.issuer.calls()).toBe(1);
    d.advance(20);
    f.fail(undefined);
    await cache.issue(req());
    expect(f.issuer.calls()).toBe(2);
  });

  it('never serves credentials with 25 minutes or less left', async () => {
    const { f, cache, d } = setup();
    await cache.issue(req());
    f.fail(outage);
    d.advance(35 * MIN); // 25 min left
    await expect(cache.issue(req())).rejects.toMatchObject({ code: 'CREDENTIALS_UNAVAILABLE' });
  });

  it('keeps serving still-valid credentials through an STS outage, with exponential backoff', async () => {
    const { f, cache, d } = setup({ backoffInitialMs: 1000, backoffMaxMs: 8000 });
    const first = await cache.issue(req());
    f.fail(outage);
    d.advance(16 * MIN);
    const calls = f.issuer.calls();
    for (let i = 0; i < 12; i++) {
      expect(await cache.issue(req())).toBe(first);
      await cache.sweep();
      d.advance(1000);
    }
    // 12 s with backoff 1,2,4,8,8 s: far fewer attempts than requests.
    const attempts = f.issuer.calls() - calls;
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect(attempts).toBeLessThanOrEqual(5);
    expect(
      await d.metric('imdsgate_credential_cache_events_total', { event: 'stale_served' }),
    ).toBeGreaterThan(0);
    f.fail(undefined);
    d.advance(8000);
    await cache.sweep();
    expect((await cache.issue(req())).accessKeyId).not.toBe(first.accessKeyId);
  });

  it('fails fast while backing off when there is nothing to serve, then retries', async () => {
    const { f, cache, d } = setup({ backoffInitialMs: 1000 });
    f.fail(outage);
    await expect(cache.issue(req())).rejects.toBe(outage);
    await expect(cache.issue(req())).rejects.toBe(outage);
    expect(f.issuer.calls()).toBe(1);
    f.fail(undefined);
    d.advance(1000);
    expect((await cache.issue(req())).accessKeyId).toBe('ASIA2');
  });

  it('wraps a non-ImdsError failure as CREDENTIALS_UNAVAILABLE', async () => {
    const { f, cache } = setup();
    f.fail(new Error('boom'));
    await expect(cache.issue(req())).rejects.toMatchObject({ code: 'CREDENTIALS_UNAVAILABLE' });
  });

  it('prefetch fills the cache so the first request is a hit; never rejects', async () => {
    const { f, cache, d } = setup();
    await cache.prefetch(req());
    await cache.issue(req());
    expect(f.issuer.calls()).toBe(1);
    expect(await d.metric('imdsgate_credential_cache_events_total', { event: 'hit' })).toBe(1);
    f.fail(outage);
    await expect(cache.prefetch(req({ roleArn: `${ROLE}x` }))).resolves.toBeUndefined();
  });

  it('sweep retries a failed prefetch after its backoff, without a request', async () => {
    const { f, cache, d } = setup({ backoffInitialMs: 500 });
    f.fail(outage);
    await cache.prefetch(req());
    f.fail(undefined);
    await cache.sweep();
    expect(f.issuer.calls()).toBe(1);
    d.advance(500);
    await cache.sweep();
    expect(f.issuer.calls()).toBe(2);
    await cache.issue(req());
    expect(f.issuer.calls()).toBe(2);
  });

  it('retain drops entries no live pod needs', async () => {
    const { cache, d } = setup();
    await cache.issue(req());
    await cache.issue(req({ roleArn: `${ROLE}2` }));
    expect(cache.retain([cache.keyFor(req())])).toBe(1);
    expect(cache.size()).toBe(1);
    expect(await d.metric('imdsgate_credential_cache_entries')).toBe(1);
    expect(await d.metric('imdsgate_credential_cache_events_total', { event: 'evict' })).toBe(1);
  });

  it('uses the issuer key when it has one', async () => {
    const d = deps();
    const f = fakeIssuer(d.clock);
    const cache = createCredentialCache(
      { ...f.issuer, issue: f.issuer.issue, keyFor: (r) => r.roleArn },
      { ...d, sweepIntervalMs: 0 },
    );
    await cache.issue(req());
    await cache.issue(req({ pod: pod({ name: 'other' }) }));
    expect(f.issuer.calls()).toBe(1);
  });

  it('builds a key once per pod object, role and external ID, and again when any of them changes', async () => {
    const d = deps();
    const f = fakeIssuer(d.clock);
    let built = 0;
    const keyFor = (r: CredentialRequest) => (built++, `${r.roleArn}|${r.externalId ?? ''}|${r.pod.name}`);
    const cache = createCredentialCache({ ...f.issuer, keyFor }, { ...d, sweepIntervalMs: 0 });
    const p = pod();
    for (let i = 0; i < 3; i++) await cache.issue({ pod: p, roleArn: ROLE });
    expect(built).toBe(1);
    expect(cache.keyFor({ pod: p, roleArn: `${ROLE}2` })).toBe(`${ROLE}2||web-0`);
    expect(cache.keyFor({ pod: p, roleArn: `${ROLE}2`, externalId: 'x' })).toBe(`${ROLE}2|x|web-0`);
    // A changed pod is a new object (the pod view never mutates one), so its key is built afresh.
    expect(cache.keyFor({ pod: pod({ name: 'web-1' }), roleArn: ROLE })).toBe(`${ROLE}||web-1`);
    expect(built).toBe(4);
    expect(f.issuer.calls()).toBe(1);
  });
});
