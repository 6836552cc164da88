// Node restart: kubelet, containerd and every container are killed and the node's netfilter is flushed
// (what a reboot does), then the node starts again. Pods come back before the agent has re-installed its
// rules; in that window their packets go to the cloud's metadata service, which answers with IMDSv2
// required and a hop limit of 1 (test/node/up; docs/install-eks.md): they get nothing, never the node's
// credentials. Once the agent is back they get their own role again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { join } from 'node:path';
import { REPO_ROOT } from '../env/index.js';
import { apply, kubectl, NODE_ROLE, nodeAccessKeyId, podLog, until } from './bed.js';
import { clientPod, curlLoopScript, parseTries, roleArn } from './pods.js';
import { agentReadySince, installChart } from './release.js';

const NS = 'bed-reboot';
const ROLE = 'app-reboot';
const runtime = (cmd: string) =>
  execa('bash', [join(REPO_ROOT, 'test/node/runtime.sh'), cmd], { stdout: 'inherit', stderr: 'inherit' });

beforeAll(async () => {
  await installChart();
  await apply(
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'app', namespace: NS, annotations: { 'eks.amazonaws.com/role-arn': roleArn(ROLE) } },
    },
  );
  await apply(
    clientPod({ namespace: NS, name: 'survivor', serviceAccount: 'app', script: curlLoopScript(0.2) }),
  );
  await until('survivor served', 60_000, async () =>
    parseTries(podLog(NS, 'survivor')).some((t) => t.role === ROLE) ? true : undefined,
  );
});

describe('node restart', () => {
  it('pods restarted before the agent is back never receive node credentials', async () => {
    const nodeKey = await nodeAccessKeyId();
    // The pods and the agent restart together; a round in which the pod happened to ask only after the
    // agent was back proves nothing about the window, so the node restarts again (at most 3 times).
    let window = 0;
    for (let round = 1; round <= 3 && window === 0; round++) {
      await runtime('reboot');
      const rebooted = Date.now();
      await runtime('start');
      await until('agent Ready again', 180_000, () => agentReadySince(rebooted));
      await until('survivor served again', 120_000, async () =>
        parseTries(podLog(NS, 'survivor')).some((t) => t.at > rebooted && t.role === ROLE) ? true : undefined,
      );
      const after = parseTries(podLog(NS, 'survivor')).filter((t) => t.at > rebooted);
      for (const t of after) {
        expect(t.key).not.toBe(nodeKey);
        expect(t.role).not.toBe(NODE_ROLE);
        if (t.listing === '200') expect(t.role).toBe(ROLE);
      }
      const first = after.findIndex((t) => t.creds === '200');
      window = first; // tries before the first served one: asked while the agent was not back
      console.log(`node restart ${round}: ${after.length} tries after it, ${first} before the agent served`);
    }
    expect(window).toBeGreaterThan(0);
  });
});

afterAll(async () => {
  await kubectl(['delete', 'namespace', NS, '--wait=false'], { reject: false });
});
