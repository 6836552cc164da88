// The whole path, end to end, through real DNAT: pods in their own network namespaces call
// 169.254.169.254 exactly as on EC2; the agent runs from dist/ in the node namespace with the Kubernetes
// watch on the real kube-apiserver, AEMM plays the real IMDS, moto plays STS. Once per iptables backend.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inNetns } from './sandbox/netns.js';
import { createSandbox, curlIn, type Sandbox, type SandboxPod } from './sandbox/sandbox.js';
import { METADATA_IP } from './sandbox/topology.js';

const CREDS = '/latest/meta-data/iam/security-credentials/';

for (const backend of ['nft', 'legacy'] as const) {
  describe(`sandbox with iptables-${backend}`, () => {
    let sb: Sandbox;
    let allowed: SandboxPod;
    let denied: SandboxPod;
    let viaPod: SandboxPod;

    beforeAll(async () => {
      sb = await createSandbox({
        backend,
        pods: [
          { name: 'web', namespace: 'team-a', role: 'app-a' },
          { name: 'intruder', namespace: 'team-b', role: 'app-a', roleVia: 'pod-annotation' },
          { name: 'worker', namespace: 'team-b', role: 'app-b', roleVia: 'pod-annotation' },
        ],
        allowedRoles: { 'team-a': ['app-a'], 'team-b': ['app-b'] },
      });
      [allowed, denied, viaPod] = sb.pods as [SandboxPod, SandboxPod, SandboxPod];
      await sb.startAgent();
    });
    afterAll(async () => {
      await sb?.destroy();
    });

    it('plain curl from a pod gets its own role, through the DNAT', async () => {
      const list = await sb.curl(allowed, CREDS);
      expect(list).toMatchObject({ status: 200, body: 'app-a' });
      const creds = await sb.curl(allowed, `${CREDS}app-a`);
      expect(creds.status).toBe(200);
      const doc = JSON.parse(creds.body) as Record<string, string>;
      expect(doc).toMatchObject({ Code: 'Success', Type: 'AWS-HMAC' });
      expect(doc.AccessKeyId).toMatch(/^ASIA/);
    });

    it('a pod annotated with a role its namespace does not allow gets nothing', async () => {
      const list = await sb.curl(denied, CREDS);
      expect(list.status).toBe(404);
      expect(list.body).not.toContain('app-a');
      expect((await sb.curl(denied, `${CREDS}app-a`)).status).toBe(404);
    });

    it('a pod-annotation (kube2iam) role allowed by its namespace works', async () => {
      expect(await sb.curl(viaPod, CREDS)).toMatchObject({ status: 200, body: 'app-b' });
    });

    it('the node itself still reaches the real metadata service', async () => {
      const r = await curlIn(sb.topology.node, `http://${METADATA_IP}/latest/meta-data/instance-id`);
      expect(r).toMatchObject({ status: 200, body: 'i-1234567890abcdef0' });
    });

    it('metrics count the repairs and the backend in use', async () => {
      const m = await sb.metrics();
      expect(m).toMatch(/imdsgate_rules_installed\{family="ipv4"\} 1/);
      expect(sb.agent()!.log()).toContain(`"backend":"${backend}"`);
      const save = await inNetns(sb.topology.node, `iptables-${backend}-save`, ['-t', 'nat']);
      expect(save.stdout).toContain('-A PREROUTING -j IMDSGATE');
    });
  });
}
