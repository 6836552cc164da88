// The bounded upstream exchange: pure filters (table-driven), then the real upstream client against a
// stand-in IMDS on loopback that stalls, trickles, floods, redirects and injects headers on purpose.
import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { passedContentType, passesStatus } from '../../../src/imds/exchange.js';
import { createUpstream, type UpstreamImds } from '../../../src/imds/upstream.js';
import { createLogger } from '../../../src/logger.js';
import { createMetrics } from '../../../src/metrics.js';
import { startHostileUpstream, type HostileUpstream } from '../../env/hostile-upstream.js';

describe('passedContentType', () => {
  it.each([
    ['text/plain', 'text/plain'],
    ['application/json', 'application/json'],
    ['application/octet-stream', 'application/octet-stream'],
    ['text/plain; charset=utf-8', 'text/plain; charset=utf-8'],
    ['text/plain;charset="utf-8"', 'text/plain;charset="utf-8"'],
    ['text/html; charset=<script>', undefined],
    ['text/plain\tx', undefined],
    ['text', undefined],
    ['', undefined],
    [`text/${'a'.repeat(130)}`, undefined],
    [['text/plain', 'text/html'], undefined],
    [undefined, undefined],
  ])('%j → %j', (value, want) => {
    expect(passedContentType(value)).toBe(want);
  });
});

describe('passesStatus', () => {
  it.each([
    [200, true],
    [404, true],
    [401, true],
    [429, true],
    [503, true],
    [204, false],
    [206, false],
    [301, false],
    [302, false],
    [304, false],
    [307, false],
    [418, false],
    [599, false],
  ])('%d → %s', (status, want) => {
    expect(passesStatus(status)).toBe(want);
  });
});

describe('the upstream client against a hostile upstream', () => {
  let up: HostileUpstream;
  let client: UpstreamImds;
  const registry = new Registry();
  const metrics = createMetrics(registry, { defaults: false });
  const logger = createLogger('silent', new Writable({ write: (_c, _e, cb) => cb() }));
  const errors = async (kind: string) =>
    (await registry.getSingleMetric('imdsgate_upstream_errors_total')!.get()).values.find(
      (v) => v.labels.kind === kind,
    )?.value ?? 0;

  beforeAll(async () => {
    up = await startHostileUpstream();
    client = createUpstream({ url: up.url, timeoutMs: 400, clock: Date.now, metrics, logger });
  });
  afterAll(async () => {
    await client.close();
    await up.stop();
  });

  const timed = async (p: Promise<unknown>) => {
    const t0 = performance.now();
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    return { err, ms: performance.now() - t0 };
  };

  it('relays a well-behaved answer', async () => {
    expect(await client.forward('GET', '/fine')).toEqual({
      status: 200,
      contentType: 'text/plain',
      body: Buffer.from('ok'),
    });
  });

  it.each(['/stall', '/trickle'])('%s: 504 by the deadline, and the connection is cut', async (path) => {
    const before = await errors('timeout');
    const { err, ms } = await timed(client.forward('GET', path));
    expect(err).toMatchObject({ code: 'UPSTREAM_TIMEOUT', status: 504 });
    // The deadline is 400 ms; a trickle sends a byte every 100 ms and would go on for 100 s.
    expect(ms).toBeGreaterThanOrEqual(390);
    expect(ms).toBeLessThan(700);
    expect(await errors('timeout')).toBe(before + 1);
    await expect.poll(() => up.openSockets(path.slice(1)), { timeout: 2000 }).toBe(0);
  });

  it('cuts a body over the cap with 502 UPSTREAM_INVALID', async () => {
    const before = await errors('invalid');
    const { err, ms } = await timed(client.forward('GET', '/huge'));
    expect(err).toMatchObject({ code: 'UPSTREAM_INVALID', status: 502 });
    expect(ms).toBeLessThan(400);
    expect(await errors('invalid')).toBe(before + 1);
  });

  it('never relays a redirect: 502 UPSTREAM_INVALID, Location not followed', async () => {
    const n = up.seen.length;
    await expect(client.forward('GET', '/redirect')).rejects.toMatchObject({ code: 'UPSTREAM_INVALID' });
    expect(up.seen.slice(n)).toEqual(['GET /redirect']);
  });

  it('keeps only the status and body of an answer with injected headers', async () => {
    const r = await client.forward('GET', '/evil');
    expect(r).toEqual({ status: 200, contentType: undefined, body: Buffer.from('evil') });
    expect(Object.keys(r).sort()).toEqual(['body', 'contentType', 'status']);
  });

  it('bounds the whole forward, a stalled session PUT included', async () => {
    const stalled = await startHostileUpstream();
    stalled.stallToken = true;
    const c = createUpstream({ url: stalled.url, timeoutMs: 300, clock: Date.now, metrics, logger });
    try {
      const { err, ms } = await timed(c.forward('GET', '/fine'));
      expect(err).toMatchObject({ code: 'UPSTREAM_TIMEOUT' });
      expect(ms).toBeLessThan(600);
      // A second request joins the same stalled PUT and still ends by its own deadline.
      stalled.stallToken = true;
      const second = await timed(Promise.all([c.forward('GET', '/a'), c.forward('GET', '/b')]));
      expect(second.err).toMatchObject({ code: 'UPSTREAM_TIMEOUT' });
      expect(second.ms).toBeLessThan(600);
    } finally {
      await c.close();
      await stalled.stop();
    }
  });
});
