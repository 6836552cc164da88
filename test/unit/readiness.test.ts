import { describe, expect, it } from 'vitest';
import { ImdsError } from '../../src/errors.js';
import { createReadiness } from '../../src/readiness.js';

describe('createReadiness', () => {
  const make = (answer: () => Promise<number>) => {
    let now = 0;
    const calls: string[] = [];
    const notReady = createReadiness({
      upstream: {
        forward: async (_m, path) => {
          calls.push(path);
          return { status: await answer(), contentType: 'text/plain', body: Buffer.from('i-1') };
        },
      },
      identityReady: () => true,
      rules: () => [],
      interception: () => ({ ok: true, reason: '' }),
      clock: () => now,
      upstreamTtlMs: 1000,
    });
    return { notReady, calls, advance: (ms: number) => (now += ms) };
  };

  it('asks the upstream IMDS live, at most once per TTL, and follows its answer', async () => {
    let status = 200;
    const r = make(async () => status);
    expect(await r.notReady()).toEqual([]);
    status = 503;
    expect(await r.notReady()).toEqual([]); // within the TTL: the last live answer
    r.advance(1000);
    expect(await r.notReady()).toEqual(['upstream IMDS answered 503']);
    expect(r.calls).toEqual(['/latest/meta-data/instance-id', '/latest/meta-data/instance-id']);
  });

  it('an unreachable upstream is a reason with the error, concurrent checks share one request', async () => {
    const r = make(() => Promise.reject(new ImdsError('UPSTREAM_UNAVAILABLE', 'connect ECONNREFUSED')));
    const both = await Promise.all([r.notReady(), r.notReady()]);
    expect(both[0]).toEqual(['upstream IMDS: connect ECONNREFUSED']);
    expect(both[1]).toEqual(both[0]);
    expect(r.calls).toHaveLength(1);
  });

  it('lists rules not installed, rule problems, a failed self-check and a stale view together', async () => {
    const notReady = createReadiness({
      upstream: { forward: async () => ({ status: 200, contentType: undefined, body: Buffer.alloc(0) }) },
      identityReady: () => false,
      rules: () => undefined,
      interception: () => ({ ok: false, reason: 'no_matching_interface', detail: '2 pods run' }),
      clock: () => 0,
    });
    expect(await notReady()).toEqual([
      'interception rules not installed',
      'interception self-check: no_matching_interface: 2 pods run',
      'identity not synced, or pod view stale',
    ]);
  });
});
