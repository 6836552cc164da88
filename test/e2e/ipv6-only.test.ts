// An IPv6-only node end to end (issue 12 point 5): the agent is given only the node's IPv6 address, as
// the chart passes status.hostIP and status.hostIPs on an IPv6 EKS cluster, and neither --ipv6 nor an
// IPv4 host address. A pod asking [fd00:ec2::254] gets its own role through the ip6tables DNAT; its IPv4
// metadata traffic, which has no IPv4 DNAT target, is dropped rather than passed to the node's IMDS.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callerArn } from './sandbox/clients.js';
import { mustInNetns } from './sandbox/netns.js';
import { createSandbox, curlIn, type Sandbox, type SandboxPod } from './sandbox/sandbox.js';
import { METADATA_IP6, NODE_IP6 } from './sandbox/topology.js';

const CREDS = '/latest/meta-data/iam/security-credentials/';
const v6 = (path: string) => `http://[${METADATA_IP6}]${path}`;

describe('IPv6-only node', () => {
  let sb: Sandbox;
  let web: SandboxPod;
  let intruder: SandboxPod;

  beforeAll(async () => {
    sb = await createSandbox({
      backend: 'nft',
      ipv6Only: true,
      pods: [
        { name: 'web', namespace: 'team-a', role: 'app-a' },
        { name: 'intruder', namespace: 'team-b', role: 'app-a', roleVia: 'pod-annotation' },
      ],
      allowedRoles: { 'team-a': ['app-a'], 'team-b': ['app-b'] },
    });
    [web, intruder] = sb.pods as [SandboxPod, SandboxPod];
    await sb.startAgent();
  });
  afterAll(async () => {
    await sb?.destroy();
  });

  it('a pod asking [fd00:ec2::254] gets its own role, and the policy holds', async () => {
    expect(await curlIn(web.netns, v6(CREDS), ['-g'])).toMatchObject({ status: 200, body: 'app-a' });
    expect((await curlIn(intruder.netns, v6(CREDS), ['-g'])).status).toBe(404);
  });

  it("botocore in IPv6 endpoint mode gets the pod's own role; in its default IPv4 mode it finds none", async () => {
    // SDKs ask 169.254.169.254 unless told otherwise (AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE, docs/install-eks.md §4).
    const v6 = await callerArn(web.netns, sb.env, 'ipv6');
    expect(v6.error).toBeUndefined();
    expect(v6.arn).toMatch(/:assumed-role\/app-a\//);
    expect((await callerArn(intruder.netns, sb.env, 'ipv6')).error ?? '').toMatch(/no credentials/);
    expect((await callerArn(web.netns, sb.env, 'ipv4')).error ?? '').toMatch(/no credentials/);
  });

  it('the DNAT points where the agent listens; IPv4 metadata traffic is dropped, not passed on', async () => {
    const nat6 = await mustInNetns(sb.topology.node, 'ip6tables-nft', [
      '-w',
      '5',
      '-t',
      'nat',
      '-S',
      'IMDSGATE',
    ]);
    expect(nat6).toContain(`--to-destination [${NODE_IP6}]:8181`);
    const raw4 = await mustInNetns(sb.topology.node, 'iptables-nft', [
      '-w',
      '5',
      '-t',
      'raw',
      '-S',
      'IMDSGATE-ANTISPOOF',
    ]);
    expect(raw4).toContain('-d 169.254.169.254/32 -i veth+');
    expect(raw4).toContain('-j DROP');
    // Without the rules this would reach the emulated node IMDS (topology.ts forwards pod traffic).
    const v4 = await sb.curl(web, CREDS, ['-m', '2']);
    expect(v4.status).toBe(0);
    expect(v4.stderr).toMatch(/timed out/i);
  });

  it('the agent keeps running and reports both families installed', async () => {
    const m = await sb.metrics();
    expect(m).toMatch(/^imdsgate_rules_installed\{family="ipv6"\} 1$/m);
    expect(m).toMatch(/^imdsgate_rules_installed\{family="ipv4"\} 1$/m);
    const alive = new Promise((resolve) => setTimeout(() => resolve('running'), 1000));
    expect(await Promise.race([sb.agent()!.exited, alive])).toBe('running');
  });
});
