// Terminating pods and quarantined addresses on the real kube-apiserver, through startKubeIdentity. These
// pod IPs have no host route on this machine, so `auto` falls back to quarantine (docs/identity.md): a pod
// marked for deletion (a graceful delete, which no kubelet completes here) loses its identity at once, and
// a new pod's status claiming its IP is what gives the address back. The route-bound side of the same
// story, with veths in network namespaces, is test/e2e/binding.test.ts.
import { randomBytes } from 'node:crypto';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { startKubeIdentity, type KubeIdentity } from '../../../src/kube/identity.js';
import { deps } from '../../unit/credentials/helpers.js';
import {
  AGENT_RULES,
  adminKc,
  agentKubeconfig,
  createPod,
  deleteNamespace,
  deletePod,
  ensureNamespace,
  waitUntil,
} from './support.js';

const run = randomBytes(3).toString('hex');
const NODE = `node-term-${run}`;
const NS = `term-${run}`;
const octet = 1 + (parseInt(run.slice(0, 2), 16) % 200);
const IP = `169.254.${octet}.77`;

const lookupName = async (id: KubeIdentity) => {
  const r = await id.podLookup.byIp(IP);
  return r.kind === 'found' ? r.pod.name : r.kind === 'unbound' ? r.reason : r.kind;
};

describe.each(['auto', 'off'] as const)('Terminating pods with --sandbox-binding=%s', (mode) => {
  let identity: KubeIdentity;
  const ns = `${NS}-${mode}`;
  const node = `${NODE}-${mode}`;

  beforeAll(async () => {
    await ensureNamespace(ns);
    const kubeconfig = await agentKubeconfig(`imdsgate-term-${mode}`, AGENT_RULES);
    const cfg = loadConfig(
      [
        '--node-name',
        node,
        '--kubeconfig',
        kubeconfig,
        '--unknown-pod-wait-ms',
        '300',
        `--sandbox-binding=${mode}`,
      ],
      { IMDSGATE_MANAGE_RULES: 'false' }, // the identity source alone: no rules, so no --host-ip
    );
    const d = deps();
    identity = await startKubeIdentity(cfg, { logger: d.logger, metrics: d.metrics, clock: Date.now });
    await identity.synced;
  });
  afterAll(async () => {
    identity?.stop();
    for (const name of ['old', 'new']) await deletePod(ns, name);
    await deleteNamespace(ns);
  });

  it('a graceful delete ends the identity (auto) or not (off); a new pod claiming the IP gets it', async () => {
    await createPod({ namespace: ns, name: 'old', nodeName: node, ips: [IP] });
    await waitUntil(async () => (await lookupName(identity)) === 'old', 10_000, 'old pod');
    await adminKc()
      .makeApiClient(CoreV1Api)
      .deleteNamespacedPod({ namespace: ns, name: 'old', gracePeriodSeconds: 30 });
    if (mode === 'auto') {
      await waitUntil(
        async () => (await lookupName(identity)) === 'address_quarantined',
        10_000,
        'quarantine',
      );
    } else {
      await new Promise((r) => setTimeout(r, 500));
      expect(await lookupName(identity)).toBe('old');
    }
    // The new pod's status claims the IP while the old one is still Terminating: quarantine lets the
    // newcomer have it; the API view alone sees two pods and refuses both.
    await createPod({ namespace: ns, name: 'new', nodeName: node, ips: [IP] });
    const want = mode === 'auto' ? 'new' : 'conflict';
    await waitUntil(async () => (await lookupName(identity)) === want, 10_000, want);
  });
});
