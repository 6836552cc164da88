// serve() in Kubernetes mode (no --identity-file): the composition root wires IDENTITY's node-scoped pod
// watch (src/kube/identity.ts) into the front door. Real kube-apiserver, AEMM and moto; pods are API
// objects whose status.podIP is a loopback address the test sends from (kubelet-style status writes).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  coreApi,
  createNamespace,
  createNode,
  createPod,
  createServiceAccount,
  deleteNamespace,
  deletePod,
  uniqueName,
} from '../../env/kube.js';
import type { Served } from '../../../src/serve.js';
import { ROLE, ROLE_ARN, TOKEN, call, serveKubeMode, startAemm, token, until, type Aemm } from './harness.js';

const WITH_ROLE = '127.0.0.4';
const NO_ROLE = '127.0.0.5';
const LIST = '/latest/meta-data/iam/security-credentials/';
let aemm: Aemm;
let served: Served;
let ns: string;
const node = uniqueName('fd-node');
const TAINT = 'imdsgate.io/agent-not-ready';

beforeAll(async () => {
  aemm = await startAemm();
  ns = await createNamespace();
  // The node registers with the startup taint (node-boot guard) and another taint that must survive.
  await createNode(node, [
    { key: TAINT, effect: 'NoSchedule' },
    { key: 'dedicated', value: 'gpu', effect: 'NoSchedule' },
  ]);
  await createServiceAccount(ns, 'app', { 'eks.amazonaws.com/role-arn': ROLE_ARN });
  await createPod({
    namespace: ns,
    name: 'app-0',
    nodeName: node,
    serviceAccount: 'app',
    podIP: WITH_ROLE,
    phase: 'Running',
  });
  await createPod({ namespace: ns, name: 'plain-0', nodeName: node, podIP: NO_ROLE, phase: 'Running' });
  served = await serveKubeMode(node, aemm.url, [`--startup-taint=${TAINT}`]);
});
afterAll(async () => {
  await served?.close();
  await aemm?.stop();
  if (ns) await deleteNamespace(ns);
});

describe('serve with the Kubernetes pod watch', () => {
  it('becomes ready once the watch has synced and the upstream session works', async () => {
    await until(async () => (await call(`${served.addresses.metrics}/readyz`)).status === 200);
  });

  it('removes its startup taint from its own node once ready, and only that taint', async () => {
    const taints = async () =>
      ((await coreApi().readNode({ name: node })).spec?.taints ?? []).map((t) => t.key);
    await until(async () => !(await taints()).includes(TAINT));
    // The API server's own admission adds node.kubernetes.io/not-ready; that and ours-but-other stay.
    expect(await taints()).toContain('dedicated');
    expect(await taints()).not.toContain(TAINT);
  });

  it('serves the service-account role to its pod and 404 to a pod without one (region from the identity document)', async () => {
    const get = (p: string, ip: string) => call(`${served.addresses.listen}${p}`, { localAddress: ip });
    expect((await get(LIST, WITH_ROLE)).text).toBe(ROLE);
    const creds = await get(`${LIST}${ROLE}`, WITH_ROLE);
    expect(creds.status).toBe(200);
    expect(JSON.parse(creds.text).AccessKeyId).toMatch(/^ASIA/);
    expect((await get(LIST, NO_ROLE)).status).toBe(404);
    expect((await get(LIST, '127.0.0.6')).status).toBe(404);
  });

  it('binds tokens to the pod UID: a deleted pod loses its credentials and its token', async () => {
    const t = await token(served.addresses.listen, '300', WITH_ROLE);
    await deletePod(ns, 'app-0');
    await until(
      async () =>
        (await call(`${served.addresses.listen}${LIST}`, { localAddress: WITH_ROLE })).status === 404,
    );
    const r = await call(`${served.addresses.listen}${LIST}`, {
      localAddress: WITH_ROLE,
      headers: { [TOKEN]: t },
    });
    expect([401, 404]).toContain(r.status);
  });
});
