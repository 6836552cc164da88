// Issue 11: an unknown source must not hold the full unknown-pod wait where the answer cannot depend on
// the pod, and one source cannot park more than its share of waiters. serve() in Kubernetes mode with
// the real pod watch (kube-apiserver), AEMM and moto; 127.0.0.9 is an address no pod owns.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Served } from '../../../src/serve.js';
import { TOKEN, call, serveKubeMode, startAemm, token, until, type Aemm } from './harness.js';
import { uniqueName } from '../../env/kube.js';

const UNKNOWN = '127.0.0.9';
const WAIT_MS = 1500;
let aemm: Aemm;
let served: Served;
let tok: string;

beforeAll(async () => {
  aemm = await startAemm();
  served = await serveKubeMode(uniqueName('fd-unknown-node'), aemm.url, [`--unknown-pod-wait-ms=${WAIT_MS}`]);
  await until(async () => (await call(`${served.addresses.metrics}/readyz`)).status === 200);
  tok = await token(served.addresses.listen, '300', UNKNOWN);
});
afterAll(async () => {
  await served?.close();
  await aemm?.stop();
});

const timed = async (path: string, headers: Record<string, string> = {}) => {
  const t0 = performance.now();
  const res = await call(`${served.addresses.listen}${path}`, { headers, localAddress: UNKNOWN });
  return { status: res.status, ms: performance.now() - t0 };
};

describe('requests from an address no pod owns', () => {
  it('with a token, a forwarded path or a listing is answered at once', async () => {
    for (const p of ['/latest/meta-data/instance-id', '/latest/meta-data/']) {
      const r = await timed(p, { [TOKEN]: tok });
      expect(r.status, p).toBe(200);
      expect(r.ms, p).toBeLessThan(WAIT_MS / 2);
    }
  });

  it('identity paths and IMDSv1 requests still wait for the pod view, then fail closed or go on', async () => {
    const creds = await timed('/latest/meta-data/iam/security-credentials/', { [TOKEN]: tok });
    expect(creds.status).toBe(404);
    expect(creds.ms).toBeGreaterThanOrEqual(WAIT_MS - 50);
    const v1 = await timed('/latest/meta-data/instance-id');
    expect(v1.status).toBe(200);
    expect(v1.ms).toBeGreaterThanOrEqual(WAIT_MS - 50);
  });

  it('parks at most 16 waiters per address: the rest are answered as unknown at once', async () => {
    const all = await Promise.all(
      Array.from({ length: 20 }, () =>
        timed('/latest/meta-data/iam/security-credentials/', { [TOKEN]: tok }),
      ),
    );
    expect(all.every((r) => r.status === 404)).toBe(true);
    expect(all.filter((r) => r.ms < WAIT_MS / 2)).toHaveLength(4);
    const metrics = (await call(`${served.addresses.metrics}/metrics`)).text;
    expect(metrics).toContain('imdsgate_unknown_pod_waits_total{outcome="over_limit"} 4');
  });
});
