// The kube client's pacing, pure: jittered backoff, Retry-After parsing and the token bucket, with time
// and randomness injected.
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_BACKOFF,
  backoffDelay,
  createTokenBucket,
  parseRetryAfter,
} from '../../../src/kube/backoff.js';

const policy = { initialMs: 800, maxMs: 30_000, jitter: 1 };

describe('backoffDelay', () => {
  it.each([
    [1, 0, 800],
    [2, 0, 1600],
    [3, 0.5, 4800],
    [6, 0, 25_600],
    [7, 0, 30_000],
    [50, 0, 30_000],
    [7, 0.999, 59_970],
    [1, 0.25, 1000],
  ])('failure %i with random %f waits %i ms', (failures, roll, ms) => {
    expect(backoffDelay(failures, policy, () => roll)).toBe(ms);
  });

  it('the default waits 800 ms at first and never more than 20 s (10 s cap, jitter 1.0)', () => {
    expect(backoffDelay(1, DEFAULT_BACKOFF, () => 0)).toBe(800);
    expect(backoffDelay(5, DEFAULT_BACKOFF, () => 0)).toBe(10_000);
    expect(backoffDelay(40, DEFAULT_BACKOFF, () => 0.9999)).toBeLessThanOrEqual(20_000);
  });

  it('two nodes with different rolls wait different times (no lockstep relists)', () => {
    const a = backoffDelay(4, policy, () => 0.1);
    const b = backoffDelay(4, policy, () => 0.9);
    expect(a).not.toBe(b);
    expect(Math.min(a, b)).toBeGreaterThanOrEqual(6400);
    expect(Math.max(a, b)).toBeLessThan(12_800);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it.each([
    ['1', 1000],
    ['0', 0],
    [' 7 ', 7000],
    [['3', '9'], 3000],
    ['3600', 60_000],
    ['Thu, 01 Jan 2026 00:00:05 GMT', 5000],
    ['Wed, 31 Dec 2025 23:59:00 GMT', 0],
  ] as [string | string[], number][])('%j → %i ms', (v, ms) => {
    expect(parseRetryAfter(v, now)).toBe(ms);
  });
  it.each([[undefined], [''], ['soon'], ['-1'], ['1.5']])('%j → undefined', (v) => {
    expect(parseRetryAfter(v, now)).toBeUndefined();
  });
});

describe('createTokenBucket', () => {
  function fake() {
    let t = 0;
    const slept: number[] = [];
    const bucket = createTokenBucket(
      { qps: 5, burst: 10 },
      () => t,
      async (ms, signal) => {
        if (signal?.aborted) throw new Error('aborted');
        slept.push(Math.round(ms));
        t += ms;
      },
    );
    return { bucket, slept, advance: (ms: number) => (t += ms) };
  }

  it('lets a burst of 10 through at once, then paces at 5 per second', async () => {
    const { bucket, slept } = fake();
    for (let i = 0; i < 10; i++) await bucket.take();
    expect(slept).toEqual([]);
    await bucket.take();
    await bucket.take();
    expect(slept).toEqual([200, 200]);
  });

  it('refills while idle, up to the burst', async () => {
    const { bucket, slept, advance } = fake();
    for (let i = 0; i < 10; i++) await bucket.take();
    advance(60_000);
    for (let i = 0; i < 10; i++) await bucket.take();
    expect(slept).toEqual([]);
    await bucket.take();
    expect(slept).toEqual([200]);
  });

  it('an aborted wait gives its token back and rejects', async () => {
    const { bucket, slept } = fake();
    for (let i = 0; i < 10; i++) await bucket.take();
    const ctl = new AbortController();
    ctl.abort();
    await expect(bucket.take(ctl.signal)).rejects.toThrow('aborted');
    await bucket.take();
    expect(slept).toEqual([200]);
  });

  it('qps 0 turns the limit off', async () => {
    const b = createTokenBucket(
      { qps: 0, burst: 0 },
      () => 0,
      () => Promise.reject(new Error('slept')),
    );
    for (let i = 0; i < 100; i++) await b.take();
  });
});
