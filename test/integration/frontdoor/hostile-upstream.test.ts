// The real agent in front of an upstream IMDS that misbehaves on purpose (test/env/hostile-upstream.ts):
// a pod's request ends by the upstream deadline whatever upstream does, gets an IMDS-shaped error page,
// and never sees a redirect or a header upstream chose.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHostileUpstream, type HostileUpstream } from '../../env/hostile-upstream.js';
import { call, startAgent, type Agent } from './harness.js';

const TIMEOUT_MS = 500;
let up: HostileUpstream;
let agent: Agent;

beforeAll(async () => {
  up = await startHostileUpstream();
  agent = await startAgent({
    upstream: up.url,
    args: ['--region=us-east-1', `--upstream-timeout-ms=${TIMEOUT_MS}`],
  });
});
afterAll(async () => {
  await agent?.stop();
  await up?.stop();
});

const get = async (leaf: string) => {
  const t0 = performance.now();
  const r = await call(`${agent.url}/latest/meta-data/placement/${leaf}`);
  return { ...r, ms: performance.now() - t0 };
};

/** Headers the front door itself writes; anything else on a forwarded answer came from upstream. */
const OWN_HEADERS = ['server', 'content-type', 'content-length', 'date', 'connection', 'keep-alive'];

describe('a hostile upstream', () => {
  it.each(['stall', 'trickle'])('%s: the pod gets a 504 page by the upstream deadline', async (leaf) => {
    const r = await get(leaf);
    expect(r.status).toBe(504);
    expect(r.headers['content-type']).toBe('text/html');
    expect(r.text).toContain('<title>504 - Gateway Timeout</title>');
    expect(r.ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 10);
    expect(r.ms).toBeLessThan(TIMEOUT_MS + 400);
    await expect.poll(() => up.openSockets(leaf), { timeout: 2000 }).toBe(0);
  });

  it('a body over the cap: the pod gets a 502 page, none of the body', async () => {
    const r = await get('huge');
    expect(r.status).toBe(502);
    expect(r.text).toContain('<title>502 - Bad Gateway</title>');
    expect(r.body.length).toBeLessThan(2048);
  });

  it('a redirect: 502, no Location, not followed', async () => {
    const n = up.seen.length;
    const r = await get('redirect');
    expect(r.status).toBe(502);
    expect(r.headers.location).toBeUndefined();
    expect(up.seen.slice(n).filter((s) => s.startsWith('GET'))).toEqual([
      'GET /latest/meta-data/placement/redirect',
    ]);
  });

  it('injected and hop-by-hop headers never reach the pod', async () => {
    const r = await get('evil');
    expect(r.status).toBe(200);
    expect(r.text).toBe('evil');
    expect(Object.keys(r.headers).filter((h) => !OWN_HEADERS.includes(h))).toEqual([]);
    expect(r.headers['content-type']).not.toContain('script');
    expect(r.headers['keep-alive'] ?? '').not.toContain('600');
    expect(r.headers.connection ?? '').not.toMatch(/injected/i);
  });

  it('keeps serving well-behaved paths afterwards', async () => {
    const r = await get('availability-zone');
    expect(r).toMatchObject({ status: 200, text: 'ok' });
    expect(r.headers['content-type']).toBe('text/plain');
  });
});
