// Node restart: kubelet, containerd and every container are killed and the node's netfilter is flushed
// (what a reboot does), then the node starts again, while the agent is held off the node. Pods come back
// with no rules: their packets go to the cloud's metadata service, which answers with IMDSv2 required and
// a hop limit of 1 (test/node/up; docs/install-eks.md): they get nothing, never the node's credentials.
// Once the agent is back they get their own role again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { join } from 'node:path';
import { REPO_ROOT } from '../env/index.js';
import { kubectl, NODE_ROLE, nodeAccessKeyId, nodeRules, podLog, until } from './bed.js';
import { askingPod, parseTries } from './pods.js';
import { installChart, RELEASE_NS } from './release.js';

const NS = 'bed-reboot';
const ROLE = 'app-reboot';
const runtime = (cmd: string) =>
  execa('bash', [join(REPO_ROOT, 'test/node/runtime.sh'), cmd], { stdout: 'inherit', stderr: 'inherit' });

beforeAll(async () => {
  await installChart();
  await askingPod(NS, 'survivor', ROLE);
});

describe('node restart', () => {
  it('pods restarted before the agent is back never receive node credentials', async () => {
    const nodeKey = await nodeAccessKeyId();
    // Hold the agent off this node (a values change: no node matches the selector), so that the window
    // between the node's restart and the agent's return is long and certain, not a race between two
    // container starts. The rules stay while it is held: its DaemonSet still exists.
    await installChart(['--set-string', 'nodeSelector.imdsgate-bed/hold=true']);
    await until('agent gone', 60_000, async () => ((await agentPods()) === 0 ? true : undefined));
    await runtime('reboot');
    const rebooted = Date.now();
    await runtime('start');
    await until('survivor asking again', 120_000, async () =>
      parseTries(podLog(NS, 'survivor')).filter((t) => t.at > rebooted).length >= 3 ? true : undefined,
    ).catch(async (err: Error) => {
      const pod = await kubectl(['describe', 'pod', '-n', NS, 'survivor'], { reject: false });
      throw new Error(`${err.message}\n${pod}\nlast lines: ${podLog(NS, 'survivor').slice(-5).join('\n')}`);
    });
    expect(await nodeRules()).not.toContain('IMDSGATE'); // nothing intercepts: the pod talks to the cloud
    const held = parseTries(podLog(NS, 'survivor')).filter((t) => t.at > rebooted);
    const back = Date.now();
    await installChart();
    await until('survivor served again', 120_000, async () =>
      parseTries(podLog(NS, 'survivor')).some((t) => t.at > back && t.role === ROLE) ? true : undefined,
    );
    const after = parseTries(podLog(NS, 'survivor')).filter((t) => t.at > rebooted);
    console.log(`node restart: ${held.length} tries without an agent, ${after.length} in all`);
    for (const t of held) expect(t.listing, JSON.stringify(t)).toBe('000'); // no answer reached the pod
    for (const t of after) {
      expect(t.key).not.toBe(nodeKey);
      expect(t.role).not.toBe(NODE_ROLE);
      if (t.listing === '200') expect(t.role).toBe(ROLE);
    }
  });
});

/** Agent pods on the node. */
async function agentPods(): Promise<number> {
  const out = await kubectl([
    'get',
    'pods',
    '-n',
    RELEASE_NS,
    '-l',
    'app.kubernetes.io/name=imdsgate',
    '-o',
    'name',
  ]);
  return out.split('\n').filter(Boolean).length;
}

afterAll(async () => {
  await kubectl(['delete', 'namespace', NS, '--wait=false'], { reject: false });
});
