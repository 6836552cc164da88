// A pod view that hears nothing from the real API server for --max-pod-view-staleness-seconds fails
// closed: identity paths answer 503 and /readyz says why, forwarding goes on, and the next watch event
// makes it fresh again. The threshold is 2 s here, below the API server's one-minute bookmark period, so
// a quiet but healthy watch goes stale on purpose (production default: 180 s, three bookmark periods).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createNamespace,
  createNode,
  createPod,
  createServiceAccount,
  deleteNamespace,
  uniqueName,
} from '../../env/kube.js';
import type { Served } from '../../../src/serve.js';
import { ROLE, ROLE_ARN, call, serveKubeMode, startAemm, until, type Aemm } from './harness.js';

const POD_IP = '127.0.0.7';
const CREDS = `/latest/meta-data/iam/security-credentials/${ROLE}`;
let aemm: Aemm;
let served: Served;
let ns: string;
let poked: string | undefined;
const node = uniqueName('stale-node');

beforeAll(async () => {
  aemm = await startAemm();
  ns = await createNamespace();
  await createNode(node);
  await createServiceAccount(ns, 'app', { 'eks.amazonaws.com/role-arn': ROLE_ARN });
  await createPod({
    namespace: ns,
    name: 'app-0',
    nodeName: node,
    serviceAccount: 'app',
    podIP: POD_IP,
    phase: 'Running',
  });
  served = await serveKubeMode(node, aemm.url, ['--max-pod-view-staleness-seconds=2']);
});
afterAll(async () => {
  await served?.close();
  await aemm?.stop();
  if (ns) await deleteNamespace(ns);
  if (poked) await deleteNamespace(poked);
});

const get = (p: string) => call(`${served.addresses.listen}${p}`, { localAddress: POD_IP });
const readyz = () => call(`${served.addresses.metrics}/readyz`);

describe('a stale pod view fails closed', () => {
  it('serves while fresh, 503 on identity paths once stale, and serves again after the next event', async () => {
    await until(async () => (await get(CREDS)).status === 200, 15_000);
    await until(async () => (await readyz()).text.includes('pod view stale'), 15_000);
    const stale = await get(CREDS);
    expect(stale.status).toBe(503);
    expect(stale.text).not.toMatch(/ASIA|SecretAccessKey/);
    expect((await get('/latest/meta-data/iam/security-credentials/')).status).toBe(503);
    expect((await get('/latest/meta-data/instance-id')).status).toBe(200);
    // Any watch event is news from the API server: one on this node's pods, one on service accounts and
    // one on namespaces make the three views (all under the same limit) fresh again.
    await createPod({ namespace: ns, name: 'other-0', nodeName: node, podIP: '127.0.0.8', phase: 'Running' });
    await createServiceAccount(ns, 'poke');
    poked = await createNamespace();
    await until(async () => (await get(CREDS)).status === 200, 5_000);
    const fresh = await get(CREDS);
    expect(JSON.parse(fresh.text).AccessKeyId).toMatch(/^ASIA/);
  });
});
