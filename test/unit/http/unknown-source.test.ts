// Which requests may wait for an unknown source's pod to reach the view (--unknown-pod-wait-ms): only
// those whose answer the pod's identity could change (pipeline.ts needsWait). Table-driven over the
// pipeline with a fake lookup that records the wait option; the waiter caps are in pods/watcher.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { harness, standardPods, type Harness } from './fakes.js';

const UNKNOWN = '10.9.9.9';
let h: Harness;
let token: string;

beforeAll(async () => {
  h = harness();
  standardPods(h);
  const res = await h.app.inject({
    method: 'PUT',
    url: '/latest/api/token',
    remoteAddress: UNKNOWN,
    headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' },
  });
  expect(res.statusCode).toBe(200);
  token = res.body;
});
afterAll(() => h.app.close());

describe('unknown source: wait for the pod view or not', () => {
  it.each([
    ['forwarded, with a token', '/latest/meta-data/instance-id', true, false, 200],
    ['listing, with a token', '/latest/meta-data/', true, false, 200],
    ['concealed, with a token', '/latest/meta-data/identity-credentials/ec2/info', true, false, 404],
    ['forwarded, IMDSv1 (namespace policy may differ)', '/latest/meta-data/instance-id', false, true, 200],
    ['credentials list, with a token', '/latest/meta-data/iam/security-credentials/', true, true, 404],
    ['iam/info, with a token', '/latest/meta-data/iam/info', true, true, 404],
  ])('%s', async (_name, url, withToken, waits, status) => {
    h.waits.length = 0;
    const headers: Record<string, string> = withToken ? { 'x-aws-ec2-metadata-token': token } : {};
    const res = await h.app.inject({ method: 'GET', url, remoteAddress: UNKNOWN, headers });
    expect(res.statusCode).toBe(status);
    expect(h.waits).toEqual([waits]);
  });

  it('once the pod is known, the token minted before still passes, and the lookup waits no more', async () => {
    h.pods.set(UNKNOWN, h.pods.get('10.0.0.1')!);
    h.waits.length = 0;
    const res = await h.app.inject({
      method: 'GET',
      url: '/latest/meta-data/instance-id',
      remoteAddress: UNKNOWN,
      headers: { 'x-aws-ec2-metadata-token': token },
    });
    expect(res.statusCode).toBe(200);
    expect(h.waits).toEqual([false]);
    h.pods.delete(UNKNOWN);
  });
});
